//! The compact backlog: plain ready messages at about 20 bytes each
//! (issue 21).
//!
//! A *plain* message is one the state machine needs nothing of but what it
//! takes to hand it out in order and to count it: its seq, where its body
//! lies ([`BodyRef`]), its size and when it was stored (for a queue-wide
//! TTL). It is ready, was never delivered, has the default priority, no
//! group, no per-message expiry and no death history. Its message id,
//! routing key and headers stay in the publish entry of the Raft log, which
//! the broker reads anyway to fetch the body; outputs say so with
//! [`MessageMeta::in_log`](crate::MessageMeta::in_log). Everything else —
//! delayed, leased, redelivered, prioritised, grouped, expiring messages —
//! keeps its whole [`Message`](crate::Message) in the store beside this
//! one: those are the minority, and their extra state (leases, groups,
//! expiry indexes) needs the metadata at hand.
//!
//! Records sit in seq-ordered pages of fixed-size records, each holding its
//! fields as 32-bit offsets from its page's bases. A plain message only ever
//! leaves from the front (delivery, TTL, drop-head, redrive and purge all
//! take the oldest ready message first, and among plain messages that is
//! the lowest seq), so a FIFO drain moves a head index and frees whole
//! pages: nothing is shifted. A removal elsewhere leaves a tombstone, and a
//! page whose unconsumed part is half tombstones is compacted.

use std::collections::VecDeque;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::{BodyRef, Location, Message, MessageMeta, Seq};

/// Records per page: 80 KiB pages, so page bookkeeping is noise per message
/// while a drained page returns its memory promptly.
const PAGE_RECORDS: usize = 4096;

/// A slot no body can have (slot 0 is the entry's command record, and a
/// batch never holds 2^32 records): marks a removed record.
const TOMBSTONE: u32 = u32::MAX;

/// One plain message as the state machine keeps it, unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plain {
    pub seq: Seq,
    pub body_ref: BodyRef,
    pub size: u64,
    pub published_at_ms: u64,
}

impl Plain {
    /// The plain form of a message being published, if it is plain: the
    /// state machine needs none of its metadata but its size and time,
    /// and its id, routing key and headers are in its publish entry.
    pub fn published(msg: &Message) -> Option<Plain> {
        let plain = msg.location == Location::Ready
            && msg.delivery_count == 0
            && msg.meta.priority.is_none()
            && msg.meta.group.is_none()
            && msg.meta.expires_at_ms.is_none()
            && msg.meta.deaths.is_empty();
        plain.then_some(Plain {
            seq: msg.seq,
            body_ref: msg.body_ref,
            size: msg.meta.size,
            published_at_ms: msg.meta.published_at_ms,
        })
    }

    /// The message as the rest of the state machine sees it, its id,
    /// routing key and headers marked as left in the log.
    pub fn message(&self) -> Message {
        Message {
            seq: self.seq,
            body_ref: self.body_ref,
            delivery_count: 0,
            meta: MessageMeta {
                message_id: None,
                size: self.size,
                routing_key: String::new(),
                headers: Default::default(),
                group: None,
                priority: None,
                published_at_ms: self.published_at_ms,
                expires_at_ms: None,
                deaths: Vec::new(),
                in_log: true,
            },
            location: Location::Ready,
        }
    }

    /// Whether `plain` fits a record at all: a size or slot past 32 bits
    /// (never seen in practice) keeps the message in the rich store.
    fn packable(&self) -> bool {
        u32::try_from(self.size).is_ok() && self.body_ref.slot != TOMBSTONE
    }
}

/// A packed record: 20 bytes, offsets from the page's bases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    seq: u32,
    log_index: u32,
    slot: u32,
    size: u32,
    at: u32,
}

impl Record {
    fn dead(&self) -> bool {
        self.slot == TOMBSTONE
    }
}

#[derive(Debug, Clone)]
struct Page {
    base_seq: Seq,
    base_log_index: u64,
    base_at_ms: u64,
    records: Vec<Record>,
    /// Records before `head` are all dead (the FIFO front).
    head: usize,
    live: usize,
}

impl Page {
    fn new(first: &Plain) -> Self {
        Page {
            base_seq: first.seq,
            base_log_index: first.body_ref.log_index,
            base_at_ms: first.published_at_ms,
            // Grown by doubling up to `PAGE_RECORDS` (a power of two): a
            // queue of a few messages does not pay for a whole page.
            records: Vec::new(),
            head: 0,
            live: 0,
        }
    }

    /// Packs `plain` against this page's bases, if it fits.
    fn pack(&self, plain: &Plain) -> Option<Record> {
        Some(Record {
            seq: u32::try_from(plain.seq.checked_sub(self.base_seq)?).ok()?,
            log_index: u32::try_from(plain.body_ref.log_index.checked_sub(self.base_log_index)?)
                .ok()?,
            slot: plain.body_ref.slot,
            size: u32::try_from(plain.size).ok()?,
            at: u32::try_from(plain.published_at_ms.checked_sub(self.base_at_ms)?).ok()?,
        })
    }

