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

use sluice_client::data::{ConsumeEvent, ConsumeOptions, ConsumeStream};
use sluice_client::{Client, ClientError};
use tokio::sync::{mpsc, watch};

use crate::args::QueueArgs;
use crate::queue::{ConsumerLatencies, Shared, ack, record_received};
use crate::report::Latencies;

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
    client: Client,
    queue: String,
    args: Arc<QueueArgs>,
    index: u64,
    mut stop: watch::Receiver<bool>,
) -> ConsumerLatencies {
    let mut latencies = ConsumerLatencies::new();
    let (batches, inbox) = mpsc::unbounded_channel();
    let acker = tokio::spawn(ack_loop(
        shared.clone(),
        client.clone(),
        queue.clone(),
        args.ack_batch,
        inbox,
    ));
    let options = ConsumeOptions {
        prefetch: Some(u32::try_from(args.max_messages).unwrap_or(u32::MAX)),
        lease_ms: Some(args.lease_ms),
        consumer: Some(format!("bench-{index}")),
    };
    let mut stream = Stream {
        shared: &shared,
        args: &args,
        batches: &batches,
        latencies: &mut latencies,
    };
    while Instant::now() < shared.deadline && !*stop.borrow() {
        match stream.read(&client, &queue, &options, &mut stop).await {
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
    client: Client,
    queue: String,
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
        ack(&shared, &client, &queue, &receipts, &mut latencies).await;
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
        client: &Client,
        queue: &str,
        options: &ConsumeOptions,
        stop: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Ended> {
        let deadline = tokio::time::Instant::from_std(self.shared.deadline);
        let linger = Duration::from_millis(self.args.ack_linger_ms);
        let mut events: ConsumeStream = tokio::select! {
            biased;
            _ = stop.changed() => return Ok(Ended::Stopped),
            _ = tokio::time::sleep_until(deadline) => return Ok(Ended::Stopped),
            stream = client.consume(queue, options) => stream?,
        };
        let mut pending = Vec::new();
        let ended = loop {
            let event = if pending.is_empty() {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break Ok(Ended::Stopped),
                    _ = tokio::time::sleep_until(deadline) => break Ok(Ended::Stopped),
                    event = events.next_event() => event,
                }
            } else {
                // Only what is already buffered (or arrives within the
                // linger); otherwise ack what has arrived first.
                let more = if linger.is_zero() {
                    poll_once(events.next_event()).await
                } else {
                    tokio::time::timeout(linger, events.next_event()).await.ok()
                };
                match more {
                    Some(event) => event,
                    None => {
                        self.hand_over(&mut pending);
                        continue;
                    }
                }
            };
            let message = match event {
                None => break Ok(Ended::Closed),
                Some(Err(error @ ClientError::Decode { .. })) => {
                    self.shared.error(format!("an event: {error}"));
                    continue;
                }
                Some(Err(error)) => break Err(error.into()),
                Some(Ok(ConsumeEvent::Message(message))) => message,
                Some(Ok(ConsumeEvent::Consumer(hello))) => {
                    if u64::from(hello.prefetch) != self.args.max_messages {
                        self.shared.error(format!(
                            "consumer {} got prefetch {}, asked {}",
                            hello.consumer, hello.prefetch, self.args.max_messages
                        ));
                    }
                    continue;
                }
                Some(Ok(ConsumeEvent::Other(other))) => {
                    self.shared
                        .error(format!("unexpected event {:?}", other.event));
                    continue;
                }
            };
            record_received(
                self.shared,
                self.latencies,
                Instant::now(),
                std::iter::once(&*message),
            );
            pending.push(message.receipt);
            if pending.len() as u64 >= self.args.ack_batch {
                self.hand_over(&mut pending);
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
/// `future` is dropped; a consume stream's `next_event` loses nothing
/// when dropped before it is ready).
async fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}
