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
//! Records sit in seq-ordered pages of fixed-size records ([`page`]),
//! each holding its fields as 32-bit offsets from its page's bases. A plain
//! message only ever leaves from the front (delivery, TTL, drop-head,
//! redrive and purge all take the oldest ready message first, and among
//! plain messages that is the lowest seq), so a FIFO drain moves a head
//! index and frees whole pages: nothing is shifted. A removal elsewhere
//! leaves a tombstone, and a page whose unconsumed part is half tombstones
//! is compacted.
//!
//! A deep backlog spills (stage 2 of issue 21, [`spill`]): once attached to
//! a page directory, the backlog keeps at most `memory_pages` pages in
//! memory — always the front page, the one after it (read ahead, so the
//! drain never waits for a read) and the back page that takes publishes —
//! and writes the others, nearest the back first, to immutable page files.
//! What stays in memory per spilled page is its [`Spilled`] summary (about
//! 60 bytes per 4,096 messages). Where pages live is this replica's
//! business: it changes no answer, so the state machine stays a
//! deterministic function of the log.

mod page;
mod snapshot;
mod spill;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use crate::message::{BodyRef, Location, Message, MessageMeta, Seq};
use page::{Bases, PAGE_RECORDS, Page, TOMBSTONE};
use spill::SpillStore;
pub use spill::{SpillConfig, SpillError};

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

/// A page on disk: what the backlog needs of it without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spilled {
    pub id: u64,
    pub bases: Bases,
    pub last_seq: Seq,
    pub live: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Resident(Page),
    Spilled(Spilled),
}

impl Slot {
    fn base_seq(&self) -> Seq {
        match self {
            Slot::Resident(page) => page.bases.seq,
            Slot::Spilled(spilled) => spilled.bases.seq,
        }
    }

    fn last_seq(&self) -> Option<Seq> {
        match self {
            Slot::Resident(page) => page.last_seq(),
            Slot::Spilled(spilled) => Some(spilled.last_seq),
        }
    }
}

/// Where this replica keeps the pages it does not hold in memory.
#[derive(Debug, Clone, Default)]
enum Spill {
    /// Every page in memory (tests, tools, a replica without a directory).
    #[default]
    Off,
    /// A directory to use once [`Backlog::attach`] opens it.
    Configured(SpillConfig),
    On(Attached),
}

#[derive(Debug, Clone)]
struct Attached {
    config: SpillConfig,
    store: Arc<SpillStore>,
    /// Files of pages read back into memory (or dropped): deleted once a
    /// snapshot that no longer names them is durable.
    retired: Vec<u64>,
}

/// The plain ready messages of a queue, in seq order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backlog {
    pages: VecDeque<Slot>,
    len: usize,
    bytes: u64,
    /// Pages held in memory.
    resident: usize,
    spill: Spill,
}

impl Backlog {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of every plain message.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Pages held in memory, and pages in all.
    pub fn pages(&self) -> (usize, usize) {
        (self.resident, self.pages.len())
    }

    /// Appends a plain message; it must come after every message held.
    /// Gives it back when it cannot be packed or would break the order, so
    /// the caller keeps it in the rich store instead.
    pub fn push(&mut self, plain: Plain) -> Result<(), Plain> {
        if !plain.packable() || self.last_seq().is_some_and(|last| last >= plain.seq) {
            return Err(plain);
        }
        let fits = match self.pages.back() {
            // A spilled back page (after a restore) is never appended to:
            // its file must not change.
            Some(Slot::Resident(page)) if !page.full() => page.pack(&plain),
            _ => None,
        };
        match (fits, self.pages.back_mut()) {
            (Some(record), Some(Slot::Resident(page))) => page.append(record),
            _ => {
                let mut page = Page::new(&plain);
                if !self.pages.is_empty() {
                    // A second page means a deep queue: allocate pages whole
                    // from here on rather than through a chain of doublings.
                    page.records.reserve_exact(PAGE_RECORDS);
                }
                let record = page.pack(&plain).ok_or(plain)?;
                page.append(record);
                self.pages.push_back(Slot::Resident(page));
                self.resident += 1;
                self.enforce_budget();
            }
        }
        self.len += 1;
        self.bytes += plain.size;
        Ok(())
    }

    fn last_seq(&self) -> Option<Seq> {
        self.pages.back()?.last_seq()
    }

