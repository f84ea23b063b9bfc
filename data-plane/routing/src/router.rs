//! Routing one publish through a tenant's compiled exchanges to a set of queues.
//!
//! The walk follows RabbitMQ's `rabbit_exchange:route`: starting at the exchange the
//! message was published to, each exchange reached contributes the destinations its
//! bindings match; destination queues are collected and destination exchanges are
//! walked in turn, each at most once (so cycles end and a queue reached by several
//! paths gets one copy). An exchange whose bindings match nothing passes the message
//! to its alternate exchange, which is walked like any other destination.

use std::collections::HashMap;
use std::sync::Arc;

use crate::build::TopologyIssue;
use crate::consistent_hash::HashRing;
use crate::headers::headers_match;
use crate::topic::TopicTrie;
use crate::topology::{HeaderMatch, Headers};

/// One tenant's exchanges, bindings and queues, compiled for routing.
///
/// Immutable: build a new one when the topology version changes and swap it in
/// (for example behind an `Arc`); routing never locks and never allocates more
/// than the result and a few small scratch vectors.
#[derive(Debug, Clone)]
pub struct Router {
    pub(crate) exchanges: Vec<CompiledExchange>,
    pub(crate) exchange_ids: HashMap<String, usize>,
    /// Sorted by name; a queue's index is its position here.
    pub(crate) queue_names: Vec<Arc<str>>,
    pub(crate) queue_ids: HashMap<Arc<str>, usize>,
    pub(crate) issues: Vec<TopologyIssue>,
}

