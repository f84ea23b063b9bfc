//! What a committed entry answers through openraft's responder: the queue's
//! reply (or why the entry was not a command) and the dead letters applying
//! it produced.

use serde::{Deserialize, Serialize};
use sluice_queue::{Applied, DeadLetter, QueueError, Reply};

use crate::error::BrokerError;

/// The response of one applied entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandOutcome {
    pub result: Result<Reply, CommandError>,
    pub dead_letters: Vec<DeadLetter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    /// The queue refused the command (unknown or stale receipt, ...).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The entry's records do not hold a command this broker understands.
    #[error("entry is not a queue command: {0}")]
    Undecodable(String),
    /// Blank and membership entries carry no command.
    #[error("entry carries no command")]
    NoCommand,
}

impl From<Applied> for CommandOutcome {
    fn from(applied: Applied) -> Self {
        CommandOutcome {
            result: applied.result.map_err(CommandError::Queue),
            dead_letters: applied.dead_letters,
        }
    }
}

impl CommandOutcome {
    pub fn without(error: CommandError) -> Self {
        CommandOutcome {
            result: Err(error),
            dead_letters: Vec::new(),
        }
    }
}

/// A command the queue refused, as an answer to the caller.
pub fn command_error(err: CommandError) -> BrokerError {
    match err {
        CommandError::Queue(QueueError::UnknownReceipt(receipt)) => BrokerError::NotFound {
            kind: "receipt",
            name: receipt.to_string(),
        },
        CommandError::Queue(QueueError::StaleReceipt(receipt)) => {
            BrokerError::StaleReceipt(format!("receipt {receipt} is stale: its lease is over"))
        }
        CommandError::Queue(err @ QueueError::NotActiveConsumer { .. }) => {
            BrokerError::NotActiveConsumer(err.to_string())
        }
        other => BrokerError::Internal(anyhow::Error::new(other)),
    }
}
