//! Who leases how many messages in one push dispatch round: the policy,
//! kept pure so it is tested without a queue.
//!
//! Every round costs a Raft commit, so a round is worth running for a
//! consumer only when it can take a good part of its window. Otherwise a
//! consumer that acks a message at a time gets a message per round, and
//! every message costs two commits (its ack and its lease). (An ack that
//! frees as much as a round would wait for refills the window in its own
//! commit instead, `super::settle`.) So a consumer
//! that still holds messages waits, while its room is under a quarter of
//! its prefetch, until more acks free room or [`LINGER`] passes. A consumer
//! holding nothing never waits: nothing stalls, and prefetch 1 keeps
//! RabbitMQ's fair dispatch (the quicker consumer has room again sooner).
//! Measured with `sluice-bench queue --push` (infra/bench/README.md): 2–9 %
//! more msgs/s than leasing whatever room each ack frees.

use std::time::Duration;

/// Longest a consumer with a little room waits for more before it is
/// served anyway (so a client that acks only after receiving more than
/// three quarters of its prefetch is slowed, never stalled).
pub const LINGER: Duration = Duration::from_millis(2);

/// Most messages one consumer leases in one round.
pub const MAX_ROUND_MESSAGES: u64 = 100;

/// A consumer's prefetch window as the state machine counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub prefetch: u64,
    pub unacked: u64,
}

impl Window {
    pub fn room(&self) -> u64 {
        self.prefetch.saturating_sub(self.unacked)
    }

    /// Whether a round for this consumer alone is worth its commit (and
    /// an ack leaving it this window worth refilling it).
    pub fn worth_a_round(&self) -> bool {
        self.unacked == 0 || self.room() >= self.prefetch.div_ceil(4)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Round {
    /// Lease `(consumer index, messages)` for each consumer served.
    Lease(Vec<(usize, u32)>),
    /// Only consumers with a little room could take messages: wait for
    /// more acks, or until they have lingered [`LINGER`].
    Linger,
    /// Nothing ready, or nobody has room.
    Idle,
}

/// Plans a round over `windows` (consumer index and window, in this
/// round's walk order) with `ready` messages: the consumers served share
/// the ready messages (rounded up, each at most its room). `lingered` says
/// the consumers with a little room have waited long enough.
pub fn plan(ready: u64, windows: &[(usize, Window)], lingered: bool) -> Round {
    let with_room: Vec<&(usize, Window)> = windows.iter().filter(|(_, w)| w.room() > 0).collect();
    if ready == 0 || with_room.is_empty() {
        return Round::Idle;
    }
    let served: Vec<&(usize, Window)> = if lingered {
        with_room
    } else {
        with_room
            .into_iter()
            .filter(|(_, w)| w.worth_a_round())
            .collect()
    };
    if served.is_empty() {
        return Round::Linger;
    }
    let share = ready.div_ceil(served.len() as u64);
    Round::Lease(
        served
            .iter()
            .map(|(index, window)| {
                let count = window.room().min(share).min(MAX_ROUND_MESSAGES);
                (*index, u32::try_from(count).unwrap_or(u32::MAX))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(prefetch: u64, unacked: u64) -> Window {
        Window { prefetch, unacked }
    }

    #[test]
    fn ready_messages_are_shared_rounded_up_within_each_room() {
        let windows = [(0, window(10, 0)), (1, window(10, 0)), (2, window(10, 8))];
        // 2 has 2 of 10 free and holds messages: it waits; 0 and 1 share 11.
        assert_eq!(
            plan(11, &windows, false),
            Round::Lease(vec![(0, 6), (1, 6)])
        );
        assert_eq!(
            plan(11, &windows, true),
            Round::Lease(vec![(0, 4), (1, 4), (2, 2)]),
            "after the linger, everyone with room"
        );
        assert_eq!(
            plan(10_000, &[(0, window(1000, 0))], false),
            Round::Lease(vec![(0, 100)]),
            "at most a round's worth"
        );
    }

    #[test]
    fn a_consumer_with_little_room_lingers_unless_it_holds_nothing() {
        let nearly_full = [(3, window(100, 90))];
        assert_eq!(plan(500, &nearly_full, false), Round::Linger);
        assert_eq!(plan(500, &nearly_full, true), Round::Lease(vec![(3, 10)]));
        // A quarter of the window free is worth a round.
        assert_eq!(
            plan(500, &[(3, window(100, 75))], false),
            Round::Lease(vec![(3, 25)])
        );
        // Holding nothing, even a tiny window is served at once.
        assert_eq!(
            plan(500, &[(0, window(3, 0))], false),
            Round::Lease(vec![(0, 3)])
        );
    }

    #[test]
    fn prefetch_one_never_waits() {
        let windows = [(0, window(1, 1)), (1, window(1, 0))];
        assert_eq!(plan(5, &windows, false), Round::Lease(vec![(1, 1)]));
    }

    #[test]
    fn nothing_ready_or_no_room_is_idle() {
        assert_eq!(plan(0, &[(0, window(10, 0))], false), Round::Idle);
        assert_eq!(plan(9, &[(0, window(10, 10))], true), Round::Idle);
        assert_eq!(plan(9, &[], false), Round::Idle);
    }
}
