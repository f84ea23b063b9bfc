//! The routing rules through the public API, as the broker uses it: topologies
//! written as the control plane's feed JSON, the seed notes' scenarios first.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_routing::{Binding, Exchange, Headers, Route, RouteError, Router, TopologyIssue};

fn exchange(name: &str, spec: Value) -> Exchange {
    serde_json::from_value(json!({"name": name, "spec": spec})).unwrap()
}

fn kind(name: &str, kind: &str) -> Exchange {
    exchange(name, json!({"type": kind}))
}

fn to_queue(source: &str, queue: &str, routing_key: &str) -> Binding {
    binding(json!({"source": source, "destination": queue, "routing_key": routing_key}))
}

fn to_exchange(source: &str, destination: &str, routing_key: &str) -> Binding {
    binding(json!({"source": source, "destination_type": "exchange",
                   "destination": destination, "routing_key": routing_key}))
}

fn binding(spec: Value) -> Binding {
    let id = format!("b_{}", spec);
    serde_json::from_value(json!({"id": id, "spec": spec})).unwrap()
}

fn router(exchanges: &[Exchange], bindings: &[Binding], queues: &[&str]) -> Router {
    let router = Router::build(exchanges, bindings, queues);
    assert_eq!(router.issues(), &[], "unexpected topology issues");
    router
}

fn no_headers() -> Headers {
    BTreeMap::new()
}

fn headers(value: Value) -> Headers {
    serde_json::from_value(value).unwrap()
}

fn queues(route: &Route) -> Vec<&str> {
    route.queues.iter().map(|q| &**q).collect()
}

fn routed(router: &Router, exchange: &str, key: &str) -> Vec<String> {
    let route = router.route(exchange, key, &no_headers()).unwrap();
    assert_eq!(route.unroutable, route.queues.is_empty());
    queues(&route).into_iter().map(String::from).collect()
}

// --- default exchange -------------------------------------------------------------

#[test]
fn default_exchange_routes_to_the_queue_named_by_the_key() {
    let r = router(&[], &[], &["orders", "payments"]);
    assert_eq!(routed(&r, "default", "orders"), ["orders"]);
    assert_eq!(routed(&r, "default", "payments"), ["payments"]);
    let route = r.route("default", "nope", &no_headers()).unwrap();
    assert!(route.unroutable);
    assert!(!route.alternate_used);
}

#[test]
fn default_exchange_cannot_be_declared_or_bound() {
    let r = Router::build(
        &[kind("default", "fanout")],
        &[
            to_queue("default", "q", ""),
            to_exchange("x", "default", ""),
        ],
        ["q"],
    );
    assert!(r.issues().contains(&TopologyIssue::DefaultExchangeDeclared));
    assert!(
        r.issues()
            .iter()
            .any(|i| matches!(i, TopologyIssue::UnknownSourceExchange { .. }))
    );
    assert!(
        r.issues()
            .iter()
            .any(|i| matches!(i, TopologyIssue::DefaultExchangeBound { .. }))
    );
    // Still the built-in default exchange, not a fanout.
    assert_eq!(routed(&r, "default", "other"), Vec::<String>::new());
    assert_eq!(routed(&r, "default", "q"), ["q"]);
}

// --- direct -----------------------------------------------------------------------

#[test]
fn direct_log_levels_from_the_seed_notes() {
    // Consumer A stores only errors; consumer B prints info, warning and error.
    let r = router(
        &[kind("logs", "direct")],
        &[
            to_queue("logs", "disk", "error"),
            to_queue("logs", "console", "info"),
            to_queue("logs", "console", "warning"),
            to_queue("logs", "console", "error"),
        ],
        &["disk", "console"],
    );
    assert_eq!(routed(&r, "logs", "error"), ["console", "disk"]);
    assert_eq!(routed(&r, "logs", "info"), ["console"]);
    assert_eq!(routed(&r, "logs", "warning"), ["console"]);
    assert_eq!(routed(&r, "logs", "debug"), Vec::<String>::new());
    assert_eq!(routed(&r, "logs", "Error"), Vec::<String>::new());
}

// --- fanout -----------------------------------------------------------------------

