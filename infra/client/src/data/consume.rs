//! The push consumer: `GET /v1/queues/{q}/consume` answers a Server-Sent
//! Events stream — a `consumer` event naming the consumer, one `message`
//! event per leased delivery, and an `error` event (a problem document)
//! when the broker ends it because the caller may no longer consume.
//! [`ConsumeStream`] yields them typed; [`SseStream`] as they came.
//! Dropping either closes the connection, which requeues what it held.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use reqwest::header::{ACCEPT, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use sluice_protocol::Problem;

use super::messages::ReceivedMessage;
use super::sse::{SseEvent, SseParser};
use crate::call::{Call, empty};
use crate::client::{Client, Credential};
use crate::error::ClientError;
use crate::path::Path;
use crate::retry::RetryPolicy;

/// Query of a consume stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumeOptions {
    /// Unacked messages at most (default per broker).
    pub prefetch: Option<u32>,
    /// Lease of each delivery (default: the queue's).
    pub lease_ms: Option<u64>,
    /// Consumer id (default `push-<key id>-<random>`, new per connection).
    pub consumer: Option<String>,
}

/// The `consumer` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    pub consumer: String,
    pub prefetch: u32,
}

/// One event of a consume stream.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumeEvent {
    /// First: the consumer id the broker gave this connection.
    Consumer(ConsumerInfo),
    /// A leased delivery; ack or nack it with its receipt.
    Message(Box<ReceivedMessage>),
    /// An event this client does not know, as it came.
    Other(SseEvent),
}

type Events<T> = Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>>;

/// The events of a consume stream as they came.
pub struct SseStream {
    events: Events<SseEvent>,
}

impl SseStream {
    /// The next event; `None` once the stream ended. Cancel-safe: dropping
    /// the future loses nothing.
    pub async fn next_event(&mut self) -> Option<Result<SseEvent, ClientError>> {
        self.events.next().await
    }
}

impl Stream for SseStream {
    type Item = Result<SseEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

/// The typed events of a consume stream; an `error` event is yielded as a
/// [`ClientError::Problem`], after which the stream ends.
pub struct ConsumeStream {
    events: SseStream,
    request: String,
    ended: bool,
}

impl ConsumeStream {
    /// The next event; `None` once the stream ended. Cancel-safe.
    pub async fn next_event(&mut self) -> Option<Result<ConsumeEvent, ClientError>> {
        self.next().await
    }

    fn typed(&mut self, event: SseEvent) -> Result<ConsumeEvent, ClientError> {
        let decode = |source| ClientError::Decode {
            request: self.request.clone(),
            status: StatusCode::OK,
            source,
        };
        match event.event.as_str() {
            "message" => serde_json::from_str(&event.data)
                .map(|m| ConsumeEvent::Message(Box::new(m)))
                .map_err(decode),
            "consumer" => serde_json::from_str(&event.data)
                .map(ConsumeEvent::Consumer)
                .map_err(decode),
            "error" => {
                self.ended = true;
                let problem: Problem = serde_json::from_str(&event.data).map_err(decode)?;
                Err(ClientError::Problem {
                    request: self.request.clone(),
                    status: StatusCode::from_u16(problem.status).unwrap_or(StatusCode::OK),
                    problem: Box::new(problem),
                    retry_after: None,
                })
            }
            _ => Ok(ConsumeEvent::Other(event)),
        }
    }
}

impl Stream for ConsumeStream {
    type Item = Result<ConsumeEvent, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.events).poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => Poll::Ready(Some(self.typed(event))),
            other => other.map(|item| item.map(|r| r.map(ConsumeEvent::Other))),
        }
    }
}

/// Reading state of one open stream.
struct Reader {
    response: reqwest::Response,
    parser: SseParser,
    parsed: Vec<SseEvent>,
    ready: VecDeque<SseEvent>,
    request: String,
    done: bool,
}

fn events(response: reqwest::Response, request: String) -> SseStream {
    let reader = Reader {
        response,
        parser: SseParser::new(),
        parsed: Vec::new(),
        ready: VecDeque::new(),
        request,
        done: false,
    };
    let events = futures_util::stream::unfold(reader, |mut reader| async move {
        loop {
            if let Some(event) = reader.ready.pop_front() {
                return Some((Ok(event), reader));
            }
            if reader.done {
                return None;
            }
            match reader.response.chunk().await {
                Ok(Some(chunk)) => {
                    reader.parser.feed(&chunk, &mut reader.parsed);
                    reader.ready.extend(reader.parsed.drain(..));
                }
                Ok(None) => reader.done = true,
                Err(source) => {
                    reader.done = true;
                    let error = ClientError::Transport {
                        request: reader.request.clone(),
                        source,
                    };
                    return Some((Err(error), reader));
                }
            }
        }
    });
    SseStream {
        events: Box::pin(events),
    }
}

/// A consume request: per-request settings as on a [`Call`], then `.await`
/// for the typed [`ConsumeStream`] or [`ConsumeCall::sse`] for the raw one.
#[must_use = "a call does nothing until it is awaited"]
pub struct ConsumeCall(Call<()>);

impl ConsumeCall {
    pub fn bearer(self, secret: &str) -> ConsumeCall {
        ConsumeCall(self.0.bearer(secret))
    }

    pub fn credential(self, credential: Credential) -> ConsumeCall {
        ConsumeCall(self.0.credential(credential))
    }

    pub fn header(self, name: HeaderName, value: HeaderValue) -> ConsumeCall {
        ConsumeCall(self.0.header(name, value))
    }

    pub fn base_url(self, base_url: &str) -> ConsumeCall {
        ConsumeCall(self.0.base_url(base_url))
    }

    pub fn retry(self, policy: RetryPolicy) -> ConsumeCall {
        ConsumeCall(self.0.retry(policy))
    }

    /// Opens the stream; its events as they came.
    pub async fn sse(self) -> Result<SseStream, ClientError> {
        let (response, request) = self.connect().await?;
        Ok(events(response, request))
    }

    /// Opens the stream; its events typed.
    pub async fn open(self) -> Result<ConsumeStream, ClientError> {
        let (response, request) = self.connect().await?;
        Ok(ConsumeStream {
            events: events(response, request.clone()),
            request,
            ended: false,
        })
    }

    async fn connect(self) -> Result<(reqwest::Response, String), ClientError> {
        let (response, method, path) = self.0.response().await?;
        let request = format!("{method} {path}");
        if !response.status().is_success() {
            let status = response.status();
            let retry_after = crate::retry::retry_after(response.headers());
            let body = response.bytes().await.unwrap_or_default();
            return Err(ClientError::from_answer(
                request,
                status,
                retry_after,
                &body,
            ));
        }
        Ok((response, request))
    }
}

impl IntoFuture for ConsumeCall {
    type Output = Result<ConsumeStream, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.open())
    }
}

impl Client {
    /// `GET /v1/queues/{q}/consume`: a push consumer (see the module docs).
    pub fn consume(&self, queue: &str, options: &ConsumeOptions) -> ConsumeCall {
        let path = Path::new("/v1/queues")
            .seg(queue)
            .lit("consume")
            .query("prefetch", options.prefetch)
            .query("lease_ms", options.lease_ms)
            .query("consumer", options.consumer.as_deref())
            .finish();
        let call = Call::decoded(self, Method::GET, path, empty)
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        ConsumeCall(call)
    }
}
