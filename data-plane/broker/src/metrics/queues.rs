//! Per-queue series: depths and consumers from each hosted group's state,
//! counters from what `QueueGroup::propose` counted.

use super::{family, sample};
use crate::node::Node;
use crate::queue::Totals;

/// Every queue hosted here, sorted by tenant and name.
pub(super) fn rows(state: &Node) -> Vec<QueueRow> {
    let mut rows: Vec<QueueRow> = state
        .queues
        .all()
        .iter()
        .filter_map(|hosted| {
            // A sleeping queue reports its summary: scraping wakes nothing.
            let stats = hosted.stats()?;
            Some(QueueRow {
                tenant: hosted.spec.tenant.clone(),
                queue: hosted.spec.queue.clone(),
                depth: [stats.ready, stats.unacked, stats.delayed],
                ready_bytes: stats.ready_bytes,
                consumers: stats.consumers.len() as u64,
                totals: hosted.totals(),
                awake: u64::from(hosted.is_awake()),
                failing: u64::from(hosted.failing().is_some()),
            })
        })
        .collect();
    rows.sort_by(|a, b| (&a.tenant, &a.queue).cmp(&(&b.tenant, &b.queue)));
    rows
}

/// One hosted queue as `/metrics` shows it.
pub(super) struct QueueRow {
    tenant: String,
    queue: String,
    /// Ready, unacked, delayed.
    depth: [u64; 3],
    ready_bytes: u64,
    consumers: u64,
    totals: Totals,
    /// 1 while its group is open, 0 while it sleeps.
    awake: u64,
    /// 1 while opening it fails (out of files or memory, say).
    failing: u64,
}

/// Appends the per-queue families, each family's samples together under its
/// `# TYPE` line as the text format requires.
pub(super) fn render(out: &mut String, rows: &[QueueRow]) {
    if rows.is_empty() {
        return;
    }
    family(
        out,
        "sluice_queue_messages",
        "gauge",
        "Messages in the queue by state",
    );
    for row in rows {
        for (state, value) in ["ready", "unacked", "delayed"].iter().zip(row.depth) {
            let labels = [
                ("tenant", &*row.tenant),
                ("queue", &*row.queue),
                ("state", state),
            ];
            sample(out, "sluice_queue_messages", &labels, value);
        }
    }
    type Field = fn(&QueueRow) -> u64;
    let series: [(&str, &str, &str, Field); 12] = [
        (
            "sluice_queue_awake",
            "gauge",
            "1 while the queue's group is open, 0 while it sleeps",
            |r| r.awake,
        ),
        (
            "sluice_queue_open_failing",
            "gauge",
            "1 while opening the queue's group fails (it is retried with a back-off)",
            |r| r.failing,
        ),
        (
            "sluice_queue_ready_bytes",
            "gauge",
            "Bytes of ready message bodies",
            |r| r.ready_bytes,
        ),
        (
            "sluice_queue_consumers",
            "gauge",
            "Consumers holding messages or registered",
            |r| r.consumers,
        ),
        (
            "sluice_published_messages_total",
            "counter",
            "Messages stored",
            |r| r.totals.published,
        ),
        (
            "sluice_published_bytes_total",
            "counter",
            "Bytes of messages stored",
            |r| r.totals.published_bytes,
        ),
        (
            "sluice_delivered_messages_total",
            "counter",
            "Deliveries, redeliveries included",
            |r| r.totals.delivered,
        ),
        (
            "sluice_redelivered_messages_total",
            "counter",
            "Deliveries of messages delivered before",
            |r| r.totals.redelivered,
        ),
        (
            "sluice_acked_messages_total",
            "counter",
            "Messages acked",
            |r| r.totals.acked,
        ),
        ("sluice_nacked_messages_total", "counter", "Nacks", |r| {
            r.totals.nacked
        }),
        (
            "sluice_dead_lettered_messages_total",
            "counter",
            "Messages dead-lettered (or dropped without a dead-letter exchange)",
            |r| r.totals.dead_lettered,
        ),
        (
            "sluice_dead_letters_dropped_total",
            "counter",
            "Dead letters their dead-letter exchange routed nowhere",
            |r| r.totals.dead_letters_dropped,
        ),
    ];
    for (name, kind, help, field) in series {
        family(out, name, kind, help);
        for row in rows {
            let labels = [("tenant", &*row.tenant), ("queue", &*row.queue)];
            sample(out, name, &labels, field(row));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, queue: &str, published: u64) -> QueueRow {
        QueueRow {
            tenant: tenant.into(),
            queue: queue.into(),
            depth: [3, 1, 0],
            ready_bytes: 42,
            consumers: 2,
            awake: 1,
            failing: 0,
            totals: Totals {
                published,
                dead_lettered: 1,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn queue_families_hold_one_sample_per_hosted_queue() {
        let mut text = String::new();
        render(&mut text, &[row("acme", "jobs", 7), row("acme", "mail", 0)]);
        assert!(text.contains("# TYPE sluice_published_messages_total counter\n"));
        assert!(
            text.contains(
                "sluice_queue_messages{tenant=\"acme\",queue=\"jobs\",state=\"ready\"} 3\n"
            )
        );
        assert!(
            text.contains("sluice_published_messages_total{tenant=\"acme\",queue=\"jobs\"} 7\n")
        );
        assert!(
            text.contains("sluice_published_messages_total{tenant=\"acme\",queue=\"mail\"} 0\n")
        );
        assert!(
            text.contains(
                "sluice_dead_lettered_messages_total{tenant=\"acme\",queue=\"mail\"} 1\n"
            )
        );
        assert_eq!(text.matches("# TYPE sluice_queue_messages ").count(), 1);

        // A queue no longer hosted has no series at all.
        let mut text = String::new();
        render(&mut text, &[row("acme", "mail", 0)]);
        assert!(!text.contains("queue=\"jobs\""), "{text}");
        let mut text = String::new();
        render(&mut text, &[]);
        assert!(text.is_empty());
    }
}
