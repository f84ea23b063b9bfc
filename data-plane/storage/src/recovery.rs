//! Opening a log directory after a clean shutdown or a crash.
//!
//! Rules: the last segment is the active one and is always scanned; a torn or corrupt
//! tail there is cut off (it was never acknowledged, or the disk lost it). Sealed
//! segments are trusted through their index file when it matches the segment; a
//! missing or stale index is rebuilt by a full CRC scan, and any damage found in a
//! sealed segment is an [`Error::Corrupt`] naming the segment and position, never a
//! silent truncation. Segments wholly below the persisted start offset are deleted
//! (a crash may have interrupted a purge).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use crate::config::LogConfig;
use crate::error::{Error, IoContext, Result};
use crate::format::BatchHeader;
use crate::index::SegmentIndex;
use crate::segment::{self, ReadStop, SegmentPaths};
use crate::state::{LogState, SegmentState};

const START_FILE: &str = "start-offset";

/// Reads the persisted start offset (8 bytes LE + CRC32C), if any.
pub fn read_start_offset(dir: &Path) -> Result<Option<u64>> {
    let path = dir.join(START_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    if bytes.len() != 12 || crc32c::crc32c(&bytes[..8]) != crate::format::read_u32(&bytes, 8) {
        return Err(Error::Metadata {
            path,
            reason: "start offset file is damaged".into(),
        });
    }
    Ok(Some(crate::format::read_u64(&bytes, 0)))
}

/// Persists the start offset atomically.
pub fn write_start_offset(dir: &Path, offset: u64) -> Result<()> {
    let mut bytes = offset.to_le_bytes().to_vec();
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    segment::write_atomically(dir, &dir.join(START_FILE), &bytes)
}

/// Recovers the log in `dir` (creating it when absent) and returns its state.
pub fn recover(dir: &Path, config: &LogConfig) -> Result<LogState> {
    fs::create_dir_all(dir).ctx(|| format!("create log directory {}", dir.display()))?;
    let mut log_bases = Vec::new();
    let mut index_bases = Vec::new();
    let entries = fs::read_dir(dir).ctx(|| format!("list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.ctx(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = segment::parse_base(name, "log") {
            log_bases.push(base);
        } else if let Some(base) = segment::parse_base(name, "index") {
            index_bases.push(base);
        } else if name.ends_with(".tmp") {
            segment::remove_if_exists(&entry.path())?;
        }
    }
    log_bases.sort_unstable();
    for base in index_bases {
        if log_bases.binary_search(&base).is_err() {
            segment::remove_if_exists(&SegmentPaths::new(dir, base).index)?;
        }
    }

    let persisted_start = read_start_offset(dir)?.unwrap_or(0);
    let mut state = LogState::default();
    let Some((&active_base, sealed_bases)) = log_bases.split_last() else {
        let base = persisted_start;
        let paths = SegmentPaths::new(dir, base);
        let file = segment::open_rw(&paths.log, true)?;
        segment::sync_dir(dir)?;
        state
            .segments
            .insert(base, empty_segment(base, paths, file, config));
        state.start_offset = base;
        state.written_next = base;
        state.acked_next = base;
        return Ok(state);
    };

    let mut prev_next: Option<u64> = None;
    let mut deleted_any = false;
    for &base in sealed_bases {
        let paths = SegmentPaths::new(dir, base);
        let file = segment::open_rw(&paths.log, false)?;
        let len = file_len(&file, &paths)?;
        let index = load_or_rebuild_index(dir, &paths, &file, base, len, config)?;
        if index.next_offset <= persisted_start {
            // Fully released: finish the purge a crash interrupted.
            segment::remove_if_exists(&paths.index)?;
            segment::remove_if_exists(&paths.log)?;
            deleted_any = true;
            continue;
        }
        check_order(&paths, base, prev_next)?;
        prev_next = Some(index.next_offset);
        state.segments.insert(
            base,
            SegmentState {
                base,
                paths,
                file: Arc::new(file),
                index,
                written_len: len,
                acked_len: len,
                sealed: true,
            },
        );
    }
    if deleted_any {
        segment::sync_dir(dir)?;
    }

    let paths = SegmentPaths::new(dir, active_base);
    check_order(&paths, active_base, prev_next)?;
    segment::remove_if_exists(&paths.index)?;
    let file = segment::open_rw(&paths.log, false)?;
    let len = file_len(&file, &paths)?;
    let scan = segment::scan(
        &file,
        &paths.log,
        active_base,
        len,
        config.index_interval_bytes,
    )?;
    if let Some(stop) = &scan.stop {
        let reason = match stop {
            ReadStop::Torn { .. } => "torn write".to_string(),
            ReadStop::Corrupt { reason, .. } => reason.clone(),
        };
        tracing::warn!(
            segment = %paths.log.display(),
            valid_len = scan.valid_len,
            dropped_bytes = len - scan.valid_len,
            %reason,
            "truncating the active segment's tail"
        );
        file.set_len(scan.valid_len)
            .and_then(|()| file.sync_data())
            .ctx(|| format!("truncate {}", paths.log.display()))?;
    }
    let mut last = scan.last;
    let active_len = scan.valid_len;
    state.segments.insert(
        active_base,
        SegmentState {
            base: active_base,
            paths,
            file: Arc::new(file),
            index: scan.index,
            written_len: active_len,
            acked_len: active_len,
            sealed: false,
        },
    );
    if last.is_none() {
        last = last_batch_before(&state, active_base)?;
    }
    let next = last.map_or(active_base, |h| (h.offset + 1).max(active_base));
    let first_base = state.segments.keys().next().copied().unwrap_or(active_base);
    state.start_offset = persisted_start.max(first_base);
    // A crash between persisting a start offset beyond the end and rolling to it
    // leaves the active segment entirely below the start.
    let next = next.max(state.start_offset);
    state.written_next = next;
    state.acked_next = next;
    state.last_written = last.filter(|h| h.offset >= state.start_offset);
    Ok(state)
}

/// A fresh, empty segment's state.
pub fn empty_segment(
    base: u64,
    paths: SegmentPaths,
    file: fs::File,
    config: &LogConfig,
) -> SegmentState {
    SegmentState {
        base,
        paths,
        file: Arc::new(file),
        index: SegmentIndex::new(base, config.index_interval_bytes),
        written_len: 0,
        acked_len: 0,
        sealed: false,
    }
}

/// Header of the last batch in the newest non-empty segment below `below_base`.
pub fn last_batch_before(state: &LogState, below_base: u64) -> Result<Option<BatchHeader>> {
    for seg in state.segments.range(..below_base).rev().map(|(_, s)| s) {
        if let Some(pos) = seg.index.last_position {
            let h = segment::header_at(&seg.file, &seg.paths.log, pos, seg.written_len)?;
            return Ok(Some(h));
        }
    }
    Ok(None)
}

fn file_len(file: &fs::File, paths: &SegmentPaths) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .ctx(|| format!("stat {}", paths.log.display()))
}

