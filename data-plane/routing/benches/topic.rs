//! Routing through a topic exchange with 10, 1,000 and 100,000 bindings: the trie
//! makes the cost follow the routing key and the matching bindings, not the number
//! of bindings on the exchange.
//!
//! Bindings look like a multi-region event bus: mostly exact keys
//! (`region.service.event`), some `region.service.*`, some `region.#`, and a few
//! `#.event` and `*.service.#`. Each message matches a handful of bindings.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use sluice_routing::{Binding, Exchange, Router};

const QUEUES: usize = 1000;

fn binding_key(i: usize) -> String {
    let (region, service, event) = (i % 50, (i / 50) % 200, i);
    match i % 20 {
        0 => format!("r{region}.s{service}.*"),
        1 => format!("r{region}.#"),
        2 => format!("#.e{event}"),
        3 => format!("*.s{service}.#"),
        _ => format!("r{region}.s{service}.e{event}"),
    }
}

fn router(bindings: usize) -> Router {
    let exchanges: Vec<Exchange> =
        vec![serde_json::from_value(json!({"name": "events", "spec": {"type": "topic"}})).unwrap()];
    let bindings: Vec<Binding> = (0..bindings)
        .map(|i| {
            serde_json::from_value(json!({"id": format!("b_{i}"), "spec": {
                "source": "events", "destination": format!("q{}", i % QUEUES),
                "routing_key": binding_key(i),
            }}))
            .unwrap()
        })
        .collect();
    let queues: Vec<String> = (0..QUEUES).map(|i| format!("q{i}")).collect();
    let router = Router::build(&exchanges, &bindings, &queues);
    assert!(router.issues().is_empty());
    router
}

fn topic(c: &mut Criterion) {
    let headers = BTreeMap::new();
    let mut group = c.benchmark_group("topic_route");
    for bindings in [10, 1_000, 100_000] {
        let router = router(bindings);
        // Keys that exist at every size (exact binding 4 and its wildcards) and a
        // key no exact binding has.
        let keys = [binding_key(4), "r7.s0.unknown".to_string()];
        for key in keys {
            let routed = router.route("events", &key, &headers).unwrap().queues.len();
            let id = BenchmarkId::new(format!("{key} ({routed} queues)"), bindings);
            group.bench_with_input(id, &key, |b, key| {
                b.iter(|| router.route("events", black_box(key), &headers).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, topic);
criterion_main!(benches);
