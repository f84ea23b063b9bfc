//! A small OpenAPI 3.1 schema walker for the drift check: resolves `$ref`,
//! merges `allOf`, picks the non-null branch of `oneOf`/`anyOf`, and
//! compares a JSON value (a client type serialised) with a schema.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One OpenAPI document.
pub struct Document {
    pub name: &'static str,
    root: Value,
}

/// An object schema's properties and required names, `allOf` merged.
#[derive(Default)]
struct Object {
    properties: Map<String, Value>,
    required: BTreeSet<String>,
    additional: Option<Value>,
}

impl Document {
    pub fn load(name: &'static str) -> Document {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../openapi")
            .join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let root = serde_json::from_str(&text).expect("an OpenAPI document is JSON");
        Document { name, root }
    }

    pub fn schema(&self, name: &str) -> &Value {
        self.root
            .pointer(&format!("/components/schemas/{name}"))
            .unwrap_or_else(|| panic!("{}: no schema {name}", self.name))
    }

    /// `schema` with `$ref`s followed and nullable unions narrowed.
    fn resolve<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        loop {
            if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
                let name = reference.trim_start_matches("#/components/schemas/");
                schema = self.schema(name);
                continue;
            }
            let union = schema.get("oneOf").or_else(|| schema.get("anyOf"));
            if let Some(Value::Array(branches)) = union {
                let not_null: Vec<&Value> = branches
                    .iter()
                    .filter(|b| b.get("type") != Some(&Value::from("null")))
                    .collect();
                if let [only] = not_null[..] {
                    schema = only;
                    continue;
                }
            }
            return schema;
        }
    }

    fn object(&self, schema: &Value) -> Option<Object> {
        let schema = self.resolve(schema);
        let mut object = Object::default();
        let mut found = false;
        if let Some(Value::Array(parts)) = schema.get("allOf") {
            for part in parts {
                if let Some(part) = self.object(part) {
                    found = true;
                    object.properties.extend(part.properties);
                    object.required.extend(part.required);
                }
            }
        }
        if let Some(Value::Object(properties)) = schema.get("properties") {
            found = true;
            object.properties.extend(properties.clone());
        }
        if let Some(Value::Array(required)) = schema.get("required") {
            object.required.extend(
                required
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
        }
        if let Some(additional @ Value::Object(_)) = schema.get("additionalProperties") {
            found = true;
            object.additional = Some(additional.clone());
        }
        found.then_some(object)
    }

    /// Every difference between `value` and `schema`, as `path: what`.
    /// `all_properties`: also report schema properties `value` lacks (a
    /// fully populated client value should have every one).
    pub fn compare(
        &self,
        path: &str,
        value: &Value,
        schema: &Value,
        all_properties: bool,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        self.walk(path, value, schema, all_properties, &mut problems);
        problems
    }

    fn walk(&self, path: &str, value: &Value, schema: &Value, all: bool, out: &mut Vec<String>) {
        let resolved = self.resolve(schema);
        if !type_fits(value, resolved) {
            out.push(format!(
                "{path}: {value} does not fit type {}",
                resolved["type"]
            ));
            return;
        }
        if let (Value::String(text), Some(Value::Array(values))) = (value, resolved.get("enum"))
            && !values.contains(&Value::from(text.as_str()))
        {
            out.push(format!("{path}: {text:?} is not one of {values:?}"));
        }
        match value {
            Value::Object(members) => {
                let Some(object) = self.object(schema) else {
                    return; // a free-form object (`details`, ...)
                };
                for (name, member) in members {
                    let at = format!("{path}.{name}");
                    match (object.properties.get(name), &object.additional) {
                        (Some(property), _) => self.walk(&at, member, property, all, out),
                        (None, Some(additional)) if object.properties.is_empty() => {
                            self.walk(&at, member, additional, all, out)
                        }
                        _ => out.push(format!("{at}: not in the schema")),
                    }
                }
                for name in &object.required {
                    if !members.contains_key(name) {
                        out.push(format!("{path}.{name}: required by the schema, not sent"));
                    }
                }
                if all {
                    for name in object.properties.keys() {
                        if !members.contains_key(name) {
                            out.push(format!(
                                "{path}.{name}: in the schema, not in the client type"
                            ));
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(item_schema) = resolved.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.walk(&format!("{path}[{i}]"), item, item_schema, all, out);
                    }
                }
            }
            _ => {}
        }
    }

    /// The values of an enum schema.
    pub fn enum_values(&self, name: &str) -> Vec<String> {
        self.schema(name)["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} is not an enum"))
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }
}

/// Whether `value`'s JSON type is one `schema` allows (no `type`: anything).
fn type_fits(value: &Value, schema: &Value) -> bool {
    let allowed: Vec<&str> = match schema.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => return true,
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    allowed.contains(&actual) || (actual == "integer" && allowed.contains(&"number"))
}
