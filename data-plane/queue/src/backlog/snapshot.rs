//! The backlog's snapshot form: per page its bases and then five numbers
//! per live record (seq, log index and time as offsets from the bases,
//! slot, size), flat — about 25 bytes of JSON per message rather than a
//! few hundred for a whole message object. A spilled page is written as a
//! reference to its page file instead (`file`, with its last seq, live
//! count and bytes), so the snapshot of a deep queue is its page directory
//! and restoring one reads no page. Written and read one page at a time,
//! so a deep backlog is not copied whole into a second form on the way.
//!
//! Snapshots without references (every one made before spilling existed)
//! restore as before, every page in memory until the directory is attached
//! and spills the surplus.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::page::{Bases, Page};
use super::{Backlog, Plain, Slot, Spilled};
use crate::message::{BodyRef, Seq};

#[derive(Deserialize)]
struct PageSnapshot {
    seq: Seq,
    log_index: u64,
    at_ms: u64,
    #[serde(default)]
    records: Vec<u32>,
    /// A spilled page: its file's id (then `records` is empty).
    #[serde(default)]
    file: Option<u64>,
    #[serde(default)]
    last: Seq,
    #[serde(default)]
    live: usize,
    #[serde(default)]
    bytes: u64,
}

/// A page as it is written.
struct PageOut<'a>(&'a Slot);

/// A page's live records as they are written.
struct RecordsOut<'a>(&'a Page);

impl Serialize for PageOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        match self.0 {
            Slot::Resident(page) => {
                let mut out = serializer.serialize_struct("PageSnapshot", 4)?;
                out.serialize_field("seq", &page.bases.seq)?;
                out.serialize_field("log_index", &page.bases.log_index)?;
                out.serialize_field("at_ms", &page.bases.at_ms)?;
                out.serialize_field("records", &RecordsOut(page))?;
                out.end()
            }
            Slot::Spilled(spilled) => {
                let mut out = serializer.serialize_struct("PageSnapshot", 7)?;
                out.serialize_field("seq", &spilled.bases.seq)?;
                out.serialize_field("log_index", &spilled.bases.log_index)?;
                out.serialize_field("at_ms", &spilled.bases.at_ms)?;
                out.serialize_field("file", &spilled.id)?;
                out.serialize_field("last", &spilled.last_seq)?;
                out.serialize_field("live", &spilled.live)?;
                out.serialize_field("bytes", &spilled.bytes)?;
                out.end()
            }
        }
    }
}

impl Serialize for RecordsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.0
                .live_records()
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
            let bases = Bases {
                seq: page.seq,
                log_index: page.log_index,
                at_ms: page.at_ms,
            };
            if let Some(id) = page.file {
                let ordered = backlog.last_seq().is_none_or(|last| last < bases.seq)
                    && bases.seq <= page.last
                    && page.live > 0;
                if !ordered {
                    return Err(A::Error::custom(format!(
                        "backlog page file {id} out of order or empty"
                    )));
                }
                backlog.pages.push_back(Slot::Spilled(Spilled {
                    id,
                    bases,
                    last_seq: page.last,
                    live: page.live,
                    bytes: page.bytes,
                }));
                backlog.len += page.live;
                backlog.bytes += page.bytes;
                continue;
            }
            if page.records.len() % 5 != 0 {
                return Err(A::Error::custom("backlog page records are not in fives"));
            }
            for r in page.records.chunks_exact(5) {
                let plain = Plain {
                    seq: bases.seq + u64::from(r[0]),
                    body_ref: BodyRef {
                        log_index: bases.log_index + u64::from(r[1]),
                        slot: r[3],
                    },
                    size: u64::from(r[4]),
                    published_at_ms: bases.at_ms + u64::from(r[2]),
                };
                backlog.push(plain).map_err(|plain| {
                    A::Error::custom(format!("backlog message {} out of order", plain.seq))
                })?;
            }
        }
        Ok(backlog)
    }
}