#[test]
fn fanout_to_sms_and_audit_from_the_seed_notes() {
    let r = router(
        &[kind("password-changed", "fanout")],
        &[
            to_queue("password-changed", "sms", ""),
            to_queue("password-changed", "audit", "ignored"),
        ],
        &["sms", "audit", "unrelated"],
    );
    for key in ["", "anything", "a.b.c"] {
        assert_eq!(routed(&r, "password-changed", key), ["audit", "sms"]);
    }
}

#[test]
fn fanout_with_no_bindings_is_unroutable() {
    let r = router(&[kind("f", "fanout")], &[], &["q"]);
    assert!(r.route("f", "", &no_headers()).unwrap().unroutable);
}

// --- topic ------------------------------------------------------------------------

#[test]
fn topic_usa_news_from_the_seed_notes() {
    let r = router(
        &[kind("news", "topic")],
        &[
            to_queue("news", "usa-all", "usa.#"),
            to_queue("news", "world-news", "#.news"),
            to_queue("news", "usa-x", "usa.*.x"),
        ],
        &["usa-all", "world-news", "usa-x"],
    );
    assert_eq!(routed(&r, "news", "usa.news"), ["usa-all", "world-news"]);
    assert_eq!(routed(&r, "news", "usa.weather.x"), ["usa-all", "usa-x"]);
    assert_eq!(routed(&r, "news", "europe.news"), ["world-news"]);
    assert_eq!(routed(&r, "news", "usa"), ["usa-all"]);
    assert_eq!(routed(&r, "news", "europe.weather"), Vec::<String>::new());
}

#[test]
fn topic_queue_matched_by_several_patterns_gets_one_copy() {
    let r = router(
        &[kind("t", "topic")],
        &[
            to_queue("t", "q", "a.*"),
            to_queue("t", "q", "#"),
            to_queue("t", "q", "a.b"),
        ],
        &["q"],
    );
    assert_eq!(routed(&r, "t", "a.b"), ["q"]);
}

// --- headers ----------------------------------------------------------------------

fn headers_router() -> Router {
    router(
        &[kind("h", "headers")],
        &[
            binding(json!({"source": "h", "destination": "pdf-reports",
                           "headers": {"format": "pdf", "type": "report"}, "match": "all"})),
            binding(json!({"source": "h", "destination": "pdf-or-report",
                           "headers": {"format": "pdf", "type": "report"}, "match": "any"})),
            binding(json!({"source": "h", "destination": "everything", "headers": {}})),
            binding(json!({"source": "h", "destination": "nothing",
                           "headers": {}, "match": "any"})),
            binding(json!({"source": "h", "destination": "priority-one",
                           "headers": {"priority": 1}})),
        ],
        &[
            "pdf-reports",
            "pdf-or-report",
            "everything",
            "nothing",
            "priority-one",
        ],
    )
}

#[test]
fn headers_all_and_any() {
    let r = headers_router();
    let route = |h: Value| queues(&r.route("h", "ignored", &headers(h)).unwrap()).join(",");
    assert_eq!(
        route(json!({"format": "pdf", "type": "report"})),
        "everything,pdf-or-report,pdf-reports"
    );
    assert_eq!(route(json!({"format": "pdf"})), "everything,pdf-or-report");
    assert_eq!(
        route(json!({"type": "report", "format": "zip"})),
        "everything,pdf-or-report"
    );
    assert_eq!(route(json!({})), "everything");
}

#[test]
fn headers_values_compare_by_their_text() {
    let r = headers_router();
    let route = |h: Value| queues(&r.route("h", "", &headers(h)).unwrap()).join(",");
    assert_eq!(route(json!({"priority": 1})), "everything,priority-one");
    // Headers published over HTTP are strings: a numeric binding still matches.
    assert_eq!(route(json!({"priority": "1"})), "everything,priority-one");
    assert_eq!(route(json!({"priority": "2"})), "everything");
    assert_eq!(route(json!({"priority": true})), "everything");
}

// --- consistent-hash --------------------------------------------------------------

