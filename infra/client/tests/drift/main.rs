//! Drift check: every wire type of the client, serialised from a value with
//! every field set, against the schema of the same name in the servers'
//! generated OpenAPI documents (`openapi/*.json`). A property the client
//! sends that the schema lacks, a required one it does not send, a schema
//! property the client type has no field for, a value of the wrong JSON type
//! or an unknown enum value fails the test, so the client cannot silently
//! fall behind the servers.

mod control_samples;
mod data_samples;
mod schema;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sluice_client::control::{
    DestinationType, ExchangeType, HeaderMatch, KeyStatus, Overflow, Plan, Scope, TenantStatus,
};
use sluice_client::data::{BodyEncoding, NackKind};

use schema::Document;

/// Compares `value` with schema `name` of `document`.
fn check<T: Serialize>(document: &Document, name: &str, value: &T, problems: &mut Vec<String>) {
    let json = serde_json::to_value(value).expect("client types serialise");
    for problem in document.compare(name, &json, document.schema(name), true) {
        problems.push(format!("{}: {problem}", document.name));
    }
}

#[test]
fn control_plane_types_match_the_schemas() {
    let document = Document::load("control-plane.json");
    let mut problems = Vec::new();
    for (name, value) in control_samples::all() {
        for problem in document.compare(name, &value, document.schema(name), true) {
            problems.push(format!("control-plane.json: {problem}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the client drifted:\n{}",
        problems.join("\n")
    );
}

#[test]
fn data_plane_types_match_the_schemas() {
    let document = Document::load("data-plane.json");
    let mut problems = Vec::new();
    for (name, value) in data_samples::all() {
        for problem in document.compare(name, &value, document.schema(name), true) {
            problems.push(format!("data-plane.json: {problem}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the client drifted:\n{}",
        problems.join("\n")
    );
}

/// Every variant of a client enum is in the schema's enum, and every
/// schema value reads back into the client enum.
fn same_enum<T: Serialize + DeserializeOwned>(
    document: &Document,
    name: &str,
    variants: &[T],
    problems: &mut Vec<String>,
) {
    let schema = document.enum_values(name);
    for variant in variants {
        check(document, name, variant, problems);
    }
    let ours: Vec<String> = variants
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for value in schema {
        if serde_json::from_value::<T>(serde_json::Value::from(value.as_str())).is_err()
            || !ours.contains(&value)
        {
            problems.push(format!(
                "{}: {name} value {value:?} unknown to the client",
                document.name
            ));
        }
    }
}

#[test]
fn enums_match_the_schemas() {
    let control = Document::load("control-plane.json");
    let data = Document::load("data-plane.json");
    let mut problems = Vec::new();
    use ExchangeType::*;
    same_enum(
        &control,
        "ExchangeType",
        &[Direct, Fanout, Topic, Headers, ConsistentHash],
        &mut problems,
    );
    same_enum(
        &control,
        "Overflow",
        &[
            Overflow::DropHead,
            Overflow::RejectPublish,
            Overflow::DeadLetter,
        ],
        &mut problems,
    );
    same_enum(
        &control,
        "DestinationType",
        &[DestinationType::Queue, DestinationType::Exchange],
        &mut problems,
    );
    same_enum(
        &control,
        "HeaderMatch",
        &[HeaderMatch::All, HeaderMatch::Any],
        &mut problems,
    );
    same_enum(
        &control,
        "Plan",
        &[Plan::Free, Plan::Standard, Plan::Enterprise],
        &mut problems,
    );
    same_enum(
        &control,
        "TenantStatus",
        &[TenantStatus::Active, TenantStatus::Suspended],
        &mut problems,
    );
    same_enum(
        &control,
        "Scope",
        &[Scope::Admin, Scope::Manage, Scope::Publish, Scope::Consume],
        &mut problems,
    );
    same_enum(
        &control,
        "KeyStatus",
        &[KeyStatus::Active, KeyStatus::Expired, KeyStatus::Revoked],
        &mut problems,
    );
    same_enum(
        &data,
        "BodyEncoding",
        &[BodyEncoding::Utf8, BodyEncoding::Base64],
        &mut problems,
    );
    use NackKind::*;
    same_enum(
        &data,
        "NackKind",
        &[Requeue, RequeueNow, RequeueAfter, DeadLetter],
        &mut problems,
    );
    assert!(
        problems.is_empty(),
        "the client drifted:\n{}",
        problems.join("\n")
    );
}

/// The checker itself notices what it is meant to notice.
#[test]
fn the_check_catches_drift() {
    let document = Document::load("data-plane.json");
    let schema = document.schema("AckRequest");
    let extra = serde_json::json!({"receipts": ["r"], "multiple": true});
    assert_eq!(
        document.compare("AckRequest", &extra, schema, true).len(),
        1
    );
    let missing = serde_json::json!({});
    assert_eq!(
        document.compare("AckRequest", &missing, schema, true).len(),
        2
    );
    let wrong_type = serde_json::json!({"receipts": [1]});
    assert_eq!(
        document
            .compare("AckRequest", &wrong_type, schema, true)
            .len(),
        1
    );
    let nested = serde_json::json!({"messages": [{"body": "b", "body_encoding": "hex"}]});
    let publish = document.schema("QueuePublishRequest");
    assert_eq!(
        document
            .compare("QueuePublishRequest", &nested, publish, false)
            .len(),
        1
    );
}
