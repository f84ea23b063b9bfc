//! What a partition hosted here has served since it was opened: produced and
//! fetched records and bytes, fetches per format. Kept on the partition group
//! itself (atomics, bumped by the request handlers) so `/metrics` renders
//! them from the hosted groups and a deleted stream's series go with its
//! groups.

use std::sync::atomic::{AtomicU64, Ordering};

/// Records and bytes of one kind of traffic.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub records: u64,
    pub bytes: u64,
}

/// The partition's counters.
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    produced: [AtomicU64; 2],
    fetched_json: [AtomicU64; 2],
    fetched_batches: [AtomicU64; 2],
}

/// A copy of the counters, as one scrape shows them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TrafficTotals {
    pub produced: Counted,
    pub fetched_json: Counted,
    pub fetched_batches: Counted,
}

fn add(pair: &[AtomicU64; 2], records: u64, bytes: u64) {
    pair[0].fetch_add(records, Ordering::Relaxed);
    pair[1].fetch_add(bytes, Ordering::Relaxed);
}

fn read(pair: &[AtomicU64; 2]) -> Counted {
    Counted {
        records: pair[0].load(Ordering::Relaxed),
        bytes: pair[1].load(Ordering::Relaxed),
    }
}

impl PartitionTraffic {
    /// Records (and their value bytes) stored by a produce.
    pub fn produced(&self, records: u64, bytes: u64) {
        add(&self.produced, records, bytes);
    }

    /// Records (and their value bytes) a JSON fetch answered.
    pub fn fetched_json(&self, records: u64, bytes: u64) {
        add(&self.fetched_json, records, bytes);
    }

    /// Records (and stored bytes) a `batches` fetch answered.
    pub fn fetched_batches(&self, records: u64, bytes: u64) {
        add(&self.fetched_batches, records, bytes);
    }

    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            produced: read(&self.produced),
            fetched_json: read(&self.fetched_json),
            fetched_batches: read(&self.fetched_batches),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_up_per_kind() {
        let traffic = PartitionTraffic::default();
        traffic.produced(3, 300);
        traffic.produced(1, 10);
        traffic.fetched_json(4, 310);
        traffic.fetched_batches(4, 400);
        let totals = traffic.totals();
        assert_eq!(
            totals.produced,
            Counted {
                records: 4,
                bytes: 310
            }
        );
        assert_eq!(
            totals.fetched_json,
            Counted {
                records: 4,
                bytes: 310
            }
        );
        assert_eq!(
            totals.fetched_batches,
            Counted {
                records: 4,
                bytes: 400
            }
        );
    }
}