fn sharded(hash_header: Option<&str>, shards: usize) -> Router {
    let bindings: Vec<Binding> = (0..shards)
        .map(|i| {
            binding(json!({"source": "orders", "destination": format!("order_sub_queue_{i}")}))
        })
        .collect();
    let names: Vec<String> = (0..shards)
        .map(|i| format!("order_sub_queue_{i}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    router(
        &[exchange(
            "orders",
            json!({"type": "consistent-hash", "hash_header": hash_header}),
        )],
        &bindings,
        &names,
    )
}

#[test]
fn consistent_hash_keeps_one_order_on_one_queue() {
    // The seed notes' ordering scenario: insert, pay, delete of Order_1001 must all
    // land on the same queue, and each message goes to exactly one queue.
    let r = sharded(None, 3);
    let first = routed(&r, "orders", "Order_1001");
    assert_eq!(first.len(), 1);
    for _ in 0..3 {
        assert_eq!(routed(&r, "orders", "Order_1001"), first);
    }
    let mut used = std::collections::BTreeSet::new();
    for i in 0..300 {
        let q = routed(&r, "orders", &format!("Order_{i}"));
        assert_eq!(q.len(), 1);
        used.insert(q[0].clone());
    }
    assert_eq!(used.len(), 3, "all shards get orders");
}

#[test]
fn consistent_hash_by_header() {
    let r = sharded(Some("order-id"), 4);
    let by = |h: Value, key: &str| queues(&r.route("orders", key, &headers(h)).unwrap()).join(",");
    let a = by(json!({"order-id": "1001"}), "created");
    assert!(!a.is_empty());
    // The routing key no longer matters; only the header does.
    assert_eq!(by(json!({"order-id": "1001"}), "paid"), a);
    // A number hashes as its JSON text, so clients that send it either way agree.
    assert_eq!(by(json!({"order-id": 1001}), "shipped"), a);
    // Missing (or null) header: unroutable.
    let missing = r.route("orders", "created", &no_headers()).unwrap();
    assert!(missing.unroutable);
    assert!(
        r.route("orders", "x", &headers(json!({"order-id": null})))
            .unwrap()
            .unroutable
    );
}

#[test]
fn consistent_hash_missing_header_goes_to_the_alternate_exchange() {
    let r = router(
        &[
            exchange(
                "orders",
                json!({"type": "consistent-hash", "hash_header": "order-id",
                                       "alternate_exchange": "no-id"}),
            ),
            kind("no-id", "fanout"),
        ],
        &[
            to_queue("orders", "q0", ""),
            to_queue("no-id", "no-id-queue", ""),
        ],
        &["q0", "no-id-queue"],
    );
    let route = r.route("orders", "", &no_headers()).unwrap();
    assert_eq!(queues(&route), ["no-id-queue"]);
    assert!(route.alternate_used);
}

#[test]
fn consistent_hash_weights_shift_shares() {
    let r = router(
        &[kind("ch", "consistent-hash")],
        &[
            binding(json!({"source": "ch", "destination": "big", "weight": 3})),
            binding(json!({"source": "ch", "destination": "small", "weight": 1})),
        ],
        &["big", "small"],
    );
    let big = (0..8000)
        .filter(|i| routed(&r, "ch", &format!("k{i}")) == ["big"])
        .count();
    let share = big as f64 / 8000.0;
    assert!((0.65..0.85).contains(&share), "big share {share}");
}

// --- exchange-to-exchange ---------------------------------------------------------

#[test]
fn exchange_to_exchange_routes_recursively() {
    let r = router(
        &[
            kind("edge", "topic"),
            kind("billing", "direct"),
            kind("audit", "fanout"),
        ],
        &[
            to_exchange("edge", "billing", "billing.#"),
            to_exchange("edge", "audit", "#"),
            to_queue("billing", "invoices", "billing.invoice"),
            to_queue("audit", "audit-log", ""),
        ],
        &["invoices", "audit-log"],
    );
    assert_eq!(
        routed(&r, "edge", "billing.invoice"),
        ["audit-log", "invoices"]
    );
    assert_eq!(routed(&r, "edge", "billing.refund"), ["audit-log"]);
    assert_eq!(routed(&r, "billing", "billing.invoice"), ["invoices"]);
}

#[test]
fn exchange_cycles_terminate_and_queues_get_one_copy() {
    // a → b → c → a, and every exchange also binds q; plus a diamond a → {b, d} → q2.
    let r = router(
        &[
            kind("a", "fanout"),
            kind("b", "fanout"),
            kind("c", "fanout"),
            kind("d", "fanout"),
        ],
        &[
            to_exchange("a", "b", ""),
            to_exchange("b", "c", ""),
            to_exchange("c", "a", ""),
            to_exchange("a", "d", ""),
            to_exchange("a", "a", ""),
            to_queue("a", "q", ""),
            to_queue("b", "q", ""),
            to_queue("c", "q", ""),
            to_queue("b", "q2", ""),
            to_queue("d", "q2", ""),
        ],
        &["q", "q2"],
    );
    for start in ["a", "b", "c"] {
        assert_eq!(routed(&r, start, ""), ["q", "q2"], "from {start}");
    }
    assert_eq!(routed(&r, "d", ""), ["q2"]);
}

#[test]
fn cycle_with_no_queues_is_unroutable() {
    let r = router(
        &[kind("a", "fanout"), kind("b", "fanout")],
        &[to_exchange("a", "b", ""), to_exchange("b", "a", "")],
        &[],
    );
    let route = r.route("a", "", &no_headers()).unwrap();
    assert!(route.unroutable);
    assert!(route.queues.is_empty());
}

// --- internal exchanges -----------------------------------------------------------

#[test]
fn internal_exchange_refuses_publishes_but_routes_from_other_exchanges() {
    let r = router(
        &[
            kind("public", "fanout"),
            exchange("inner", json!({"type": "fanout", "internal": true})),
        ],
        &[
            to_exchange("public", "inner", ""),
            to_queue("inner", "q", ""),
        ],
        &["q"],
    );
    assert_eq!(
        r.route("inner", "", &no_headers()),
        Err(RouteError::InternalExchange("inner".into()))
    );
    assert_eq!(routed(&r, "public", ""), ["q"]);
}

#[test]
fn unknown_exchange_is_an_error() {
    let r = router(&[], &[], &["q"]);
    assert_eq!(
        r.route("missing", "q", &no_headers()),
        Err(RouteError::ExchangeNotFound("missing".into()))
    );
    assert_eq!(
        RouteError::ExchangeNotFound("missing".into()).to_string(),
        "exchange `missing` does not exist"
    );
}

// --- alternate exchange -----------------------------------------------------------

fn with_alternate() -> Router {
    router(
        &[
            exchange(
                "orders",
                json!({"type": "direct", "alternate_exchange": "unrouted"}),
            ),
            exchange("unrouted", json!({"type": "fanout", "internal": true})),
        ],
        &[
            to_queue("orders", "created", "created"),
            to_queue("unrouted", "lost-and-found", ""),
        ],
        &["created", "lost-and-found"],
    )
}

#[test]
fn alternate_exchange_takes_what_no_binding_matched() {
    let r = with_alternate();
    let hit = r.route("orders", "created", &no_headers()).unwrap();
    assert_eq!(queues(&hit), ["created"]);
    assert!(!hit.alternate_used);
    let miss = r.route("orders", "cancelled", &no_headers()).unwrap();
    assert_eq!(queues(&miss), ["lost-and-found"]);
    assert!(miss.alternate_used);
    assert!(!miss.unroutable);
}

#[test]
fn alternate_exchanges_chain_and_cycles_end() {
    let r = router(
        &[
            exchange("a", json!({"type": "direct", "alternate_exchange": "b"})),
            exchange("b", json!({"type": "direct", "alternate_exchange": "c"})),
            exchange("c", json!({"type": "direct", "alternate_exchange": "a"})),
        ],
        &[
            to_queue("a", "qa", "ka"),
            to_queue("b", "qb", "kb"),
            to_queue("c", "qc", "kc"),
        ],
        &["qa", "qb", "qc"],
    );
    assert_eq!(routed(&r, "a", "kc"), ["qc"]);
    assert_eq!(routed(&r, "c", "kb"), ["qb"]);
    let nowhere = r.route("a", "none", &no_headers()).unwrap();
    assert!(nowhere.unroutable);
    assert!(nowhere.alternate_used);
}

#[test]
fn alternate_exchange_only_when_own_bindings_match_nothing() {
    // `front` matches its binding to `back`, which routes nowhere: as in RabbitMQ,
    // `front`'s alternate exchange is not used, `back`'s is.
    let r = router(
        &[
            exchange(
                "front",
                json!({"type": "fanout", "alternate_exchange": "front-ae"}),
            ),
            exchange(
                "back",
                json!({"type": "direct", "alternate_exchange": "back-ae"}),
            ),
            kind("front-ae", "fanout"),
            kind("back-ae", "fanout"),
        ],
        &[
            to_exchange("front", "back", ""),
            to_queue("front-ae", "front-lost", ""),
            to_queue("back-ae", "back-lost", ""),
        ],
        &["front-lost", "back-lost"],
    );
    let route = r.route("front", "x", &no_headers()).unwrap();
    assert_eq!(queues(&route), ["back-lost"]);
    assert!(route.alternate_used);
}

// --- dangling references and input order --------------------------------------------

#[test]
fn dangling_references_are_reported_and_skipped() {
    let r = Router::build(
        &[
            exchange("x", json!({"type": "fanout", "alternate_exchange": "gone"})),
            kind("x", "direct"),
        ],
        &[
            to_queue("x", "missing-queue", "k"),
            to_queue("missing-exchange", "q", "k"),
            to_exchange("x", "missing-exchange", "k"),
            to_queue("x", "q", "k"),
        ],
        ["q", "q"],
    );
    let issues: Vec<String> = r.issues().iter().map(ToString::to_string).collect();
    assert_eq!(issues.len(), 4, "{issues:#?}");
    assert!(issues[0].contains("declared more than once"));
    // The last declaration of `x` (direct, no alternate exchange) is used.
    assert_eq!(routed(&r, "x", "k"), ["q"]);
    assert_eq!(routed(&r, "x", "other"), Vec::<String>::new());
    assert!(r.has_exchange("x") && r.has_exchange("default") && !r.has_exchange("gone"));
    assert!(r.has_queue("q") && !r.has_queue("missing-queue"));
}

#[test]
fn unknown_alternate_exchange_is_reported() {
    let r = Router::build(
        &[exchange(
            "x",
            json!({"type": "fanout", "alternate_exchange": "gone"}),
        )],
        &[],
        ["q"],
    );
    assert_eq!(
        r.issues(),
        &[TopologyIssue::UnknownAlternateExchange {
            exchange: "x".into(),
            alternate: "gone".into()
        }]
    );
    let route = r.route("x", "", &no_headers()).unwrap();
    assert!(route.unroutable && !route.alternate_used);
}

#[test]
fn empty_router_has_only_the_default_exchange() {
    let r = Router::default();
    assert!(r.route("default", "q", &no_headers()).unwrap().unroutable);
    assert!(r.route("x", "q", &no_headers()).is_err());
}

#[test]
fn router_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Router>();
    assert_send_sync::<std::sync::Arc<Router>>();
}

