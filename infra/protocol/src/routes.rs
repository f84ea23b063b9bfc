//! Which plane serves which public route. A tenant who sends a publish to
//! the control plane, or a declare to a broker, gets a 404 either way; the
//! two tables let that 404 say where the route lives instead of a bare
//! "route not found". Each plane's OpenAPI test checks its own table against
//! the paths of its generated document, so a new route cannot be forgotten.

/// One of Sluice's two HTTP services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// `sluice-control`: tenants, keys, tokens, quotas and topology.
    Control,
    /// A broker (`sluice-broker`): publish, consume, produce, fetch.
    Data,
}

impl Plane {
    /// How an answer names the plane to a user.
    pub fn describe(self) -> &'static str {
        match self {
            Plane::Control => "the control plane",
            Plane::Data => "the brokers (the data plane)",
        }
    }

    /// Where the plane's routes are listed.
    fn document(self) -> &'static str {
        match self {
            Plane::Control => "openapi/control-plane.json, GET /openapi.json on the control plane",
            Plane::Data => "openapi/data-plane.json, GET /openapi.json on a broker",
        }
    }

    /// How a caller of the other plane finds this one.
    fn how_to_reach(self) -> &'static str {
        match self {
            Plane::Control => {
                "send it to the control plane's URL (`control_url` in .sluice/dev.json under `make dev`)"
            }
            Plane::Data => {
                "send it to a broker's data URL (`broker_url` in .sluice/dev.json under \
                 `make dev`; `GET /v1/nodes` on the control plane lists every broker's `data_url`)"
            }
        }
    }

    /// The public routes this plane serves (path templates, as in its
    /// OpenAPI document).
    pub fn routes(self) -> &'static [&'static str] {
        match self {
            Plane::Control => CONTROL_PLANE_ROUTES,
            Plane::Data => DATA_PLANE_ROUTES,
        }
    }

    /// Checks this plane's table against the paths of its OpenAPI
    /// document (each plane's OpenAPI test calls it): the routes missing
    /// from the table and those it lists that the document does not.
    pub fn check_document(self, openapi_json: &str) -> Result<(), String> {
        let document: serde_json::Value =
            serde_json::from_str(openapi_json).map_err(|err| format!("not JSON: {err}"))?;
        let documented: std::collections::BTreeSet<&str> = document["paths"]
            .as_object()
            .map(|paths| paths.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let table: std::collections::BTreeSet<&str> = self.routes().iter().copied().collect();
        let missing: Vec<_> = documented.difference(&table).collect();
        let extra: Vec<_> = table.difference(&documented).collect();
        if missing.is_empty() && extra.is_empty() {
            return Ok(());
        }
        Err(format!(
            "update sluice_protocol::routes for {}: documented but not listed {missing:?}, \
             listed but not documented {extra:?}",
            self.describe()
        ))
    }

    fn other(self) -> Plane {
        match self {
            Plane::Control => Plane::Data,
            Plane::Data => Plane::Control,
        }
    }
}

/// The control plane's public routes (`openapi/control-plane.json`).
pub const CONTROL_PLANE_ROUTES: &[&str] = &[
    "/.well-known/jwks.json",
    "/healthz",
    "/internal/v1/feed",
    "/internal/v1/nodes/{id}",
    "/internal/v1/nodes/{id}/heartbeat",
    "/readyz",
    "/v1/api-keys",
    "/v1/api-keys/{id}",
    "/v1/audit-log",
    "/v1/bindings",
    "/v1/bindings/{id}",
    "/v1/exchanges",
    "/v1/exchanges/{name}",
    "/v1/nodes",
    "/v1/queues",
    "/v1/queues/{name}",
    "/v1/streams",
    "/v1/streams/{name}",
    "/v1/tenants",
    "/v1/tenants/{tenant}",
    "/v1/tenants/{tenant}/quotas",
    "/v1/tenants/{tenant}/resume",
    "/v1/tenants/{tenant}/suspend",
    "/v1/tokens",
    "/v1/topology/status",
];

