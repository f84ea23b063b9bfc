//! The tenants' storage quota (`max_storage_bytes`). Each broker measures
//! what it stores per tenant — the bytes of every live queue message and
//! the segment files of every stream partition it hosts — and reports it
//! with each heartbeat; the control plane answers the sums over the live
//! brokers, which publishes and produces are checked against.
//!
//! The check is soft by design: the sums are a heartbeat old (2 s by
//! default) and concurrent publishes on several brokers may overshoot by
//! what they admit within that time; a tenant over the quota is refused
//! (403 `quota-exceeded`) until consuming, acking or retention frees room.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::control::TopologyHandle;
use crate::error::{BrokerError, BrokerResult};
use crate::groups::Groups;
use crate::stream_groups::Partitions;

/// What this broker stores per tenant, now.
pub fn measure(groups: &Groups, partitions: &Partitions) -> BTreeMap<i64, u64> {
    let mut bytes: BTreeMap<i64, u64> = BTreeMap::new();
    for group in groups.all() {
        let stored = group.view().read(|q| q.stats().bytes);
        *bytes.entry(group.spec.tenant_id).or_default() += stored;
    }
    for partition in partitions.all() {
        *bytes.entry(partition.spec.tenant_id).or_default() += partition.log_bytes();
    }
    bytes
}

/// Refreshes `report` with [`measure`] every `every` until `shutdown`.
pub async fn keep_measuring(
    groups: Groups,
    partitions: Partitions,
    report: watch::Sender<Arc<BTreeMap<i64, u64>>>,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        report.send_replace(Arc::new(measure(&groups, &partitions)));
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Refuses `incoming` more bytes when the tenant's stored bytes across the
/// cluster have reached its `max_storage_bytes`.
pub fn check(topology: &TopologyHandle, caller: &Caller, incoming: u64) -> BrokerResult<()> {
    let Some(limit) = topology
        .current()
        .tenants
        .get(&caller.tenant_id)
        .map(|t| t.quotas.max_storage_bytes)
    else {
        return Err(BrokerError::Unauthorized("unknown tenant".into()));
    };
    let used = topology.storage_used(caller.tenant_id);
    verdict(&caller.tenant, limit, used, incoming)
}

fn verdict(tenant: &str, limit: i64, used: u64, incoming: u64) -> BrokerResult<()> {
    let limit_bytes = u64::try_from(limit).unwrap_or(0);
    if used.saturating_add(incoming) <= limit_bytes {
        return Ok(());
    }
    Err(BrokerError::QuotaExceeded {
        quota: "max_storage_bytes",
        limit,
        used,
        detail: format!(
            "tenant `{tenant}` stores {used} bytes; {incoming} more would exceed its max_storage_bytes ({limit}); nothing was stored"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_names_the_quota_beyond() {
        assert!(verdict("acme", 100, 60, 40).is_ok());
        let Err(BrokerError::QuotaExceeded {
            quota, limit, used, ..
        }) = verdict("acme", 100, 60, 41)
        else {
            panic!("41 bytes over a 40-byte room admitted");
        };
        assert_eq!((quota, limit, used), ("max_storage_bytes", 100, 60));
        assert!(
            verdict("acme", 0, 0, 1).is_err(),
            "a zero quota stores nothing"
        );
        assert!(
            verdict("acme", -1, 0, 0).is_ok(),
            "an empty batch never fails"
        );
    }
}
