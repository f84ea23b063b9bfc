//! Per-tenant series: queue activity summed over the tenant's queues, and
//! publishes refused by the rate quota. They outlive a deleted queue (so
//! `rate()` over them never sees a counter go backwards) but not a deleted
//! tenant: the table is process-wide, because the queue groups that count
//! hold no handle on the broker state, and a scrape shows (and keeps) only
//! the tenants the topology still holds.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use super::{family, sample};
use crate::queue::Totals;

/// One tenant's counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct TenantRow {
    pub activity: Totals,
    pub rate_limited: u64,
}

fn table() -> &'static Mutex<BTreeMap<String, TenantRow>> {
    static TABLE: OnceLock<Mutex<BTreeMap<String, TenantRow>>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

fn update(tenant: &str, change: impl FnOnce(&mut TenantRow)) {
    if let Ok(mut table) = table().lock() {
        change(table.entry(tenant.to_string()).or_default());
    }
}

/// Adds what one queue command did to its tenant's counters.
pub fn add_activity(tenant: &str, done: &Totals) {
    if *done != Totals::default() {
        update(tenant, |row| row.activity += *done);
    }
}

/// Counts a publish refused by the tenant's rate quota.
pub fn add_rate_limited(tenant: &str) {
    update(tenant, |row| row.rate_limited += 1);
}

/// The counters of the tenants `live` accepts; the others (deleted
/// tenants) are dropped from the table for good.
pub(super) fn rows(live: impl Fn(&str) -> bool) -> Vec<(String, TenantRow)> {
    let Ok(mut table) = table().lock() else {
        return Vec::new();
    };
    table.retain(|tenant, _| live(tenant));
    table.iter().map(|(t, row)| (t.clone(), *row)).collect()
}

/// Appends the per-tenant families.
pub(super) fn render(out: &mut String, rows: &[(String, TenantRow)]) {
    if rows.is_empty() {
        return;
    }
    type Field = fn(&TenantRow) -> u64;
    let series: [(&str, &str, Field); 8] = [
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
        add_activity("t-kept", &done);
        add_activity("t-kept", &done);
        add_rate_limited("t-kept");
        add_activity("t-deleted", &done);
        let rows = rows(|t| t != "t-deleted" && t.starts_with("t-"));
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
