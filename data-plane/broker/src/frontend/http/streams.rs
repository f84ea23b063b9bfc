//! Producing to a stream: `POST /v1/streams/{s}/records` produces a batch and
//! answers after the durable commit of every partition it went to, with each
//! record's partition and offset (fetching is [`super::fetch`]).
//!
//! Partitioning: an explicit `partition` is honoured; a keyed record goes
//! to `(murmur2(key) & 0x7fffffff) % partitions` (Kafka's partitioner,
//! [`crate::stream::hash`]); keyless records of one request stick to one
//! partition, chosen at random per request. A `producer` makes the
//! batch idempotent. Sequences are per partition, as in Kafka: a batch that
//! goes to one partition gives its first record's `sequence`; a batch spread
//! over several (keyed records) gives `sequences`, each partition's first
//! sequence, and each partition checks and deduplicates its part on its own,
//! so a retry after a partial failure rewrites only what is missing. Producer ids come from
//! `POST /v1/streams/{s}/producers` ([`allocate_producer`]). Values are bytes: a fetch answers `utf8`
//! when the value is valid UTF-8, else `base64`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sluice_storage::Record;

use super::CallerAuth;
use super::json::JsonBody;
use super::lookup::stream_of;
use super::problem::ProblemResponses;
use crate::admission::auth::Caller;
use crate::control::topology::FeedStream;
use crate::error::{BrokerError, BrokerResult};
use crate::node::Node;
use crate::queue::BodyEncoding;
use crate::raft::now_ms;
use crate::stream::hash::partition_for_key;
use crate::stream::produce::{Produce, Producer, record_bytes};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRecord {
    /// Keyed records go to `murmur2(key) % partitions` (Kafka's partitioner).
    #[serde(default)]
    key: Option<String>,
    value: String,
    #[serde(default)]
    value_encoding: BodyEncoding,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch (default: when the broker received it).
    #[serde(default)]
    timestamp: Option<i64>,
    /// Explicit partition (overrides the key).
    #[serde(default)]
    partition: Option<u32>,
}

/// An idempotent producer's batch header: Kafka's producer id, epoch and
/// the sequence number of the batch's first record in each partition.
#[derive(Deserialize, utoipa::ToSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct ProducerHeader {
    /// A producer id allocated by `POST /v1/streams/{stream}/producers`:
    /// two producers sharing an id would see each other's batches as
    /// duplicates (or sequence gaps).
    id: u64,
    epoch: u32,
    /// The first record's sequence, for a batch that goes to one partition.
    #[serde(default)]
    sequence: Option<u64>,
    /// For a batch spread over several partitions: partition → sequence of
    /// that partition's first record in this batch. Exactly the partitions
    /// the batch goes to.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, u64>)]
    sequences: BTreeMap<u32, u64>,
}

