//! One page of the compact backlog: up to [`PAGE_RECORDS`] 20-byte records
//! of plain messages in seq order, each field an offset from the page's
//! bases.

use crate::message::{BodyRef, Seq};

use super::Plain;

/// Records per page: 80 KiB pages, so page bookkeeping is noise per message
/// while a drained page returns its memory promptly, and a spilled page is
/// one read of a size disks like.
pub(crate) const PAGE_RECORDS: usize = 4096;

/// A slot no body can have (slot 0 is the entry's command record, and a
/// batch never holds 2^32 records): marks a removed record.
pub(crate) const TOMBSTONE: u32 = u32::MAX;

/// A packed record: 20 bytes, offsets from the page's bases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record {
    pub seq: u32,
    pub log_index: u32,
    pub slot: u32,
    pub size: u32,
    pub at: u32,
}

impl Record {
    pub fn dead(&self) -> bool {
        self.slot == TOMBSTONE
    }
}

/// The numbers a page's records are offsets from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bases {
    pub seq: Seq,
    pub log_index: u64,
    pub at_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Page {
    pub bases: Bases,
    pub records: Vec<Record>,
    /// Records before `head` are all dead (the FIFO front).
    pub head: usize,
    pub live: usize,
    /// Bytes of the live records' messages: what a purge or a spilled
    /// page reports without reading its records.
    pub bytes: u64,
}

impl Page {
    pub fn new(first: &Plain) -> Self {
        Page::empty(Bases {
            seq: first.seq,
            log_index: first.body_ref.log_index,
            at_ms: first.published_at_ms,
        })
    }

    pub fn empty(bases: Bases) -> Self {
        Page {
            bases,
            // Grown by doubling up to `PAGE_RECORDS` (a power of two): a
            // queue of a few messages does not pay for a whole page.
            records: Vec::new(),
            head: 0,
            live: 0,
            bytes: 0,
        }
    }

    pub fn full(&self) -> bool {
        self.records.len() >= PAGE_RECORDS
    }

    /// Packs `plain` against this page's bases, if it fits.
    pub fn pack(&self, plain: &Plain) -> Option<Record> {
        let b = &self.bases;
        Some(Record {
            seq: u32::try_from(plain.seq.checked_sub(b.seq)?).ok()?,
            log_index: u32::try_from(plain.body_ref.log_index.checked_sub(b.log_index)?).ok()?,
            slot: plain.body_ref.slot,
            size: u32::try_from(plain.size).ok()?,
            at: u32::try_from(plain.published_at_ms.checked_sub(b.at_ms)?).ok()?,
        })
    }

    /// Appends a record packed by [`Page::pack`].
    pub fn append(&mut self, record: Record) {
        self.records.push(record);
        self.live += 1;
        self.bytes += u64::from(record.size);
    }

    pub fn unpack(&self, record: &Record) -> Plain {
        let b = &self.bases;
        Plain {
            seq: b.seq + u64::from(record.seq),
            body_ref: BodyRef {
                log_index: b.log_index + u64::from(record.log_index),
                slot: record.slot,
            },
            size: u64::from(record.size),
            published_at_ms: b.at_ms + u64::from(record.at),
        }
    }

    pub fn first(&self) -> Option<Plain> {
        self.records.get(self.head).map(|r| self.unpack(r))
    }

    pub fn last_seq(&self) -> Option<Seq> {
        self.records
            .last()
            .map(|r| self.bases.seq + u64::from(r.seq))
    }

    pub fn position(&self, seq: Seq) -> Option<usize> {
        let offset = u32::try_from(seq.checked_sub(self.bases.seq)?).ok()?;
        let at = self.records[self.head..].binary_search_by_key(&offset, |r| r.seq);
        at.ok().map(|i| i + self.head)
    }

    pub fn get(&self, seq: Seq) -> Option<Plain> {
        let record = &self.records[self.position(seq)?];
        (!record.dead()).then(|| self.unpack(record))
    }

    /// Tombstones `seq`; the page is then empty when `live` is 0.
    pub fn remove(&mut self, seq: Seq) -> Option<Plain> {
        let at = self.position(seq)?;
        if self.records[at].dead() {
            return None;
        }
        let plain = self.unpack(&self.records[at]);
        self.records[at].slot = TOMBSTONE;
        self.live -= 1;
        self.bytes -= plain.size;
        if self.live > 0 {
            self.advance_head();
            self.compact_if_sparse();
        }
        Some(plain)
    }

    fn advance_head(&mut self) {
        while self.records.get(self.head).is_some_and(Record::dead) {
            self.head += 1;
        }
    }

    /// Drops the tombstones once the unconsumed part is half dead (removals
    /// away from the front), into an allocation sized to what is left.
    fn compact_if_sparse(&mut self) {
        let unconsumed = self.records.len() - self.head;
        if self.live * 2 > unconsumed || unconsumed < 64 {
            return;
        }
        self.records = self.live_records().copied().collect();
        self.head = 0;
    }

    pub fn live_records(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records[self.head..].iter().filter(|r| !r.dead())
    }

    pub fn iter(&self) -> impl Iterator<Item = Plain> + '_ {
        self.live_records().map(|r| self.unpack(r))
    }
}
