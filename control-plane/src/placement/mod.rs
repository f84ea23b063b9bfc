//! Where Raft groups live: each queue and each stream partition is a group
//! whose replicas are placed on distinct live nodes, least loaded first and
//! spread over zones. A group created while too few nodes are live gets what
//! there is, and is topped up when nodes register.

use sqlx::PgConnection;

/// A node is live while its last heartbeat is this recent. Brokers heartbeat
/// every 2 s, so this tolerates several lost heartbeats; it is part of the
/// broker protocol rather than a per-deployment setting.
pub const LIVE_NODE_WINDOW_SECONDS: f64 = 15.0;

/// A live node and how many group replicas it already hosts.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: String,
    pub zone: String,
    pub load: i64,
}

/// Picks up to `count` nodes not in `exclude`: least loaded first, but a
/// node in a zone not yet used beats a less loaded one in a used zone.
pub fn choose(
    candidates: &[Candidate],
    exclude: &[String],
    exclude_zones: &[String],
    count: usize,
) -> Vec<String> {
    let mut pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !exclude.contains(&c.id))
        .collect();
    pool.sort_by(|a, b| a.load.cmp(&b.load).then_with(|| a.id.cmp(&b.id)));
    let mut zones: Vec<String> = exclude_zones.to_vec();
    let mut chosen = Vec::new();
    while chosen.len() < count && !pool.is_empty() {
        let index = pool
            .iter()
            .position(|c| !zones.contains(&c.zone))
            .unwrap_or(0);
        let node = pool.remove(index);
        zones.push(node.zone.clone());
        chosen.push(node.id.clone());
    }
    chosen
}

/// Nodes whose last heartbeat is recent enough, with their current load.
pub async fn live_candidates(conn: &mut PgConnection) -> Result<Vec<Candidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.zone,
                (SELECT count(*) FROM placements p WHERE n.id = ANY(p.replicas)) AS load
         FROM nodes n
         WHERE n.last_heartbeat_at > now() - make_interval(secs => $1)
         ORDER BY n.id",
    )
    .bind(LIVE_NODE_WINDOW_SECONDS)
    .fetch_all(conn)
    .await
}

/// Which resource a group belongs to.
pub enum GroupOwner {
    Queue(i64),
    StreamPartition { stream_id: i64, partition: i32 },
}

impl GroupOwner {
    /// The group id brokers know the Raft group by.
    pub fn group_id(&self) -> String {
        match self {
            GroupOwner::Queue(id) => format!("q{id}"),
            GroupOwner::StreamPartition {
                stream_id,
                partition,
            } => format!("s{stream_id}-{partition}"),
        }
    }
}

/// Places a new group and records it; returns its replicas (possibly fewer
/// than asked, possibly none, when too few nodes are live).
pub async fn place_group(
    conn: &mut PgConnection,
    tenant_id: i64,
    owner: GroupOwner,
    replication_factor: u8,
) -> Result<Vec<String>, sqlx::Error> {
    let candidates = live_candidates(conn).await?;
    let replicas = choose(&candidates, &[], &[], usize::from(replication_factor));
    let (queue_id, stream_id, partition) = match owner {
        GroupOwner::Queue(id) => (Some(id), None, None),
        GroupOwner::StreamPartition {
            stream_id,
            partition,
        } => (None, Some(stream_id), Some(partition)),
    };
    sqlx::query(
        "INSERT INTO placements (group_id, tenant_id, queue_id, stream_id, partition, replication_factor, replicas)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(owner.group_id())
    .bind(tenant_id)
    .bind(queue_id)
    .bind(stream_id)
    .bind(partition)
    .bind(i32::from(replication_factor))
    .bind(&replicas)
    .execute(conn)
    .await?;
    Ok(replicas)
}

/// Gives every group with fewer replicas than its replication factor more
/// replicas from the live nodes. Returns how many groups changed.
pub async fn top_up(conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
    let short: Vec<(String, Vec<String>, i32)> = sqlx::query_as(
        "SELECT group_id, replicas, replication_factor FROM placements
         WHERE cardinality(replicas) < replication_factor ORDER BY group_id FOR UPDATE",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut candidates = live_candidates(conn).await?;
    let mut changed = 0;
    for (group_id, mut replicas, factor) in short {
        let zones: Vec<String> = candidates
            .iter()
            .filter(|c| replicas.contains(&c.id))
            .map(|c| c.zone.clone())
            .collect();
        let missing = (factor as usize).saturating_sub(replicas.len());
        let added = choose(&candidates, &replicas, &zones, missing);
        if added.is_empty() {
            continue;
        }
        for candidate in candidates.iter_mut().filter(|c| added.contains(&c.id)) {
            candidate.load += 1;
        }
        replicas.extend(added);
        sqlx::query("UPDATE placements SET replicas = $2 WHERE group_id = $1")
            .bind(&group_id)
            .bind(&replicas)
            .execute(&mut *conn)
            .await?;
        changed += 1;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, zone: &str, load: i64) -> Candidate {
        Candidate {
            id: id.into(),
            zone: zone.into(),
            load,
        }
    }

    #[test]
    fn least_loaded_first_and_distinct_nodes() {
        let nodes = [node("a", "z1", 5), node("b", "z1", 1), node("c", "z1", 3)];
        assert_eq!(choose(&nodes, &[], &[], 2), vec!["b", "c"]);
        assert_eq!(
            choose(&nodes, &[], &[], 5).len(),
            3,
            "never the same node twice"
        );
    }

    #[test]
    fn zones_spread_before_load() {
        let nodes = [node("a", "z1", 0), node("b", "z1", 1), node("c", "z2", 9)];
        assert_eq!(choose(&nodes, &[], &[], 2), vec!["a", "c"]);
    }

    #[test]
    fn excluded_nodes_are_skipped() {
        let nodes = [node("a", "z1", 0), node("b", "z2", 1)];
        assert_eq!(choose(&nodes, &["a".into()], &["z1".into()], 1), vec!["b"]);
    }
}