impl ProducerHeader {
    /// Each target partition's base sequence, checked against the
    /// partitions the batch's records go to.
    fn base_sequences<V>(&self, partitions: &BTreeMap<u32, V>) -> BrokerResult<BTreeMap<u32, u64>> {
        match (self.sequence, self.sequences.is_empty()) {
            (Some(_), false) => Err(BrokerError::validation(
                "producer.sequences",
                "exclusive",
                "give `sequence` (one partition) or `sequences` (several), not both",
            )),
            (None, true) => Err(BrokerError::validation(
                "producer.sequence",
                "required",
                "an idempotent batch needs its first record's `sequence` (or `sequences` per partition)",
            )),
            (Some(sequence), true) => match partitions.keys().collect::<Vec<_>>()[..] {
                [only] => Ok(BTreeMap::from([(*only, sequence)])),
                ref several => Err(BrokerError::validation(
                    "producer.sequence",
                    "one-partition",
                    format!(
                        "this batch goes to partitions {several:?}: give `sequences` with each \
                         partition's first sequence"
                    ),
                )),
            },
            (None, false) => {
                if let Some(p) = partitions.keys().find(|p| !self.sequences.contains_key(p)) {
                    return Err(BrokerError::validation(
                        format!("producer.sequences.{p}"),
                        "required",
                        format!("records of this batch go to partition {p}"),
                    ));
                }
                if let Some(p) = self.sequences.keys().find(|p| !partitions.contains_key(p)) {
                    return Err(BrokerError::validation(
                        format!("producer.sequences.{p}"),
                        "unused",
                        format!("no record of this batch goes to partition {p}"),
                    ));
                }
                Ok(self.sequences.clone())
            }
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    records: Vec<ProduceRecord>,
    #[serde(default)]
    producer: Option<ProducerHeader>,
}

#[derive(Serialize, utoipa::ToSchema, Clone, Copy)]
pub struct ProducedRecord {
    partition: u32,
    offset: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ProduceResponse {
    records: Vec<ProducedRecord>,
    /// True when an idempotent retry was answered with the original offsets
    /// (in at least one partition: see `duplicate_partitions`).
    duplicate: bool,
    /// The partitions that answered an idempotent retry with the original
    /// offsets instead of writing again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    duplicate_partitions: Vec<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AllocatedProducer {
    /// A random id in `1..2^63` (fits a signed 64-bit integer, like Kafka's).
    producer_id: u64,
    /// Always 0 for a new id.
    epoch: u32,
}

/// A fresh producer id: 63 random bits from the thread's CSPRNG (ChaCha),
/// never 0. Ids are not recorded anywhere, so uniqueness is probabilistic:
/// among a billion producers the odds that two share an id are about
/// 5 in 100 million (the birthday bound n²/2⁶⁴).
fn new_producer_id() -> u64 {
    loop {
        let id = rand::random::<u64>() >> 1;
        if id != 0 {
            return id;
        }
    }
}

/// Allocate an idempotent producer id for this stream (`publish` scope):
/// send it as `producer.id`, with `epoch` 0 and sequences from 0 on each partition.
#[utoipa::path(post, path = "/v1/streams/{stream}/producers", tag = "streams",
    params(("stream" = String, Path, description = "Stream name")),
    responses(
        (status = 200, body = AllocatedProducer),
        ProblemResponses),
    security(("bearer" = [])))]
pub async fn allocate_producer(
    State(state): State<Node>,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
) -> BrokerResult<Json<AllocatedProducer>> {
    caller.require("publish")?;
    stream_of(&state, &caller, &name)?;
    Ok(Json(AllocatedProducer {
        producer_id: new_producer_id(),
        epoch: 0,
    }))
}

/// The stream's own record size limit, capped by the tenant's quota.
fn record_limit(state: &Node, caller: &Caller, stream: &FeedStream) -> u64 {
    let quota = u64::try_from(state.admission().max_message_bytes(caller)).unwrap_or(0);
    match stream.spec.max_message_bytes {
        Some(own) => own.min(quota),
        None => quota,
    }
}

/// Validates the batch and turns it into storage records, each with its partition.
fn prepare(
    request: &ProduceRequest,
    partitions: u32,
    limit: u64,
) -> BrokerResult<Vec<(u32, Record)>> {
    if request.records.is_empty() {
        return Err(BrokerError::validation(
            "records",
            "non-empty",
            "a produce needs at least one record",
        ));
    }
    // A random partition per request: keyless batches spread evenly, and no
    // counter shared by every stream couples their choices.
    let sticky = rand::random_range(0..partitions.max(1));
    let now = i64::try_from(now_ms()).unwrap_or(i64::MAX);
    let mut out = Vec::with_capacity(request.records.len());
    for (i, r) in request.records.iter().enumerate() {
        let partition = match (r.partition, &r.key) {
            (Some(p), _) if p >= partitions => {
                return Err(BrokerError::validation(
                    format!("records[{i}].partition"),
                    "range",
                    format!("partition {p} does not exist: the stream has {partitions} partitions"),
                ));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key.as_bytes(), partitions),
            (None, None) => sticky,
        };
        let value = match r.value_encoding {
            BodyEncoding::Utf8 => r.value.as_bytes().to_vec(),
            BodyEncoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(&r.value)
                .map_err(|e| {
                    BrokerError::validation(
                        format!("records[{i}].value"),
                        "base64",
                        format!("not base64: {e}"),
                    )
                })?,
        };
        let headers: u64 = r
            .headers
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        let size = value.len() as u64 + r.key.as_ref().map_or(0, |k| k.len() as u64) + headers;
        if size > limit {
            return Err(BrokerError::TooLarge {
                field: format!("records[{i}].value"),
                detail: format!("the record is {size} bytes; this stream accepts at most {limit}"),
            });
        }
        out.push((
            partition,
            Record {
                timestamp: r.timestamp.unwrap_or(now),
                key: r.key.as_ref().map(|k| k.as_bytes().to_vec()),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect(),
                value,
            },
        ));
    }
    Ok(out)
}

/// Produce records to a stream. Answers after every partition the batch
/// went to durably committed it, with each record's partition and offset.
#[utoipa::path(post, path = "/v1/streams/{stream}/records", tag = "streams",
    params(("stream" = String, Path, description = "Stream name")),
    request_body = ProduceRequest,
    responses(
        (status = 200, body = ProduceResponse),
        (status = 409, description = "Idempotent producer: sequence gap (`expected_sequence`), unknown duplicate or fenced epoch", body = super::problem::Problem, content_type = "application/problem+json"),
        ProblemResponses),
    security(("bearer" = [])))]