    /// The oldest plain message.
    pub fn first(&self) -> Option<Plain> {
        match self.pages.front()? {
            Slot::Resident(page) => page.first(),
            // Only when reading it back failed (the fault stops the group)
            // or before the directory is attached.
            Slot::Spilled(spilled) => self.read(spilled)?.first(),
        }
    }

    fn page_of(&self, seq: Seq) -> Option<usize> {
        let after = self.pages.partition_point(|slot| slot.base_seq() <= seq);
        let index = after.checked_sub(1)?;
        let last = self.pages[index].last_seq()?;
        (seq <= last).then_some(index)
    }

    pub fn get(&self, seq: Seq) -> Option<Plain> {
        match &self.pages[self.page_of(seq)?] {
            Slot::Resident(page) => page.get(seq),
            Slot::Spilled(spilled) => self.read(spilled)?.get(seq),
        }
    }

    pub fn contains(&self, seq: Seq) -> bool {
        self.get(seq).is_some()
    }

    pub fn remove(&mut self, seq: Seq) -> Option<Plain> {
        let index = self.page_of(seq)?;
        if !self.load(index) {
            return None;
        }
        let Slot::Resident(page) = &mut self.pages[index] else {
            return None;
        };
        let Some(plain) = page.remove(seq) else {
            // Not here after all; a page read back for it still counts.
            self.enforce_budget();
            return None;
        };
        let emptied = page.live == 0;
        self.len -= 1;
        self.bytes -= plain.size;
        if emptied {
            self.pages.remove(index);
            self.resident -= 1;
            if self.pages.is_empty() {
                // Drained: give the page table back rather than keep its peak.
                self.pages = VecDeque::new();
            }
        }
        if emptied || index > 1 {
            // The front moved on, or a page far back came into memory.
            self.read_ahead();
        }
        Some(plain)
    }

