//! The queue state machine of Sluice (issue 4).
//!
//! Every queue is an openraft group whose log is its message log. Bodies stay
//! in the log; this crate keeps a [`BodyRef`] into it per message — about 20
//! bytes for a plain ready message, whose id, routing key and headers stay
//! in the log too (`backlog`, [`MessageMeta::in_log`]), and the whole
//! metadata for the others — and decides everything else: ready / delayed /
//! unacked, leases and receipts, retries with backoff, delivery limits, dead-lettering, dedup,
//! message groups, single active consumer, overflow. [`QueueState::apply`] is
//! pure and deterministic — replicas applying the same [`TimedCommand`]s at
//! the same log indexes agree on state and outputs — and
//! [`QueueState::release_cursor`] says which log prefix may be purged once a
//! snapshot (the state's serde form) covers it.
//!
//! A deep backlog spills to page files in the group's directory and keeps
//! a bounded window in memory (`backlog`, [`SpillConfig`]): where pages live
//! is this replica's own business (`local`), never part of an answer.
//!
//! The broker proposes commands, turns [`Reply`]s into HTTP responses,
//! publishes [`DeadLetter`]s and [`OutboxEntry`]s, and settles them.

mod backlog;
mod command;
mod dead_letter;
mod delivery;
mod error;
mod index;
mod local;
mod log_meta;
mod message;
mod message_groups;
mod output;
mod publish;
mod settings;
mod snapshot;
mod state;
mod store;
mod timers;

pub use backlog::{SpillConfig, SpillError};
pub use command::{Command, NackAction, RedriveTarget, Refill, TimedCommand};
pub use error::{InvalidSetting, QueueError};
pub use message::{
    BodyRef, ConsumerId, DeadLetterReason, DeathRecord, Location, MalformedReceipt, Message,
    MessageMeta, MessageView, PublishMessage, Receipt, Seq,
};
pub use output::{
    Applied, DeadLetter, DeadLetterTarget, Delivery, NackOutcome, OutboxEntry, PublishResult,
    RedriveEntry, Redriven, RejectReason, Reply, Stats,
};
pub use settings::{Overflow, QueueSettings, RetryBackoff};
pub use state::QueueState;
