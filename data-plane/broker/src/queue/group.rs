//! One queue group on this broker: opens the segment log and the state
//! machine under `data_dir/groups/<group_id>/`, starts (or restarts) the
//! openraft group, proposes commands and reads message bodies back from the
//! log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_queue::{
    BodyRef, Command, DeadLetter, Delivery, MessageView, OutboxEntry, QueueSettings, QueueState,
    Redriven, TimedCommand,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::activity::{Activity, Rates, TenantActivity, Totals};
use super::codec::{self, MessageBody};
use super::log_read::{ReadMessage, read_messages};
use super::outcome::CommandOutcome;
use super::state_machine::QueueRaftConfig;
use super::state_machine::QueueView;
use super::timer;
pub use crate::raft::group::GroupError;
use crate::raft::group::RaftGroup;

/// Segment size of a queue's log: small, so acked prefixes are freed soon.
const SEGMENT_BYTES: u64 = 16 * 1024 * 1024;

/// What the topology says about a group hosted here.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    pub group_id: String,
    pub tenant_id: i64,
    /// The tenant's name (metrics labels).
    pub tenant: String,
    pub queue: String,
    pub settings: QueueSettings,
    /// Broker node ids of the replicas.
    pub replicas: Vec<String>,
}

/// Dead letters a group produced (and redriven messages it left unsettled),
/// for the broker's dead-letter forwarder.
#[derive(Debug, Clone)]
pub struct DeadLetterNote {
    pub group_id: String,
    pub dead_letters: Vec<DeadLetter>,
    pub redriven: Vec<Redriven>,
}

/// Where a group reports what the broker acts on outside the group: dead
/// letters to republish, and what it did, summed per tenant.
#[derive(Clone)]
pub struct GroupOutlets {
    pub dead_letters: mpsc::UnboundedSender<DeadLetterNote>,
    pub tenant_activity: Arc<TenantActivity>,
}

impl GroupOutlets {
    /// Outlets with a tenant activity table of their own (tests, tools).
    pub fn new(dead_letters: mpsc::UnboundedSender<DeadLetterNote>) -> GroupOutlets {
        GroupOutlets {
            dead_letters,
            tenant_activity: Arc::default(),
        }
    }
}

pub struct QueueGroup {
    pub spec: GroupSpec,
    dir: PathBuf,
    group: RaftGroup<QueueRaftConfig, QueueState>,
    outlets: GroupOutlets,
    activity: Arc<Activity>,
    read_ahead: Arc<super::read_ahead::ReadAhead>,
    stop: CancellationToken,
}

pub use crate::raft::now_ms;

impl QueueGroup {
    /// Opens (or creates) the group in `dir`, initializes a new one with its
    /// replicas, waits for a leader and starts its timer task.
    pub async fn open(
        dir: &Path,
        node_id: &str,
        spec: GroupSpec,
        outlets: GroupOutlets,
    ) -> anyhow::Result<Arc<QueueGroup>> {
        let activity = Arc::new(Activity::new(std::time::Instant::now()));
        Self::open_with(dir, node_id, spec, outlets, activity, true).await
    }