    /// Every plain message, in seq order (spilled pages are read one at a
    /// time, never cached: for snapshots of old form, checks and tests).
    pub fn iter(&self) -> impl Iterator<Item = Plain> + '_ {
        self.pages
            .iter()
            .flat_map(move |slot| -> Box<dyn Iterator<Item = Plain> + '_> {
                match slot {
                    Slot::Resident(page) => Box::new(page.iter()),
                    Slot::Spilled(spilled) => match self.read(spilled) {
                        Some(page) => Box::new(page.iter().collect::<Vec<_>>().into_iter()),
                        None => Box::new(std::iter::empty()),
                    },
                }
            })
    }

    /// Takes every message out: how many there were and their bytes.
    pub fn clear(&mut self) -> (usize, u64) {
        let taken = (self.len, self.bytes);
        let spilled: Vec<u64> = self.spilled_ids().collect();
        if let Spill::On(attached) = &mut self.spill {
            attached.retired.extend(spilled);
        }
        self.pages = VecDeque::new();
        self.len = 0;
        self.bytes = 0;
        self.resident = 0;
        taken
    }

    fn spilled_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages.iter().filter_map(|slot| match slot {
            Slot::Spilled(spilled) => Some(spilled.id),
            Slot::Resident(_) => None,
        })
    }

    /// Reads a spilled page without keeping it (from `&self`); a failure is
    /// recorded as the store's fault.
    fn read(&self, spilled: &Spilled) -> Option<Page> {
        let Spill::On(attached) = &self.spill else {
            return None;
        };
        match attached.store.read(spilled.id) {
            Ok(page) => Some(page),
            Err(err) => {
                attached.store.fail(&err);
                None
            }
        }
    }

    /// Brings the page at `index` into memory; false when it could not be
    /// read (the fault is recorded; the group stops).
    fn load(&mut self, index: usize) -> bool {
        let Some(Slot::Spilled(spilled)) = self.pages.get(index) else {
            return true;
        };
        let spilled = *spilled;
        let Spill::On(attached) = &mut self.spill else {
            return false;
        };
        let page = attached.store.read(spilled.id).and_then(|page| {
            let matches = page.bases == spilled.bases
                && page.live == spilled.live
                && page.bytes == spilled.bytes
                && page.last_seq() == Some(spilled.last_seq);
            matches.then_some(page).ok_or(SpillError::Corrupt {
                path: format!("page {}", spilled.id).into(),
                why: "not the page the backlog spilled",
            })
        });
        match page {
            Ok(page) => {
                self.pages[index] = Slot::Resident(page);
                self.resident += 1;
                attached.retired.push(spilled.id);
                true
            }
            Err(err) => {
                attached.store.fail(&err);
                false
            }
        }
    }

    /// Keeps the front page and the next one in memory and asks the kernel
    /// for the one after, so the consumer never waits for a page.
    fn read_ahead(&mut self) {
        let Spill::On(attached) = &self.spill else {
            return;
        };
        if let Some(Slot::Spilled(spilled)) = self.pages.get(2) {
            attached.store.read_ahead(spilled.id);
        }
        self.load(0);
        self.load(1);
        self.enforce_budget();
    }

    /// Spills pages while more than the budget are in memory: the page
    /// nearest the back that is neither the back (publishes go there) nor
    /// the front two (the consumer reads there).
    fn enforce_budget(&mut self) {
        let Spill::On(attached) = &mut self.spill else {
            return;
        };
        let budget = attached.config.memory_pages.max(MIN_MEMORY_PAGES);
        while self.resident > budget {
            let victim = (2..self.pages.len().saturating_sub(1))
                .rev()
                .find(|&i| matches!(self.pages[i], Slot::Resident(_)));
            let Some(index) = victim else { return };
            let Slot::Resident(page) = &self.pages[index] else {
                return;
            };
            match attached.store.write(page) {
                Ok(id) => {
                    self.pages[index] = Slot::Spilled(Spilled {
                        id,
                        bases: page.bases,
                        last_seq: page.last_seq().unwrap_or(page.bases.seq),
                        live: page.live,
                        bytes: page.bytes,
                    });
                    self.resident -= 1;
                }
                // The page stays in memory (over budget, still correct);
                // the next new page tries again.
                Err(_) => return,
            }
        }
    }

    /// Sets the page directory this backlog will spill to once attached.
    pub fn configure(&mut self, config: SpillConfig) {
        self.spill = Spill::Configured(config);
    }

    /// The page directory settings, configured or attached.
    pub fn config(&self) -> Option<SpillConfig> {
        match &self.spill {
            Spill::Off => None,
            Spill::Configured(config) => Some(config.clone()),
            Spill::On(attached) => Some(attached.config.clone()),
        }
    }

    /// Opens the configured page directory, deleting the files this backlog
    /// does not name, and from then on spills and reads back.
    pub fn attach(&mut self) -> Result<(), SpillError> {
        let Some(config) = self.config() else {
            return Ok(());
        };
        let keep: BTreeSet<u64> = self.spilled_ids().collect();
        let store = SpillStore::open(&config.dir, &keep)?;
        self.spill = Spill::On(Attached {
            config,
            store: Arc::new(store),
            retired: Vec::new(),
        });
        self.read_ahead();
        Ok(())
    }

    /// A page that could not be read back: the state is wrong from there.
    pub fn fault(&self) -> Option<String> {
        match &self.spill {
            Spill::On(attached) => attached.store.fault(),
            // A restored state names page files no directory serves yet.
            Spill::Off | Spill::Configured(_) if self.pages.len() > self.resident => self
                .spilled_ids()
                .next()
                .map(|id| SpillError::Detached { id }.to_string()),
            Spill::Off | Spill::Configured(_) => None,
        }
    }

    /// Makes every page file durable before a snapshot names them. The
    /// answer is a mark in the retired files for [`Backlog::snapshot_saved`]:
    /// those retired before it are named by no snapshot once the one
    /// serialized after this call is durable.
    pub fn sync(&self) -> Result<u64, SpillError> {
        match &self.spill {
            Spill::On(attached) => {
                attached.store.sync()?;
                Ok(attached.retired.len() as u64)
            }
            Spill::Off | Spill::Configured(_) => Ok(0),
        }
    }

    /// The snapshot made after `mark` is durable: files retired before it
    /// are named by nothing any more.
    pub fn snapshot_saved(&mut self, mark: u64) {
        if let Spill::On(attached) = &mut self.spill {
            let upto = usize::try_from(mark)
                .unwrap_or(usize::MAX)
                .min(attached.retired.len());
            attached.store.delete(attached.retired.drain(..upto));
        }
    }
}

/// The front page, the one read ahead and the back page.
const MIN_MEMORY_PAGES: usize = 3;

/// Equal when they hold the same messages, however paged.
impl PartialEq for Backlog {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests;
