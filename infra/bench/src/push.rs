//! Push consumers for `sluice-bench queue --push`: each consumer holds one
//! `GET /v1/queues/{q}/consume?prefetch=N&lease_ms=L&consumer=bench-<i>`
//! stream (Server-Sent Events) instead of long-polling `POST /receive`.
//!
//! The broker first sends a `consumer` event (`{"consumer": id, "prefetch":
//! N}`), then one `message` event per delivery whose data is the JSON object
//! `receive` returns per message, `receipt` included, and keeps at most
//! `prefetch` messages unacked per stream. So a consumer must ack while it
//! reads: it hands receipts to its own ack task (one `POST /ack` in flight at
//! a time) whenever its stream has nothing more buffered, or as soon as
//! `--ack-batch` of them are waiting, so the window keeps moving without one
//! ack per message. Receipts handed over while an ack is in flight go out
//! together in the next (at most `--ack-batch`), as a client acking with
//! AMQP's `multiple` flag would. With `--ack-linger-ms N` it first waits up to N ms for
//! more of the stream before acking what it has. A message's end-to-end
//! latency is taken when the chunk holding its event arrives, as the pull
//! consumer takes it when the receive answer arrives.
//!
//! How often a consumer acks shapes what the broker sends: each ack frees
//! that much of the window for the dispatcher's next round (one Raft commit
//! per round), and a client that sent one request per receipt would be held
//! to its ack round trips. `--ack-linger-ms 1` lets acks (and so rounds) grow.
//!
//! A stream that ends or fails is opened again (`run.stream_restarts`); what
//! it held comes back redelivered, and those acks are refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use crate::args::QueueArgs;
use crate::queue::{ConsumerLatencies, Received, Shared, ack, record_received};
use crate::report::Latencies;

/// One dispatched Server-Sent Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when the event named none.
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last event id seen on the stream (`id:`), if any.
    pub id: Option<String>,
}

/// An incremental `text/event-stream` parser (the WHATWG rules): lines end
/// with CRLF, LF or CR, wherever the chunk boundaries fall; `field: value`
/// lines (one space after the colon dropped), comments (`:`) ignored, a
/// blank line dispatches the event unless it has no data.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The incomplete line carried over from the previous chunk.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF opening the next one belongs to it.
    skip_lf: bool,
    /// Past the optional byte order mark at the very start.
    started: bool,
    event: String,
    data: String,
    last_id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        if !self.started {
            // Hold back a chunk too short to tell whether it opens with a BOM.
            const BOM: &[u8] = "\u{feff}".as_bytes();
            let seen = [self.line.as_slice(), chunk].concat();
            if seen.len() < BOM.len() && BOM.starts_with(&seen) {
                self.line = seen;
                return;
            }
            self.started = true;
            let rest = seen.strip_prefix(BOM).unwrap_or(&seen).to_vec();
            self.line.clear();
            return self.feed_lines(&rest, out);
        }
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        self.feed_lines(chunk, out);
    }

    fn feed_lines(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let mut rest = &chunk[end + 1..];
            if chunk[end] == b'\r' {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.line_done(&chunk[..end], out);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.line_done(&line, out);
            }
            chunk = rest;
        }
        self.line.extend_from_slice(chunk);
    }

    fn line_done(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            return self.dispatch(out);
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            // `retry` and unknown fields mean nothing here.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        out.push(SseEvent {
            event: if event.is_empty() {
                "message".to_string()
            } else {
                event
            },
            data,
            id: self.last_id.clone(),
        });
    }
}

/// The `consumer` event's data.
#[derive(Deserialize)]
struct Hello {
    consumer: String,
    prefetch: u64,
}

/// Why one stream stopped being read.
enum Ended {
    /// The run is over (`stop` or the deadline).
    Stopped,
    /// The broker closed the stream.
    Closed,
}

