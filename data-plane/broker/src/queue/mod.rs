//! A queue hosted on this broker: an openraft group whose log is the queue's
//! message log, the state machine adapter around `sluice_queue::QueueState`,
//! and the task that fires its timers.
//!
//! - [`codec`]: how a command and its bodies become one Raft entry.
//! - [`state_machine`]: openraft's state machine on `QueueState`.
//! - [`group`]: opening a group, proposing commands, reading bodies back.
//! - [`timer`]: proposes `Tick` when leases, delays or TTLs fall due.
//! - [`compaction`]: snapshots and purges the log below the release cursor.
//! - [`activity`]: counts what the group did and turns it into rates.

pub mod activity;
pub mod codec;
pub mod compaction;
pub mod group;
pub mod outcome;
pub mod state_machine;
mod timer;

pub use activity::{Rates, Totals};
pub use codec::{BodyEncoding, MessageBody};
pub use group::{GroupError, GroupSpec, QueueGroup};
pub use outcome::{CommandError, CommandOutcome};
