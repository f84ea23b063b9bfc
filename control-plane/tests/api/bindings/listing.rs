//! `/v1/bindings` lists (filters, paging), deletes, scopes and tenant isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{ids, topology};
use crate::support::{TestServer, assert_invalid, assert_problem};

#[tokio::test]
async fn list_filters_by_source_and_destination_and_pages() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let mut all = Vec::new();
    for (source, q, key) in [
        ("x-direct", "q1", "a"),
        ("x-direct", "q1", "b"),
        ("x-direct", "q2", "a"),
        ("x-topic", "q1", "a.#"),
        ("x-topic", "q2", "b.*"),
    ] {
        let (s, b) = server
            .post(
                "/v1/bindings",
                &admin,
                json!({"source": source, "destination": q, "routing_key": key}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        all.push(b);
    }
    let matching = |pred: &dyn Fn(&Value) -> bool| {
        let mut v: Vec<String> = all
            .iter()
            .filter(|b| pred(b))
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let (_, page) = server.get("/v1/bindings?source=x-direct", &admin).await;
    assert_eq!(ids(&page), matching(&|b| b["source"] == "x-direct"));
    assert_eq!(ids(&page).len(), 3);
    let (_, page) = server.get("/v1/bindings?destination=q2", &admin).await;
    assert_eq!(ids(&page), matching(&|b| b["destination"] == "q2"));
    assert_eq!(ids(&page).len(), 2);
    let (_, page) = server
        .get("/v1/bindings?source=x-topic&destination=q1", &admin)
        .await;
    assert_eq!(
        ids(&page),
        matching(&|b| b["source"] == "x-topic" && b["destination"] == "q1")
    );
    assert_eq!(ids(&page).len(), 1);
    let (_, page) = server.get("/v1/bindings?source=nosuch", &admin).await;
    assert_eq!(page["items"], json!([]));

    let mut seen = Vec::new();
    let mut path = "/v1/bindings?limit=2".to_string();
    loop {
        let (status, page) = server.get(&path, &admin).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(ids(&page).len() <= 2);
        seen.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/bindings?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, matching(&|_| true));
    assert_invalid(
        &server.get("/v1/bindings?limit=0", &admin).await,
        "limit",
        "range",
    );
    assert_invalid(
        &server.get("/v1/bindings?exchange=x", &admin).await,
        "exchange",
        "unknown-field",
    );
}

#[tokio::test]
async fn delete_and_isolation() {
    let server = TestServer::start().await;
    let admin = topology(&server).await;
    let publisher = server.create_key(&admin, &["publish"]).await;
    let globex = server.create_tenant("globex").await;
    let spec = json!({"source": "x-direct", "destination": "q1", "routing_key": "k"});
    let got = server.post("/v1/bindings", &publisher, spec.clone()).await;
    assert_problem(&got, StatusCode::FORBIDDEN, "forbidden");
    let (status, created) = server.post("/v1/bindings", &admin, spec).await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/v1/bindings/{}", created["id"].as_str().unwrap());

    assert_problem(
        &server.get(&path, &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete(&path, &globex).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    let (_, page) = server.get("/v1/bindings", &globex).await;
    assert_eq!(page["items"], json!([]));
    assert_problem(
        &server.delete(&path, &publisher).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(server.get(&path, &publisher).await.0, StatusCode::OK);

    let (status, deleted) = server.delete(&path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["name"], created["id"]);
    assert_eq!(deleted["bindings_removed"], 1);
    assert!(deleted["topology_version"].as_i64() > created["topology_version"].as_i64());
    assert_problem(
        &server.get(&path, &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
    assert_problem(
        &server.delete(&path, &admin).await,
        StatusCode::NOT_FOUND,
        "not-found",
    );
}