pub async fn produce(
    State(state): State<Node>,
    headers: HeaderMap,
    CallerAuth(caller): CallerAuth,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<ProduceRequest>,
) -> BrokerResult<Json<ProduceResponse>> {
    caller.require("publish")?;
    let stream = stream_of(&state, &caller, &name)?;
    let partitions = stream.partitions.len() as u32;
    let records = prepare(&request, partitions, record_limit(&state, &caller, &stream))?;
    let mut by_partition: BTreeMap<u32, usize> = BTreeMap::new();
    for (p, _) in &records {
        *by_partition.entry(*p).or_default() += 1;
    }
    let producer = match &request.producer {
        Some(header) => Some(Producer {
            id: header.id,
            epoch: header.epoch,
            base_sequences: header.base_sequences(&by_partition)?,
        }),
        None => None,
    };
    let topology = state.topology.current();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let produce = Produce {
        topology: &topology,
        partitions: &state.partitions,
        peers: &state.peers,
        node_id: &state.node_id,
        tenant_id: caller.tenant_id,
        stream: &name,
        authorization,
    };
    produce.targets(by_partition.keys().copied())?;
    if !state.node_key.already_charged(&headers) {
        let bytes: u64 = records.iter().map(|(_, r)| record_bytes(r)).sum();
        state
            .admission()
            .charge(&caller, "records", records.len() as u64, bytes)?;
    }
    let produced = produce.write(records, producer.as_ref()).await?;
    Ok(Json(ProduceResponse {
        records: produced
            .records
            .into_iter()
            .map(|(partition, offset)| ProducedRecord { partition, offset })
            .collect(),
        duplicate: !produced.duplicate_partitions.is_empty(),
        duplicate_partitions: produced.duplicate_partitions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(records: serde_json::Value) -> ProduceRequest {
        serde_json::from_value(serde_json::json!({ "records": records })).expect("request")
    }

    fn header(value: serde_json::Value) -> ProducerHeader {
        serde_json::from_value(value).expect("producer header")
    }

    fn field_of(err: BrokerError) -> String {
        match err {
            BrokerError::Validation { field, .. } => field,
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn idempotent_sequences_are_per_partition() {
        let one = BTreeMap::from([(2_u32, ())]);
        let two = BTreeMap::from([(0_u32, ()), (3, ())]);
        let single = header(serde_json::json!({"id": 7, "epoch": 0, "sequence": 5}));
        assert_eq!(
            single.base_sequences(&one).ok(),
            Some(BTreeMap::from([(2, 5)]))
        );
        assert_eq!(
            field_of(single.base_sequences(&two).unwrap_err()),
            "producer.sequence"
        );

        let spread =
            header(serde_json::json!({"id": 7, "epoch": 0, "sequences": {"0": 4, "3": 9}}));
        assert_eq!(
            spread.base_sequences(&two).ok(),
            Some(BTreeMap::from([(0, 4), (3, 9)]))
        );
        // A partition the batch goes to without a sequence, and one it does not go to.
        let missing = BTreeMap::from([(0_u32, ()), (1, ()), (3, ())]);
        assert_eq!(
            field_of(spread.base_sequences(&missing).unwrap_err()),
            "producer.sequences.1"
        );
        assert_eq!(
            field_of(spread.base_sequences(&one).unwrap_err()),
            "producer.sequences.2"
        );

        let both =
            header(serde_json::json!({"id": 7, "epoch": 0, "sequence": 1, "sequences": {"0": 1}}));
        assert_eq!(
            field_of(both.base_sequences(&one).unwrap_err()),
            "producer.sequences"
        );
        let neither = header(serde_json::json!({"id": 7, "epoch": 0}));
        assert_eq!(
            field_of(neither.base_sequences(&one).unwrap_err()),
            "producer.sequence"
        );
    }

    #[test]
    fn producer_ids_are_positive_signed_64_bit_and_differ() {
        let ids: std::collections::BTreeSet<u64> = (0..1000).map(|_| new_producer_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| *id > 0 && i64::try_from(*id).is_ok()));
    }

    #[test]
    fn the_size_limit_counts_key_headers_and_value() {
        let fits =
            request(serde_json::json!([{"key": "k", "value": "vvvv", "headers": {"h": "x"}}]));
        assert!(prepare(&fits, 1, 7).is_ok());
        let over =
            request(serde_json::json!([{"key": "k", "value": "vvvv", "headers": {"h": "xx"}}]));
        let Err(BrokerError::TooLarge { field, .. }) = prepare(&over, 1, 7) else {
            panic!("8 bytes accepted under a 7-byte limit");
        };
        assert_eq!(field, "records[0].value");
        let prepared = prepare(&fits, 1, 7).expect("fits");
        assert_eq!(record_bytes(&prepared[0].1), 7);
    }

    #[test]
    fn keyless_records_of_one_request_share_a_partition_and_requests_spread() {
        let keyless = request(serde_json::json!([{"value": "a"}, {"value": "b"}, {"value": "c"}]));
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let prepared = prepare(&keyless, 4, 100).expect("prepared");
            let partitions: std::collections::BTreeSet<u32> =
                prepared.iter().map(|(p, _)| *p).collect();
            assert_eq!(partitions.len(), 1, "sticky within a request");
            seen.extend(partitions);
        }
        assert_eq!(seen.len(), 4, "200 requests reach every partition");
    }
}
