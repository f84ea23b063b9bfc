//! Push dispatch: one task per queue group owns that queue's push consumers
//! and decides who gets the next message. Consumers join and leave through
//! the task's channel; nothing else touches its state.
//!
//! A consumer gets a message only while its unacked count (the state
//! machine's, so acks through `POST /ack` count at once) is below its
//! prefetch. Each round, every consumer with room leases its share of the
//! ready messages (one `Receive` each, proposed together: one group commit
//! per round, not per message), the walk starting one consumer further each
//! round — round-robin, and RabbitMQ's fair dispatch: with prefetch 1 a
//! consumer that acks quickly has room again sooner and does more of the
//! work. `round` decides who is served (a consumer with only a little room
//! briefly waits for more). An ack that frees a good part of a push
//! consumer's window passes through the task too (`settle`): it is proposed
//! with a refill of that window, so with prefetch 1 the next message rides
//! on the ack's commit. A consumer
//! that leaves (its connection dropped) is proposed `ConsumerDown`, so what
//! it held goes back to the queue, redelivered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use sluice_queue::{Command, ConsumerId, Reply, Stats};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Delivered;
use super::host::{QueueHost, QueueInUse};
use super::receipts::ReceiptSeal;

mod round;
mod settle;

use round::{LINGER, Round, Window};
use settle::Settle;

/// How often an idle dispatcher checks that its queue is still hosted here
/// (a deleted queue ends its consumers' streams) and tries another round.
const HOSTED_CHECK: Duration = Duration::from_secs(2);

/// A consumer asking to join a queue's dispatch.
pub struct Join {
    /// The name the consumer asked for; made unique on the queue.
    pub name: String,
    pub prefetch: u32,
    pub lease_ms: Option<u64>,
    pub deliveries: mpsc::Sender<Delivered>,
}

/// Answers a join with the consumer id it got, or why it could not join.
type Joined = oneshot::Sender<Result<ConsumerId, String>>;

enum Request {
    Join(Join, Joined),
    Leave(ConsumerId),
    Settle(Settle),
}

/// The dispatch tasks of the queues that have push consumers, by group id.
pub struct Dispatchers {
    tasks: Mutex<HashMap<String, Task>>,
    receipts: ReceiptSeal,
}

/// A running dispatch task, as others reach it.
struct Task {
    requests: mpsc::UnboundedSender<Request>,
    /// The prefetch of each consumer the task serves: a copy the task keeps
    /// up to date, read by acks deciding whether to go through the task.
    windows: Windows,
}

type Windows = Arc<Mutex<HashMap<ConsumerId, u64>>>;

/// Tells the dispatcher that a consumer left when dropped (the consumer's
/// stream owns it, so a closed connection drops it).
pub struct Membership {
    consumer: ConsumerId,
    requests: mpsc::UnboundedSender<Request>,
}

impl Membership {
    pub fn consumer(&self) -> &ConsumerId {
        &self.consumer
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let _ = self.requests.send(Request::Leave(self.consumer.clone()));
    }
}

impl Dispatchers {
    pub fn new(receipts: ReceiptSeal) -> Self {
        Dispatchers {
            tasks: Mutex::default(),
            receipts,
        }
    }

    /// Adds a consumer to `group`'s dispatch, starting its task if needed.
    /// Returns the consumer id and the membership that ends it when dropped.
    pub async fn join(
        self: &Arc<Self>,
        groups: &QueueHost,
        group: QueueInUse,
        join: Join,
    ) -> Result<(ConsumerId, Membership), String> {
        let (joined, answer) = oneshot::channel();
        let requests = {
            let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
            let requests = tasks
                .entry(group.spec.group_id.clone())
                .or_insert_with(|| {
                    let (requests, inbox) = mpsc::unbounded_channel();
                    let windows = Windows::default();
                    let dispatcher = Dispatcher {
                        groups: groups.clone(),
                        group: group.clone(),
                        consumers: Vec::new(),
                        windows: windows.clone(),
                        next: 0,
                        receipts: self.receipts.clone(),
                        lingering_since: None,
                    };
                    tokio::spawn(dispatcher.run(inbox, self.clone()));
                    Task { requests, windows }
                })
                .requests
                .clone();
            // Sent under the lock: a task retires under it too, so it never
            // drops a request it has not seen.
            requests
                .send(Request::Join(join, joined))
                .map_err(|_| "the queue's dispatcher stopped".to_string())?;
            requests
        };
        let consumer = answer
            .await
            .map_err(|_| "the queue's dispatcher stopped".to_string())??;
        Ok((consumer.clone(), Membership { consumer, requests }))
    }

    /// Forgets `group_id`'s task if it has no request waiting; true when
    /// the task may end.
    fn retire(&self, group_id: &str, inbox: &mut mpsc::UnboundedReceiver<Request>) -> bool {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if !inbox.is_empty() {
            return false;
        }
        tasks.remove(group_id);
        true
    }