/// A broker's public routes (`openapi/data-plane.json`).
pub const DATA_PLANE_ROUTES: &[&str] = &[
    "/v1/exchanges/{exchange}/publish",
    "/v1/queues/{queue}/ack",
    "/v1/queues/{queue}/consume",
    "/v1/queues/{queue}/extend",
    "/v1/queues/{queue}/messages",
    "/v1/queues/{queue}/nack",
    "/v1/queues/{queue}/peek",
    "/v1/queues/{queue}/purge",
    "/v1/queues/{queue}/receive",
    "/v1/queues/{queue}/redrive",
    "/v1/queues/{queue}/stats",
    "/v1/streams/{stream}/groups/{group}",
    "/v1/streams/{stream}/groups/{group}/commit",
    "/v1/streams/{stream}/groups/{group}/heartbeat",
    "/v1/streams/{stream}/groups/{group}/join",
    "/v1/streams/{stream}/groups/{group}/leave",
    "/v1/streams/{stream}/groups/{group}/seek",
    "/v1/streams/{stream}/partitions/{partition}/records",
    "/v1/streams/{stream}/producers",
    "/v1/streams/{stream}/records",
    "/v1/whoami",
];

/// Whether `path` (as requested, not decoded) fits `template`: the same
/// number of segments, each literal equal and each `{param}` non-empty.
fn fits(template: &str, path: &str) -> bool {
    let mut path = path.split('/');
    let mut template = template.split('/');
    loop {
        match (template.next(), path.next()) {
            (None, None) => return true,
            (Some(t), Some(p)) if t.starts_with('{') && t.ends_with('}') => {
                if p.is_empty() {
                    return false;
                }
            }
            (Some(t), Some(p)) if t == p => {}
            _ => return false,
        }
    }
}

/// The plane that serves `path`, if either does.
pub fn serving(path: &str) -> Option<Plane> {
    [Plane::Control, Plane::Data]
        .into_iter()
        .find(|plane| plane.routes().iter().any(|t| fits(t, path)))
}

/// The detail of the 404 that `here` answers for `method path`, a route it
/// does not have: where the route lives when the other plane serves it,
/// else where this plane's routes are listed.
pub fn unknown_route_detail(here: Plane, method: &str, path: &str) -> String {
    let path = path.escape_debug();
    match serving(&path.to_string()) {
        Some(plane) if plane != here => format!(
            "`{method} {path}` is served by {}, not {}: {}",
            plane.describe(),
            here.describe(),
            plane.how_to_reach()
        ),
        _ => format!(
            "no route `{path}` on {}; its routes are listed in {} (the other plane's in {})",
            here.describe(),
            here.document(),
            here.other().document()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_placed_on_the_plane_that_serves_it() {
        assert_eq!(serving("/v1/queues/orders"), Some(Plane::Control));
        assert_eq!(serving("/v1/queues/orders/messages"), Some(Plane::Data));
        assert_eq!(serving("/v1/queues/orders/stats"), Some(Plane::Data));
        assert_eq!(serving("/v1/tenants/acme/quotas"), Some(Plane::Control));
        assert_eq!(
            serving("/v1/streams/s/partitions/0/records"),
            Some(Plane::Data)
        );
        assert_eq!(serving("/v1/queues//messages"), None);
        assert_eq!(serving("/v1/queues/a/b/messages"), None);
        assert_eq!(serving("/v2/queues"), None);
    }

    #[test]
    fn the_detail_names_the_other_plane() {
        let detail = unknown_route_detail(Plane::Control, "POST", "/v1/queues/q/messages");
        assert!(detail.contains("served by the brokers"), "{detail}");
        assert!(detail.contains("broker_url"), "{detail}");
        let detail = unknown_route_detail(Plane::Data, "PUT", "/v1/queues/q");
        assert!(detail.contains("served by the control plane"), "{detail}");
        let detail = unknown_route_detail(Plane::Data, "GET", "/nope");
        assert!(
            detail.contains("no route `/nope` on the brokers"),
            "{detail}"
        );
    }

    #[test]
    fn no_route_belongs_to_both_planes() {
        for route in CONTROL_PLANE_ROUTES {
            assert!(
                !DATA_PLANE_ROUTES.iter().any(|d| fits(d, route)),
                "{route} is on both planes"
            );
        }
    }
}
