//! A NUL byte (`%00`) in a path name, an id, a cursor or a filter: Postgres
//! refuses U+0000 in text, so each must be answered before SQL — 404 for a
//! lookup of what cannot exist, 422 naming the field for a name being
//! created or a query value — and never 500.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, assert_invalid, assert_problem};

/// NUL alone and inside an otherwise valid name.
const NAMES: [&str; 2] = ["%00", "a%00b"];

#[tokio::test]
async fn nul_in_a_looked_up_name_or_id_is_not_found() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let op = server.op_key().to_string();
    for name in NAMES {
        let tenant_routes = [
            (Method::GET, format!("/v1/queues/{name}")),
            (Method::DELETE, format!("/v1/queues/{name}")),
            (Method::GET, format!("/v1/exchanges/{name}")),
            (Method::DELETE, format!("/v1/exchanges/{name}")),
            (Method::GET, format!("/v1/streams/{name}")),
            (Method::DELETE, format!("/v1/streams/{name}")),
            (Method::GET, format!("/v1/bindings/{name}")),
            (Method::DELETE, format!("/v1/bindings/{name}")),
            (Method::GET, format!("/v1/api-keys/{name}")),
            (Method::DELETE, format!("/v1/api-keys/{name}")),
        ];
        let operator_routes = [
            (Method::GET, format!("/v1/tenants/{name}"), None),
            (Method::DELETE, format!("/v1/tenants/{name}"), None),
            (Method::GET, format!("/v1/tenants/{name}/quotas"), None),
            (
                Method::PATCH,
                format!("/v1/tenants/{name}/quotas"),
                Some(json!({"max_queues": 5})),
            ),
            (Method::POST, format!("/v1/tenants/{name}/suspend"), None),
            (Method::POST, format!("/v1/tenants/{name}/resume"), None),
        ];
        let requests = tenant_routes
            .into_iter()
            .map(|(method, path)| (method, path, admin.as_str(), None))
            .chain(
                operator_routes
                    .into_iter()
                    .map(|(method, path, body)| (method, path, op.as_str(), body)),
            );
        for (method, path, key, body) in requests {
            let got = server.request(method.clone(), &path, Some(key), body).await;
            assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
            assert!(
                got.1["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("not found")),
                "{method} {path}: {}",
                got.1
            );
        }
        // A broker's heartbeat for a node id that cannot exist.
        let got = server
            .request(
                Method::POST,
                &format!("/internal/v1/nodes/{name}/heartbeat"),
                Some(server.node_key()),
                Some(json!({"applied_version": 0})),
            )
            .await;
        assert_problem(&got, StatusCode::NOT_FOUND, "not-found");
    }
}

#[tokio::test]
async fn nul_in_a_name_being_created_is_invalid() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    for name in NAMES {
        for (collection, body) in [
            ("queues", json!({})),
            ("exchanges", json!({"type": "fanout"})),
            ("streams", json!({})),
        ] {
            let got = server
                .put(&format!("/v1/{collection}/{name}"), &admin, body)
                .await;
            assert_invalid(&got, "name", "charset");
        }
        let got = server
            .request(
                Method::PUT,
                &format!("/internal/v1/nodes/{name}"),
                Some(server.node_key()),
                Some(json!({"data_url": "http://127.0.0.1:1", "zone": "z"})),
            )
            .await;
        assert_invalid(&got, "id", "charset");
    }
}

#[tokio::test]
async fn nul_in_a_cursor_or_filter_names_the_parameter() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let op = server.op_key().to_string();
    let mut requests: Vec<(String, &str, &str)> = Vec::new();
    for collection in ["queues", "exchanges", "streams", "bindings", "api-keys"] {
        requests.push((
            format!("/v1/{collection}?after=%00"),
            admin.as_str(),
            "after",
        ));
        requests.push((
            format!("/v1/{collection}?limit=5&after=x%00y"),
            admin.as_str(),
            "after",
        ));
    }
    requests.push(("/v1/tenants?after=%00".into(), op.as_str(), "after"));
    requests.push(("/v1/bindings?source=%00".into(), admin.as_str(), "source"));
    requests.push((
        "/v1/bindings?destination=q%00".into(),
        admin.as_str(),
        "destination",
    ));
    requests.push(("/v1/audit-log?tenant=%00".into(), op.as_str(), "tenant"));
    // A NUL in the parameter's own name: no parameter to name but the query.
    requests.push(("/v1/queues?%00=1".into(), admin.as_str(), "query"));
    for (path, key, field) in requests {
        let got: (StatusCode, Value) = server.get(&path, key).await;
        assert_invalid(&got, field, "charset");
    }
}