    /// Forgets `group_id`'s task, whose group is gone.
    fn forget(&self, group_id: &str) {
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(group_id);
    }
}

struct PushConsumer {
    id: ConsumerId,
    prefetch: u64,
    lease_ms: Option<u64>,
    deliveries: mpsc::Sender<Delivered>,
}

struct Dispatcher {
    groups: QueueHost,
    /// Held for as long as the queue has push consumers: it stays awake.
    group: QueueInUse,
    consumers: Vec<PushConsumer>,
    /// The consumers' prefetch, mirrored for `Dispatchers::ack`.
    windows: Windows,
    /// Where the next round-robin walk starts.
    next: usize,
    receipts: ReceiptSeal,
    /// Since when consumers with a little room have waited for more
    /// (`round`); `None` while nobody waits.
    lingering_since: Option<Instant>,
}

/// What a dispatch round did.
enum RoundOutcome {
    /// Someone got messages (or left): try another round at once.
    Delivered,
    /// Nobody could take anything: wait for a change.
    Idle,
    /// Consumers with a little room wait for more, at most until then.
    LingerUntil(Instant),
}

/// What a dispatch round looks at: when none of it changed, another round
/// cannot deliver anything either.
fn fingerprint(stats: &Stats) -> (u64, u64, u64, Vec<u64>) {
    (
        stats.ready,
        stats.unacked,
        stats.delayed,
        stats.consumers.values().copied().collect(),
    )
}

