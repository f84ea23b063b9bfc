//! What changed between a broker's version and now, read from
//! `topology_events` (one row per version, written with the change itself).
//!
//! Each event names a resource; the changes carry that resource as it is
//! now, or its name when it is gone, so several events on one resource
//! collapse into its latest state. Events only a whole snapshot can carry —
//! tenants and quotas, brokers registering (which moves placements) — or
//! more of them than `MAX_EVENTS` make the answer a snapshot again.

use std::collections::{BTreeMap, BTreeSet};

use sluice_protocol::feed::{FeedChanges, FeedName, FeedUpdate, TenantRouting};
use sqlx::{PgPool, Postgres, Transaction};

use super::snapshot::{
    self, BindingRow, ExchangeRow, KEY_COLUMNS, KeyRow, PARTITION_COLUMNS, PartitionRow,
    QUEUE_COLUMNS, QueueRow, STREAM_COLUMNS, StreamRow,
};

/// Beyond this many versions behind, a snapshot is as cheap to build and
/// read as the changes (and a broker that far behind was likely away).
pub const MAX_EVENTS: i64 = 1_000;

/// The resources the events after a version name, by kind.
#[derive(Debug, Default, PartialEq)]
struct Named {
    queues: BTreeSet<(i64, String)>,
    streams: BTreeSet<(i64, String)>,
    api_keys: BTreeSet<String>,
    /// Tenants whose exchanges or bindings may have changed.
    routing: BTreeSet<i64>,
}

impl Named {
    /// Sorts events into what they name; `None` when one needs a snapshot.
    fn from_events(events: Vec<(i64, String, String, String)>) -> Option<Named> {
        let mut named = Named::default();
        for (tenant_id, kind, name, action) in events {
            match kind.as_str() {
                "queue" => {
                    // A deleted queue's bindings went with it.
                    if action == "delete" {
                        named.routing.insert(tenant_id);
                    }
                    named.queues.insert((tenant_id, name));
                }
                "stream" => {
                    named.streams.insert((tenant_id, name));
                }
                "api_key" => {
                    named.api_keys.insert(name);
                }
                "exchange" | "binding" => {
                    named.routing.insert(tenant_id);
                }
                _ => return None,
            }
        }
        Some(named)
    }
}

/// The update that brings a broker at `since` to the current version:
/// changes when they can be told, else a snapshot.
pub async fn load_update(pool: &PgPool, since: i64) -> Result<FeedUpdate, sqlx::Error> {
    if since >= 0
        && let Some(changes) = load_changes(pool, since).await?
    {
        return Ok(FeedUpdate::Changes(changes));
    }
    Ok(FeedUpdate::Snapshot(snapshot::load_snapshot(pool).await?))
}

/// The changes since `since`, read in one repeatable-read transaction so
/// they agree with each other and with the version; `None` when a snapshot
/// is needed instead.
async fn load_changes(pool: &PgPool, since: i64) -> Result<Option<FeedChanges>, sqlx::Error> {
    let (mut tx, version) = snapshot::consistent_read(pool).await?;
    // Newer than this control plane knows (its database was replaced) or
    // too far behind: start over from a snapshot.
    if since > version || version - since > MAX_EVENTS {
        return Ok(None);
    }
    let events: Vec<(i64, String, String, String)> = sqlx::query_as(
        "SELECT tenant_id, kind, name, action FROM topology_events
         WHERE version > $1 AND version <= $2 ORDER BY version",
    )
    .bind(since)
    .bind(version)
    .fetch_all(&mut *tx)
    .await?;
    // Versions are dense (each is taken under the version row's lock, in the
    // transaction that records its event): a gap means events were lost.
    if events.len() as i64 != version - since {
        return Ok(None);
    }
    let Some(named) = Named::from_events(events) else {
        return Ok(None);
    };
    let changes = read_named(&mut tx, since, version, named).await?;
    tx.commit().await?;
    Ok(Some(changes))
}