/// Where a publish went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// Every queue that gets a copy, each once, sorted by name.
    pub queues: Vec<Arc<str>>,
    /// No queue gets the message (`queues` is empty): a `mandatory` publish is
    /// reported back to the publisher.
    pub unroutable: bool,
    /// Some exchange on the way matched no binding and handed the message to its
    /// alternate exchange.
    pub alternate_used: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("exchange `{0}` does not exist")]
    ExchangeNotFound(String),
    /// Internal exchanges only receive messages from other exchanges.
    #[error("exchange `{0}` is internal and cannot be published to directly")]
    InternalExchange(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Destination {
    Queue(usize),
    Exchange(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledExchange {
    pub(crate) internal: bool,
    pub(crate) alternate: Option<usize>,
    pub(crate) matcher: Matcher,
}

#[derive(Debug, Clone)]
pub(crate) struct HeadersBinding {
    pub(crate) headers: Headers,
    pub(crate) header_match: HeaderMatch,
    pub(crate) destination: Destination,
}

#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// The default exchange: the routing key names the queue.
    Default,
    Direct(HashMap<String, Vec<Destination>>),
    Fanout(Vec<Destination>),
    Topic(TopicTrie<Destination>),
    Headers(Vec<HeadersBinding>),
    ConsistentHash {
        ring: HashRing<Destination>,
        hash_header: Option<String>,
    },
}

impl Default for Router {
    /// A tenant with no queues and no exchanges but the default one.
    fn default() -> Self {
        Router::build([], [], std::iter::empty::<&str>())
    }
}

impl Router {
    /// Routes a message published to `exchange`.
    ///
    /// Errors only when the publish itself is refused; a message that reaches no
    /// queue is a successful [`Route`] with `unroutable` set.
    pub fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &Headers,
    ) -> Result<Route, RouteError> {
        let start = *self
            .exchange_ids
            .get(exchange)
            .ok_or_else(|| RouteError::ExchangeNotFound(exchange.to_string()))?;
        if self.exchanges.get(start).is_some_and(|x| x.internal) {
            return Err(RouteError::InternalExchange(exchange.to_string()));
        }

        let mut seen = Seen::new(self.exchanges.len());
        seen.insert(start);
        let mut pending = vec![start];
        let mut queues: Vec<usize> = Vec::new();
        let mut alternate_used = false;
        while let Some(current) = pending.pop() {
            let Some(x) = self.exchanges.get(current) else {
                continue;
            };
            let mut matched = false;
            self.matches(&x.matcher, routing_key, headers, |destination| {
                matched = true;
                match destination {
                    Destination::Queue(q) => queues.push(q),
                    Destination::Exchange(next) => {
                        if seen.insert(next) {
                            pending.push(next);
                        }
                    }
                }
            });
            // As in RabbitMQ, the alternate exchange takes over only when this
            // exchange's own bindings matched nothing; a match on a downstream
            // exchange that then routes nowhere is that exchange's business (its own
            // alternate exchange applies).
            if !matched && let Some(alternate) = x.alternate {
                alternate_used = true;
                if seen.insert(alternate) {
                    pending.push(alternate);
                }
            }
        }

        queues.sort_unstable();
        queues.dedup();
        let queues: Vec<Arc<str>> = queues
            .into_iter()
            .filter_map(|q| self.queue_names.get(q).cloned())
            .collect();
        Ok(Route {
            unroutable: queues.is_empty(),
            queues,
            alternate_used,
        })
    }

    /// What was left out when this router was built (dangling references and the
    /// like), for the broker to log.
    pub fn issues(&self) -> &[TopologyIssue] {
        &self.issues
    }

    /// Does an exchange of this name exist (the default exchange always does)?
    pub fn has_exchange(&self, name: &str) -> bool {
        self.exchange_ids.contains_key(name)
    }

    /// Does a queue of this name exist?
    pub fn has_queue(&self, name: &str) -> bool {
        self.queue_ids.contains_key(name)
    }

    fn matches(
        &self,
        matcher: &Matcher,
        routing_key: &str,
        headers: &Headers,
        mut matched: impl FnMut(Destination),
    ) {
        match matcher {
            Matcher::Default => {
                if let Some(&q) = self.queue_ids.get(routing_key) {
                    matched(Destination::Queue(q));
                }
            }
            Matcher::Direct(by_key) => by_key
                .get(routing_key)
                .into_iter()
                .flatten()
                .for_each(|&d| matched(d)),
            Matcher::Fanout(all) => all.iter().for_each(|&d| matched(d)),
            Matcher::Topic(trie) => trie.for_each_match(routing_key, |&d| matched(d)),
            Matcher::Headers(bindings) => bindings
                .iter()
                .filter(|b| headers_match(&b.headers, b.header_match, headers))
                .for_each(|b| matched(b.destination)),
            Matcher::ConsistentHash { ring, hash_header } => {
                let key = match hash_header {
                    None => Some(HashInput::Borrowed(routing_key.as_bytes())),
                    Some(name) => headers.get(name).and_then(HashInput::from_header),
                };
                if let Some(&d) = key.and_then(|key| ring.pick(key.as_bytes())) {
                    matched(d);
                }
            }
        }
    }
}

/// The bytes a consistent-hash exchange hashes for a header value: a string's
/// UTF-8 bytes, or the compact JSON text of a number or boolean (so `1001` and
/// `"1001"` land on the same queue). `null` counts as a missing header.
enum HashInput<'a> {
    Borrowed(&'a [u8]),
    Owned(String),
}

impl<'a> HashInput<'a> {
    fn from_header(value: &'a serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(HashInput::Borrowed(s.as_bytes())),
            other => Some(HashInput::Owned(other.to_string())),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            HashInput::Borrowed(bytes) => bytes,
            HashInput::Owned(text) => text.as_bytes(),
        }
    }
}

/// Exchanges already walked for this message, as a bitset (tenants with many
/// exchanges would make a list slow and a hash set is more allocation than needed).
struct Seen(Vec<u64>);

impl Seen {
    fn new(exchanges: usize) -> Self {
        Seen(vec![0; exchanges.div_ceil(64)])
    }

    /// Marks `x`; true when it was not marked before.
    fn insert(&mut self, x: usize) -> bool {
        let Some(word) = self.0.get_mut(x / 64) else {
            return false;
        };
        let bit = 1u64 << (x % 64);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }
}