    fn unpack(&self, record: &Record) -> Plain {
        Plain {
            seq: self.base_seq + u64::from(record.seq),
            body_ref: BodyRef {
                log_index: self.base_log_index + u64::from(record.log_index),
                slot: record.slot,
            },
            size: u64::from(record.size),
            published_at_ms: self.base_at_ms + u64::from(record.at),
        }
    }

    fn position(&self, seq: Seq) -> Option<usize> {
        let offset = u32::try_from(seq.checked_sub(self.base_seq)?).ok()?;
        let at = self.records[self.head..].binary_search_by_key(&offset, |r| r.seq);
        at.ok().map(|i| i + self.head)
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
        let kept: Vec<Record> = self.records[self.head..]
            .iter()
            .filter(|r| !r.dead())
            .copied()
            .collect();
        self.records = kept;
        self.head = 0;
    }

    fn iter(&self) -> impl Iterator<Item = Plain> + '_ {
        self.records[self.head..]
            .iter()
            .filter(|r| !r.dead())
            .map(|r| self.unpack(r))
    }
}

/// The plain ready messages of a queue, in seq order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backlog {
    pages: VecDeque<Page>,
    len: usize,
}

impl Backlog {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a plain message; it must come after every message held.
    /// Gives it back when it cannot be packed or would break the order, so
    /// the caller keeps it in the rich store instead.
    pub fn push(&mut self, plain: Plain) -> Result<(), Plain> {
        if !plain.packable() || self.last_seq().is_some_and(|last| last >= plain.seq) {
            return Err(plain);
        }
        let record = self
            .pages
            .back()
            .filter(|page| page.records.len() < PAGE_RECORDS)
            .and_then(|page| page.pack(&plain));
        let record = match record {
            Some(record) => record,
            None => {
                let mut page = Page::new(&plain);
                if !self.pages.is_empty() {
                    // A second page means a deep queue: allocate pages whole
                    // from here on rather than through a chain of doublings.
                    page.records.reserve_exact(PAGE_RECORDS);
                }
                let record = page.pack(&plain).ok_or(plain)?;
                self.pages.push_back(page);
                record
            }
        };
        let page = self.pages.back_mut().ok_or(plain)?;
        page.records.push(record);
        page.live += 1;
        self.len += 1;
        Ok(())
    }

    fn last_seq(&self) -> Option<Seq> {
        let page = self.pages.back()?;
        let record = page.records.last()?;
        Some(page.base_seq + u64::from(record.seq))
    }

    /// The oldest plain message.
    pub fn first(&self) -> Option<Plain> {
        let page = self.pages.front()?;
        page.records.get(page.head).map(|r| page.unpack(r))
    }

    fn page_of(&self, seq: Seq) -> Option<usize> {
        let after = self.pages.partition_point(|page| page.base_seq <= seq);
        after.checked_sub(1)
    }

    pub fn get(&self, seq: Seq) -> Option<Plain> {
        let page = &self.pages[self.page_of(seq)?];
        let at = page.position(seq)?;
        let record = &page.records[at];
        (!record.dead()).then(|| page.unpack(record))
    }

    pub fn contains(&self, seq: Seq) -> bool {
        self.get(seq).is_some()
    }

    pub fn remove(&mut self, seq: Seq) -> Option<Plain> {
        let index = self.page_of(seq)?;
        let page = &mut self.pages[index];
        let at = page.position(seq)?;
        if page.records[at].dead() {
            return None;
        }
        let plain = page.unpack(&page.records[at]);
        page.records[at].slot = TOMBSTONE;
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.pages.remove(index);
            if self.pages.is_empty() {
                // Drained: give the page table back rather than keep its peak.
                self.pages = VecDeque::new();
            }
        } else {
            page.advance_head();
            page.compact_if_sparse();
        }
        Some(plain)
    }

    /// Every plain message, in seq order.
    pub fn iter(&self) -> impl Iterator<Item = Plain> + '_ {
        self.pages.iter().flat_map(Page::iter)
    }

    /// Bytes of every plain message.
    pub fn bytes(&self) -> u64 {
        self.iter().map(|plain| plain.size).sum()
    }

    /// Takes every message out: how many there were and their bytes.
    pub fn clear(&mut self) -> (usize, u64) {
        let taken = (self.len, self.bytes());
        *self = Backlog::default();
        taken
    }
}

/// Equal when they hold the same messages, however paged.
impl PartialEq for Backlog {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

/// Snapshot form: per page its bases and then five numbers per live
/// record (seq, log index and time as offsets from the bases, slot, size),
/// flat — about 25 bytes of JSON per message rather than a few hundred for
/// a whole message object. Written and read one page at a time, so a deep
/// backlog is not copied whole into a second form on the way.
#[derive(Deserialize)]
struct PageSnapshot {
    seq: Seq,
    log_index: u64,
    at_ms: u64,
    records: Vec<u32>,
}

/// A page as it is written.
struct PageOut<'a>(&'a Page);

/// A page's live records as they are written.
struct RecordsOut<'a>(&'a Page);

