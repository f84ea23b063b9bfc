//! A queue hosted on this broker: an openraft group whose log is the queue's
//! message log, the state machine adapter around `sluice_queue::QueueState`,
//! and the task that fires its timers.
//!
//! - [`codec`]: how a command and its bodies become one Raft entry.
//! - [`state_machine`]: openraft's state machine on `QueueState`.
//! - [`group`]: opening a group, proposing commands, reading bodies back;
//!   [`log_read`]: bodies and the metadata plain messages left in the log.
//! - [`timer`]: proposes `Tick` when leases, delays or TTLs fall due.
//! - [`compaction`]: snapshots and purges the log below the release cursor.
//! - [`spill`]: how much of a deep backlog stays in memory; the rest waits
//!   in page files in the queue's directory; [`read_ahead`]: the log read
//!   ahead of the consumers of a deep queue.
//! - [`activity`]: counts what the group did and turns it into rates.
//! - [`host`]: the queue groups hosted here, converged to the topology;
//!   [`hibernation`]: how an idle queue sleeps (closed, a summary kept) and wakes.
//! - [`routers`]: each tenant's exchanges compiled into a router.
//! - [`pull`]: a pull consumer's receive (a long-poll).
//! - [`dispatch`]: push consumers, served one round at a time per queue.
//! - [`receipts`]: sealing the receipts handed to consumers.
//! - [`dead_letter`], [`republish`]: dead letters and redrives republished
//!   through their exchange, here or on the broker hosting the target;
//!   [`redrive`]: moving messages out of a (dead-letter) queue on request.

pub mod activity;
pub mod codec;
pub mod compaction;
pub mod dead_letter;
pub mod dispatch;
pub mod group;
pub mod hibernation;
pub mod host;
pub mod log_read;
pub mod outcome;
pub mod publish;
pub mod pull;
pub mod read_ahead;
pub mod receipts;
pub mod redrive;
pub mod republish;
pub mod routers;
pub mod spill;
pub mod state_machine;
mod timer;

/// The longest lease (visibility timeout) a receive or push consumer may ask for.
pub const MAX_LEASE_MS: u64 = 12 * 3600 * 1000;

pub use crate::raft::group::GroupError;
pub use activity::{Rates, Totals};
pub use codec::{BodyEncoding, MessageBody};
pub use group::{GroupSpec, QueueGroup};
pub use outcome::{CommandError, CommandOutcome, command_error};

/// One message handed to a consumer (pull or push): its sealed receipt,
/// the delivery and the body read back from the log.
#[derive(Debug)]
pub struct Delivered {
    pub receipt: String,
    pub delivery: sluice_queue::Delivery,
    pub body: MessageBody,
}
