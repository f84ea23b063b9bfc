//! The README's tour, end to end: the real `sluice-control` binary against a
//! private Postgres, driven over HTTP exactly as a newcomer with curl would,
//! then restarted on the same database to show nothing was lost.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, ControlPlane, Postgres, random_operator_key};

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .unwrap_or_default()
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn newcomer_tour_survives_a_restart() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let logs = tempfile::tempdir()?;
    let operator = random_operator_key();
    let control = ControlPlane::start(&pg.url(), &operator, &logs.path().join("control.log"))?;
    let api = Api::new(&control.url);

    // Operator creates a tenant and gets its first admin key.
    let (status, created) = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&operator),
            Some(json!({"name": "acme"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let admin = created["admin_key"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(admin.starts_with("sk_"));

    // The admin key creates a manage key for the topology.
    let (status, key) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "deploy", "scopes": ["manage"]})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let manage = key["key"].as_str().unwrap_or_default().to_string();

    // Exchange, queue, binding.
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/exchanges/orders",
            Some(&manage),
            Some(json!({"type": "topic"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let queue = json!({"dead_letter_exchange": "orders", "delivery_limit": 3});
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/queues/usa-orders",
            Some(&manage),
            Some(queue.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let binding = json!({"source": "orders", "destination": "usa-orders", "routing_key": "usa.#"});
    let (status, bound) = api
        .call(Method::POST, "/v1/bindings", Some(&manage), Some(binding))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{bound}");

    // Same declare again: 200 unchanged; a conflicting one: 409 naming the field.
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/queues/usa-orders",
            Some(&manage),
            Some(queue),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, conflict) = api
        .call(
            Method::PUT,
            "/v1/queues/usa-orders",
            Some(&manage),
            Some(json!({"delivery_limit": 5})),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem_type(&conflict), "declare-conflict");
    let fields: Vec<&str> = conflict["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert!(
        fields.contains(&"delivery_limit") && fields.contains(&"dead_letter_exchange"),
        "{conflict}"
    );

    // Another tenant's key sees nothing of acme.
    let (_, other) = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&operator),
            Some(json!({"name": "globex"})),
        )
        .await?;
    let other_admin = other["admin_key"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, body) = api
        .call(
            Method::GET,
            "/v1/queues/usa-orders",
            Some(&other_admin),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem_type(&body), "not-found");

    // At a quota: 403 with the quota, its limit and the use.
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/tenants/acme/quotas",
            Some(&operator),
            Some(json!({"max_queues": 1})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call(
            Method::PUT,
            "/v1/queues/eu-orders",
            Some(&manage),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(problem_type(&body), "quota-exceeded");
    assert_eq!(
        (
            body["quota"].as_str(),
            body["limit"].as_i64(),
            body["used"].as_i64()
        ),
        (Some("max_queues"), Some(1), Some(1))
    );

    // A token issued now must still verify after a restart (the signing key lives in Postgres).
    let (status, token) = api
        .call(Method::POST, "/v1/tokens", Some(&manage), None)
        .await?;
    assert_eq!(status, StatusCode::CREATED);
    let token = token["token"].as_str().unwrap_or_default().to_string();

    let mut control = control;
    let exit = control.process.stop()?;
    assert!(
        exit.success(),
        "sluice-control should exit cleanly on SIGTERM, got {exit}"
    );
    let control = ControlPlane::start(&pg.url(), &operator, &logs.path().join("control2.log"))?;
    let api = Api::new(&control.url);
    let (status, read) = api
        .call(Method::GET, "/v1/queues/usa-orders", Some(&token), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["delivery_limit"], 3);
    assert_eq!(
        read["lease_ms"], 30_000,
        "defaults are stored and read back"
    );
    let (status, list) = api
        .call(
            Method::GET,
            "/v1/bindings?source=orders",
            Some(&manage),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"][0]["id"], bound["id"]);
    Ok(())
}