/// Reads each named resource as it is now; the ones not found are gone.
async fn read_named(
    tx: &mut Transaction<'static, Postgres>,
    since: i64,
    version: i64,
    named: Named,
) -> Result<FeedChanges, sqlx::Error> {
    let (tenants, names) = split(&named.queues);
    let queues: Vec<QueueRow> = sqlx::query_as(sql!(
        "SELECT {QUEUE_COLUMNS}
         FROM queues q LEFT JOIN placements p ON p.queue_id = q.id
         WHERE (q.tenant_id, q.name) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
         ORDER BY q.tenant_id, q.name"
    ))
    .bind(&tenants)
    .bind(&names)
    .fetch_all(&mut **tx)
    .await?;
    let (tenants, names) = split(&named.streams);
    let streams: Vec<StreamRow> = sqlx::query_as(sql!(
        "SELECT {STREAM_COLUMNS} FROM streams
         WHERE (tenant_id, name) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
         ORDER BY tenant_id, name"
    ))
    .bind(&tenants)
    .bind(&names)
    .fetch_all(&mut **tx)
    .await?;
    let stream_ids: Vec<i64> = streams.iter().map(|s| s.0).collect();
    let partitions: Vec<PartitionRow> = sqlx::query_as(sql!(
        "SELECT {PARTITION_COLUMNS} FROM placements WHERE stream_id = ANY($1)
         ORDER BY stream_id, partition"
    ))
    .bind(&stream_ids)
    .fetch_all(&mut **tx)
    .await?;
    let key_ids: Vec<String> = named.api_keys.iter().cloned().collect();
    let api_keys: Vec<KeyRow> = sqlx::query_as(sql!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ANY($1) AND revoked_at IS NULL ORDER BY id"
    ))
    .bind(&key_ids)
    .fetch_all(&mut **tx)
    .await?;
    let routing_tenants: Vec<i64> = named.routing.iter().copied().collect();
    let exchanges: Vec<ExchangeRow> = sqlx::query_as(
        "SELECT tenant_id, name, settings FROM exchanges WHERE tenant_id = ANY($1)
         ORDER BY tenant_id, name",
    )
    .bind(&routing_tenants)
    .fetch_all(&mut **tx)
    .await?;
    let bindings: Vec<BindingRow> = sqlx::query_as(
        "SELECT tenant_id, id, settings FROM bindings WHERE tenant_id = ANY($1)
         ORDER BY tenant_id, id",
    )
    .bind(&routing_tenants)
    .fetch_all(&mut **tx)
    .await?;

    let queues: Vec<_> = queues.into_iter().map(snapshot::feed_queue).collect();
    let streams = snapshot::feed_streams(streams, partitions);
    let api_keys: Vec<_> = api_keys.into_iter().map(snapshot::key_verifier).collect();
    let queues_removed = missing(&named.queues, queues.iter().map(|q| (q.tenant_id, &q.name)));
    let streams_removed = missing(
        &named.streams,
        streams.iter().map(|s| (s.tenant_id, &s.name)),
    );
    let api_keys_removed = named
        .api_keys
        .iter()
        .filter(|id| !api_keys.iter().any(|k| &k.id == *id))
        .cloned()
        .collect();
    Ok(FeedChanges {
        since,
        version,
        queues,
        queues_removed,
        streams,
        streams_removed,
        api_keys,
        api_keys_removed,
        routing: routing(&named.routing, exchanges, bindings),
    })
}

/// Tenant ids and names as two arrays, for `unnest`.
fn split(names: &BTreeSet<(i64, String)>) -> (Vec<i64>, Vec<String>) {
    names.iter().cloned().unzip()
}

/// The names asked for that were not found.
fn missing<'a>(
    asked: &BTreeSet<(i64, String)>,
    found: impl Iterator<Item = (i64, &'a String)>,
) -> Vec<FeedName> {
    let found: BTreeSet<(i64, &String)> = found.collect();
    asked
        .iter()
        .filter(|(tenant, name)| !found.contains(&(*tenant, name)))
        .map(|(tenant_id, name)| FeedName {
            tenant_id: *tenant_id,
            name: name.clone(),
        })
        .collect()
}

/// One entry per tenant asked for, empty when it has no exchange or binding left.
fn routing(
    tenants: &BTreeSet<i64>,
    exchanges: Vec<ExchangeRow>,
    bindings: Vec<BindingRow>,
) -> Vec<TenantRouting> {
    let mut by_tenant: BTreeMap<i64, TenantRouting> = tenants
        .iter()
        .map(|&tenant_id| {
            (
                tenant_id,
                TenantRouting {
                    tenant_id,
                    exchanges: Vec::new(),
                    bindings: Vec::new(),
                },
            )
        })
        .collect();
    for row in exchanges {
        if let Some(routing) = by_tenant.get_mut(&row.0) {
            routing.exchanges.push(snapshot::feed_exchange(row));
        }
    }
    for row in bindings {
        if let Some(routing) = by_tenant.get_mut(&row.0) {
            routing.bindings.push(snapshot::feed_binding(row));
        }
    }
    by_tenant.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(tenant: i64, kind: &str, name: &str, action: &str) -> (i64, String, String, String) {
        (tenant, kind.into(), name.into(), action.into())
    }

    #[test]
    fn events_collapse_into_the_resources_they_name() {
        let named = Named::from_events(vec![
            event(7, "queue", "jobs", "declare"),
            event(7, "queue", "jobs", "delete"),
            event(8, "stream", "clicks", "declare"),
            event(8, "binding", "b1", "declare"),
            event(9, "api_key", "abcdefghijkl", "create"),
        ])
        .expect("all kinds changes can carry");
        assert_eq!(named.queues, BTreeSet::from([(7, "jobs".to_string())]));
        assert_eq!(named.streams, BTreeSet::from([(8, "clicks".to_string())]));
        assert_eq!(named.api_keys, BTreeSet::from(["abcdefghijkl".to_string()]));
        assert_eq!(
            named.routing,
            BTreeSet::from([7, 8]),
            "a deleted queue's bindings went with it; a binding changed routing"
        );
    }

    #[test]
    fn tenant_quota_and_node_events_need_a_snapshot() {
        for kind in ["tenant", "quota", "node"] {
            let events = vec![
                event(7, "queue", "jobs", "declare"),
                event(7, kind, "x", "y"),
            ];
            assert_eq!(Named::from_events(events), None, "{kind}");
        }
    }

    #[test]
    fn names_not_found_are_removed_ones() {
        let asked = BTreeSet::from([(1, "a".to_string()), (1, "b".to_string())]);
        let found = ["b".to_string()];
        let removed = missing(&asked, found.iter().map(|n| (1, n)));
        assert_eq!(
            removed,
            vec![FeedName {
                tenant_id: 1,
                name: "a".into()
            }]
        );
    }

    #[test]
    fn every_tenant_asked_for_gets_its_routing_even_when_empty() {
        let routing = routing(&BTreeSet::from([3, 4]), Vec::new(), Vec::new());
        assert_eq!(routing.len(), 2);
        assert!(
            routing
                .iter()
                .all(|r| r.exchanges.is_empty() && r.bindings.is_empty())
        );
    }
}
