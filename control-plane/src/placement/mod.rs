//! Where Raft groups live: each queue and each stream partition is a group
//! whose replicas are placed on distinct live nodes, least loaded first and
//! spread over zones. A group created while too few nodes are live gets what
//! there is, and is topped up when nodes register.

use sqlx::PgConnection;

use crate::error::ApiError;

/// A node is live while its last heartbeat is this recent. Brokers heartbeat
/// every 2 s, so this tolerates several lost heartbeats; it is part of the
/// broker protocol rather than a per-deployment setting.
pub const LIVE_NODE_WINDOW_SECONDS: f64 = 15.0;

/// A live node, how many group replicas it already hosts, and how many
/// more it can take.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: String,
    pub zone: String,
    pub load: i64,
    /// Group replicas it can still take (`None`: no limit); 0 when its disk
    /// is down to its reserve.
    pub room: Option<i64>,
}

impl Candidate {
    fn has_room(&self) -> bool {
        self.room.is_none_or(|room| room > 0)
    }
}

/// Picks up to `count` nodes not in `exclude` and with room: least loaded
/// first, but a node in a zone not yet used beats a less loaded one in a
/// used zone.
pub fn choose(
    candidates: &[Candidate],
    exclude: &[String],
    exclude_zones: &[String],
    count: usize,
) -> Vec<String> {
    let mut pool: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| !exclude.contains(&c.id) && c.has_room())
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

/// Nodes whose last heartbeat is recent enough, with their current load
/// and room. Reads counters (kept by a trigger on `placements`), not the
/// placements: a declare costs the same with 100,000 groups placed.
pub async fn live_candidates(conn: &mut PgConnection) -> Result<Vec<Candidate>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, zone, hosted_groups AS load,
                CASE WHEN disk_free_bytes IS NOT NULL AND disk_free_bytes <= disk_reserve_bytes THEN 0
                     WHEN max_groups IS NULL THEN NULL
                     ELSE GREATEST(max_groups - hosted_groups, 0) END AS room
         FROM nodes
         WHERE last_heartbeat_at > now() - make_interval(secs => $1)
         ORDER BY id",
    )
    .bind(LIVE_NODE_WINDOW_SECONDS)
    .fetch_all(conn)
    .await
}

/// How long a caller refused for capacity is asked to wait: capacity comes
/// back when groups are deleted or a broker is added, not within seconds.
pub const CAPACITY_RETRY_AFTER_SECS: u64 = 60;

/// Which resource a group belongs to.
pub enum GroupOwner {
    Queue(i64),
    StreamPartition { stream_id: i64, partition: i32 },
}

/// A queue's group id is this and the queue's id (also in SQL, where a
/// declare writes the queue and its placement in one statement).
pub const QUEUE_GROUP_PREFIX: &str = "q";

impl GroupOwner {
    /// The group id brokers know the Raft group by.
    pub fn group_id(&self) -> String {
        match self {
            GroupOwner::Queue(id) => format!("{QUEUE_GROUP_PREFIX}{id}"),
            GroupOwner::StreamPartition {
                stream_id,
                partition,
            } => format!("s{stream_id}-{partition}"),
        }
    }
}

/// The replicas of a new group among `candidates` (possibly fewer than
/// asked, possibly none, when too few nodes are live); `capacity-exhausted`
/// when nodes are live but none has room.
pub fn replicas_for_new_group(
    candidates: &[Candidate],
    replication_factor: u8,
) -> Result<Vec<String>, ApiError> {
    let replicas = choose(candidates, &[], &[], usize::from(replication_factor));
    if replicas.is_empty() && !candidates.is_empty() {
        return Err(ApiError::CapacityExhausted {
            detail: format!(
                "no broker has room for another group: all {} live broker(s) are at their \
                 group or disk limit; delete unused queues or streams, or retry once a broker is added",
                candidates.len()
            ),
            retry_after_secs: CAPACITY_RETRY_AFTER_SECS,
        });
    }
    Ok(replicas)
}

/// Places a new group and records it; returns its replicas (possibly fewer
/// than asked, possibly none, when too few nodes are live). Refuses with
/// `capacity-exhausted` when nodes are live but none has room: a group
/// placed nowhere while brokers run would only wait for one to be added.
pub async fn place_group(
    conn: &mut PgConnection,
    tenant_id: i64,
    owner: GroupOwner,
    replication_factor: u8,
) -> Result<Vec<String>, ApiError> {
    let candidates = live_candidates(conn).await?;
    let replicas = replicas_for_new_group(&candidates, replication_factor)?;
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
            if let Some(room) = &mut candidate.room {
                *room -= 1;
            }
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
            room: None,
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
    fn full_nodes_are_skipped() {
        let full = Candidate {
            room: Some(0),
            ..node("a", "z1", 0)
        };
        let nodes = [full, node("b", "z1", 7)];
        assert_eq!(choose(&nodes, &[], &[], 2), vec!["b"]);
        assert!(choose(&nodes[..1], &[], &[], 1).is_empty());
    }

    #[test]
    fn excluded_nodes_are_skipped() {
        let nodes = [node("a", "z1", 0), node("b", "z2", 1)];
        assert_eq!(choose(&nodes, &["a".into()], &["z1".into()], 1), vec!["b"]);
    }
}
