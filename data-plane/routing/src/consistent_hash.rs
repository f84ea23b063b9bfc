//! The consistent-hash exchange's ring: every message goes to exactly one
//! destination, chosen by hashing its routing key (or one header's value), so all
//! messages with the same key land on the same queue — per-key ordering with many
//! queues and one consumer each (the seed notes' "拆分 Queue + 一致性 Hash").
//!
//! The ring is a pure function of the bindings, identical on every broker and across
//! restarts and versions:
//!
//! - hash: xxHash64 with seed 0 ([`hash_key`]), a published algorithm with
//!   implementations in every common language, never std's per-process random hasher;
//! - a destination with weight `w` owns `w × POINTS_PER_WEIGHT` points; its point
//!   `i` sits at `xxh64(identity ‖ 0x00 ‖ i as u32 little-endian)`, where identity is
//!   `queue:<name>` or `exchange:<name>` (so points depend on what the binding
//!   targets, not on the control plane's binding id, which could be re-derived);
//! - several bindings from one exchange to one destination add their weights;
//!   weights are capped at [`MAX_WEIGHT`] per binding (the control plane's limit);
//! - the hashed bytes are the routing key's, or with `hash_header` that header's
//!   value: a string's UTF-8 bytes, a number's or boolean's compact JSON text (so
//!   `1001` and `"1001"` agree, `1001.0` does not); a missing or `null` header
//!   matches nothing;
//! - a key hashing to `h` belongs to the first point at or after `h`, wrapping
//!   around; two destinations on the same point are ordered by identity.
//!
//! Adding a destination takes over only the arcs before its own points, about
//! `w / total weight` of the keys; every other key stays where it was. Raising a
//! weight adds points and keeps the old ones, so it too only moves keys to the
//! destination that grew.

use std::collections::BTreeMap;

use xxhash_rust::xxh64::{Xxh64, xxh64};

/// Ring points per unit of weight: enough that shares land within a few percent
/// of the weights, few enough that a weight-1000 binding costs well under 2 MB.
pub const POINTS_PER_WEIGHT: u32 = 100;

/// The largest weight a binding counts with.
pub const MAX_WEIGHT: u32 = 1000;

const SEED: u64 = 0;

/// The hash of a routing key (or header value) on the ring.
pub fn hash_key(key: &[u8]) -> u64 {
    xxh64(key, SEED)
}

fn point(identity: &str, index: u32) -> u64 {
    let mut hasher = Xxh64::new(SEED);
    hasher.update(identity.as_bytes());
    hasher.update(&[0]);
    hasher.update(&index.to_le_bytes());
    hasher.digest()
}

/// A hash ring over values of type `T` (the exchange's destinations).
#[derive(Debug, Clone)]
pub struct HashRing<T> {
    /// Sorted by (position, identity), which is what makes ties deterministic.
    points: Vec<(u64, usize)>,
    members: Vec<T>,
}

