//! The push consumer stream against a scripted broker on 127.0.0.1: typed
//! events in order, the query the client sends, and an `error` event (a
//! problem document) ending the stream.

use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use sluice_client::data::{ConsumeEvent, ConsumeOptions};
use sluice_client::{Client, slug};

const STREAM: &str = "event: consumer\ndata: {\"consumer\":\"worker-1\",\"prefetch\":2}\n\n\
    :keep-alive\n\n\
    event: message\nid: r1\ndata: {\"receipt\":\"r1\",\"body\":\"hello\",\"body_encoding\":\"utf8\",\
    \"headers\":{},\"routing_key\":\"k\",\"redelivered\":false,\"delivery_count\":1,\
    \"lease_deadline_ms\":5,\"published_at_ms\":1}\n\n\
    event: message\r\nid: r2\r\ndata: {\"receipt\":\"r2\",\"body\":\"aGk=\",\"body_encoding\":\"base64\",\
    \"headers\":{\"h\":\"v\"},\"routing_key\":\"\",\"redelivered\":true,\"delivery_count\":2,\
    \"lease_deadline_ms\":5,\"published_at_ms\":1}\r\n\r\n\
    event: error\ndata: {\"type\":\"https://sluice.dev/problems/forbidden\",\"title\":\"Forbidden\",\
    \"status\":403,\"detail\":\"the key was revoked\"}\n\n";

async fn consume(uri: Uri, headers: HeaderMap) -> impl IntoResponse {
    assert_eq!(
        uri.to_string(),
        "/v1/queues/jobs/consume?prefetch=2&consumer=worker-1"
    );
    assert_eq!(headers["accept"], "text/event-stream");
    assert_eq!(headers["authorization"], "Bearer sk_app");
    ([("content-type", "text/event-stream")], STREAM)
}

#[tokio::test]
async fn events_arrive_typed_and_an_error_event_ends_the_stream() {
    let app = axum::Router::new().route("/v1/queues/jobs/consume", axum::routing::get(consume));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let options = ConsumeOptions {
        prefetch: Some(2),
        lease_ms: None,
        consumer: Some("worker-1".into()),
    };
    let mut stream = Client::new(&url)
        .with_bearer("sk_app")
        .consume("jobs", &options)
        .await
        .expect("stream opens");
    match stream.next_event().await {
        Some(Ok(ConsumeEvent::Consumer(hello))) => {
            assert_eq!((hello.consumer.as_str(), hello.prefetch), ("worker-1", 2));
        }
        other => panic!("expected the consumer event, got {other:?}"),
    }
    let mut receipts = Vec::new();
    for _ in 0..2 {
        match stream.next_event().await {
            Some(Ok(ConsumeEvent::Message(message))) => receipts.push(message.receipt),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    assert_eq!(receipts, ["r1", "r2"]);
    let error = match stream.next_event().await {
        Some(Err(error)) => error,
        other => panic!("expected the error event, got {other:?}"),
    };
    assert!(error.is(slug::FORBIDDEN), "{error}");
    assert!(
        stream.next_event().await.is_none(),
        "the stream ends after its error"
    );
}
