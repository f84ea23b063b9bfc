//! Where a stream's partitions stand — their bounds, and the first offset
//! at or after a timestamp — for consumer-group lag and seeks: read here
//! for the partitions this broker hosts, asked of the hosting broker (with
//! the caller's credential) for the others.

use std::collections::BTreeMap;

use sluice_client::data::streams::{FetchFrom, FetchRequest};
use sluice_stream::PartitionBounds;

use super::PartitionGroup;
use super::host::PartitionHost;
use crate::cluster::relay::{Charged, relay_error};
use crate::cluster::{Peers, placement};
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};

/// What asking for positions reads from the node.
pub struct Positions<'a> {
    pub topology: &'a Topology,
    pub partitions: &'a PartitionHost,
    pub peers: &'a Peers,
    pub node_id: &'a str,
    pub tenant_id: i64,
}

/// Where a partition's records are, for lag and seeks.
pub struct PartitionPosition {
    pub bounds: PartitionBounds,
    /// With a timestamp: the first offset at or after it (the end offset if none).
    pub at_timestamp: Option<u64>,
}

/// Every partition's bounds (and offset at `timestamp_ms`), read here for the
/// partitions this broker hosts and asked of the hosting broker, with the
/// caller's credential, for the others.
pub async fn positions(
    at: &Positions<'_>,
    stream: &str,
    partitions: u32,
    authorization: &str,
    timestamp_ms: Option<i64>,
) -> BrokerResult<BTreeMap<u32, PartitionPosition>> {
    let asks = (0..partitions).map(|p| async move {
        if let Some(hosted) = at.partitions.get(at.tenant_id, stream, p) {
            let group = hosted.acquire().await?;
            return local_position(&group, timestamp_ms).await.map(|at| (p, at));
        }
        let url = placement::stream_host(at.topology, at.node_id, at.tenant_id, stream, Some(p))
            .ok_or_else(|| {
                BrokerError::Unavailable(format!(
                    "partition {p} of stream `{stream}` has no broker yet"
                ))
            })?;
        remote_position(at, &url, stream, p, authorization, timestamp_ms)
            .await
            .map(|position| (p, position))
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .collect()
}

async fn local_position(
    group: &PartitionGroup,
    timestamp_ms: Option<i64>,
) -> BrokerResult<PartitionPosition> {
    let bounds = group.view().read(|s| PartitionBounds {
        earliest: s.earliest_offset(),
        end: s.high_watermark(),
    });
    let at_timestamp = match timestamp_ms {
        None => None,
        Some(ts) => Some(offset_for_timestamp(group, ts, bounds.end).await?),
    };
    Ok(PartitionPosition {
        bounds,
        at_timestamp,
    })
}

/// The first record at or after `timestamp_ms`, exactly (`end` if none):
/// the time index finds the first batch whose newest record is at or after
/// it, then that batch's older records are skipped — what a fetch with
/// `timestamp=` answers, so local and remote partitions seek alike.
async fn offset_for_timestamp(
    group: &PartitionGroup,
    timestamp_ms: i64,
    end: u64,
) -> BrokerResult<u64> {
    let Some(index) = group.log_index_for_timestamp(timestamp_ms).await? else {
        return Ok(end);
    };
    let mut offset = group.offset_at_or_after(index);
    loop {
        let stored = group.read(offset, 1000, 1 << 20).await?;
        let Some(last) = stored.last().map(|s| s.offset) else {
            return Ok(offset); // no record at or after it: the end
        };
        if let Some(found) = stored.iter().find(|s| s.record.timestamp >= timestamp_ms) {
            return Ok(found.offset);
        }
        offset = last + 1;
    }
}

/// Asks the broker at `url` where `partition` of `stream` is: a JSON fetch
/// at `latest` (or at `timestamp_ms`) of at most one record.
async fn remote_position(
    at: &Positions<'_>,
    url: &str,
    stream: &str,
    partition: u32,
    authorization: &str,
    timestamp_ms: Option<i64>,
) -> BrokerResult<PartitionPosition> {
    let from = match timestamp_ms {
        Some(ts) => FetchFrom::Timestamp(ts),
        None => FetchFrom::Latest,
    };
    let who = format!("the broker hosting partition {partition} of `{stream}`");
    let request = FetchRequest {
        from,
        max_records: Some(1),
        ..FetchRequest::default()
    };
    let fetched = at
        .peers
        .relay_client(url, authorization, Charged::No)?
        .fetch(stream, partition, &request)
        .await
        .map_err(|err| match relay_error(err, &who) {
            // Whatever the hosting broker refused, this ask could not be answered.
            BrokerError::Remote { problem, .. } => BrokerError::Unavailable(format!(
                "{who} answered {}: {}",
                problem.status, problem.detail
            )),
            other => other,
        })?;
    let end = fetched.high_watermark;
    Ok(PartitionPosition {
        bounds: PartitionBounds {
            earliest: fetched.earliest_offset,
            end,
        },
        at_timestamp: timestamp_ms.map(|_| fetched.records.first().map_or(end, |r| r.offset)),
    })
}
