//! Changes to the set of segments, run by the writer: roll (seal), truncate a suffix,
//! release a prefix, retention.
//!
//! Each change is ordered so that a crash at any point leaves a directory recovery
//! understands: index files are written before a segment counts as sealed, later
//! segments are deleted newest first, and the start offset is persisted before any
//! segment below it is deleted.

use std::sync::Arc;
use std::time::Instant;

use crate::error::{IoContext, Result};
use crate::recovery;
use crate::retention::{self, RetentionOutcome, RetentionPolicy, SegmentInfo};
use crate::segment::{self, SegmentPaths};
use crate::state::LogState;
use crate::writer::Writer;

impl Writer {
    /// Seals the active segment (when it holds anything) and starts a new one at `base`.
    pub(crate) fn roll_to(&mut self, base: u64) -> Result<()> {
        let dir = self.shared.dir.clone();
        if self.active_len > 0 {
            self.sync_active()?;
            let (bytes, index_path) = {
                let st = self.shared.read();
                match st.segments.get(&self.active_base) {
                    Some(seg) => (seg.index.to_bytes(self.active_len), seg.paths.index.clone()),
                    None => return Ok(()),
                }
            };
            segment::write_atomically(&dir, &index_path, &bytes)?;
        }
        let paths = SegmentPaths::new(&dir, base);
        let file = segment::open_rw(&paths.log, true)?;
        let existing = file
            .metadata()
            .map(|m| m.len())
            .ctx(|| format!("stat {}", paths.log.display()))?;
        if existing != 0 {
            // Only possible if the directory was modified behind our back.
            return Err(crate::error::Error::Corrupt {
                segment: paths.log,
                position: 0,
                after_offset: None,
                reason: "new segment file already has content".into(),
            });
        }
        segment::sync_dir(&dir)?;
        let fresh = recovery::empty_segment(base, paths, file, &self.config);
        let file = fresh.file.clone();
        {
            let mut st = self.shared.write();
            if let Some(old) = st.segments.get_mut(&self.active_base) {
                old.sealed = true;
                old.acked_len = old.written_len;
            }
            st.segments.insert(base, fresh);
        }
        self.active_base = base;
        self.active_file = file;
        self.active_len = 0;
        self.synced_len = 0;
        self.active_since = None;
        tracing::debug!(dir = %dir.display(), base, "rolled to a new segment");
        Ok(())
    }

    /// Removes every batch with an offset `>= from`; the segment that then holds the
    /// tail becomes the active one again.
    pub(crate) fn truncate(&mut self, from: u64) -> Result<()> {
        let dir = self.shared.dir.clone();
        let (keep_base, later) = {
            let st = self.shared.read();
            let first = st.segments.keys().next().copied().unwrap_or(0);
            let from = from.max(first);
            if from >= self.next {
                return Ok(());
            }
            let keep = st
                .segments
                .range(..=from)
                .next_back()
                .map_or(first, |(b, _)| *b);
            let later: Vec<(u64, SegmentPaths)> = st
                .segments
                .range(keep + 1..)
                .rev()
                .map(|(b, s)| (*b, s.paths.clone()))
                .collect();
            (keep, later)
        };
        for (base, paths) in later {
            self.shared.write().segments.remove(&base);
            segment::remove_if_exists(&paths.index)?;
            segment::remove_if_exists(&paths.log)?;
        }
        let (file, paths, start_pos, len) = {
            let st = self.shared.read();
            let Some(seg) = st.segments.get(&keep_base) else {
                return Ok(());
            };
            (
                seg.file.clone(),
                seg.paths.clone(),
                seg.index.lookup(from),
                seg.written_len,
            )
        };
        let cut = find_position(&file, &paths, start_pos, len, from)?;
        segment::remove_if_exists(&paths.index)?;
        file.set_len(cut)
            .and_then(|()| file.sync_data())
            .ctx(|| format!("truncate {}", paths.log.display()))?;
        segment::sync_dir(&dir)?;
        let scan = segment::scan(
            &file,
            &paths.log,
            keep_base,
            cut,
            self.config.index_interval_bytes,
        )?;
        if let Some(stop) = scan.stop {
            return Err(segment::corrupt(
                &paths.log,
                stop,
                scan.last.map(|h| h.offset),
            ));
        }
        let last = match scan.last {
            Some(h) => Some(h),
            None => recovery::last_batch_before(&self.shared.read(), keep_base)?,
        };
        let next = last.map_or(keep_base, |h| h.offset + 1).max(keep_base);
        {
            let mut st = self.shared.write();
            if let Some(seg) = st.segments.get_mut(&keep_base) {
                seg.index = scan.index;
                seg.written_len = cut;
                seg.acked_len = cut;
                seg.sealed = false;
            }
            let next = next.max(st.start_offset);
            st.written_next = next;
            st.acked_next = next;
            st.last_written = last.filter(|h| h.offset >= st.start_offset);
            self.next = next;
        }
        self.active_base = keep_base;
        self.active_file = file;
        self.active_len = cut;
        self.synced_len = cut;
        self.active_since = Some(Instant::now());
        Ok(())
    }

