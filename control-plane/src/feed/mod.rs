//! The topology feed brokers follow: a versioned snapshot of everything they
//! need (tenants and quotas, key verifiers, exchanges, queues, bindings,
//! streams and where their groups are placed), long-polled with `since=V`,
//! and the wait that lets a declare return once its brokers have applied it.

pub mod snapshot;
pub mod watch;

pub use snapshot::{FeedSnapshot, load_snapshot};
pub use watch::VersionWatch;
