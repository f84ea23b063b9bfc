//! The topic exchange's matcher: a trie of binding keys, so that routing a message
//! costs in proportion to the words of its routing key and the bindings it can
//! match, not to the number of bindings on the exchange.
//!
//! Words are separated by `.`. In a binding key `*` matches exactly one word and `#`
//! zero or more words; any other word (including the empty word, as in `a..b`)
//! matches itself only. As in RabbitMQ, the empty key has zero words, so binding
//! key `#` matches routing key `""` and `*` does not, while `a.` is two words
//! (`a` and the empty word).

use std::collections::HashMap;

type NodeId = usize;
const ROOT: NodeId = 0;

/// Binding keys → values (destinations), matched against routing keys.
#[derive(Debug, Clone)]
pub struct TopicTrie<T> {
    nodes: Vec<Node<T>>,
    bindings: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    words: HashMap<Box<str>, NodeId>,
    star: Option<NodeId>,
    hash: Option<NodeId>,
    /// Values of the binding keys that end at this node.
    bound: Vec<T>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            words: HashMap::new(),
            star: None,
            hash: None,
            bound: Vec::new(),
        }
    }
}

/// Splits a routing or binding key into words (see the module docs for `""`).
pub fn words(key: &str) -> impl Iterator<Item = &str> {
    let none = key.is_empty();
    key.split('.').filter(move |_| !none)
}

impl<T> Default for TopicTrie<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TopicTrie<T> {
    pub fn new() -> Self {
        TopicTrie {
            nodes: vec![Node::new()],
            bindings: 0,
        }
    }

    /// Number of binding keys inserted.
    pub fn len(&self) -> usize {
        self.bindings
    }

    pub fn is_empty(&self) -> bool {
        self.bindings == 0
    }

    /// Adds a binding key. The same key may be inserted many times.
    pub fn insert(&mut self, binding_key: &str, value: T) {
        let mut node = ROOT;
        let mut previous_was_hash = false;
        for word in words(binding_key) {
            let is_hash = word == "#";
            // `#.#` matches exactly what `#` matches; collapsing keeps the trie small
            // and keeps a run of `#` from multiplying the states a match explores.
            if is_hash && previous_was_hash {
                continue;
            }
            previous_was_hash = is_hash;
            node = self.child(node, word);
        }
        self.nodes[node].bound.push(value);
        self.bindings += 1;
    }

    fn child(&mut self, parent: NodeId, word: &str) -> NodeId {
        let next = self.nodes.len();
        let node = &mut self.nodes[parent];
        let slot = match word {
            "*" => &mut node.star,
            "#" => &mut node.hash,
            _ => {
                if let Some(&existing) = node.words.get(word) {
                    return existing;
                }
                node.words.insert(word.into(), next);
                self.nodes.push(Node::new());
                return next;
            }
        };
        if let Some(existing) = *slot {
            return existing;
        }
        *slot = Some(next);
        self.nodes.push(Node::new());
        next
    }

    /// Calls `matched` once for every inserted value whose binding key matches
    /// `routing_key` (a value inserted under several matching keys is reported once
    /// per key).
    pub fn for_each_match<'a>(&'a self, routing_key: &str, mut matched: impl FnMut(&'a T)) {
        let words: Vec<&str> = words(routing_key).collect();
        let n = words.len();
        // A state is (node, number of words consumed). Every node but a `#` node has a
        // single parent edge that consumes a fixed number of words, so only `#` nodes
        // can be reached in the same state twice; `hash_from` remembers the earliest
        // position each `#` node was expanded from, since that expansion already
        // covers every later one. Each state is thus visited at most once, which
        // bounds a match by (nodes reached) × (words + 1) even for keys like `#.a.#.a.#`.
        let mut hash_from: HashMap<NodeId, usize> = HashMap::new();
        let mut stack: Vec<(NodeId, usize)> = vec![(ROOT, 0)];
        while let Some((id, pos)) = stack.pop() {
            let node = &self.nodes[id];
            if pos == n {
                node.bound.iter().for_each(&mut matched);
            } else {
                if let Some(&next) = node.words.get(words[pos]) {
                    stack.push((next, pos + 1));
                }
                if let Some(next) = node.star {
                    stack.push((next, pos + 1));
                }
            }
            if let Some(hash) = node.hash {
                let expanded_from = hash_from.get(&hash).copied().unwrap_or(n + 1);
                if pos < expanded_from {
                    hash_from.insert(hash, pos);
                    // `#` swallows words[pos..end] for every end not yet covered.
                    stack.extend((pos..expanded_from).map(|end| (hash, end)));
                }
            }
        }
    }