    /// Releases offsets below `below`: persists the new start offset, then deletes the
    /// segments wholly below it. Releasing past the end starts a new, empty segment at
    /// `below` so the next append (e.g. after a Raft snapshot) lands there.
    pub(crate) fn release(&mut self, below: u64) -> Result<()> {
        let dir = self.shared.dir.clone();
        if below <= self.shared.read().start_offset {
            return Ok(());
        }
        recovery::write_start_offset(&dir, below)?;
        if below > self.next {
            self.roll_to(below)?;
            self.next = below;
        }
        let doomed: Vec<(u64, SegmentPaths)> = {
            let st = self.shared.read();
            let infos = segment_infos(&st);
            let n = retention::plan_release(&infos, below);
            infos[..n]
                .iter()
                .filter_map(|i| {
                    st.segments
                        .get(&i.base_offset)
                        .map(|s| (s.base, s.paths.clone()))
                })
                .collect()
        };
        {
            let mut st = self.shared.write();
            for (base, _) in &doomed {
                st.segments.remove(base);
            }
            // Same rule as recovery, so the start offset does not change on reopen.
            let first_base = st.segments.keys().next().copied().unwrap_or(below);
            st.start_offset = below.max(first_base);
            if st.written_next < below {
                st.written_next = below;
                st.acked_next = below;
            }
            if st.last_written.is_some_and(|h| h.offset < below) {
                st.last_written = None;
            }
        }
        for (_, p) in &doomed {
            segment::remove_if_exists(&p.index)?;
            segment::remove_if_exists(&p.log)?;
        }
        if !doomed.is_empty() {
            segment::sync_dir(&dir)?;
        }
        Ok(())
    }

    /// Deletes the oldest sealed segments the policy no longer keeps.
    pub(crate) fn apply_retention(
        &mut self,
        policy: &RetentionPolicy,
        now_ms: i64,
    ) -> Result<RetentionOutcome> {
        // An idle active segment past its age would otherwise never become deletable.
        if let (Some(age), Some(since)) = (self.config.segment_max_age, self.active_since)
            && self.active_len > 0
            && since.elapsed() >= age
        {
            self.roll_to(self.next)?;
        }
        let (deleted, cut) = {
            let st = self.shared.read();
            let infos = segment_infos(&st);
            let n = retention::plan(&infos, policy, now_ms);
            let cut = infos.get(n).map(|i| i.base_offset);
            (infos[..n].to_vec(), cut)
        };
        if let Some(cut) = cut
            && !deleted.is_empty()
        {
            self.release(cut)?;
        }
        Ok(RetentionOutcome {
            deleted,
            start_offset: self.shared.read().start_offset,
        })
    }
}

/// Descriptions of all segments, oldest first.
pub(crate) fn segment_infos(st: &LogState) -> Vec<SegmentInfo> {
    st.segments
        .values()
        .map(|s| SegmentInfo {
            base_offset: s.base,
            next_offset: s.index.next_offset,
            len: s.acked_len,
            max_timestamp: s.index.max_timestamp,
            sealed: s.sealed,
            path: s.paths.log.clone(),
        })
        .collect()
}

/// Byte position of the first batch with offset `>= target`, scanning from `pos`.
fn find_position(
    file: &Arc<std::fs::File>,
    paths: &SegmentPaths,
    pos: u64,
    end: u64,
    target: u64,
) -> Result<u64> {
    let mut reader = segment::BatchReader::new(file, pos, end);
    loop {
        let here = reader.position();
        match reader
            .next_header()
            .ctx(|| format!("read {}", paths.log.display()))?
        {
            Ok(Some((_, h))) if h.offset >= target => return Ok(here),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(end),
            Err(stop) => return Err(segment::corrupt(&paths.log, stop, None)),
        }
    }
}
