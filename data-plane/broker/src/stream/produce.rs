//! Producing, whatever front end the records came through: a batch already
//! split by partition (and admitted) is written to every partition it goes
//! to at once — as one Raft entry on a partition hosted here, or relayed to
//! the broker hosting it — and answered with each record's offset once
//! every partition committed. Idempotent producers' sequences are checked
//! by each partition on its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use base64::Engine;
use futures_util::future::join_all;
use sluice_client::data::messages::BodyEncoding;
use sluice_client::data::streams::{ProduceRecord, ProduceRequest, ProducerHeader};
use sluice_protocol::problem::slug;
use sluice_storage::Record;
use sluice_stream::{Command, PartitionReply, ProducerBatch, StreamError};

use super::host::{HostedPartition, PartitionHost};
use super::{ApplyError, EntryReply, PartitionGroup};
use crate::cluster::relay::{Charged, relay_error};
use crate::cluster::{Peers, placement};
use crate::control::topology::Topology;
use crate::error::{BrokerError, BrokerResult};

/// What a record weighs for quotas and metrics: key, headers and value.
pub fn record_bytes(record: &Record) -> u64 {
    let headers: usize = record.headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    (record.key.as_ref().map_or(0, Vec::len) + headers + record.value.len()) as u64
}

/// An idempotent producer: its id, epoch and each target partition's base
/// sequence.
pub struct Producer {
    pub id: u64,
    pub epoch: u32,
    pub base_sequences: BTreeMap<u32, u64>,
}

/// Where each record went.
pub struct Produced {
    /// `(partition, offset)` of every record, in the order given.
    pub records: Vec<(u32, u64)>,
    /// Partitions that answered an idempotent retry with the original
    /// offsets instead of writing again.
    pub duplicate_partitions: Vec<u32>,
}

/// What a produce reads from the node.
pub struct Produce<'a> {
    pub topology: &'a Topology,
    pub partitions: &'a PartitionHost,
    pub peers: &'a Peers,
    pub node_id: &'a str,
    pub tenant_id: i64,
    pub stream: &'a str,
    /// The caller's credential, for relaying to another broker.
    pub authorization: &'a str,
}

/// Where a partition's records are written.
enum Target {
    Local(Arc<HostedPartition>),
    /// The data URL of the broker hosting the partition.
    Remote(String),
}

impl Produce<'_> {
    fn target(&self, partition: u32) -> BrokerResult<Target> {
        if let Some(group) = self.partitions.get(self.tenant_id, self.stream, partition) {
            return Ok(Target::Local(group));
        }
        match placement::stream_host(
            self.topology,
            self.node_id,
            self.tenant_id,
            self.stream,
            Some(partition),
        ) {
            Some(url) => Ok(Target::Remote(url)),
            None => Err(BrokerError::Unavailable(format!(
                "partition {partition} of stream `{}` is not hosted on this broker yet",
                self.stream
            ))),
        }
    }

    /// Checks that every partition `records` go to can be reached, before
    /// anything is charged or written.
    pub fn targets(&self, partitions: impl Iterator<Item = u32>) -> BrokerResult<()> {
        for partition in partitions {
            self.target(partition)?;
        }
        Ok(())
    }

    /// Writes `records` (each with its partition) and answers where each went.
    pub async fn write(
        &self,
        records: Vec<(u32, Record)>,
        producer: Option<&Producer>,
    ) -> BrokerResult<Produced> {
        let total = records.len();
        let mut by_partition: BTreeMap<u32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
        for (i, (p, record)) in records.into_iter().enumerate() {
            let slot = by_partition.entry(p).or_default();
            slot.0.push(i);
            slot.1.push(record);
        }
        let targets = by_partition
            .keys()
            .map(|p| self.target(*p).map(|t| (*p, t)))
            .collect::<BrokerResult<HashMap<u32, Target>>>()?;
        // Bytes per partition, for the metrics of the partitions hosted here.
        let mut placed = Vec::with_capacity(by_partition.len());
        let mut batches = Vec::with_capacity(by_partition.len());
        for (p, (indexes, batch)) in by_partition {
            placed.push((p, indexes, batch.iter().map(record_bytes).sum::<u64>()));
            batches.push(batch);
        }
        let writes = placed.iter().zip(batches).map(|((p, _, _), batch)| {
            let target = &targets[p];
            let producer = producer.map(|h| ProducerBatch {
                producer_id: h.id,
                epoch: h.epoch,
                base_sequence: h.base_sequences.get(p).copied().unwrap_or_default(),
            });
            async move {
                match target {
                    Target::Local(hosted) => {
                        let group = hosted.acquire().await?;
                        produce_local(&group, batch, producer).await
                    }
                    Target::Remote(url) => self.produce_remote(url, *p, &batch, producer).await,
                }
            }
        });
        let results = join_all(writes).await;
        let mut answer = vec![(0, 0); total];
        let mut duplicate_partitions = Vec::new();
        for ((p, indexes, bytes), result) in placed.iter().zip(results) {
            let (offsets, was_duplicate) = result?;
            if was_duplicate {
                duplicate_partitions.push(*p);
            }
            // A remote partition's broker counts what it stored.
            if let (false, Target::Local(group)) = (was_duplicate, &targets[p]) {
                group.traffic().produced(indexes.len() as u64, *bytes);
            }
            for (i, offset) in indexes.iter().zip(offsets) {
                answer[*i] = (*p, offset);
            }
        }
        Ok(Produced {
            records: answer,
            duplicate_partitions,
        })
    }

    /// Produces `records` (already validated and charged here) to
    /// `partition` on the broker at `url`: their offsets and whether the
    /// batch was an idempotent retry. Values travel base64-encoded, byte
    /// for byte.
    async fn produce_remote(
        &self,
        url: &str,
        partition: u32,
        records: &[Record],
        producer: Option<ProducerBatch>,
    ) -> BrokerResult<(Vec<u64>, bool)> {
        let stream = self.stream;
        let who = format!("the broker hosting partition {partition} of `{stream}`");
        let request = ProduceRequest {
            records: records
                .iter()
                .map(|r| ProduceRecord {
                    key: r.key.as_ref().map(|k| String::from_utf8_lossy(k)),
                    // Byte for byte, whatever the value holds.
                    value: base64::engine::general_purpose::STANDARD
                        .encode(&r.value)
                        .into(),
                    value_encoding: BodyEncoding::Base64,
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                        .collect(),
                    timestamp: Some(r.timestamp),
                    partition: Some(partition),
                })
                .collect(),
            producer: producer.map(|p| ProducerHeader {
                id: p.producer_id,
                epoch: p.epoch,
                sequence: Some(p.base_sequence),
                sequences: BTreeMap::new(),
            }),
        };
        let answer = self
            .peers
            .relay_client(url, self.authorization, Charged::Yes)?
            .produce(stream, &request)
            .await
            .map_err(|err| relayed_sequence_error(relay_error(err, &who)))?;
        if answer.records.len() != records.len() {
            return Err(BrokerError::Unavailable(format!(
                "{who} answered {} offsets for {} records",
                answer.records.len(),
                records.len()
            )));
        }
        Ok((
            answer.records.iter().map(|r| r.offset).collect(),
            answer.duplicate,
        ))
    }
}

