//! Routing through a topic exchange with 10, 1,000 and 100,000 bindings: the trie
//! makes the cost follow the routing key and the matching bindings, not the number
//! of bindings on the exchange.
//!
//! Bindings look like a multi-region event bus: mostly exact keys
//! (`region.service.event`), some `region.service.*`, some `region.#`, and a few
//! `#.event` and `*.service.#`. Each message matches a handful of bindings.
//!
//! `cargo bench -p sluice-routing --bench topic -- --warm-up-time 1 --measurement-time 3`
//! on the shared 2-core dev machine: about 0.4 µs per route with 10 bindings, 0.6 µs
//! with 1,000 and 1.1–1.3 µs with 100,000 (more matching bindings and a trie that no
//! longer fits in cache), i.e. 10,000× the bindings for ~3× the time.

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
        // A key with an exact binding at every size (binding 4, plus wildcards that
        // match it) and a key that only wildcards match.
        for (name, key) in [
            ("matched", binding_key(4)),
            ("wildcards_only", "r7.s0.unknown".into()),
        ] {
            let routed = router.route("events", &key, &headers).unwrap().queues.len();
            eprintln!("{bindings} bindings: `{key}` routes to {routed} queues");
            group.bench_with_input(BenchmarkId::new(name, bindings), &key, |b, key| {
                b.iter(|| router.route("events", black_box(key), &headers).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group!(benches, topic);
criterion_main!(benches);
