//! Loopback networking helpers: a free port, and a tiny blocking HTTP GET for readiness
//! probes (a std `TcpStream` is all a `GET /readyz` needs; no HTTP client dependency).

use std::{
    collections::BTreeSet,
    io::{Read, Write},
    net::{TcpListener, TcpStream, ToSocketAddrs},
    sync::Mutex,
    thread,
    time::{Duration, Instant},
};

use crate::{
    error::{DevkitError, IoContext, Result},
    process::deadline,
};

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it for us).
///
/// The port is released before the caller's child process binds it, and the
/// OS may hand a just-released port to the next `bind(0)`: tests of one
/// binary run in parallel and each deployment asks for several ports, so
/// two of them could be given the same one. A port is therefore never
/// handed out twice by one process.
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).io_context(|| "binding 127.0.0.1:0".into())?;
        let port = listener
            .local_addr()
            .io_context(|| "reading the address of a bound socket".into())?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
}

/// The HTTP status code of `GET url` (plain `http://` only).
pub fn http_get_status(url: &str, timeout: Duration) -> Result<u16> {
    let invalid = |reason: &str| DevkitError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let io = |what: &str| {
        let what = format!("GET {url}: {what}");
        move || what
    };
    let addr = authority
        .to_socket_addrs()
        .io_context(io("resolving host"))?
        .next()
        .ok_or_else(|| invalid("host resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).io_context(io("connecting"))?;
    stream
        .set_read_timeout(Some(timeout))
        .io_context(io("configuring socket"))?;
    stream
        .set_write_timeout(Some(timeout))
        .io_context(io("configuring socket"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .io_context(io("sending request"))?;

    // Only the status line matters; read until its end.
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        let n = stream.read(&mut buf).io_context(io("reading response"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/"))
        .ok_or_else(|| invalid(&format!("response is not HTTP: {status_line:?}")))
}

/// Polls `GET url` until it answers 200 or `timeout` passes.
pub fn wait_http_ok(url: &str, timeout: Duration) -> Result<()> {
    wait_http_ok_while(url, timeout, || Ok(()))
}

/// Like [`wait_http_ok`], but gives up as soon as `still_worth_waiting` fails.
pub(crate) fn wait_http_ok_while(
    url: &str,
    timeout: Duration,
    mut still_worth_waiting: impl FnMut() -> Result<()>,
) -> Result<()> {
    let end = deadline(timeout);
    loop {
        still_worth_waiting()?;
        let attempt = end
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(100), Duration::from_secs(2));
        let last = match http_get_status(url, attempt) {
            Ok(200) => return Ok(()),
            Ok(status) => format!("HTTP {status}"),
            Err(err) => err.to_string(),
        };
        if Instant::now() >= end {
            return Err(DevkitError::HttpNotReady {
                url: url.to_string(),
                secs: timeout.as_secs(),
                last,
            });
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod port_tests {
    use super::*;

    #[test]
    fn a_port_is_never_handed_out_twice() {
        let ports: BTreeSet<u16> = (0..200).map(|_| free_port().expect("port")).collect();
        assert_eq!(ports.len(), 200);
    }
}
