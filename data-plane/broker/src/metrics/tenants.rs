//! Per-tenant series: queue activity summed over the tenant's queues (the
//! queue groups count it into the node's `TenantActivity`), and publishes
//! refused by the rate quota (`RateRefusals`). Both outlive a deleted queue
//! (so `rate()` over them never sees a counter go backwards) but not a
//! deleted tenant: a scrape shows (and keeps) only the tenants the topology
//! still holds.

use std::collections::BTreeMap;

use super::{family, sample};
use crate::admission::rate::RateRefusals;
use crate::queue::Totals;
use crate::queue::activity::TenantActivity;

/// One tenant's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TenantRow {
    pub activity: Totals,
    pub rate_limited: u64,
}

/// The counters of the tenants `live` accepts; the others (deleted
/// tenants) are dropped from both tables for good.
pub(super) fn rows(
    activity: &TenantActivity,
    refusals: &RateRefusals,
    live: impl Fn(&str) -> bool,
) -> Vec<(String, TenantRow)> {
    let mut rows: BTreeMap<String, TenantRow> = BTreeMap::new();
    for (tenant, done) in activity.retain(&live) {
        rows.entry(tenant).or_default().activity = done;
    }
    for (tenant, refused) in refusals.retain(&live) {
        rows.entry(tenant).or_default().rate_limited = refused;
    }
    rows.into_iter().collect()
}

/// Appends the per-tenant families.
pub(super) fn render(out: &mut String, rows: &[(String, TenantRow)]) {
    if rows.is_empty() {
        return;
    }
    type Field = fn(&TenantRow) -> u64;
    let series: [(&str, &str, Field); 9] = [
        (
            "sluice_tenant_published_messages_total",
            "Messages stored in the tenant's queues",
            |r| r.activity.published,
        ),
        (
            "sluice_tenant_published_bytes_total",
            "Bytes of messages stored in the tenant's queues",
            |r| r.activity.published_bytes,
        ),
        (
            "sluice_tenant_delivered_messages_total",
            "Deliveries, redeliveries included",
            |r| r.activity.delivered,
        ),
        (
            "sluice_tenant_redelivered_messages_total",
            "Deliveries of messages delivered before",
            |r| r.activity.redelivered,
        ),
        (
            "sluice_tenant_acked_messages_total",
            "Messages acked",
            |r| r.activity.acked,
        ),
        ("sluice_tenant_nacked_messages_total", "Nacks", |r| {
            r.activity.nacked
        }),
        (
            "sluice_tenant_dead_lettered_messages_total",
            "Messages dead-lettered (or dropped without a dead-letter exchange)",
            |r| r.activity.dead_lettered,
        ),
        (
            "sluice_tenant_dead_letters_dropped_total",
            "Dead letters their dead-letter exchange routed nowhere",
            |r| r.activity.dead_letters_dropped,
        ),
        (
            "sluice_publish_rate_limited_total",
            "Publishes refused by the tenant's rate quota",
            |r| r.rate_limited,
        ),
    ];
    for (name, help, field) in series {
        family(out, name, "counter", help);
        for (tenant, row) in rows {
            sample(out, name, &[("tenant", tenant)], field(row));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_tenants_counters_leave_the_table() {
        let done = Totals {
            published: 2,
            acked: 1,
            ..Totals::default()
        };
        let activity = TenantActivity::default();
        let refusals = RateRefusals::default();
        activity.add("t-kept", &done);
        activity.add("t-kept", &done);
        refusals.add("t-kept");
        activity.add("t-deleted", &done);
        let rows = rows(&activity, &refusals, |t| t != "t-deleted");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.activity.published, 4);
        assert_eq!(rows[0].1.rate_limited, 1);
        let mut text = String::new();
        render(&mut text, &rows);
        assert!(text.contains("sluice_tenant_published_messages_total{tenant=\"t-kept\"} 4\n"));
        assert!(text.contains("sluice_publish_rate_limited_total{tenant=\"t-kept\"} 1\n"));
        assert!(!text.contains("t-deleted"));
    }
}
