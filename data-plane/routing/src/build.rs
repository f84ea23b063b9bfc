//! Compiling a tenant's topology into a [`Router`]: names become indexes, each
//! exchange gets the matcher its type needs, and references that do not resolve are
//! reported as [`TopologyIssue`]s instead of failing the whole tenant.
//!
//! The control plane's foreign keys make dangling references impossible in a
//! consistent feed; if one shows up anyway (a bug, or a hand-written topology) the
//! rest of the tenant must keep routing, and the broker can log what was dropped.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::consistent_hash::HashRing;
use crate::router::{CompiledExchange, Destination, HeadersBinding, Matcher, Router};
use crate::topic::TopicTrie;
use crate::topology::{
    Binding, DEFAULT_EXCHANGE, DestinationType, Exchange, ExchangeType, HeaderMatch,
};

/// Something in the topology that was ignored while building a [`Router`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyIssue {
    #[error("exchange `default` is the built-in default exchange; the declaration was ignored")]
    DefaultExchangeDeclared,
    #[error("exchange `{0}` is declared more than once; the last declaration is used")]
    DuplicateExchange(String),
    #[error("exchange `{exchange}`: alternate exchange `{alternate}` does not exist")]
    UnknownAlternateExchange { exchange: String, alternate: String },
    #[error("binding `{binding}`: exchange `{exchange}` does not exist; binding ignored")]
    UnknownSourceExchange { binding: String, exchange: String },
    #[error("binding `{binding}`: destination {destination} does not exist; binding ignored")]
    UnknownDestination {
        binding: String,
        destination: String,
    },
    #[error("binding `{binding}`: the default exchange cannot be bound; binding ignored")]
    DefaultExchangeBound { binding: String },
}

/// Per-exchange matcher under construction; bindings arrive in any order.
enum MatcherBuilder {
    Default,
    Direct(HashMap<String, Vec<Destination>>),
    Fanout(Vec<Destination>),
    Topic(TopicTrie<Destination>),
    Headers(Vec<HeadersBinding>),
    ConsistentHash {
        hash_header: Option<String>,
        members: Vec<(String, u32, Destination)>,
    },
}

impl MatcherBuilder {
    fn new(kind: ExchangeType, hash_header: Option<&String>) -> Self {
        match kind {
            ExchangeType::Direct => MatcherBuilder::Direct(HashMap::new()),
            ExchangeType::Fanout => MatcherBuilder::Fanout(Vec::new()),
            ExchangeType::Topic => MatcherBuilder::Topic(TopicTrie::new()),
            ExchangeType::Headers => MatcherBuilder::Headers(Vec::new()),
            ExchangeType::ConsistentHash => MatcherBuilder::ConsistentHash {
                hash_header: hash_header.cloned(),
                members: Vec::new(),
            },
        }
    }

    fn add(&mut self, binding: &Binding, destination: Destination) {
        let spec = &binding.spec;
        match self {
            // The default exchange is never a binding's source (checked by the caller).
            MatcherBuilder::Default => {}
            MatcherBuilder::Direct(by_key) => by_key
                .entry(spec.routing_key.clone())
                .or_default()
                .push(destination),
            MatcherBuilder::Fanout(all) => all.push(destination),
            MatcherBuilder::Topic(trie) => trie.insert(&spec.routing_key, destination),
            MatcherBuilder::Headers(bindings) => bindings.push(HeadersBinding {
                headers: spec.headers.clone(),
                header_match: spec.header_match.unwrap_or(HeaderMatch::All),
                destination,
            }),
            MatcherBuilder::ConsistentHash { members, .. } => {
                let identity = match spec.destination_type {
                    DestinationType::Queue => format!("queue:{}", spec.destination),
                    DestinationType::Exchange => format!("exchange:{}", spec.destination),
                };
                members.push((identity, spec.weight.unwrap_or(1), destination));
            }
        }
    }

    fn finish(self) -> Matcher {
        match self {
            MatcherBuilder::Default => Matcher::Default,
            MatcherBuilder::Direct(mut by_key) => {
                by_key.values_mut().for_each(dedup);
                Matcher::Direct(by_key)
            }
            MatcherBuilder::Fanout(mut all) => {
                dedup(&mut all);
                Matcher::Fanout(all)
            }
            MatcherBuilder::Topic(trie) => Matcher::Topic(trie),
            MatcherBuilder::Headers(bindings) => Matcher::Headers(bindings),
            MatcherBuilder::ConsistentHash {
                hash_header,
                members,
            } => Matcher::ConsistentHash {
                ring: HashRing::new(members.iter().map(|(id, w, d)| (id.as_str(), *w, *d))),
                hash_header,
            },
        }
    }
}