fn check_order(paths: &SegmentPaths, base: u64, prev_next: Option<u64>) -> Result<()> {
    match prev_next {
        Some(prev) if base < prev => Err(Error::Corrupt {
            segment: paths.log.clone(),
            position: 0,
            after_offset: Some(prev - 1),
            reason: format!(
                "segment base {base} overlaps the previous segment (ends before {prev})"
            ),
        }),
        _ => Ok(()),
    }
}

fn load_or_rebuild_index(
    dir: &Path,
    paths: &SegmentPaths,
    file: &fs::File,
    base: u64,
    len: u64,
    config: &LogConfig,
) -> Result<SegmentIndex> {
    if let Ok(bytes) = fs::read(&paths.index)
        && let Some(index) =
            SegmentIndex::from_bytes(&bytes, base, len, config.index_interval_bytes)
    {
        return Ok(index);
    }
    tracing::info!(segment = %paths.log.display(), "rebuilding missing or stale segment index");
    let scan = segment::scan(file, &paths.log, base, len, config.index_interval_bytes)?;
    if let Some(stop) = scan.stop {
        return Err(segment::corrupt(
            &paths.log,
            stop,
            scan.last.map(|h| h.offset),
        ));
    }
    segment::write_atomically(dir, &paths.index, &scan.index.to_bytes(len))?;
    Ok(scan.index)
}