impl<T: Clone> HashRing<T> {
    /// Builds the ring from `(identity, weight, value)`; members with the same
    /// identity are merged and their weights added. The order of `members` does not
    /// matter.
    pub fn new<'a>(members: impl IntoIterator<Item = (&'a str, u32, T)>) -> Self {
        let mut by_identity: BTreeMap<&str, (u32, T)> = BTreeMap::new();
        for (identity, weight, value) in members {
            let weight = weight.min(MAX_WEIGHT);
            by_identity
                .entry(identity)
                .and_modify(|(total, _)| *total = total.saturating_add(weight))
                .or_insert((weight, value));
        }
        let mut points = Vec::new();
        let mut values = Vec::with_capacity(by_identity.len());
        // Member indexes follow identity order, so sorting by (position, index)
        // breaks ties by identity whatever order the bindings arrived in.
        for (index, (identity, (weight, value))) in by_identity.into_iter().enumerate() {
            let count = weight.saturating_mul(POINTS_PER_WEIGHT);
            points.extend((0..count).map(|i| (point(identity, i), index)));
            values.push(value);
        }
        points.sort_unstable();
        HashRing {
            points,
            members: values,
        }
    }

    /// The member that owns `key`, or `None` when the ring has no points.
    pub fn pick(&self, key: &[u8]) -> Option<&T> {
        let h = hash_key(key);
        let at = self.points.partition_point(|&(position, _)| position < h);
        let (_, member) = self.points.get(at).or_else(|| self.points.first())?;
        self.members.get(*member)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ring(members: &[(&str, u32)]) -> HashRing<String> {
        HashRing::new(members.iter().map(|&(id, w)| (id, w, id.to_string())))
    }

    fn shares(ring: &HashRing<String>, keys: u32) -> BTreeMap<String, u32> {
        let mut counts = BTreeMap::new();
        for k in 0..keys {
            let owner = ring.pick(format!("order-{k}").as_bytes()).unwrap();
            *counts.entry(owner.clone()).or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn hash_is_xxh64_seed_0() {
        // Published test vectors, so other implementations can check themselves.
        assert_eq!(hash_key(b""), 0xef46_db37_51d8_e999);
        assert_eq!(hash_key(b"abc"), 0x44bc_2cf5_ad77_0999);
    }

    #[test]
    fn same_key_same_member() {
        let r = ring(&[("queue:q0", 1), ("queue:q1", 1), ("queue:q2", 1)]);
        let first = r.pick(b"Order_1001").unwrap().clone();
        for _ in 0..100 {
            assert_eq!(r.pick(b"Order_1001").unwrap(), &first);
        }
    }

    #[test]
    fn member_order_does_not_matter() {
        let a = ring(&[("queue:a", 2), ("queue:b", 1), ("queue:c", 3)]);
        let b = ring(&[("queue:c", 3), ("queue:a", 2), ("queue:b", 1)]);
        for k in 0..2000 {
            let key = format!("k{k}");
            assert_eq!(a.pick(key.as_bytes()), b.pick(key.as_bytes()));
        }
    }

    #[test]
    fn empty_and_zero_weight_rings_pick_nothing() {
        assert!(ring(&[]).pick(b"x").is_none());
        let zero = ring(&[("queue:a", 0)]);
        assert!(zero.is_empty());
        assert!(zero.pick(b"x").is_none());
        let one = ring(&[("queue:a", 0), ("queue:b", 1)]);
        assert_eq!(one.pick(b"x").unwrap(), "queue:b");
    }

    #[test]
    fn duplicate_identities_add_weights() {
        let merged = HashRing::new([
            ("queue:a", 1, 'a'),
            ("queue:a", 2, 'a'),
            ("queue:b", 3, 'b'),
        ]);
        let explicit = HashRing::new([("queue:a", 3, 'a'), ("queue:b", 3, 'b')]);
        for k in 0..2000 {
            let key = format!("k{k}");
            assert_eq!(merged.pick(key.as_bytes()), explicit.pick(key.as_bytes()));
        }
    }

    #[test]
    fn huge_weights_are_capped() {
        let r = ring(&[("queue:a", u32::MAX), ("queue:b", MAX_WEIGHT)]);
        assert_eq!(
            r.points.len(),
            2 * (MAX_WEIGHT * POINTS_PER_WEIGHT) as usize
        );
    }

    #[test]
    fn adding_a_member_moves_about_its_share() {
        let before = ring(&[
            ("queue:q0", 1),
            ("queue:q1", 1),
            ("queue:q2", 1),
            ("queue:q3", 1),
        ]);
        let after = ring(&[
            ("queue:q0", 1),
            ("queue:q1", 1),
            ("queue:q2", 1),
            ("queue:q3", 1),
            ("queue:q4", 1),
        ]);
        let keys = 20_000;
        let mut moved = 0;
        for k in 0..keys {
            let key = format!("order-{k}");
            let (b, a) = (before.pick(key.as_bytes()), after.pick(key.as_bytes()));
            if b != a {
                // A key only ever moves to the new member.
                assert_eq!(a.unwrap(), "queue:q4");
                moved += 1;
            }
        }
        let fraction = f64::from(moved) / f64::from(keys);
        assert!((0.15..0.25).contains(&fraction), "moved {fraction}");
    }

    #[test]
    fn raising_a_weight_only_moves_keys_to_that_member() {
        let before = ring(&[("queue:a", 1), ("queue:b", 1)]);
        let after = ring(&[("queue:a", 1), ("queue:b", 2)]);
        for k in 0..5000 {
            let key = format!("k{k}");
            let (b, a) = (before.pick(key.as_bytes()), after.pick(key.as_bytes()));
            if b != a {
                assert_eq!(a.unwrap(), "queue:b");
            }
        }
    }

    #[test]
    fn equal_weights_share_evenly() {
        let r = ring(&[("queue:q0", 1), ("queue:q1", 1), ("queue:q2", 1)]);
        for (member, count) in shares(&r, 30_000) {
            let share = f64::from(count) / 30_000.0;
            assert!((share - 1.0 / 3.0).abs() < 0.06, "{member}: {share}");
        }
    }

    proptest! {
        // Shares are statistical: a weight-1 member owns 100 points, so its share
        // varies by about ±10% (one sigma) between rings. A fixed seed keeps the test
        // from failing on the rare 4-sigma ring while still covering many rings.
        #![proptest_config(ProptestConfig {
            cases: 64,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x51u64),
            ..ProptestConfig::default()
        })]

        /// Over many keys each member's share is close to weight / total weight.
        #[test]
        fn shares_follow_weights(weights in prop::collection::vec(1u32..=10, 2..6), salt in "[a-z]{0,6}") {
            let names: Vec<String> = (0..weights.len()).map(|i| format!("queue:{salt}{i}")).collect();
            let r = HashRing::new(names.iter().zip(&weights).map(|(n, &w)| (n.as_str(), w, n.clone())));
            let total: u32 = weights.iter().sum();
            let keys = 20_000u32;
            let counts = shares(&r, keys);
            for (name, &weight) in names.iter().zip(&weights) {
                let expected = f64::from(weight) / f64::from(total);
                let actual = f64::from(counts.get(name).copied().unwrap_or(0)) / f64::from(keys);
                prop_assert!(
                    (actual - expected).abs() <= 0.35 * expected + 0.005,
                    "{name}: weight {weight}/{total}, share {actual:.3} vs {expected:.3}"
                );
            }
        }
    }
}
