//! How a Raft entry becomes a record batch and back: one entry, one batch, the Raft
//! index as the batch offset, term and leader in the batch header.
//!
//! Application entries carry records, so a stream partition's messages are stored once,
//! in the same bytes a consumer (or `sendfile`) reads. Blank entries are empty batches;
//! a membership entry is one record holding the membership as JSON.

use std::fmt;

use openraft::entry::RaftEntry;
use openraft::impls::leader_id_adv::LeaderId;
use openraft::{AppData, Entry, EntryPayload, LogId, Membership, Node};

use crate::error::{Error, Result};
use crate::format::{Batch, BatchHeader, BatchKind, Record};

/// Application data that is stored as the records of its batch.
pub trait BatchPayload: Sized {
    /// The records to store.
    fn to_records(&self) -> Vec<Record>;
    /// Rebuilds the data from stored records.
    fn from_records(records: Vec<Record>) -> Result<Self>;
}

/// An opaque payload: the records themselves. Queue and stream state machines put
/// their operations (publish, ack, ...) into records of one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Records(pub Vec<Record>);

impl fmt::Display for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "records({})", self.0.len())
    }
}

impl BatchPayload for Records {
    fn to_records(&self) -> Vec<Record> {
        self.0.clone()
    }

    fn from_records(records: Vec<Record>) -> Result<Self> {
        Ok(Records(records))
    }
}

/// A Raft log entry type the segment log can store.
pub trait BatchEntry: RaftEntry + Sized {
    /// The batch for this entry (offset = Raft index).
    fn to_batch(&self) -> Result<Batch>;
    /// The entry stored in `batch`.
    fn from_batch(batch: Batch) -> Result<Self>;
    /// The log id of the entry stored in the batch with this header.
    fn log_id_of(header: &BatchHeader) -> LogId<Self::CommittedLeaderId>;
}

/// The leader id type the segment log stores: term and node id, both `u64` (openraft's
/// default "advanced" leader id).
pub type SluiceLeaderId = LeaderId<u64, u64>;

impl<D, N> BatchEntry for Entry<SluiceLeaderId, EntryPayload<D, u64, N>>
where
    D: AppData + BatchPayload,
    N: Node,
{
    fn to_batch(&self) -> Result<Batch> {
        let term = self.log_id.leader_id.term;
        let leader = self.log_id.leader_id.node_id;
        let mut batch = match &self.payload {
            EntryPayload::Blank => Batch::new(BatchKind::Blank, term, leader, Vec::new()),
            EntryPayload::Normal(data) => {
                Batch::new(BatchKind::Data, term, leader, data.to_records())
            }
            EntryPayload::Membership(m) => {
                let value = serde_json::to_vec(m)
                    .map_err(|e| Error::Decode(format!("cannot serialize membership: {e}")))?;
                Batch::new(
                    BatchKind::Membership,
                    term,
                    leader,
                    vec![Record::from_value(value)],
                )
            }
        };
        batch.offset = self.log_id.index;
        Ok(batch)
    }

    fn log_id_of(header: &BatchHeader) -> LogId<SluiceLeaderId> {
        LogId {
            leader_id: SluiceLeaderId {
                term: header.term,
                node_id: header.leader,
            },
            index: header.offset,
        }
    }

    fn from_batch(batch: Batch) -> Result<Self> {
        let log_id = LogId {
            leader_id: SluiceLeaderId {
                term: batch.term,
                node_id: batch.leader,
            },
            index: batch.offset,
        };
        let payload = match batch.kind {
            BatchKind::Blank => EntryPayload::Blank,
            BatchKind::Data => EntryPayload::Normal(D::from_records(batch.records)?),
            BatchKind::Membership => {
                let record = batch
                    .records
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Decode("membership batch without a record".into()))?;
                let m: Membership<u64, N> = serde_json::from_slice(&record.value)
                    .map_err(|e| Error::Decode(format!("bad membership record: {e}")))?;
                EntryPayload::Membership(m)
            }
        };
        Ok(Entry { log_id, payload })
    }
}
