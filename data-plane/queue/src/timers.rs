//! Time-driven changes, run at the start of every command with the
//! command's clock (so a `Tick` is only needed when nothing else happens):
//! expired leases return, due delayed messages become ready, expired ready
//! messages are dead-lettered, dedup entries leave their window, idle pull
//! consumers are detached. Also the
//! administrative commands that reshape the ready queue: purge and settings.

use crate::index::Indexes;
use crate::message::{DeadLetterReason, Location, Seq};
use crate::output::{DeadLetter, Reply};
use crate::settings::QueueSettings;
use crate::state::QueueState;

impl QueueState {
    pub(crate) fn run_timers(&mut self, dead: &mut Vec<DeadLetter>) {
        let now = self.clock_ms;
        while let Some(&(deadline, seq)) = self.idx.leases.first() {
            if deadline > now {
                break;
            }
            self.expire_lease(seq, dead);
        }
        // After the leases: a consumer whose last lease just ran out is idle.
        self.detach_idle_pull_consumers();
        // Delayed messages are never delivered before due; a message whose
        // TTL ran out while delayed expires in the next step.
        while let Some(&(due, seq)) = self.idx.delayed.first() {
            if due > now {
                break;
            }
            self.relocate(seq, |msg| msg.location = Location::Ready);
        }
        self.expire_ready(dead);
        self.expire_dedup();
    }

    /// Dead-letter (reason `expired`) ready messages past the queue TTL or
    /// their own expiry. Unacked messages do not expire: a consumer has them.
    fn expire_ready(&mut self, dead: &mut Vec<DeadLetter>) {
        let now = self.clock_ms;
        if let Some(ttl) = self.settings.message_ttl_ms {
            while let Some(seq) = self.ready_first() {
                let expired = self
                    .get(seq)
                    .is_some_and(|msg| msg.meta.published_at_ms.saturating_add(ttl) <= now);
                if !expired {
                    break;
                }
                self.take_and_dead_letter(seq, DeadLetterReason::Expired, dead);
            }
        }
        while let Some(&(at, seq)) = self.idx.expiring.first() {
            if at > now {
                break;
            }
            self.take_and_dead_letter(seq, DeadLetterReason::Expired, dead);
        }
    }

    fn expire_dedup(&mut self) {
        let window = self.settings.dedup_window_ms.unwrap_or(0);
        while let Some((&seq, id)) = self.idx.dedup_by_seq.first_key_value() {
            let expired = self
                .dedup
                .get(id)
                .is_none_or(|entry| entry.at_ms.saturating_add(window) <= self.clock_ms);
            if !expired {
                break;
            }
            if let Some(id) = self.idx.dedup_by_seq.remove(&seq) {
                self.dedup.remove(&id);
            }
        }
    }

    /// Drop every ready message. Nothing is dead-lettered: purging is a
    /// deliberate act.
    pub(crate) fn purge(&mut self) -> Reply {
        let ready: Vec<Seq> = self.idx.ready.iter().copied().collect();
        for &seq in &ready {
            self.take(seq);
        }
        let (plain, plain_bytes) = self.backlog.clear();
        self.idx.remove_plain(plain_bytes);
        Reply::Purged {
            count: (ready.len() + plain) as u64,
        }
    }

    pub(crate) fn update_settings(
        &mut self,
        settings: QueueSettings,
        dead: &mut Vec<DeadLetter>,
    ) -> Reply {
        let regroup = settings.message_groups != self.settings.message_groups;
        self.settings = settings;
        if regroup {
            // Rare and O(n): dispatch indexes depend on whether groups count.
            self.idx = Indexes::build(self);
        }
        self.drop_head_while_over_limit(dead);
        // A shorter TTL or dedup window applies at once.
        self.expire_ready(dead);
        self.expire_dedup();
        Reply::SettingsUpdated
    }
}