#[test]
fn whole_topology_from_feed_json() {
    let exchanges: Vec<Exchange> = serde_json::from_value(json!([
        {"tenant_id": 1, "name": "orders",
         "spec": {"type": "topic", "durable": true, "internal": false,
                  "alternate_exchange": "orders-unrouted", "hash_header": null}},
        {"tenant_id": 1, "name": "orders-unrouted",
         "spec": {"type": "fanout", "durable": true, "internal": true,
                  "alternate_exchange": null, "hash_header": null}}
    ]))
    .unwrap();
    let bindings: Vec<Binding> = serde_json::from_value(json!([
        {"tenant_id": 1, "id": "b_1", "spec": {"source": "orders", "destination_type": "queue",
          "destination": "eu", "routing_key": "eu.#", "headers": {}, "match": null, "weight": null}},
        {"tenant_id": 1, "id": "b_2", "spec": {"source": "orders-unrouted", "destination_type": "queue",
          "destination": "dead", "routing_key": "", "headers": {}, "match": null, "weight": null}}
    ]))
    .unwrap();
    let r = router(&exchanges, &bindings, &["eu", "dead"]);
    assert_eq!(routed(&r, "orders", "eu.de.created"), ["eu"]);
    assert_eq!(routed(&r, "orders", "us.created"), ["dead"]);
}