/// Appends `batch` to a partition hosted here: its offsets, and whether it
/// was an idempotent retry answered with the original offsets.
async fn produce_local(
    group: &PartitionGroup,
    batch: Vec<Record>,
    producer: Option<ProducerBatch>,
) -> BrokerResult<(Vec<u64>, bool)> {
    let command = Command::Produce {
        record_count: batch.len() as u32,
        producer,
    };
    match group.propose(command, batch).await? {
        Ok(EntryReply::Partition(PartitionReply::Produced(produced))) => {
            Ok((produced.offsets().collect(), produced.duplicate))
        }
        Ok(other) => Err(BrokerError::Internal(anyhow::anyhow!(
            "produce got an unexpected reply: {other:?}"
        ))),
        Err(ApplyError::Stream(err)) => Err(sequence_error(err)),
        Err(other) => Err(BrokerError::Internal(anyhow::Error::new(other))),
    }
}

fn sequence_error(err: StreamError) -> BrokerError {
    match err {
        StreamError::OutOfOrderSequence { expected, got } => BrokerError::ProducerSequence {
            slug: slug::OUT_OF_ORDER_SEQUENCE,
            detail: format!("producer sequence {got} is out of order: expected {expected}"),
            expected_sequence: Some(expected),
        },
        StreamError::DuplicateSequenceUnknown { .. } => BrokerError::ProducerSequence {
            slug: slug::DUPLICATE_SEQUENCE,
            detail: err.to_string(),
            expected_sequence: None,
        },
        StreamError::ProducerFenced { .. } => BrokerError::ProducerSequence {
            slug: slug::PRODUCER_FENCED,
            detail: err.to_string(),
            expected_sequence: None,
        },
        other => BrokerError::Internal(anyhow::Error::new(other)),
    }
}

/// A sequence refusal relayed from the broker hosting the partition is the
/// same refusal here (so the producer sees one kind of answer, wherever
/// the partition lives).
fn relayed_sequence_error(err: BrokerError) -> BrokerError {
    let BrokerError::Remote { problem, .. } = &err else {
        return err;
    };
    if problem.status != 409 {
        return err;
    }
    let slug = [slug::DUPLICATE_SEQUENCE, slug::PRODUCER_FENCED]
        .into_iter()
        .find(|s| problem.is(s))
        .unwrap_or(slug::OUT_OF_ORDER_SEQUENCE);
    BrokerError::ProducerSequence {
        slug,
        detail: problem.detail.clone(),
        expected_sequence: problem.u64_member("expected_sequence"),
    }
}
