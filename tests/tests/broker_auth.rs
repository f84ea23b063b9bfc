//! A real broker next to a real control plane: it registers, follows the
//! feed (so declares answer 201 only once it has applied them), and
//! authenticates tenants offline — keys from the feed's verifiers, tokens
//! from the JWKS — with revocation and suspension taking effect within 5 s,
//! on open push streams too: they end, and what they held is requeued.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sluice_e2e::{
    Api, Broker, ControlPlane, Postgres, PushConsumer, SseEvent, eventually, int_field,
    random_operator_key,
};

const NODE_KEY: &str = "e2e-node-key";

/// Reads `stream` until it ends, for at most 5 s; the last event it sent
/// (None when it was still open after 5 s).
async fn stream_end(stream: &mut PushConsumer) -> anyhow::Result<Option<SseEvent>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match stream.next_event(left).await? {
            Some(event) => last = Some(event),
            None if tokio::time::Instant::now() < deadline => return Ok(last),
            None => return Ok(None),
        }
    }
}

/// The problem `type` of an `error` event.
fn problem_type(event: &Option<SseEvent>) -> Option<String> {
    let event = event.as_ref().filter(|e| e.event == "error")?;
    let problem: serde_json::Value = serde_json::from_str(&event.data).ok()?;
    problem["type"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_follows_the_feed_and_authenticates_offline() -> anyhow::Result<()> {
    let pg = Postgres::start()?;
    let dir = tempfile::tempdir()?;
    let operator = random_operator_key();
    let env = [("SLUICE_CONTROL_NODE_KEY", NODE_KEY)];
    let control =
        ControlPlane::start_with(&pg.url(), &operator, &dir.path().join("control.log"), &env)?;
    let broker = Broker::start(
        &control.url,
        NODE_KEY,
        "n1",
        &dir.path().join("broker"),
        &dir.path().join("broker.log"),
    )?;
    let api = Api::new(&control.url);
    let data = Api::new(&broker.url);

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
    let (_, key) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "app", "scopes": ["publish", "consume"]})),
        )
        .await?;
    let app = key["key"].as_str().unwrap_or_default().to_string();
    let key_id = key["id"].as_str().unwrap_or_default().to_string();

    // The declare answers 201 (not 202): the broker applied it before the answer.
    let (status, queue) = api
        .call(
            Method::PUT,
            "/v1/queues/jobs",
            Some(&admin),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{queue}");
    let (_, progress) = api
        .call(Method::GET, "/v1/topology/status", Some(&admin), None)
        .await?;
    assert_eq!(progress["live_nodes"], 1);
    assert!(
        int_field(&progress, "applied_version") >= int_field(&queue, "topology_version"),
        "{progress}"
    );

    // The key created just now works on the broker at once (the key create bumped the feed).
    let (status, me) = data
        .call(Method::GET, "/v1/whoami", Some(&app), None)
        .await?;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["tenant"].as_str(), me["key_id"].as_str()),
        (Some("acme"), Some(key_id.as_str()))
    );

    // A token from the control plane is verified by the broker with the JWKS.
    let (_, token) = api
        .call(Method::POST, "/v1/tokens", Some(&app), None)
        .await?;
    let token = token["token"].as_str().unwrap_or_default().to_string();
    let (status, _) = data
        .call(Method::GET, "/v1/whoami", Some(&token), None)
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = data
        .call(Method::GET, "/v1/whoami", Some("sk_abc_wrong"), None)
        .await?;
    assert_eq!(
        (status, body["type"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("https://sluice.dev/problems/unauthorized")
        )
    );

    // Another consumer of the same tenant, for what revoked streams held.
    let (_, other) = api
        .call(
            Method::POST,
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "other", "scopes": ["consume"]})),
        )
        .await?;
    let other = other["key"].as_str().unwrap_or_default().to_string();
    let publish = |body: &'static str| {
        let (data, app) = (&data, &app);
        async move {
            let (status, answer) = data
                .call(
                    Method::POST,
                    "/v1/queues/jobs/messages",
                    Some(app),
                    Some(json!({"messages": [{"body": body}]})),
                )
                .await?;
            anyhow::ensure!(status == StatusCode::OK, "publish: {status} {answer}");
            anyhow::Ok(())
        }
    };

    // Suspension: 403 at the broker within 5 s, and an open push stream
    // ends with the problem as its last event; resume restores it.
    let mut suspended_stream = PushConsumer::connect(&data, &app, "jobs", "prefetch=5").await?;
    api.call(
        Method::POST,
        "/v1/tenants/acme/suspend",
        Some(&operator),
        None,
    )
    .await?;
    let suspended = eventually(Duration::from_secs(5), || async {
        matches!(
            data.call(Method::GET, "/v1/whoami", Some(&app), None).await,
            Ok((StatusCode::FORBIDDEN, _))
        )
    })
    .await;
    assert!(suspended, "suspension should reach the broker within 5 s");
    let last = stream_end(&mut suspended_stream).await?;
    assert_eq!(
        problem_type(&last).as_deref(),
        Some("https://sluice.dev/problems/tenant-suspended"),
        "the stream ends within 5 s: {last:?}"
    );
    api.call(
        Method::POST,
        "/v1/tenants/acme/resume",
        Some(&operator),
        None,
    )
    .await?;
    let resumed = eventually(Duration::from_secs(5), || async {
        matches!(
            data.call(Method::GET, "/v1/whoami", Some(&app), None).await,
            Ok((StatusCode::OK, _))
        )
    })
    .await;
    assert!(resumed);

    // A push stream holds a message, unacked, when its key is revoked.
    let mut stream = PushConsumer::connect(&data, &app, "jobs", "prefetch=5").await?;
    publish("held").await?;
    let held = stream
        .next_message(Duration::from_secs(10))
        .await?
        .expect("the stream gets the message");
    assert_eq!(held["body"], "held");

    // Revocation: the key and its token stop working at the broker within 5 s,
    // and the open stream ends.
    api.call(
        Method::DELETE,
        &format!("/v1/api-keys/{key_id}"),
        Some(&admin),
        None,
    )
    .await?;
    let revoked = eventually(Duration::from_secs(5), || async {
        let key = data.call(Method::GET, "/v1/whoami", Some(&app), None).await;
        let token = data
            .call(Method::GET, "/v1/whoami", Some(&token), None)
            .await;
        matches!(
            (key, token),
            (
                Ok((StatusCode::UNAUTHORIZED, _)),
                Ok((StatusCode::UNAUTHORIZED, _))
            )
        )
    })
    .await;
    assert!(revoked, "a revoked key must stop within 5 s");
    let last = stream_end(&mut stream).await?;
    assert_eq!(
        problem_type(&last).as_deref(),
        Some("https://sluice.dev/problems/unauthorized"),
        "the stream ends within 5 s of the revocation: {last:?}"
    );
    // The revoked key cannot ack what it held; another key gets it, redelivered.
    let (status, _) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/ack",
            Some(&app),
            Some(json!({"receipts": [held["receipt"]]})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, received) = data
        .call(
            Method::POST,
            "/v1/queues/jobs/receive",
            Some(&other),
            Some(json!({"max_messages": 10, "wait_ms": 5000})),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{received}");
    let messages = received["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 1, "{received}");
    assert_eq!(messages[0]["body"], "held");
    assert_eq!(messages[0]["redelivered"], true);

    // The broker's feed long-poll does not hold the control plane's shutdown
    // open: SIGTERM ends it cleanly within the grace period (no SIGKILL).
    let mut control = control;
    let exit = control
        .process
        .stop_with_grace(std::time::Duration::from_secs(5))?;
    assert!(
        exit.success(),
        "sluice-control should stop cleanly, got {exit}"
    );
    drop(broker);
    Ok(())
}
