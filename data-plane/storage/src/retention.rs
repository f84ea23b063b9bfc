//! Retention: which whole sealed segments may be deleted, by age, by size, or below a
//! release cursor. Deciding is a pure function over segment descriptions so it can be
//! tested without files; the writer carries out the decision.

use std::path::PathBuf;
use std::time::Duration;

/// Description of one segment, as the broker and a tiering uploader see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Base offset (file name).
    pub base_offset: u64,
    /// Offset after its last batch (`base_offset` when empty).
    pub next_offset: u64,
    /// Bytes in the segment file.
    pub len: u64,
    /// Largest batch timestamp, ms (`i64::MIN` when empty).
    pub max_timestamp: i64,
    /// Sealed segments are immutable and may be uploaded as files.
    pub sealed: bool,
    /// The `.log` file.
    pub path: PathBuf,
}

/// Limits on what a log keeps. Only sealed segments are ever deleted, oldest first, and
/// only as a prefix: a segment is never deleted while an older one is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Delete segments whose newest batch is older than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest segments while the log is larger than this many bytes.
    pub max_bytes: Option<u64>,
    /// Never delete a segment holding offsets at or above this (e.g. not yet uploaded to
    /// the object store, or not yet released by the state machine).
    pub keep_from: Option<u64>,
}

/// What a retention pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// The deleted segments.
    pub deleted: Vec<SegmentInfo>,
    /// The log's start offset afterwards.
    pub start_offset: u64,
}

/// How many of the oldest segments `policy` deletes at time `now_ms`. `segments` is in
/// offset order and its last element is the active segment, which is never counted.
pub fn plan(segments: &[SegmentInfo], policy: &RetentionPolicy, now_ms: i64) -> usize {
    let mut total: u64 = segments.iter().map(|s| s.len).sum();
    let cutoff = policy
        .max_age
        .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
    let mut n = 0;
    for seg in segments.iter().take(segments.len().saturating_sub(1)) {
        if !seg.sealed || policy.keep_from.is_some_and(|keep| seg.next_offset > keep) {
            break;
        }
        let expired = cutoff.is_some_and(|c| seg.max_timestamp < c);
        let oversize = policy.max_bytes.is_some_and(|max| total > max);
        if !(expired || oversize) {
            break;
        }
        total -= seg.len;
        n += 1;
    }
    n
}

/// How many of the oldest segments lie wholly below `offset` (the release cursor),
/// never counting the active (last) one.
pub fn plan_release(segments: &[SegmentInfo], offset: u64) -> usize {
    segments
        .iter()
        .take(segments.len().saturating_sub(1))
        .take_while(|s| s.next_offset <= offset)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs() -> Vec<SegmentInfo> {
        // Four segments of 100 bytes, ten offsets and 1000 ms apart each.
        (0..4)
            .map(|i| SegmentInfo {
                base_offset: i * 10,
                next_offset: i * 10 + 10,
                len: 100,
                max_timestamp: (i as i64 + 1) * 1000,
                sealed: i < 3,
                path: PathBuf::new(),
            })
            .collect()
    }

    #[test]
    fn by_age() {
        let p = RetentionPolicy {
            max_age: Some(Duration::from_millis(1500)),
            ..Default::default()
        };
        assert_eq!(plan(&segs(), &p, 3000), 1); // cutoff 1500: only the first is older
        assert_eq!(plan(&segs(), &p, 10_000), 3); // never the active one
        assert_eq!(plan(&segs(), &p, 0), 0);
    }

    #[test]
    fn by_size_and_keep_from() {
        let p = RetentionPolicy {
            max_bytes: Some(250),
            ..Default::default()
        };
        assert_eq!(plan(&segs(), &p, 0), 2);
        let p = RetentionPolicy {
            max_bytes: Some(0),
            keep_from: Some(15),
            ..Default::default()
        };
        assert_eq!(plan(&segs(), &p, 0), 1);
    }

    #[test]
    fn release_cursor() {
        assert_eq!(plan_release(&segs(), 0), 0);
        assert_eq!(plan_release(&segs(), 9), 0);
        assert_eq!(plan_release(&segs(), 10), 1);
        assert_eq!(plan_release(&segs(), 1000), 3);
    }
}