fn dedup(destinations: &mut Vec<Destination>) {
    destinations.sort_unstable();
    destinations.dedup();
}

impl Router {
    /// Compiles one tenant's topology. Input order does not matter: the same
    /// exchanges, bindings and queues always give the same routes.
    ///
    /// Bindings whose source or destination does not exist, alternate exchanges
    /// that do not exist, and declarations of `default` are left out and listed in
    /// [`Router::issues`].
    pub fn build<'a, Q: AsRef<str>>(
        exchanges: impl IntoIterator<Item = &'a Exchange>,
        bindings: impl IntoIterator<Item = &'a Binding>,
        queues: impl IntoIterator<Item = Q>,
    ) -> Router {
        let mut issues = Vec::new();

        let queue_names: BTreeSet<Arc<str>> =
            queues.into_iter().map(|q| Arc::from(q.as_ref())).collect();
        // Queue indexes follow name order, so sorting indexes sorts names.
        let queue_names: Vec<Arc<str>> = queue_names.into_iter().collect();
        let queue_ids: HashMap<Arc<str>, usize> = queue_names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.clone(), i))
            .collect();

        let mut declared: BTreeMap<&str, &Exchange> = BTreeMap::new();
        for exchange in exchanges {
            if exchange.name == DEFAULT_EXCHANGE {
                issues.push(TopologyIssue::DefaultExchangeDeclared);
            } else if declared.insert(&exchange.name, exchange).is_some() {
                issues.push(TopologyIssue::DuplicateExchange(exchange.name.clone()));
            }
        }
        // The default exchange is index 0; the others follow in name order.
        let exchange_ids: HashMap<String, usize> = std::iter::once(DEFAULT_EXCHANGE)
            .chain(declared.keys().copied())
            .enumerate()
            .map(|(i, name)| (name.to_string(), i))
            .collect();

        let mut builders: Vec<MatcherBuilder> = std::iter::once(MatcherBuilder::Default)
            .chain(
                declared
                    .values()
                    .map(|x| MatcherBuilder::new(x.spec.kind, x.spec.hash_header.as_ref())),
            )
            .collect();

        for binding in bindings {
            let spec = &binding.spec;
            let source = match exchange_ids.get(&spec.source) {
                Some(0) => {
                    issues.push(TopologyIssue::DefaultExchangeBound {
                        binding: binding.id.clone(),
                    });
                    continue;
                }
                Some(&source) => source,
                None => {
                    issues.push(TopologyIssue::UnknownSourceExchange {
                        binding: binding.id.clone(),
                        exchange: spec.source.clone(),
                    });
                    continue;
                }
            };
            let destination = match spec.destination_type {
                DestinationType::Queue => queue_ids
                    .get(spec.destination.as_str())
                    .map(|&q| Destination::Queue(q)),
                DestinationType::Exchange => match exchange_ids.get(&spec.destination) {
                    Some(0) => {
                        issues.push(TopologyIssue::DefaultExchangeBound {
                            binding: binding.id.clone(),
                        });
                        continue;
                    }
                    other => other.map(|&x| Destination::Exchange(x)),
                },
            };
            let Some(destination) = destination else {
                let kind = match spec.destination_type {
                    DestinationType::Queue => "queue",
                    DestinationType::Exchange => "exchange",
                };
                issues.push(TopologyIssue::UnknownDestination {
                    binding: binding.id.clone(),
                    destination: format!("{kind} `{}`", spec.destination),
                });
                continue;
            };
            if let Some(builder) = builders.get_mut(source) {
                builder.add(binding, destination);
            }
        }

        let mut compiled = vec![CompiledExchange {
            internal: false,
            alternate: None,
            matcher: Matcher::Default,
        }];
        for (exchange, builder) in declared.values().zip(builders.into_iter().skip(1)) {
            let alternate = exchange.spec.alternate_exchange.as_ref().and_then(|ae| {
                let found = exchange_ids.get(ae).copied();
                if found.is_none() {
                    issues.push(TopologyIssue::UnknownAlternateExchange {
                        exchange: exchange.name.clone(),
                        alternate: ae.clone(),
                    });
                }
                found
            });
            compiled.push(CompiledExchange {
                internal: exchange.spec.internal,
                alternate,
                matcher: builder.finish(),
            });
        }

        Router {
            exchanges: compiled,
            exchange_ids,
            queue_names,
            queue_ids,
            issues,
        }
    }
}