/// A NUL anywhere in a JSON body — a name, a routing key, a header-match
/// value or key, an unknown member — is refused naming its JSON path,
/// before Postgres (which refuses U+0000 in text and JSONB) sees it.
#[tokio::test]
async fn nul_in_a_json_body_names_the_field() {
    let server = TestServer::start().await;
    let admin = server.create_tenant("acme").await;
    let op = server.op_key().to_string();
    let node = server.node_key().to_string();
    let manage = [
        // (method, path, body, the field named)
        (
            Method::POST,
            "/v1/api-keys",
            json!({"name": "k\u{0}", "scopes": ["manage"]}),
            "name",
        ),
        (
            Method::PUT,
            "/v1/exchanges/x",
            json!({"type": "fanout", "alternate_exchange": "a\u{0}"}),
            "alternate_exchange",
        ),
        (
            Method::PUT,
            "/v1/queues/q",
            json!({"dead_letter_exchange": "\u{0}"}),
            "dead_letter_exchange",
        ),
        (Method::PUT, "/v1/streams/s", json!({"x\u{0}": 1}), "body"),
        (
            Method::POST,
            "/v1/bindings",
            json!({"source": "x", "destination": "q", "routing_key": "r\u{0}"}),
            "routing_key",
        ),
        (
            Method::POST,
            "/v1/bindings",
            json!({"source": "x", "destination": "q", "headers": {"h": "v\u{0}"}}),
            "headers.h",
        ),
        (
            Method::POST,
            "/v1/bindings",
            json!({"source": "x", "destination": "q", "headers": {"h\u{0}": "v"}}),
            "headers",
        ),
        (
            Method::POST,
            "/v1/bindings",
            json!({"source": "x\u{0}", "destination": "q"}),
            "source",
        ),
    ];
    let operator = [
        (
            Method::POST,
            "/v1/tenants",
            json!({"name": "t\u{0}"}),
            "name",
        ),
        (
            Method::POST,
            "/v1/tenants",
            json!({"name": "ok", "plan": "free\u{0}"}),
            "plan",
        ),
        (
            Method::PATCH,
            "/v1/tenants/acme/quotas",
            json!({"max_queues\u{0}": 1}),
            "body",
        ),
    ];
    let brokers = [
        (
            Method::PUT,
            "/internal/v1/nodes/n1",
            json!({"data_url": "http://127.0.0.1:1/\u{0}", "zone": "z"}),
            "data_url",
        ),
        (
            Method::PUT,
            "/internal/v1/nodes/n1",
            json!({"data_url": "http://127.0.0.1:1", "zone": "z\u{0}"}),
            "zone",
        ),
    ];
    let requests = manage
        .into_iter()
        .map(|(m, p, b, f)| (m, p, b, f, admin.as_str()))
        .chain(
            operator
                .into_iter()
                .map(|(m, p, b, f)| (m, p, b, f, op.as_str())),
        )
        .chain(
            brokers
                .into_iter()
                .map(|(m, p, b, f)| (m, p, b, f, node.as_str())),
        );
    for (method, path, body, field, key) in requests {
        let got = server
            .request(method.clone(), path, Some(key), Some(body.clone()))
            .await;
        assert!(
            got.0 != StatusCode::INTERNAL_SERVER_ERROR,
            "{method} {path} {body}: {}",
            got.1
        );
        assert_invalid(&got, field, "charset");
    }
    // A heartbeat's numbers hold no text; its node id was checked above.
    let got = server
        .request(
            Method::POST,
            "/internal/v1/nodes/n1/heartbeat",
            Some(&node),
            Some(json!({"applied_version": 0, "x\u{0}": 1})),
        )
        .await;
    assert_invalid(&got, "body", "charset");
}
