//! Declare rates per thousand: whether declaring slows down as a tenant (and
//! the broker, and the topology feed) holds more queues. Pure arithmetic on
//! the completion times of the declares, so it is tested without a server.

use std::time::Duration;

use crate::report::round3;

/// Declares per rate window.
pub const WINDOW: usize = 1_000;

/// The rate of each consecutive `window` of completions: `completions` are
/// the offsets from the start of the phase at which each declare answered,
/// in any order. Window `i` spans from the completion that ended window
/// `i - 1` (the start of the phase for the first) to its own last one, so
/// the windows tile the phase and a slow window is not hidden by concurrency
/// within the others. The last window may be short; a window that took no
/// measurable time has no rate (`None`).
pub fn per_window(completions: &[Duration], window: usize) -> Vec<Option<f64>> {
    let mut sorted = completions.to_vec();
    sorted.sort_unstable();
    let window = window.max(1);
    let mut rates = Vec::with_capacity(sorted.len().div_ceil(window));
    let mut previous_end = Duration::ZERO;
    for chunk in sorted.chunks(window) {
        let end = chunk[chunk.len() - 1];
        let secs = end.saturating_sub(previous_end).as_secs_f64();
        rates.push((secs > 0.0).then(|| round3(chunk.len() as f64 / secs)));
        previous_end = end;
    }
    rates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn windows_tile_the_phase_from_its_start() {
        // Windows of 2: [0, 100 ms] holds 2, (100, 300] holds 2, (300, 350] holds 1.
        let rates = per_window(&ms(&[50, 100, 200, 300, 350]), 2);
        assert_eq!(rates, vec![Some(20.0), Some(10.0), Some(20.0)]);
    }

    #[test]
    fn completions_may_come_in_any_order() {
        let rates = per_window(&ms(&[300, 100, 350, 50, 200]), 2);
        assert_eq!(rates, vec![Some(20.0), Some(10.0), Some(20.0)]);
    }

    #[test]
    fn a_slow_down_with_size_shows_in_the_last_window() {
        // 1,000 declares at 1 ms each, then 1,000 at 4 ms each.
        let mut completions: Vec<Duration> = (1..=1000).map(Duration::from_millis).collect();
        completions.extend((1..=1000).map(|i| Duration::from_millis(1000 + 4 * i)));
        let rates = per_window(&completions, WINDOW);
        assert_eq!(rates, vec![Some(1000.0), Some(250.0)]);
    }

    #[test]
    fn empty_and_instant_windows() {
        assert!(per_window(&[], WINDOW).is_empty());
        assert_eq!(per_window(&ms(&[0, 0]), 2), vec![None]);
        // Fewer declares than a window: one short window.
        assert_eq!(per_window(&ms(&[10, 20, 40]), WINDOW), vec![Some(75.0)]);
    }
}