    /// [`QueueGroup::open`], counting into `activity`; with
    /// `release_leftovers`, push consumers still registered (left by a
    /// process that ended) are unregistered — not when the queue wakes
    /// from a sleep in this process, which no consumer held.
    pub async fn open_with(
        dir: &Path,
        node_id: &str,
        spec: GroupSpec,
        outlets: GroupOutlets,
        activity: Arc<Activity>,
        release_leftovers: bool,
    ) -> anyhow::Result<Arc<QueueGroup>> {
        let group = RaftGroup::start(
            dir,
            node_id,
            &spec.replicas,
            SEGMENT_BYTES,
            QueueState::new(spec.settings.clone()).with_spill(super::spill::config(dir)),
        )
        .await?;
        let group = Arc::new(QueueGroup {
            spec,
            dir: dir.to_path_buf(),
            group,
            outlets,
            activity,
            read_ahead: Arc::default(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(timer::run(group.clone(), group.stop.clone()));
        tokio::spawn(super::activity::sample(
            group.activity.clone(),
            group.stop.clone(),
        ));
        tokio::spawn(super::compaction::run(group.clone(), group.stop.clone()));
        if release_leftovers {
            group.release_leftover_consumers().await;
        }
        let (unsettled, redriven) = group.view().read(|q| {
            let mut unsettled = Vec::new();
            let mut redriven = Vec::new();
            for (outbox_id, entry) in q.outbox() {
                match entry {
                    OutboxEntry::DeadLetter(dead_letter) => unsettled.push(dead_letter.clone()),
                    OutboxEntry::Redrive(entry) => redriven.push(Redriven {
                        outbox_id,
                        message: entry.message.clone(),
                        target: entry.target.clone(),
                    }),
                }
            }
            (unsettled, redriven)
        });
        if !unsettled.is_empty() || !redriven.is_empty() {
            let _ = group.outlets.dead_letters.send(DeadLetterNote {
                group_id: group.spec.group_id.clone(),
                dead_letters: unsettled,
                redriven,
            });
        }
        Ok(group)
    }

    /// Push consumers are connections of the process that served them: any
    /// still registered when the queue opens were left by a broker that
    /// ended (crash, restart). Unregister them, so what they held is ready
    /// again now rather than when its leases run out, and a
    /// single-active-consumer queue hands over instead of waiting for a
    /// consumer that will never come back.
    async fn release_leftover_consumers(&self) {
        for consumer in self.view().read(|q| q.registered_consumers()) {
            let command = Command::ConsumerDown {
                consumer: consumer.clone(),
            };
            if let Err(err) = self.propose(command, Vec::new()).await {
                tracing::warn!(queue = %self.spec.queue, consumer = %consumer.0, error = %err,
                    "could not unregister a consumer left by an earlier run; its leases will run out");
            }
        }
    }

    pub fn view(&self) -> &QueueView {
        self.group.view()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_leader(&self) -> bool {
        self.group.is_leader()
    }

    /// Proposes `command` (with the bodies of a publish), stamped with this
    /// node's clock, and answers once it is committed and applied.
    pub async fn propose(
        &self,
        command: Command,
        bodies: Vec<MessageBody>,
    ) -> Result<CommandOutcome, GroupError> {
        let command = TimedCommand::new(now_ms(), command);
        let records = codec::encode_entry(&command, bodies)
            .map_err(|e| GroupError::Storage(e.to_string()))?;
        let outcome = self.group.write(records).await?;
        // Every command this broker applies passes here, whoever proposed it.
        let done = Totals::of(&command.command, &outcome);
        self.activity.add(&done);
        self.outlets.tenant_activity.add(&self.spec.tenant, &done);
        let pending: Vec<DeadLetter> = outcome
            .dead_letters
            .iter()
            .filter(|d| d.outbox_id.is_some())
            .cloned()
            .collect();
        if !pending.is_empty() {
            let _ = self.outlets.dead_letters.send(DeadLetterNote {
                group_id: self.spec.group_id.clone(),
                dead_letters: pending,
                redriven: Vec::new(),
            });
        }
        Ok(outcome)
    }

    /// Counts a dead letter its dead-letter exchange routed nowhere.
    pub fn count_dropped_dead_letter(&self) {
        let dropped = Totals {
            dead_letters_dropped: 1,
            ..Totals::default()
        };
        self.activity.add(&dropped);
        self.outlets
            .tenant_activity
            .add(&self.spec.tenant, &dropped);
    }

    /// What this group did since it was opened here.
    pub fn totals(&self) -> Totals {
        self.activity.totals()
    }

    /// Messages per second over the last few seconds.
    pub fn rates(&self) -> Rates {
        self.activity.rates(std::time::Instant::now())
    }

    /// Hands redriven messages that could not be republished now to the
    /// dead-letter forwarder, which retries them until they are settled.
    pub fn retry_redriven(&self, redriven: Vec<Redriven>) {
        if redriven.is_empty() {
            return;
        }
        let _ = self.outlets.dead_letters.send(DeadLetterNote {
            group_id: self.spec.group_id.clone(),
            dead_letters: Vec::new(),
            redriven,
        });
    }

    /// The bodies `refs` point at, in order.
    pub async fn read_bodies(&self, refs: Vec<BodyRef>) -> Result<Vec<MessageBody>, GroupError> {
        let refs = refs.into_iter().map(|body_ref| (body_ref, false)).collect();
        let read = self.read_messages(refs).await?;
        Ok(read.into_iter().map(|(body, _)| body).collect())
    }

    /// Bodies, and the publish entry's metadata where `(ref, true)` asks.
    pub async fn read_messages(
        &self,
        refs: Vec<(BodyRef, bool)>,
    ) -> Result<Vec<ReadMessage>, GroupError> {
        let log = self.group.log().clone();
        let read_ahead = self.read_ahead.clone();
        tokio::task::spawn_blocking(move || {
            let read = read_messages(&log, &refs)?;
            if let Some(highest) = refs.iter().map(|(r, _)| r.log_index).max() {
                read_ahead.after_read(&log, highest);
            }
            Ok(read)
        })
        .await
        .map_err(|e| GroupError::Storage(e.to_string()))?
    }

    /// The bodies of `deliveries`, in order, completing the metadata of
    /// plain messages from the log on the way.
    pub async fn read_deliveries(
        &self,
        deliveries: &mut [Delivery],
    ) -> Result<Vec<MessageBody>, GroupError> {
        let refs = deliveries
            .iter()
            .map(|d| (d.body_ref, d.meta.in_log))
            .collect();
        let read = self.read_messages(refs).await?;
        Ok(deliveries
            .iter_mut()
            .zip(read)
            .map(|(delivery, (body, published))| {
                if let Some(published) = published {
                    delivery.fill_from(&published);
                }
                body
            })
            .collect())
    }

    /// The bodies of peeked `views`, completing their metadata likewise.
    pub async fn read_views(
        &self,
        views: &mut [MessageView],
    ) -> Result<Vec<MessageBody>, GroupError> {
        let refs = views.iter().map(|v| (v.body_ref, v.meta.in_log)).collect();
        let read = self.read_messages(refs).await?;
        Ok(views
            .iter_mut()
            .zip(read)
            .map(|(view, (body, published))| {
                if let Some(published) = published {
                    view.fill_from(&published);
                }
                body
            })
            .collect())
    }

    /// The body of a dead letter, and the dead letter completed from the
    /// log (its target's routing key too, when it is the message's).
    pub async fn read_dead_letter(
        &self,
        dead_letter: &DeadLetter,
    ) -> Result<(MessageBody, DeadLetter), GroupError> {
        let mut dead_letter = dead_letter.clone();
        let (body, published) = self
            .read_one(dead_letter.body_ref, dead_letter.meta.in_log)
            .await?;
        if let Some(published) = published {
            dead_letter.fill_from(&published);
        }
        Ok((body, dead_letter))
    }

    /// The body of a redriven message, completing its metadata likewise.
    pub async fn read_redriven(&self, redriven: &mut Redriven) -> Result<MessageBody, GroupError> {
        let (body, published) = self
            .read_one(redriven.message.body_ref, redriven.message.meta.in_log)
            .await?;
        if let Some(published) = published {
            redriven.fill_from(&published);
        }
        Ok(body)
    }

    async fn read_one(&self, body_ref: BodyRef, meta: bool) -> Result<ReadMessage, GroupError> {
        self.read_messages(vec![(body_ref, meta)])
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                GroupError::Storage(format!("log entry {} not read", body_ref.log_index))
            })
    }

    /// Snapshots the queue state and purges the log below the release
    /// cursor (no live message, no unsettled dead letter points there).
    /// Returns the last purged index, or `None` when nothing is left to purge.
    pub async fn compact(&self) -> Result<Option<u64>, GroupError> {
        self.group.compact(|q| q.release_cursor()).await
    }

    /// The first log index still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.group.log().start_offset()
    }

    /// Stops the group's own tasks (timer, compaction, rate sampler).
    pub fn stop_tasks(&self) {
        self.stop.cancel();
    }

    /// Stops the timer and the Raft group (the log is closed once dropped).
    pub async fn close(&self) {
        self.stop.cancel();
        if let Err(err) = self.group.shutdown().await {
            tracing::warn!(group = %self.spec.group_id, error = %err, "group shutdown failed");
        }
    }
}