// --- determinism ------------------------------------------------------------------

/// A random topology over a few names: every exchange type, exchange-to-exchange
/// bindings (cycles included), alternate exchanges, dangling references.
fn topology() -> impl Strategy<Value = (Vec<Exchange>, Vec<Binding>, Vec<String>)> {
    let names = ["x0", "x1", "x2", "x3"];
    let kinds = ["direct", "fanout", "topic", "headers", "consistent-hash"];
    let exchange = (0..names.len(), 0..kinds.len(), any::<bool>(), prop::option::of(0..5usize))
        .prop_map(move |(n, k, internal, ae)| {
            let ae = ae.map(|i| if i < names.len() { names[i].to_string() } else { "gone".into() });
            serde_json::from_value::<Exchange>(json!({"name": names[n], "spec": {
                "type": kinds[k], "internal": internal, "alternate_exchange": ae,
                "hash_header": if kinds[k] == "consistent-hash" && internal { Some("h") } else { None }
            }}))
            .unwrap()
        });
    let key = prop::sample::select(vec!["a", "b", "a.b", "*.b", "#", "a.#", ""]);
    let binding = (
        0..names.len(),
        any::<bool>(),
        0..5usize,
        key,
        0..3usize,
        1u32..4,
    )
        .prop_map(move |(source, to_exchange, dest, key, h, weight)| {
            let (destination_type, destination) = if to_exchange {
                (
                    "exchange",
                    names.get(dest).copied().unwrap_or("gone").to_string(),
                )
            } else {
                ("queue", format!("q{dest}"))
            };
            let headers = match h {
                0 => json!({}),
                1 => json!({"h": "a"}),
                _ => json!({"h": "a", "n": 1}),
            };
            serde_json::from_value::<Binding>(
                json!({"id": format!("b{source}{dest}{key}{h}"), "spec": {
                    "source": names[source], "destination_type": destination_type,
                    "destination": destination, "routing_key": key, "headers": headers,
                    "match": if h == 2 { "any" } else { "all" }, "weight": weight
                }}),
            )
            .unwrap()
        });
    (
        prop::collection::vec(exchange, 0..6),
        prop::collection::vec(binding, 0..16),
        prop::collection::vec((0..4usize).prop_map(|i| format!("q{i}")), 0..4),
    )
}

