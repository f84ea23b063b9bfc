//! The broker side of the control plane, driven over HTTP as a broker would:
//! register, long-poll the topology feed, heartbeat the applied version, and
//! see declares wait for (or report 202 without) the brokers' convergence.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, ControlPlane, Postgres, int_field, random_operator_key};

const NODE_KEY: &str = "node-key-for-tests";

#[tokio::test(flavor = "multi_thread")]
async fn brokers_register_follow_the_feed_and_gate_declares() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let logs = tempfile::tempdir()?;
    let operator = random_operator_key();
    let env = [
        ("SLUICE_CONTROL_NODE_KEY", NODE_KEY),
        ("SLUICE_CONTROL_APPLY_WAIT_MS", "400"),
    ];
    let control =
        ControlPlane::start_with(&pg.url(), &operator, &logs.path().join("control.log"), &env)?;
    let api = Api::new(&control.url);

    let (_, tenant) = api
        .call(
            Method::POST,
            "/v1/tenants",
            Some(&operator),
            Some(json!({"name": "acme"})),
        )
        .await?;
    let admin = tenant["admin_key"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // With no broker yet, a queue is declared at once and left unplaced.
    let (status, early) = api
        .call(
            Method::PUT,
            "/v1/queues/early",
            Some(&admin),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{early}");

    // Tenant keys and wrong node keys cannot act as brokers.
    let node = json!({"data_url": "http://127.0.0.1:1", "zone": "z1"});
    let (status, _) = api
        .call(
            Method::PUT,
            "/internal/v1/nodes/n1",
            Some(&admin),
            Some(node.clone()),
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api
        .call(
            Method::PUT,
            "/internal/v1/nodes/n1",
            Some(NODE_KEY),
            Some(json!({"data_url": "ftp://x"})),
        )
        .await?;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("data_url"))
    );

    // Registering places the waiting queue on the node and bumps the version.
    let (status, _) = api
        .call(
            Method::PUT,
            "/internal/v1/nodes/n1",
            Some(NODE_KEY),
            Some(node),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, snapshot) = api
        .call(
            Method::GET,
            "/internal/v1/feed?since=0&wait_ms=0",
            Some(NODE_KEY),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let queue = find(&snapshot["queues"], "early");
    assert_eq!(queue["placement"]["replicas"], json!(["n1"]), "{snapshot}");
    assert!(
        snapshot["api_keys"]
            .as_array()
            .is_some_and(|k| !k.is_empty()),
        "key verifiers are in the feed"
    );
    let version = snapshot["version"].as_i64().unwrap_or_default();

    // Nothing new: the long-poll answers 204 after its wait.
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/internal/v1/feed?since={version}&wait_ms=100"),
            Some(NODE_KEY),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The node is live but has not applied anything: a declare answers 202 after the wait.
    // The answer counts the live brokers (this one), which divide publish rate quotas.
    let (status, ack) = api
        .call(
            Method::POST,
            "/internal/v1/nodes/n1/heartbeat",
            Some(NODE_KEY),
            Some(json!({"applied_version": version})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ack["live_nodes"], 1, "{ack}");
    let (status, pending) = api
        .call(
            Method::PUT,
            "/v1/queues/pending",
            Some(&admin),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::ACCEPTED, "{pending}");
    let (_, progress) = api
        .call(Method::GET, "/v1/topology/status", Some(&admin), None)
        .await?;
    assert!(
        int_field(&progress, "applied_version") < int_field(&pending, "topology_version"),
        "{progress}"
    );

    // A broker that follows the feed makes the next declare answer 201 once applied.
    let follower = tokio::spawn(follow_feed(control.url.clone(), version));
    let (status, created) = api
        .call(
            Method::PUT,
            "/v1/exchanges/orders",
            Some(&admin),
            Some(json!({"type": "direct"})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    follower.abort();
    let (_, progress) = api
        .call(Method::GET, "/v1/topology/status", Some(&admin), None)
        .await?;
    assert!(
        int_field(&progress, "applied_version") >= int_field(&created, "topology_version"),
        "{progress}"
    );

    // Operators see the node.
    let (status, nodes) = api
        .call(Method::GET, "/v1/nodes", Some(&operator), None)
        .await?;
    assert_eq!(
        (status, nodes[0]["id"].as_str()),
        (StatusCode::OK, Some("n1"))
    );
    let (status, _) = api
        .call(Method::GET, "/v1/nodes", Some(&admin), None)
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    Ok(())
}

/// A minimal broker loop: long-poll, then report the version as applied.
async fn follow_feed(url: String, mut since: i64) -> anyhow::Result<()> {
    let api = Api::new(&url);
    loop {
        let path = format!("/internal/v1/feed?since={since}&wait_ms=5000");
        let (status, snapshot) = api.call(Method::GET, &path, Some(NODE_KEY), None).await?;
        if status == StatusCode::OK {
            since = snapshot["version"].as_i64().unwrap_or(since);
        }
        let beat = json!({"applied_version": since});
        api.call(
            Method::POST,
            "/internal/v1/nodes/n1/heartbeat",
            Some(NODE_KEY),
            Some(beat),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn find<'a>(items: &'a Value, name: &str) -> &'a Value {
    items
        .as_array()
        .and_then(|items| items.iter().find(|i| i["name"] == name))
        .unwrap_or(&Value::Null)
}
