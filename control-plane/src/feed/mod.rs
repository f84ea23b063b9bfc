//! The topology feed brokers follow: a versioned snapshot of everything they
//! need (tenants and quotas, key verifiers, exchanges, queues, bindings,
//! streams and where their groups are placed) or the changes since the
//! version they have, long-polled with `since=V`; and the waits that let a
//! declare return once its brokers have applied it.

pub mod applied;
pub mod changes;
pub mod snapshot;
pub mod watch;

pub use applied::AppliedWatch;
pub use changes::load_update;
pub use sluice_protocol::feed::FeedUpdate;
pub use snapshot::{FeedSnapshot, load_snapshot};
pub use watch::VersionWatch;