impl Serialize for PageOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let page = self.0;
        let mut out = serializer.serialize_struct("PageSnapshot", 4)?;
        out.serialize_field("seq", &page.base_seq)?;
        out.serialize_field("log_index", &page.base_log_index)?;
        out.serialize_field("at_ms", &page.base_at_ms)?;
        out.serialize_field("records", &RecordsOut(page))?;
        out.end()
    }
}

impl Serialize for RecordsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0.records[self.0.head..]
                .iter()
                .filter(|r| !r.dead())
                .flat_map(|r| [r.seq, r.log_index, r.at, r.slot, r.size]),
        )
    }
}

impl Serialize for Backlog {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.pages.iter().map(PageOut))
    }
}

impl<'de> Deserialize<'de> for Backlog {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(PagesIn)
    }
}

/// Reads pages one by one straight into a backlog.
struct PagesIn;

impl<'de> serde::de::Visitor<'de> for PagesIn {
    type Value = Backlog;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of backlog pages")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut pages: A) -> Result<Backlog, A::Error> {
        use serde::de::Error;
        let mut backlog = Backlog::default();
        while let Some(page) = pages.next_element::<PageSnapshot>()? {
            if page.records.len() % 5 != 0 {
                return Err(A::Error::custom("backlog page records are not in fives"));
            }
            for r in page.records.chunks_exact(5) {
                let plain = Plain {
                    seq: page.seq + u64::from(r[0]),
                    body_ref: BodyRef {
                        log_index: page.log_index + u64::from(r[1]),
                        slot: r[3],
                    },
                    size: u64::from(r[4]),
                    published_at_ms: page.at_ms + u64::from(r[2]),
                };
                backlog.push(plain).map_err(|plain| {
                    A::Error::custom(format!("backlog message {} out of order", plain.seq))
                })?;
            }
        }
        Ok(backlog)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(seq: Seq) -> Plain {
        Plain {
            seq,
            body_ref: BodyRef {
                log_index: 10 + seq / 3,
                slot: (seq % 3) as u32 + 1,
            },
            size: seq * 7,
            published_at_ms: 1_000 + seq,
        }
    }

    fn filled(seqs: impl IntoIterator<Item = Seq>) -> Backlog {
        let mut backlog = Backlog::default();
        for seq in seqs {
            backlog.push(plain(seq)).unwrap();
        }
        backlog
    }

    #[test]
    fn records_are_twenty_bytes() {
        assert_eq!(std::mem::size_of::<Record>(), 20);
    }

    #[test]
    fn fifo_drain_frees_pages_and_keeps_order() {
        let n = 3 * PAGE_RECORDS as u64 + 5;
        let mut backlog = filled(1..=n);
        assert_eq!(backlog.pages.len(), 4);
        for seq in 1..=n {
            assert_eq!(backlog.first(), Some(plain(seq)));
            assert_eq!(backlog.remove(seq), Some(plain(seq)));
            assert!(backlog.pages.len() <= 4 - (seq / PAGE_RECORDS as u64) as usize);
        }
        assert!(backlog.is_empty());
        assert_eq!(backlog.pages.capacity(), 0);
    }

    #[test]
    fn removals_in_the_middle_tombstone_then_compact() {
        let mut backlog = filled(1..=1000);
        for seq in (2..=1000).step_by(2) {
            assert_eq!(backlog.remove(seq), Some(plain(seq)));
        }
        assert_eq!(backlog.remove(2), None);
        assert_eq!(backlog.len(), 500);
        assert!(backlog.pages[0].records.len() < 1000, "compacted");
        let odd: Vec<Seq> = backlog.iter().map(|p| p.seq).collect();
        assert_eq!(odd, (1..=1000).step_by(2).collect::<Vec<_>>());
        assert_eq!(backlog.get(501), Some(plain(501)));
        assert_eq!(backlog.get(502), None);
    }

    #[test]
    fn out_of_order_or_unpackable_messages_are_refused() {
        let mut backlog = filled([5]);
        assert!(backlog.push(plain(4)).is_err());
        assert!(backlog.push(plain(5)).is_err());
        let huge = Plain {
            size: u64::from(u32::MAX) + 1,
            ..plain(6)
        };
        assert!(backlog.push(huge).is_err());
        // Offsets that overflow a page's bases start a new page.
        let far = Plain {
            published_at_ms: u64::MAX / 2,
            ..plain(7)
        };
        backlog.push(far).unwrap();
        assert_eq!(backlog.pages.len(), 2);
        assert_eq!(backlog.get(7), Some(far));
    }

    #[test]
    fn snapshots_round_trip() {
        let mut backlog = filled((1..=5000).filter(|s| s % 7 != 0));
        backlog.remove(1);
        backlog.remove(100);
        let json = serde_json::to_string(&backlog).unwrap();
        let restored: Backlog = serde_json::from_str(&json).unwrap();
        assert_eq!(restored, backlog);
        assert!(json.len() < backlog.len() * 32, "{} bytes", json.len());
    }
}
