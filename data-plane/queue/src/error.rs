//! Errors of applying a command. They are answers, not failures of the
//! replica: the same command fails the same way on every replica. A failed
//! command changes nothing itself, but the timers that ran before it did
//! (see `Applied::dead_letters`), and a refused single-active-consumer
//! receive still registers its consumer for a later takeover.

use serde::{Deserialize, Serialize};

use crate::message::{ConsumerId, Receipt};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum QueueError {
    /// No live message has this receipt's seq (acked, dead-lettered, purged,
    /// or never stored).
    #[error("unknown receipt {0}")]
    UnknownReceipt(Receipt),
    /// The message is live but this delivery's lease is over: it expired, was
    /// returned, or the message was delivered again since.
    #[error("stale receipt {0}: its lease is over")]
    StaleReceipt(Receipt),
    /// Single active consumer: another consumer is the active one.
    #[error("consumer {consumer} is not the single active consumer ({active})")]
    NotActiveConsumer {
        consumer: ConsumerId,
        active: ConsumerId,
    },
    /// The Raft glue applied entries out of order.
    #[error("log index {got} is below the applied index {applied}")]
    LogIndexRegressed { applied: u64, got: u64 },
}

/// A queue setting the queue cannot honour: the field (a JSON path inside
/// the settings, such as `retry.multiplier`), the rule it broke (`range`,
/// `requires`, ...) and why. The control plane answers it as a validation
/// problem naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct InvalidSetting {
    pub field: String,
    pub rule: &'static str,
    pub detail: String,
}

impl InvalidSetting {
    pub(crate) fn new(field: &str, rule: &'static str, detail: impl Into<String>) -> Self {
        InvalidSetting {
            field: field.to_string(),
            rule,
            detail: detail.into(),
        }
    }
}
