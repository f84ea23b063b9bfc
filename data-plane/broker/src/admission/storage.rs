//! The tenants' storage quota (`max_storage_bytes`). Each broker measures
//! what it stores per tenant — the bytes of every live queue message and
//! the stored bytes of the live produced batches of every stream partition
//! it hosts — and reports it
//! with each heartbeat; the control plane answers the sums over the live
//! brokers, which publishes and produces are checked against.
//!
//! The check is soft by design: the sums are a heartbeat old (2 s by
//! default) and concurrent publishes on several brokers may overshoot by
//! what they admit within that time; a tenant over the quota is refused
//! (403 `quota-exceeded`) until consuming, acking or retention frees room.
//!
//! Only tenant data counts. A partition's log also holds entries without
//! records: partition 0 carries every join, heartbeat and commit of the
//! stream's consumer groups (a member heartbeating every few seconds writes
//! thousands of entries a day), plus `Retain` / blank entries. Those are
//! the service's bookkeeping — a tenant could not shrink them by deleting
//! data — so they are not counted, as `retention_bytes` does not count them.
//!
//! Heartbeats stay Raft entries (decided, not overlooked): expiry is
//! applied by every replica at the same log index from the replicated
//! `last_heartbeat_ms`, which is what keeps fencing deterministic across a
//! leader change or a broker restart. Answering an unchanged heartbeat from
//! the leader's memory would leave the replicated liveness behind the real
//! one, so a member would be expelled early (by up to the skipped interval)
//! — or, to avoid that, expiry would have to become a leader decision with
//! a grace period after every failover (Kafka's coordinator keeps liveness
//! in memory that way). A heartbeat that acknowledges a revocation must be
//! logged in any case. The cost left is log growth on partition 0 between
//! its live batches (purged only below the first live batch).

use crate::admission::auth::Caller;
use crate::control::TopologyHandle;
use crate::error::{BrokerError, BrokerResult};

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