    /// Every value whose binding key matches, in no particular order, with
    /// repetitions as described for [`TopicTrie::for_each_match`].
    pub fn matches(&self, routing_key: &str) -> Vec<&T> {
        let mut out = Vec::new();
        self.for_each_match(routing_key, |v| out.push(v));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The specification, written as directly as possible: exponential in the
    /// worst case, which is fine for the small keys the tests use.
    fn brute_force(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => {
                brute_force(rest, key) || (!key.is_empty() && brute_force(pattern, &key[1..]))
            }
            Some((&"*", rest)) => !key.is_empty() && brute_force(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && brute_force(rest, &key[1..]),
        }
    }

    fn matching(trie: &TopicTrie<usize>, key: &str) -> Vec<usize> {
        let mut found: Vec<usize> = trie.matches(key).into_iter().copied().collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    fn trie_of(patterns: &[&str]) -> TopicTrie<usize> {
        let mut trie = TopicTrie::new();
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(p, i);
        }
        trie
    }

    #[test]
    fn seed_scenario_usa_news() {
        let trie = trie_of(&["usa.#", "#.news", "usa.*.x"]);
        assert_eq!(matching(&trie, "usa.news"), [0, 1]);
        assert_eq!(matching(&trie, "usa.weather.x"), [0, 2]);
        assert_eq!(matching(&trie, "europe.news"), [1]);
        assert_eq!(matching(&trie, "europe.weather"), Vec::<usize>::new());
    }

    #[test]
    fn star_is_exactly_one_word() {
        let trie = trie_of(&["*", "a.*", "*.*"]);
        assert_eq!(matching(&trie, "a"), [0]);
        assert_eq!(matching(&trie, "a.b"), [1, 2]);
        assert_eq!(matching(&trie, "a.b.c"), Vec::<usize>::new());
        assert_eq!(matching(&trie, ""), Vec::<usize>::new());
    }

    #[test]
    fn hash_is_zero_or_more_words() {
        let trie = trie_of(&["#", "a.#", "#.z", "a.#.z", "a.#.#.z"]);
        assert_eq!(matching(&trie, ""), [0]);
        assert_eq!(matching(&trie, "a"), [0, 1]);
        assert_eq!(matching(&trie, "a.z"), [0, 1, 2, 3, 4]);
        assert_eq!(matching(&trie, "a.b.c.z"), [0, 1, 2, 3, 4]);
        assert_eq!(matching(&trie, "z"), [0, 2]);
    }

    #[test]
    fn empty_words_are_words() {
        let trie = trie_of(&["a..b", "a.*.b", "", "a.", "*"]);
        assert_eq!(matching(&trie, "a..b"), [0, 1]);
        assert_eq!(matching(&trie, ""), [2]);
        assert_eq!(matching(&trie, "a."), [3]);
        assert_eq!(matching(&trie, "."), Vec::<usize>::new());
    }

    #[test]
    fn literal_is_exact_and_wildcards_only_as_whole_words() {
        let trie = trie_of(&["usa.news", "usa#", "a*"]);
        assert_eq!(matching(&trie, "usa.news"), [0]);
        assert_eq!(matching(&trie, "usa.news.x"), Vec::<usize>::new());
        assert_eq!(matching(&trie, "usa#"), [1]);
        assert_eq!(matching(&trie, "ab"), Vec::<usize>::new());
    }

    #[test]
    fn same_key_twice_reports_both_values() {
        let trie = trie_of(&["a.*", "a.*"]);
        assert_eq!(matching(&trie, "a.b"), [0, 1]);
        assert_eq!(trie.len(), 2);
    }

    #[test]
    fn many_hashes_on_a_long_key_stay_cheap() {
        // Without the `#` memo this explores a number of paths exponential in the
        // number of `#`s; with it, the match is instant.
        let pattern = (0..80)
            .map(|i| if i % 2 == 0 { "#" } else { "a" })
            .collect::<Vec<_>>()
            .join(".");
        let key = vec!["a"; 120].join(".");
        let mut trie = TopicTrie::new();
        trie.insert(&pattern, ());
        assert_eq!(trie.matches(&key).len(), 1);
        assert_eq!(trie.matches(&format!("{key}.b")).len(), 0);
    }

    fn word() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            3 => Just("#"),
            3 => Just("*"),
            2 => Just(""),
            4 => Just("a"),
            4 => Just("b"),
            1 => Just("c"),
        ]
    }

    fn key_word() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(""),
            Just("a"),
            Just("b"),
            Just("c"),
            Just("*"),
            Just("#")
        ]
    }

    fn join(words: &[&str]) -> String {
        words.join(".")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The trie reports exactly the binding keys the brute-force matcher accepts.
        /// Keys include empty words and literal `*`/`#` in routing keys; patterns
        /// include `#` at the start, middle and end, and runs of `#`.
        #[test]
        fn trie_agrees_with_brute_force(
            patterns in prop::collection::vec(prop::collection::vec(word(), 0..6), 1..12),
            keys in prop::collection::vec(prop::collection::vec(key_word(), 0..7), 1..12),
        ) {
            let patterns: Vec<String> = patterns.iter().map(|p| join(p)).collect();
            let mut trie = TopicTrie::new();
            for (i, p) in patterns.iter().enumerate() {
                trie.insert(p, i);
            }
            for key in keys {
                let key = join(&key);
                let key_words: Vec<&str> = words(&key).collect();
                let expected: Vec<usize> = patterns
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| brute_force(&words(p).collect::<Vec<_>>(), &key_words))
                    .map(|(i, _)| i)
                    .collect();
                // Each matching binding key is reported exactly once.
                let mut found: Vec<usize> = trie.matches(&key).into_iter().copied().collect();
                found.sort_unstable();
                prop_assert_eq!(found, expected, "key {:?} patterns {:?}", key, patterns);
            }
        }
    }
}
