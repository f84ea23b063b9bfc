//! The exactly-once check of a stream run. Produce acks say where each
//! record id went (partition, offset); the fetch phase says where each id
//! was found. Every acked record must be found once, at its acked place, so
//! each partition yields exactly as many of this run's records as were
//! acked to it. Two words per record id, so `--records` is capped.

use serde::Serialize;

const UNSET: u64 = u64::MAX;
const OFFSET_BITS: u32 = 48;

fn pack(partition: u32, offset: u64) -> u64 {
    (u64::from(partition) << OFFSET_BITS) | (offset & ((1 << OFFSET_BITS) - 1))
}

fn partition_of(packed: u64) -> usize {
    (packed >> OFFSET_BITS) as usize
}

/// Acked and fetched places of record ids `0..records`.
pub struct Verifier {
    partitions: u32,
    acked: Vec<u64>,
    fetched: Vec<u64>,
    duplicates: u64,
    foreign: u64,
    bad_acks: u64,
}

/// Per partition: this run's records acked to it and found in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionCounts {
    pub partition: u32,
    pub acked: u64,
    pub fetched: u64,
}

/// The outcome; `ok` when every acked record came back exactly once where
/// it was acked and nothing unacked came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub acked: u64,
    /// Distinct ids of this run found.
    pub fetched: u64,
    /// Acked, never found.
    pub missing: u64,
    /// Found more than once.
    pub duplicates: u64,
    /// Found but never acked (e.g. its produce request failed after the commit).
    pub unacked: u64,
    /// Found at another partition or offset than its ack said.
    pub misplaced: u64,
    /// Records that are not this run's (another tag, or not a benchmark value).
    pub foreign: u64,
    /// Acks naming an unknown id or partition, or acking an id twice.
    pub bad_acks: u64,
    pub partitions: Vec<PartitionCounts>,
}

impl Verifier {
    pub fn new(records: u64, partitions: u32) -> Verifier {
        let len = usize::try_from(records).unwrap_or(usize::MAX);
        Verifier {
            partitions,
            acked: vec![UNSET; len],
            fetched: vec![UNSET; len],
            duplicates: 0,
            foreign: 0,
            bad_acks: 0,
        }
    }

    /// A produce ack: record `id` is at `offset` of `partition`.
    pub fn acked(&mut self, id: u64, partition: u32, offset: u64) {
        match self.acked.get_mut(id as usize) {
            Some(slot) if *slot == UNSET && partition < self.partitions => {
                *slot = pack(partition, offset)
            }
            _ => self.bad_acks += 1,
        }
    }

    /// A fetched record: `id` when it is this run's, found at `offset` of `partition`.
    pub fn fetched(&mut self, id: Option<u64>, partition: u32, offset: u64) {
        match id.and_then(|id| self.fetched.get_mut(id as usize)) {
            Some(slot) if *slot == UNSET => *slot = pack(partition, offset),
            Some(_) => self.duplicates += 1,
            None => self.foreign += 1,
        }
    }

    pub fn summary(&self) -> Verification {
        let mut partitions: Vec<PartitionCounts> = (0..self.partitions)
            .map(|partition| PartitionCounts {
                partition,
                acked: 0,
                fetched: 0,
            })
            .collect();
        let (mut acked, mut fetched, mut missing, mut unacked, mut misplaced) = (0, 0, 0, 0, 0);
        for (&a, &f) in self.acked.iter().zip(&self.fetched) {
            if a != UNSET {
                acked += 1;
                partitions[partition_of(a)].acked += 1;
            }
            if f != UNSET {
                fetched += 1;
                if let Some(counts) = partitions.get_mut(partition_of(f)) {
                    counts.fetched += 1;
                }
            }
            match (a == UNSET, f == UNSET) {
                (false, true) => missing += 1,
                (true, false) => unacked += 1,
                (false, false) if a != f => misplaced += 1,
                _ => {}
            }
        }
        let ok = missing == 0
            && unacked == 0
            && misplaced == 0
            && self.duplicates == 0
            && self.bad_acks == 0
            && partitions.iter().all(|p| p.acked == p.fetched);
        Verification {
            ok,
            acked,
            fetched,
            missing,
            duplicates: self.duplicates,
            unacked,
            misplaced,
            foreign: self.foreign,
            bad_acks: self.bad_acks,
            partitions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_acked_record_found_once_is_ok() {
        let mut v = Verifier::new(4, 2);
        for (id, partition, offset) in [(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1)] {
            v.acked(id, partition, offset);
        }
        // Fetch order does not matter; foreign records are counted, not failed.
        for (id, partition, offset) in [(3, 1, 1), (1, 1, 0), (0, 0, 0), (2, 0, 1)] {
            v.fetched(Some(id), partition, offset);
        }
        v.fetched(None, 0, 2);
        let s = v.summary();
        assert!(s.ok, "{s:?}");
        assert_eq!((s.acked, s.fetched, s.foreign), (4, 4, 1));
        assert_eq!(
            s.partitions,
            vec![
                PartitionCounts {
                    partition: 0,
                    acked: 2,
                    fetched: 2
                },
                PartitionCounts {
                    partition: 1,
                    acked: 2,
                    fetched: 2
                },
            ]
        );
    }

    #[test]
    fn loss_duplication_and_misplacement_are_reported() {
        let mut v = Verifier::new(5, 2);
        v.acked(0, 0, 0);
        v.acked(1, 0, 1);
        v.acked(2, 1, 0);
        v.acked(3, 1, 1);
        v.acked(3, 1, 2); // acked twice
        v.acked(9, 0, 5); // no such id
        v.acked(4, 7, 0); // no such partition
        v.fetched(Some(0), 0, 0);
        v.fetched(Some(0), 0, 0); // duplicate
        v.fetched(Some(2), 0, 2); // acked to partition 1
        v.fetched(Some(4), 1, 2); // never acked
        // id 1 and 3: missing
        let s = v.summary();
        assert!(!s.ok);
        assert_eq!(s.acked, 4);
        assert_eq!(s.fetched, 3);
        assert_eq!(s.missing, 2);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.misplaced, 1);
        assert_eq!(s.unacked, 1);
        assert_eq!(s.bad_acks, 3);
        assert_eq!(s.partitions[0].acked, 2);
        assert_eq!(s.partitions[0].fetched, 2);
        assert_eq!(s.partitions[1].fetched, 1);
    }

    #[test]
    fn a_place_survives_packing() {
        let packed = pack(1023, (1 << 40) + 5);
        assert_eq!(partition_of(packed), 1023);
        assert_ne!(packed, UNSET);
    }
}
