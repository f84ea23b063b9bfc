//! The HTTP server both planes run (feature `axum`), in place of
//! `axum::serve`, for what `axum::serve` cannot configure:
//!
//! - **Limits on a request's head answered as problems.** hyper answers a
//!   request it cannot parse itself, with an empty body and no hook to change
//!   it (`hyper::proto::h1::role::Server::on_error`): more headers than its
//!   `max_headers` or a head over its read buffer → 431, a URI over 64 KiB →
//!   414, a malformed request line or header → 400. So hyper's own bounds
//!   are set well above ours ([`PARSER_MAX_HEADERS`], its 408 KiB read
//!   buffer, its 64 KiB URI), and [`head_limits`] refuses, as problem
//!   documents naming the rule, any request over ours ([`MAX_HEADERS`],
//!   [`MAX_HEADER_BYTES`], [`MAX_URI_BYTES`]). Only a head beyond hyper's
//!   bounds (a thousand headers, 400 KiB of them, a 64 KiB URI) or one that
//!   is not HTTP at all gets hyper's bare answer. Raising hyper's bounds
//!   further is not sane: it sizes its header table at `max_headers` on
//!   every parse, and holds the whole head in memory.
//! - **Closing without dropping the answer.** When hyper gives up on a
//!   request mid-way (a head too large), the client may still be sending;
//!   closing a socket with unread input makes the kernel send a reset, and
//!   the client loses the answer written just before (a 100,000-header
//!   request saw its connection "dropped"). Every connection is closed the
//!   way nginx's lingering close does it: end our side, then read and drop
//!   what the client still sends, for at most [`LINGER`] and [`LINGER_BYTES`].
//! - **A header read timeout** ([`HEADER_READ_TIMEOUT`]): hyper only applies
//!   one with a timer, which `axum::serve` does not give it, so a client
//!   could hold a connection open sending one header byte a minute.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::problem::{PROBLEM_BASE, Problem, slug};

/// Most header fields a request may carry (each value of a repeated header
/// counts). 100 was hyper's own limit before ours.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header names and values a request may carry (a JWT is
/// about 600; Node's whole-head limit is 16 KiB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Longest path and query a request may have (nginx's default line buffer).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// hyper's header table size: past it hyper answers a bare 431 itself.
pub const PARSER_MAX_HEADERS: usize = 1_000;
/// How long a client may take to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing connection keeps reading what the client still sends.
pub const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection reads and drops at most.
pub const LINGER_BYTES: u64 = 16 * 1024 * 1024;
/// HTTP/2's bound on a decoded header list (its default, 16 KiB, is below
/// [`MAX_HEADER_BYTES`], and would refuse without a problem document).
const H2_MAX_HEADER_LIST_BYTES: u32 = 256 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_headers(PARSER_MAX_HEADERS);
    builder
        .http2()
        .max_header_list_size(H2_MAX_HEADER_LIST_BYTES);
    let graceful = GracefulShutdown::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(Lingering(Some(stream))), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!("connection ended with an error: {err}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// What `axum::serve` does when `accept` fails: a client that went away is
/// nothing; anything else (out of file descriptors) is logged and waited
/// out for a second, so the loop does not spin.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept failed: {err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The layer (`axum::middleware::from_fn`) that refuses a request whose head
/// is over our limits with a problem document: 414 for the URI, 431 for the
/// headers, naming the rule. It goes outermost, before authentication.
pub async fn head_limits(request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return head_problem(
            StatusCode::URI_TOO_LONG,
            "uri",
            "length",
            format!("the path and query are {uri_bytes} bytes; at most {MAX_URI_BYTES} are served"),
        );
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return head_problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers",
            "count",
            format!(
                "the request carries {} header fields; at most {MAX_HEADERS} are served",
                headers.len()
            ),
        );
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return head_problem(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers",
            "size",
            format!(
                "the header names and values are {header_bytes} bytes; at most {MAX_HEADER_BYTES} are served"
            ),
        );
    }
    next.run(request).await
}

fn head_problem(status: StatusCode, field: &str, rule: &str, detail: String) -> Response {
    let kind = if status == StatusCode::URI_TOO_LONG {
        slug::URI_TOO_LONG
    } else {
        slug::HEADERS_TOO_LARGE
    };
    let problem = Problem {
        problem_type: format!("{PROBLEM_BASE}{kind}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        field: Some(field.to_string()),
        rule: Some(rule.to_string()),
        extensions: serde_json::Map::new(),
    };
    let mut response = Response::new(serde_json::to_vec(&problem).unwrap_or_default().into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// A connection's socket that, once hyper is done with it, closes the
/// lingering way (see the module's documentation). `None` only after drop.
struct Lingering(Option<TcpStream>);

impl Lingering {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.0
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let (Some(stream), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(linger(stream));
    }
}

/// Ends our side (the client reads the answer to its end), then reads and
/// drops what the client still sends, so that closing does not reset the
/// connection under an answer the client has not read yet.
async fn linger(mut stream: TcpStream) {
    // An error here means the client already went: nothing to protect.
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut rest = (&mut stream).take(LINGER_BYTES);
        tokio::io::copy(&mut rest, &mut tokio::io::sink()).await
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

impl AsyncRead for Lingering {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.0.as_ref().is_some_and(TcpStream::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(err) => Poll::Ready(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use axum::routing::get;

    use super::*;

    /// A server on a loopback port running [`serve`] with [`head_limits`],
    /// until the returned sender is dropped.
    async fn start() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(head_limits));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Sends `head` whole, then reads the answer to its end, as curl and
    /// hyper's client do: a server that stops reading and closes early makes
    /// the rest of the write fail, and such a client never reads the answer.
    fn exchange(addr: std::net::SocketAddr, head: Vec<u8>) -> io::Result<String> {
        let mut socket = std::net::TcpStream::connect(addr)?;
        socket.set_read_timeout(Some(Duration::from_secs(10)))?;
        socket.write_all(&head)?;
        let mut answer = Vec::new();
        socket.read_to_end(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    fn request(extra_headers: usize, header_value_bytes: usize, path: &str) -> Vec<u8> {
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
        let value = "v".repeat(header_value_bytes);
        for i in 0..extra_headers {
            head.push_str(&format!("x-header-{i}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head.into_bytes()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn heads_over_our_limits_are_problems_naming_the_rule() {
        let (addr, _stop) = start().await;
        let cases = [
            (request(150, 1, "/ok"), "431", "\"rule\":\"count\""),
            (request(10, 5_000, "/ok"), "431", "\"rule\":\"size\""),
            (
                request(0, 0, &format!("/ok?q={}", "a".repeat(10_000))),
                "414",
                "\"rule\":\"length\"",
            ),
        ];
        for (head, status, rule) in cases {
            let answer = tokio::task::spawn_blocking(move || exchange(addr, head))
                .await
                .expect("join")
                .expect("exchange");
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{answer}"
            );
            assert!(answer.contains("application/problem+json"), "{answer}");
            assert!(answer.contains(rule), "{answer}");
        }
        let fine = tokio::task::spawn_blocking(move || exchange(addr, request(90, 100, "/ok")))
            .await
            .expect("join")
            .expect("exchange");
        assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
    }

    /// Past hyper's own bounds the answer is hyper's bare 431, but the
    /// client reads it instead of losing it to a reset.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_hundred_thousand_headers_get_an_answer_not_a_reset() {
        let (addr, _stop) = start().await;
        let answer =
            tokio::task::spawn_blocking(move || exchange(addr, request(100_000, 40, "/ok")))
                .await
                .expect("join")
                .expect("the connection was reset before the answer was read");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
}