impl Dispatcher {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>, owner: Arc<Dispatchers>) {
        let group_id = self.group.spec.group_id.clone();
        let mut changes = self.group.view().subscribe();
        let mut woken_by: Option<Request> = None;
        loop {
            let mut settles = Vec::new();
            if let Some(request) = woken_by.take() {
                self.handle(request, &mut settles).await;
            }
            while let Ok(request) = inbox.try_recv() {
                self.handle(request, &mut settles).await;
            }
            if !settles.is_empty() {
                self.settle(settles).await;
            }
            if self.consumers.is_empty() {
                if owner.retire(&group_id, &mut inbox) {
                    return;
                }
                continue;
            }
            changes.borrow_and_update();
            let linger_until = match self.deliver_round().await {
                RoundOutcome::Delivered => continue,
                RoundOutcome::Idle => None,
                RoundOutcome::LingerUntil(deadline) => Some(deadline),
            };
            // Nothing to hand out: wait for a change that could matter
            // (our own empty receives change nothing that counts).
            let idle = fingerprint(&self.group.view().read(|q| q.stats()));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(linger_until.unwrap_or_else(Instant::now)), if linger_until.is_some() => break,
                    request = inbox.recv() => {
                        woken_by = request;
                        break;
                    }
                    _ = tokio::time::sleep(HOSTED_CHECK) => {
                        if !self.hosted() {
                            owner.forget(&group_id);
                            return;
                        }
                        // A safety net for changes the fingerprint misses
                        // (the single active consumer moving, say).
                        break;
                    }
                    changed = changes.changed() => {
                        if changed.is_err() {
                            owner.forget(&group_id);
                            return;
                        }
                        if fingerprint(&self.group.view().read(|q| q.stats())) != idle {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Whether this broker still hosts the group (not deleted, not
    /// reopened as another instance). When it does not, the dispatcher
    /// ends, which ends every consumer's stream.
    fn hosted(&self) -> bool {
        self.groups
            .by_id(&self.group.spec.group_id)
            .is_some_and(|hosted| hosted.holds(&self.group))
    }

    /// Handles a join or leave at once; an ack joins `settles`, proposed
    /// together with the others waiting.
    async fn handle(&mut self, request: Request, settles: &mut Vec<Settle>) {
        match request {
            Request::Join(join, joined) => {
                let id = self.unique_id(&join.name);
                let command = Command::ConsumerUp {
                    consumer: id.clone(),
                };
                let answer = match self.group.propose(command, Vec::new()).await {
                    Ok(outcome) => match outcome.result {
                        Ok(_) => Ok(id.clone()),
                        Err(err) => Err(err.to_string()),
                    },
                    Err(err) => Err(err.to_string()),
                };
                if answer.is_ok() {
                    self.windows
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id.clone(), u64::from(join.prefetch));
                    self.consumers.push(PushConsumer {
                        id,
                        prefetch: u64::from(join.prefetch),
                        lease_ms: join.lease_ms,
                        deliveries: join.deliveries,
                    });
                }
                let _ = joined.send(answer);
            }
            Request::Leave(id) => self.leave(&id).await,
            Request::Settle(settle) => settles.push(settle),
        }
    }

    fn unique_id(&self, name: &str) -> ConsumerId {
        let taken = |candidate: &str| self.consumers.iter().any(|c| c.id.0 == candidate);
        if !taken(name) {
            return ConsumerId(name.to_string());
        }
        let mut n = 2;
        while taken(&format!("{name}#{n}")) {
            n += 1;
        }
        ConsumerId(format!("{name}#{n}"))
    }

    async fn leave(&mut self, id: &ConsumerId) {
        let Some(position) = self.consumers.iter().position(|c| c.id == *id) else {
            return;
        };
        self.consumers.remove(position);
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if self.next > position {
            self.next -= 1;
        }
        let command = Command::ConsumerDown {
            consumer: id.clone(),
        };
        match self.group.propose(command, Vec::new()).await {
            Ok(outcome) => {
                if let Ok(Reply::ConsumerDown { returned }) = outcome.result {
                    tracing::debug!(queue = %self.group.spec.queue, consumer = %id.0, returned, "push consumer left");
                }
            }
            Err(err) => {
                tracing::warn!(queue = %self.group.spec.queue, consumer = %id.0, error = %err, "ConsumerDown failed; its leases will run out")
            }
        }
    }

    /// One dispatch round: the consumers `round::plan` serves lease their
    /// share of the ready messages, all proposed at once so the round costs
    /// one group commit; then each gets its messages. The walk starts one
    /// consumer further each round, so the rounded-up shares rotate.
    async fn deliver_round(&mut self) -> RoundOutcome {
        if let Some(closed) = self.consumers.iter().find(|c| c.deliveries.is_closed()) {
            let id = closed.id.clone();
            self.leave(&id).await;
            return RoundOutcome::Delivered;
        }
        let stats = self.group.view().read(|q| q.stats());
        let count = self.consumers.len();
        let windows: Vec<(usize, Window)> = (0..count)
            .map(|step| (self.next + step) % count)
            .map(|index| {
                let consumer = &self.consumers[index];
                let unacked = stats.consumers.get(&consumer.id).copied().unwrap_or(0);
                (
                    index,
                    Window {
                        prefetch: consumer.prefetch,
                        unacked,
                    },
                )
            })
            .collect();
        let lingered = self
            .lingering_since
            .is_some_and(|since| since.elapsed() >= LINGER);
        let leases = match round::plan(stats.ready, &windows, lingered) {
            Round::Idle => {
                self.lingering_since = None;
                return RoundOutcome::Idle;
            }
            Round::Linger => {
                let since = *self.lingering_since.get_or_insert_with(Instant::now);
                return RoundOutcome::LingerUntil(since + LINGER);
            }
            Round::Lease(leases) => leases,
        };
        let left_waiting = windows.iter().filter(|(_, w)| w.room() > 0).count() > leases.len();
        if !left_waiting {
            self.lingering_since = None;
        }
        self.next = (self.next + 1) % count;
        let receives = leases.into_iter().map(|(index, max_messages)| {
            let consumer = &self.consumers[index];
            let command = Command::Receive {
                consumer: consumer.id.clone(),
                max_messages,
                lease_ms: consumer.lease_ms,
            };
            let group = &self.group;
            async move { (index, group.propose(command, Vec::new()).await) }
        });
        let mut delivered = false;
        for (index, outcome) in futures_util::future::join_all(receives).await {
            let deliveries = match outcome {
                Ok(outcome) => match outcome.result {
                    Ok(Reply::Received { deliveries }) => deliveries,
                    // Not the single active consumer, and the like.
                    _ => continue,
                },
                Err(err) => {
                    tracing::warn!(queue = %self.group.spec.queue, error = %err, "push receive failed");
                    continue;
                }
            };
            // Ready messages none of which were for this consumer (message
            // groups) leave `deliveries` empty.
            delivered |= !deliveries.is_empty();
            self.hand_over(index, deliveries).await;
        }
        if delivered {
            RoundOutcome::Delivered
        } else {
            RoundOutcome::Idle
        }
    }

    /// Reads the bodies of `deliveries` and sends them to consumer `index`.
    async fn hand_over(&self, index: usize, mut deliveries: Vec<sluice_queue::Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let bodies = match self.group.read_deliveries(&mut deliveries).await {
            Ok(bodies) if bodies.len() == deliveries.len() => bodies,
            other => {
                tracing::warn!(queue = %self.group.spec.queue, ?other, "reading pushed bodies failed; their leases will run out");
                return;
            }
        };
        let group_id = &self.group.spec.group_id;
        for (delivery, body) in deliveries.into_iter().zip(bodies) {
            let receipt = self.receipts.seal(group_id, delivery.receipt);
            let message = Delivered {
                receipt,
                delivery,
                body,
            };
            if let Err(err) = self.consumers[index].deliveries.try_send(message) {
                // Closed: the consumer is gone and ConsumerDown gives the
                // message back. Full (its leases ran out while it did not
                // read): the lease of this one runs out too.
                tracing::debug!(queue = %self.group.spec.queue, error = %err, "push delivery not taken");
            }
        }
    }
}