/// One push consumer: reads its consume stream and acks in batches, opening
/// the stream again if it ends, until `stop` turns true or the deadline.
pub async fn consume_loop(
    shared: Arc<Shared>,
    client: reqwest::Client,
    base: String,
    key: String,
    args: Arc<QueueArgs>,
    index: u64,
    mut stop: watch::Receiver<bool>,
) -> ConsumerLatencies {
    let mut latencies = ConsumerLatencies::new();
    let (batches, inbox) = mpsc::unbounded_channel();
    let acker = tokio::spawn(ack_loop(
        shared.clone(),
        client.clone(),
        format!("{base}/ack"),
        key.clone(),
        args.ack_batch,
        inbox,
    ));
    let url = format!(
        "{base}/consume?prefetch={}&lease_ms={}&consumer=bench-{index}",
        args.max_messages, args.lease_ms
    );
    let mut stream = Stream {
        shared: &shared,
        args: &args,
        batches: &batches,
        latencies: &mut latencies,
    };
    while Instant::now() < shared.deadline && !*stop.borrow() {
        match stream.read(&client, &url, &key, &mut stop).await {
            Ok(Ended::Stopped) => break,
            Ok(Ended::Closed) => shared.error(format!("consumer {index}: the stream ended")),
            Err(error) => shared.error(format!("consumer {index}: {error:#}")),
        }
        shared.stream_restarts.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    drop(batches);
    match acker.await {
        Ok(ack) => latencies.ack = ack,
        Err(_) => shared.error(format!("consumer {index}: its ack task panicked")),
    }
    latencies
}

/// Acks the receipts it is handed, one request at a time: each request
/// takes every batch waiting, up to `max_receipts`.
async fn ack_loop(
    shared: Arc<Shared>,
    client: reqwest::Client,
    url: String,
    key: String,
    max_receipts: u64,
    mut batches: mpsc::UnboundedReceiver<Vec<String>>,
) -> Latencies {
    let mut latencies = Latencies::new();
    let max_receipts = usize::try_from(max_receipts).unwrap_or(usize::MAX).max(1);
    let mut carried: Option<Vec<String>> = None;
    loop {
        let mut receipts = match carried.take() {
            Some(receipts) => receipts,
            None => match batches.recv().await {
                Some(receipts) => receipts,
                None => break,
            },
        };
        while let Ok(more) = batches.try_recv() {
            if receipts.len() + more.len() > max_receipts {
                carried = Some(more);
                break;
            }
            receipts.extend(more);
        }
        ack(&shared, &client, &url, &key, &receipts, &mut latencies).await;
    }
    latencies
}

/// What reading a stream needs of its consumer.
struct Stream<'a> {
    shared: &'a Shared,
    args: &'a QueueArgs,
    batches: &'a mpsc::UnboundedSender<Vec<String>>,
    latencies: &'a mut ConsumerLatencies,
}

impl Stream<'_> {
    /// Opens one consume stream and reads it until it ends or the run does.
    async fn read(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        key: &str,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Ended> {
        let deadline = tokio::time::Instant::from_std(self.shared.deadline);
        let linger = Duration::from_millis(self.args.ack_linger_ms);
        let connect = client
            .get(url)
            .bearer_auth(key)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send();
        let mut response = tokio::select! {
            biased;
            _ = stop.changed() => return Ok(Ended::Stopped),
            _ = tokio::time::sleep_until(deadline) => return Ok(Ended::Stopped),
            response = connect => response.context("consume")?,
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("consume: {status} {text}");
        }
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut messages = Vec::new();
        let mut pending = Vec::new();
        let ended = loop {
            let chunk = if pending.is_empty() {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break Ok(Ended::Stopped),
                    _ = tokio::time::sleep_until(deadline) => break Ok(Ended::Stopped),
                    chunk = response.chunk() => chunk,
                }
            } else {
                // Only what is already buffered (or arrives within the
                // linger); otherwise ack what has arrived first.
                let more = if linger.is_zero() {
                    poll_once(response.chunk()).await
                } else {
                    tokio::time::timeout(linger, response.chunk()).await.ok()
                };
                match more {
                    Some(chunk) => chunk,
                    None => {
                        self.hand_over(&mut pending);
                        continue;
                    }
                }
            };
            let chunk = match chunk.context("reading the consume stream") {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break Ok(Ended::Closed),
                Err(error) => break Err(error),
            };
            let received_at = Instant::now();
            parser.feed(&chunk, &mut events);
            for event in events.drain(..) {
                match event.event.as_str() {
                    "message" => match serde_json::from_str::<Received>(&event.data) {
                        Ok(message) => messages.push(message),
                        Err(error) => self.shared.error(format!("a message event: {error}")),
                    },
                    "consumer" => match serde_json::from_str::<Hello>(&event.data) {
                        Ok(hello) if hello.prefetch != self.args.max_messages => {
                            self.shared.error(format!(
                                "consumer {} got prefetch {}, asked {}",
                                hello.consumer, hello.prefetch, self.args.max_messages
                            ))
                        }
                        Ok(_) => {}
                        Err(error) => self.shared.error(format!("the consumer event: {error}")),
                    },
                    other => self.shared.error(format!("unexpected event {other:?}")),
                }
            }
            if messages.is_empty() {
                continue;
            }
            record_received(self.shared, self.latencies, received_at, &messages);
            for message in messages.drain(..) {
                pending.push(message.receipt);
                if pending.len() as u64 >= self.args.ack_batch {
                    self.hand_over(&mut pending);
                }
            }
        };
        // Acked before the connection closes, if still in time.
        self.hand_over(&mut pending);
        ended
    }

    fn hand_over(&self, pending: &mut Vec<String>) {
        if !pending.is_empty() {
            // The ack task outlives every stream of its consumer.
            let _ = self.batches.send(std::mem::take(pending));
        }
    }
}

