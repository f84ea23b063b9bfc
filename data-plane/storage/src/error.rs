//! The crate's one error type: every fallible storage operation returns [`Error`].
//!
//! Variants name the domain fact that went wrong (a corrupt segment, an offset out of
//! order) so the broker can map them to retries, alarms or client errors without
//! matching on strings.

use std::io;
use std::path::PathBuf;

/// Errors of the segment log, its indexes and the Raft storage built on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error during {context}: {source}")]
    Io {
        /// What the engine was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A batch in a sealed segment (or below the recovered tail of the active one)
    /// failed its CRC or structural checks. Never silently skipped.
    #[error(
        "corrupt batch in segment {segment} at byte {position} (after offset {after_offset:?}): {reason}"
    )]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte position of the bad batch inside the segment file.
        position: u64,
        /// Offset of the last good batch before it, if any.
        after_offset: Option<u64>,
        /// Which check failed.
        reason: String,
    },

    /// Bytes handed to the decoder are not a valid batch (used by the codec and fuzzing).
    #[error("invalid batch encoding: {0}")]
    Decode(String),

    /// An append asked for an offset at or below the log's end.
    #[error("offset {requested} is not after the end of the log (next offset {next})")]
    OffsetOutOfOrder {
        /// The offset the caller asked for.
        requested: u64,
        /// The smallest offset that would have been accepted.
        next: u64,
    },

    /// A batch exceeds the configured maximum size.
    #[error("batch of {size} bytes exceeds the maximum of {max} bytes")]
    BatchTooLarge {
        /// Encoded size.
        size: usize,
        /// Configured limit.
        max: usize,
    },

    /// The writer stopped after an earlier write or fsync failure; the log must be
    /// reopened (which runs recovery) before it accepts appends again.
    #[error("log writer stopped after a failed write or fsync ({0}); reopen the log")]
    WriterFailed(String),

    /// Another handle (in this or another process) has the log directory open.
    #[error("log directory {0} is locked by another open log")]
    Locked(PathBuf),

    /// The log was closed while the operation was pending.
    #[error("log is closed")]
    Closed,

    /// A metadata or snapshot file could not be (de)serialized.
    #[error("invalid metadata in {path}: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// Configuration rejected at open.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether this error means stored bytes are damaged (as opposed to a transient or usage error).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { source, .. } => source,
            Error::Corrupt { .. } | Error::Decode(_) | Error::Metadata { .. } => {
                io::Error::new(io::ErrorKind::InvalidData, e)
            }
            other => io::Error::other(other),
        }
    }
}

/// Adds a context string to `io::Result`s, turning them into [`Error::Io`].
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