fn message() -> impl Strategy<Value = (String, String, Headers)> {
    (
        prop::sample::select(vec!["default", "x0", "x1", "x2", "x3", "nope"]),
        prop::sample::select(vec!["a", "b", "a.b", "c.b", "", "q1", "a.b.c"]),
        prop::sample::select(vec![
            json!({}),
            json!({"h": "a"}),
            json!({"n": 1}),
            json!({"h": "b", "n": "1"}),
        ]),
    )
        .prop_map(|(x, k, h)| (x.to_string(), k.to_string(), headers(h)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The same message always routes the same way, and neither rebuilding the
    /// router nor reordering its input changes the answer.
    #[test]
    fn route_is_deterministic(
        (exchanges, bindings, queue_names) in topology(),
        messages in prop::collection::vec(message(), 1..8),
    ) {
        let r = Router::build(&exchanges, &bindings, &queue_names);
        let mut reversed_bindings = bindings.clone();
        reversed_bindings.reverse();
        let mut reversed_queues = queue_names.clone();
        reversed_queues.reverse();
        // Duplicate exchange names resolve to the last declaration, so only
        // bindings and queues may be reordered freely.
        let shuffled = Router::build(&exchanges, &reversed_bindings, &reversed_queues);
        for (x, key, h) in &messages {
            let first = r.route(x, key, h);
            prop_assert_eq!(&first, &r.route(x, key, h));
            prop_assert_eq!(&first, &shuffled.route(x, key, h));
            if let Ok(route) = first {
                prop_assert_eq!(route.unroutable, route.queues.is_empty());
                let mut sorted = route.queues.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted, route.queues);
            }
        }
    }
}