/// Polls `future` once: its output if it is ready now, else `None` (and
/// `future` is dropped; `Response::chunk` loses nothing when dropped
/// before it is ready).
async fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(text: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts {
            parser.feed(&text[from..cut], &mut out);
            from = cut;
        }
        parser.feed(&text[from..], &mut out);
        out
    }

    fn event(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.to_string(),
            data: data.to_string(),
            id: id.map(str::to_string),
        }
    }

    /// What the broker sends: a consumer event, keep-alive comments and
    /// message events with ids.
    const STREAM: &str = "event: consumer\ndata: {\"consumer\":\"bench-0\",\"prefetch\":100}\n\n\
        :\n\n\
        event: message\nid: r1\ndata: {\"receipt\":\"r1\",\"body\":\"é|xx\"}\n\n\
        event:message\r\nid:r2\r\ndata:{\"receipt\":\"r2\"}\r\n\r\n\
        data: first\rdata: second\r\r\
        data\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            event("consumer", r#"{"consumer":"bench-0","prefetch":100}"#, None),
            event("message", r#"{"receipt":"r1","body":"é|xx"}"#, Some("r1")),
            event("message", r#"{"receipt":"r2"}"#, Some("r2")),
            event("message", "first\nsecond", Some("r2")),
            event("message", "", Some("r2")),
        ]
    }

    #[test]
    fn parses_a_whole_stream() {
        assert_eq!(parse_in_pieces(STREAM.as_bytes(), &[]), expected());
    }

    #[test]
    fn parses_a_stream_split_anywhere() {
        let bytes = STREAM.as_bytes();
        // Every single cut (between CR and LF, inside the UTF-8 `é`, inside
        // field names), then every pair of cuts.
        for cut in 0..=bytes.len() {
            assert_eq!(parse_in_pieces(bytes, &[cut]), expected(), "cut at {cut}");
        }
        for first in 0..=bytes.len() {
            for second in first..=bytes.len() {
                assert_eq!(
                    parse_in_pieces(bytes, &[first, second]),
                    expected(),
                    "cuts at {first} and {second}"
                );
            }
        }
    }

    #[test]
    fn parses_a_stream_byte_by_byte() {
        let bytes = STREAM.as_bytes();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(parse_in_pieces(bytes, &cuts), expected());
    }

    #[test]
    fn waits_for_the_blank_line() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(b"event: message\ndata: {}\n", &mut out);
        assert!(out.is_empty());
        parser.feed(b"\n", &mut out);
        assert_eq!(out, vec![event("message", "{}", None)]);
    }

    #[test]
    fn skips_a_byte_order_mark_and_empty_events() {
        let text = "\u{feff}event: consumer\n\nid: x\n\n: comment\ndata: d\n\n";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            assert_eq!(
                parse_in_pieces(bytes, &[cut]),
                vec![event("message", "d", Some("x"))],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_cr_at_a_chunk_end_then_more_lines() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(b"data: a\r", &mut out);
        parser.feed(b"", &mut out);
        parser.feed(b"\n\r", &mut out);
        parser.feed(b"\ndata: b\n\n", &mut out);
        assert_eq!(
            out,
            vec![event("message", "a", None), event("message", "b", None)]
        );
    }
}
