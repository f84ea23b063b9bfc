//! Kafka-style consumer-group scenarios, end to end over the public HTTP API
//! of a real control plane and broker:
//!
//! 1. two groups of one stream are independent: each sees every record
//!    exactly once, in per-partition offset order, whatever the other
//!    committed;
//! 2. three members split six partitions two each — a partition that moves
//!    is revoked from its owner first and handed over once that owner
//!    heartbeats, and polling every member's answers throughout never shows
//!    a partition held by two members; when one leaves the
//!    others are fenced (409 `stale-generation`), rejoin and own three each,
//!    keeping what they had; when one goes silent its session expires and
//!    the member that keeps heartbeating ends up owning all six;
//! 3. committed offsets (and membership) survive `kill -9` of the broker,
//!    and a new member resumes exactly at the commit;
//! 4. a seek to a timestamp moves every partition's committed offset to the
//!    first record at or after it, so a new member replays exactly the
//!    records produced since;
//! 5. another tenant's key cannot see, join, seek or fetch a tenant's group
//!    or partitions (404 problem documents, and its own same-named stream
//!    and group are separate), and a key without the `consume` scope gets
//!    403.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment, eventually};

fn problem(slug: &str) -> String {
    format!("https://sluice.dev/problems/{slug}")
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn numbers(v: &Value) -> Vec<u32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .map(|n| n as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// A record as a consumer sees it: its offset and value.
type Seen = (u64, String);

/// One member of a group, as it knows itself.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    generation: u64,
    assignment: Vec<u32>,
    /// Revoked from it, still to hand over (by heartbeating).
    revoked: Vec<u32>,
    /// The group's committed offsets of `assignment`, as the last join or
    /// heartbeat answered them.
    committed: BTreeMap<u32, u64>,
}

impl Member {
    fn from_join(joined: &Value) -> anyhow::Result<Member> {
        let mut member = Member {
            id: joined["member_id"]
                .as_str()
                .context("join: no member id")?
                .to_string(),
            generation: joined["generation"]
                .as_u64()
                .context("join: no generation")?,
            assignment: Vec::new(),
            revoked: Vec::new(),
            committed: BTreeMap::new(),
        };
        member.learn(joined)?;
        Ok(member)
    }

    /// Takes what a join or heartbeat answer says the member holds.
    fn learn(&mut self, answer: &Value) -> anyhow::Result<()> {
        self.committed = answer["committed"]
            .as_object()
            .context("no committed offsets")?
            .iter()
            .map(|(p, o)| Ok((p.parse()?, o.as_u64().context("offset")?)))
            .collect::<anyhow::Result<_>>()?;
        self.assignment = numbers(&answer["assignment"]);
        self.revoked = numbers(&answer["revoked"]);
        Ok(())
    }

    /// Everything it holds: owned and still to hand over.
    fn held(&self) -> Vec<u32> {
        let mut held = [self.assignment.clone(), self.revoked.clone()].concat();
        held.sort();
        held
    }
}

/// One consumer group of one stream, through one broker, with one key.
struct Group {
    data: Api,
    key: String,
    stream: String,
    name: String,
}

impl Group {
    fn new(base: &str, key: &str, stream: &str, name: &str) -> Group {
        Group {
            data: Api::new(base),
            key: key.to_string(),
            stream: stream.to_string(),
            name: name.to_string(),
        }
    }

    async fn call(&self, action: &str, body: Value) -> anyhow::Result<(StatusCode, Value)> {
        self.data
            .call(
                Method::POST,
                &format!("/v1/streams/{}/groups/{}/{action}", self.stream, self.name),
                Some(&self.key),
                Some(body),
            )
            .await
    }

    async fn ok(&self, action: &str, body: Value) -> anyhow::Result<Value> {
        let (status, answer) = self.call(action, body).await?;
        ensure!(
            status == StatusCode::OK,
            "{action} in {}: {status} {answer}",
            self.name
        );
        Ok(answer)
    }

    async fn join(&self, body: Value) -> anyhow::Result<Member> {
        Member::from_join(&self.ok("join", body).await?)
    }

    /// Rejoins with the member's id: learns the current generation and assignment.
    async fn rejoin(&self, member: &mut Member) -> anyhow::Result<()> {
        *member = self.join(json!({"member_id": member.id})).await?;
        Ok(())
    }

    async fn heartbeat(&self, member: &Member) -> anyhow::Result<(StatusCode, Value)> {
        self.call(
            "heartbeat",
            json!({"member_id": member.id, "generation": member.generation}),
        )
        .await
    }

    async fn commit(&self, member: &Member, offsets: &BTreeMap<u32, u64>) -> anyhow::Result<()> {
        self.ok(
            "commit",
            json!({"member_id": member.id, "generation": member.generation, "offsets": offsets}),
        )
        .await?;
        Ok(())
    }

    async fn leave(&self, member: &Member) -> anyhow::Result<u64> {
        let left = self.ok("leave", json!({"member_id": member.id})).await?;
        left["generation"].as_u64().context("leave: no generation")
    }

    async fn describe(&self) -> anyhow::Result<(StatusCode, Value)> {
        self.data
            .call(
                Method::GET,
                &format!("/v1/streams/{}/groups/{}", self.stream, self.name),
                Some(&self.key),
                None,
            )
            .await
    }

    async fn described(&self) -> anyhow::Result<Value> {
        let (status, body) = self.describe().await?;
        ensure!(
            status == StatusCode::OK,
            "describe {}: {status} {body}",
            self.name
        );
        Ok(body)
    }

    /// `fetch` of this group's stream.
    async fn fetch(&self, partition: u32, query: &str) -> anyhow::Result<Value> {
        fetch(&self.data, &self.key, &self.stream, partition, query).await
    }

    /// Heartbeats every member, rejoining those fenced by a newer
    /// generation, until a whole round passes without a fence or a
    /// rebalance in progress (a revoked partition reaches its new owner at
    /// the owner's heartbeat after the loser's); then every member knows
    /// the current generation and its partitions. After every answer, no
    /// partition may be held by two members as their latest answers say.
    async fn settle(&self, members: &mut [Member]) -> anyhow::Result<()> {
        for _ in 0..10 {
            let mut unsettled = false;
            for i in 0..members.len() {
                let member = &mut members[i];
                let (status, body) = self.heartbeat(member).await?;
                if status == StatusCode::CONFLICT && body["type"] == problem("stale-generation") {
                    self.rejoin(member).await?;
                    unsettled = true;
                } else {
                    ensure!(status == StatusCode::OK, "heartbeat: {status} {body}");
                    assert_eq!(body["generation"], member.generation, "{body}");
                    member.learn(&body)?;
                    unsettled |= body["rebalance_in_progress"] == true;
                }
                assert_disjoint(members)?;
            }
            if !unsettled {
                let generations: BTreeSet<u64> = members.iter().map(|m| m.generation).collect();
                ensure!(generations.len() == 1, "settled apart: {members:?}");
                return Ok(());
            }
        }
        bail!("the group did not settle in 10 rounds: {members:?}")
    }

    /// Consumes `partition` as `member` from the committed offset (or the
    /// earliest), `page` records per fetch, committing after every page,
    /// until the high watermark; answers what it read.
    async fn consume(
        &self,
        member: &Member,
        partition: u32,
        from: Option<u64>,
        page: usize,
    ) -> anyhow::Result<Vec<Seen>> {
        let mut seen = Vec::new();
        let mut at = match from {
            Some(offset) => offset.to_string(),
            None => "earliest".to_string(),
        };
        loop {
            let fetched = self
                .fetch(partition, &format!("offset={at}&max_records={page}"))
                .await?;
            let records = fetched["records"].as_array().context("no records")?;
            let next = fetched["next_offset"].as_u64().context("no next_offset")?;
            if records.is_empty() {
                ensure!(
                    fetched["high_watermark"] == next,
                    "an empty page below the high watermark: {fetched}"
                );
                return Ok(seen);
            }
            ensure!(records.len() <= page, "more than max_records: {fetched}");
            for r in records {
                seen.push((
                    r["offset"].as_u64().context("offset")?,
                    r["value"].as_str().context("value")?.to_string(),
                ));
            }
            self.commit(member, &BTreeMap::from([(partition, next)]))
                .await?;
            at = next.to_string();
        }
    }
}

/// No partition is held (owned or revoked-not-yet-released) by two
/// members, as each member's latest answer says.
fn assert_disjoint(members: &[Member]) -> anyhow::Result<()> {
    let mut holder: BTreeMap<u32, &str> = BTreeMap::new();
    for m in members {
        for p in m.held() {
            if let Some(other) = holder.insert(p, &m.id) {
                bail!(
                    "partition {p} held by both {other} and {}: {members:?}",
                    m.id
                );
            }
        }
    }
    Ok(())
}

async fn fetch(
    data: &Api,
    key: &str,
    stream: &str,
    partition: u32,
    query: &str,
) -> anyhow::Result<Value> {
    let (status, body) = data
        .call(
            Method::GET,
            &format!("/v1/streams/{stream}/partitions/{partition}/records?{query}"),
            Some(key),
            None,
        )
        .await?;
    ensure!(
        status == StatusCode::OK,
        "fetch {stream}/{partition}?{query}: {status} {body}"
    );
    Ok(body)
}

/// Produces `records` to `stream`; answers each record's (partition, offset).
async fn produce(
    data: &Api,
    key: &str,
    stream: &str,
    records: Vec<Value>,
) -> anyhow::Result<Vec<(u32, u64)>> {
    let produced = data
        .post_ok(
            key,
            &format!("/v1/streams/{stream}/records"),
            json!({ "records": records }),
        )
        .await?;
    produced["records"]
        .as_array()
        .context("produce: no records")?
        .iter()
        .map(|r| {
            Ok((
                r["partition"].as_u64().context("partition")? as u32,
                r["offset"].as_u64().context("offset")?,
            ))
        })
        .collect()
}

/// Each partition's committed offset in a describe answer.
fn committed(described: &Value) -> BTreeMap<u32, Option<u64>> {
    described["partitions"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["partition"].as_u64().unwrap_or(u64::MAX) as u32,
                        p["committed"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn total_lag(described: &Value) -> u64 {
    described["partitions"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["lag"].as_u64()).sum())
        .unwrap_or(u64::MAX)
}

/// Member id → assignment in a describe answer.
fn members(described: &Value) -> BTreeMap<String, Vec<u32>> {
    described["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        m["member_id"].as_str().unwrap_or_default().to_string(),
                        numbers(&m["assignment"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_groups_each_see_every_record_once() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("payments", 3).await?;

    // 60 keyed records in six requests; what each partition holds, in offset order.
    let mut expected: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
    for batch in 0..6 {
        let records: Vec<Value> = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                json!({"key": format!("customer-{}", n % 12), "value": format!("payment-{n}")})
            })
            .collect();
        let values: Vec<String> = records
            .iter()
            .map(|r| r["value"].as_str().unwrap_or_default().to_string())
            .collect();
        let placed = produce(&sluice.data, &app, "payments", records).await?;
        assert_eq!(placed.len(), 10);
        for ((partition, offset), value) in placed.into_iter().zip(values) {
            expected.entry(partition).or_default().push((offset, value));
        }
    }
    for records in expected.values_mut() {
        records.sort();
        let offsets: Vec<u64> = records.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    }
    assert_eq!(
        expected.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2],
        "12 keys should reach all 3 partitions: {expected:?}"
    );
    assert_eq!(expected.values().map(Vec::len).sum::<usize>(), 60);

    let mut seen_by = BTreeMap::new();
    for name in ["billing", "audit"] {
        let group = Group::new(&sluice.broker.url, &app, "payments", name);
        // A group nobody joined yet does not exist, even when another
        // group of the stream consumed everything.
        let (status, body) = group.describe().await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");

        let member = group.join(json!({"client_id": name})).await?;
        assert_eq!(member.assignment, [0, 1, 2], "{member:?}");
        assert!(
            member.committed.is_empty(),
            "{name} starts with nothing committed: {member:?}"
        );
        assert_eq!(total_lag(&group.described().await?), 60);

        let mut seen: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
        for &partition in &member.assignment {
            let from = member.committed.get(&partition).copied();
            seen.insert(partition, group.consume(&member, partition, from, 7).await?);
        }
        assert_eq!(seen, expected, "{name} saw every record once, in order");

        let described = group.described().await?;
        let want: BTreeMap<u32, Option<u64>> = expected
            .iter()
            .map(|(p, records)| (*p, Some(records.len() as u64)))
            .collect();
        assert_eq!(committed(&described), want, "{described}");
        assert_eq!(total_lag(&described), 0, "{described}");
        seen_by.insert(name, seen);
    }

    // billing's commits did not move audit's, nor the other way round.
    let billing = Group::new(&sluice.broker.url, &app, "payments", "billing");
    assert_eq!(total_lag(&billing.described().await?), 0);
    assert_eq!(seen_by["billing"], seen_by["audit"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_split_six_partitions_and_rebalance() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("clicks", 6).await?;
    let group = Group::new(&sluice.broker.url, &app, "clicks", "analytics");
    let all: Vec<u32> = (0..6).collect();

    // Three members join one after the other.
    let a = group.join(json!({"client_id": "a"})).await?;
    assert_eq!(a.assignment, all, "alone, a owns everything");
    let b = group.join(json!({"client_id": "b"})).await?;
    let c = group.join(json!({"client_id": "c"})).await?;
    assert!(a.generation < b.generation && b.generation < c.generation);
    // a's generation is stale now.
    let (status, body) = group.heartbeat(&a).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["type"], problem("stale-generation"), "{body}");

    let mut ms = [a, b, c];
    group.settle(&mut ms).await?;
    let generation = ms[0].generation;
    assert_eq!(
        generation, ms[2].generation,
        "c joined last: its generation"
    );
    let mut union: Vec<u32> = Vec::new();
    for m in &ms {
        assert_eq!(m.assignment.len(), 2, "two each: {ms:?}");
        union.extend(&m.assignment);
    }
    union.sort();
    assert_eq!(union, all, "every partition has exactly one owner: {ms:?}");
    let described = group.described().await?;
    assert_eq!(described["generation"], generation, "{described}");
    let by_id: BTreeMap<String, Vec<u32>> = ms
        .iter()
        .map(|m| (m.id.clone(), m.assignment.clone()))
        .collect();
    assert_eq!(members(&described), by_id, "{described}");

    // Each owner commits its partitions; a foreign partition is refused.
    for m in &ms {
        let offsets = m.assignment.iter().map(|p| (*p, 0)).collect();
        group.commit(m, &offsets).await?;
    }
    let foreign = ms[1].assignment[0];
    let (status, body) = group
        .call(
            "commit",
            json!({"member_id": ms[0].id, "generation": generation, "offsets": {foreign.to_string(): 0}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["type"], problem("not-partition-owner"), "{body}");

    // c leaves: a and b are fenced, rejoin, and split its partitions.
    let [mut a, mut b, c] = ms;
    let left_generation = group.leave(&c).await?;
    assert!(left_generation > generation);
    for m in [&a, &b] {
        let (status, body) = group.heartbeat(m).await?;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["type"], problem("stale-generation"), "{body}");
    }
    let (before_a, before_b) = (a.assignment.clone(), b.assignment.clone());
    let mut pair = [a, b];
    group.settle(&mut pair).await?;
    [a, b] = pair;
    assert_eq!(a.generation, left_generation);
    assert_eq!(
        (a.assignment.len(), b.assignment.len()),
        (3, 3),
        "{a:?} {b:?}"
    );
    assert!(
        before_a.iter().all(|p| a.assignment.contains(p))
            && before_b.iter().all(|p| b.assignment.contains(p)),
        "cooperative: nobody loses a partition it had ({before_a:?} -> {a:?}, {before_b:?} -> {b:?})"
    );
    let mut union = [a.assignment.clone(), b.assignment.clone()].concat();
    union.sort();
    assert_eq!(union, all, "{a:?} {b:?}");
    let (status, body) = group.heartbeat(&c).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "c left: {body}");

    // b goes silent with a 2 s session; a keeps heartbeating. b's session
    // runs out, it is expelled, and a (fenced once more) owns everything.
    let silent_since = Instant::now();
    b = group
        .join(json!({"member_id": b.id, "session_timeout_ms": 2000}))
        .await?;
    assert_eq!(
        b.assignment.len(),
        3,
        "a rejoin keeps the partitions: {b:?}"
    );
    assert_eq!(members(&group.described().await?).len(), 2);
    let deadline = silent_since + Duration::from_secs(30);
    loop {
        let (status, body) = group.heartbeat(&a).await?;
        if status == StatusCode::CONFLICT && body["type"] == problem("stale-generation") {
            group.rejoin(&mut a).await?;
            if a.assignment == all {
                break;
            }
        } else {
            ensure!(status == StatusCode::OK, "heartbeat: {status} {body}");
        }
        ensure!(
            Instant::now() < deadline,
            "b was not expelled within 30 s: a has {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expelled_after = silent_since.elapsed();
    assert!(
        expelled_after >= Duration::from_millis(2000),
        "b was expelled before its 2 s session ran out: {expelled_after:?}"
    );
    let described = group.described().await?;
    assert_eq!(
        members(&described),
        BTreeMap::from([(a.id.clone(), all.clone())]),
        "{described}"
    );
    assert_eq!(described["generation"], a.generation, "{described}");
    let (status, body) = group.heartbeat(&b).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "b was expelled: {body}");
    assert_eq!(body["type"], problem("not-found"), "{body}");
    // The survivor may commit every partition now.
    group
        .commit(&a, &all.iter().map(|p| (*p, 0)).collect())
        .await?;
    Ok(())
}

/// Polls `members` in the given order — heartbeat, or rejoin when fenced —
/// checking after every answer that no partition is held by two members as
/// their latest answers say, and that `kept` stays owned by its member on
/// every answer. Answers whether any answer said a rebalance is in progress.
async fn poll_round(
    group: &Group,
    members: &mut [Member],
    order: &[usize],
    kept: &BTreeMap<usize, Vec<u32>>,
) -> anyhow::Result<bool> {
    let mut moving = false;
    for &i in order {
        let (status, body) = group.heartbeat(&members[i]).await?;
        if status == StatusCode::CONFLICT && body["type"] == problem("stale-generation") {
            group.rejoin(&mut members[i]).await?;
            moving = true;
        } else {
            ensure!(status == StatusCode::OK, "heartbeat: {status} {body}");
            members[i].learn(&body)?;
            moving |= body["rebalance_in_progress"] == true;
        }
        assert_disjoint(members)?;
        if let Some(kept) = kept.get(&i) {
            let m = &members[i];
            ensure!(
                kept.iter().all(|p| m.assignment.contains(p)),
                "{} lost a partition that does not move ({kept:?}): {m:?}",
                m.id
            );
        }
    }
    Ok(moving)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_partition_is_held_by_two_members_during_a_rebalance() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(&sluice.admin, "/v1/streams/views", json!({"partitions": 6}))
        .await?;
    let group = Group::new(&sluice.broker.url, &app, "views", "counter");
    let a = group.join(json!({"client_id": "a"})).await?;
    assert_eq!(a.assignment, (0..6).collect::<Vec<u32>>());
    let mut ms = vec![a];
    let none = BTreeMap::new();

    // b joins: what moves to b is revoked from a first. b is polled before
    // a, so with a one-step hand-over b would own partitions a's latest
    // answer still gives a.
    ms.push(group.join(json!({"client_id": "b"})).await?);
    assert_disjoint(&ms)?;
    assert!(ms[1].assignment.is_empty(), "{ms:?}");
    poll_round(&group, &mut ms, &[1, 0], &none).await?;
    assert_eq!(ms[0].assignment, [0, 1, 2], "{ms:?}");
    assert_eq!(ms[0].revoked, [3, 4, 5], "{ms:?}");
    let described = group.described().await?;
    assert_eq!(described["rebalance_in_progress"], true, "{described}");

    // The revoking member may commit where it got to; the new owner may
    // not commit yet.
    group.commit(&ms[0], &BTreeMap::from([(4, 0)])).await?;
    let (status, body) = group
        .call(
            "commit",
            json!({"member_id": ms[1].id, "generation": ms[1].generation, "offsets": {"4": 0}}),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["type"], problem("not-partition-owner"), "{body}");

    // c joins mid-revocation, before a acknowledged.
    ms.push(group.join(json!({"client_id": "c"})).await?);
    assert_disjoint(&ms)?;
    // a's 0 and 1 never move; new owners are polled first each round.
    let kept = BTreeMap::from([(0, vec![0, 1])]);
    let mut rounds = 0;
    while poll_round(&group, &mut ms, &[2, 1, 0], &kept).await? {
        rounds += 1;
        ensure!(rounds < 10, "no settled group after 10 rounds: {ms:?}");
    }
    let generations: BTreeSet<u64> = ms.iter().map(|m| m.generation).collect();
    assert_eq!(generations.len(), 1, "{ms:?}");
    let mut union: Vec<u32> = ms.iter().flat_map(|m| m.assignment.clone()).collect();
    union.sort();
    assert_eq!(union, (0..6).collect::<Vec<u32>>(), "{ms:?}");
    assert!(
        ms.iter()
            .all(|m| m.assignment.len() == 2 && m.revoked.is_empty())
    );
    // The new owner of 4 starts where a committed.
    let owner = ms
        .iter()
        .find(|m| m.assignment.contains(&4))
        .context("nobody owns 4")?;
    assert_eq!(owner.committed.get(&4), Some(&0), "{owner:?}");
    let described = group.described().await?;
    assert_eq!(described["rebalance_in_progress"], false, "{described}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_offsets_survive_kill_9_and_consumption_resumes() -> anyhow::Result<()> {
    let mut sluice = Deployment::start().await?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/ledger",
            json!({"partitions": 2}),
        )
        .await?;
    // 20 records: r0..r13 on partition 0, r14..r19 on partition 1.
    let placement = |i: u32| if i < 14 { 0 } else { 1 };
    let records: Vec<Value> = (0..20)
        .map(|i| json!({"value": format!("r{i}"), "partition": placement(i)}))
        .collect();
    let placed = produce(&sluice.data, &app, "ledger", records).await?;
    assert_eq!(placed.len(), 20);
    let mut expected: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
    for (i, (partition, offset)) in placed.into_iter().enumerate() {
        assert_eq!(partition, placement(i as u32));
        expected
            .entry(partition)
            .or_default()
            .push((offset, format!("r{i}")));
    }

    // A member reads 10 records of partition 0 and 3 of partition 1 and commits.
    let group = Group::new(&sluice.broker.url, &app, "ledger", "settlement");
    let old = group.join(json!({"client_id": "worker"})).await?;
    assert_eq!(old.assignment, [0, 1]);
    let mut before: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
    for (partition, count) in [(0, 10), (1, 3)] {
        let fetched = group
            .fetch(partition, &format!("offset=earliest&max_records={count}"))
            .await?;
        let records = fetched["records"].as_array().context("records")?;
        assert_eq!(records.len(), count, "{fetched}");
        for r in records {
            before.entry(partition).or_default().push((
                r["offset"].as_u64().context("offset")?,
                r["value"].as_str().context("value")?.to_string(),
            ));
        }
        assert_eq!(fetched["next_offset"], count as u64);
    }
    group
        .commit(&old, &BTreeMap::from([(0, 10), (1, 3)]))
        .await?;
    drop(group);

    sluice.kill_and_restart_broker()?;

    let group = Group::new(&sluice.broker.url, &app, "ledger", "settlement");
    // The partitions may still be electing their leaders just after the restart.
    let ready = eventually(Duration::from_secs(20), || async {
        matches!(group.describe().await, Ok((StatusCode::OK, _)))
    })
    .await;
    assert!(
        ready,
        "the group was not described within 20 s of the restart"
    );
    let described = group.described().await?;
    assert_eq!(
        committed(&described),
        BTreeMap::from([(0, Some(10)), (1, Some(3))]),
        "{described}"
    );
    assert_eq!(
        members(&described).keys().collect::<Vec<_>>(),
        [&old.id],
        "membership survived too: {described}"
    );
    // The old consumer is gone for good: it leaves, and a new member takes over.
    group.leave(&old).await?;
    let new = group.join(json!({"client_id": "worker"})).await?;
    assert_ne!(new.id, old.id);
    assert_eq!(new.assignment, [0, 1]);
    assert_eq!(new.committed, BTreeMap::from([(0, 10), (1, 3)]), "{new:?}");

    let resumed = group.fetch(0, "offset=10&max_records=1").await?;
    assert_eq!(resumed["records"][0]["offset"], 10, "{resumed}");
    assert_eq!(resumed["records"][0]["value"], "r10", "{resumed}");

    let mut after: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
    for &partition in &new.assignment {
        let from = new.committed.get(&partition).copied();
        after.insert(partition, group.consume(&new, partition, from, 4).await?);
    }
    assert_eq!(
        after[&0].iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (10..14).collect::<Vec<_>>(),
        "exactly the rest of partition 0"
    );
    assert_eq!(
        after[&1].iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        (3..6).collect::<Vec<_>>(),
        "exactly the rest of partition 1"
    );
    // Before and after the crash together: every record exactly once.
    for (partition, records) in after {
        before.entry(partition).or_default().extend(records);
    }
    assert_eq!(before, expected);
    let described = group.described().await?;
    assert_eq!(
        committed(&described),
        BTreeMap::from([(0, Some(14)), (1, Some(6))])
    );
    assert_eq!(total_lag(&described), 0, "{described}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_to_a_timestamp_replays_from_there() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("metrics", 2).await?;
    // Yesterday's 10 records, then T, then today's 10, alternating partitions.
    let produce_run = |label: &'static str| {
        let data = &sluice.data;
        let app = &app;
        async move {
            let mut out: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
            for i in 0..10u32 {
                let value = format!("{label}-{i}");
                let placed = produce(
                    data,
                    app,
                    "metrics",
                    vec![json!({"value": value, "partition": i % 2})],
                )
                .await?;
                let (partition, offset) = placed[0];
                out.entry(partition).or_default().push((offset, value));
            }
            anyhow::Ok(out)
        }
    };
    let yesterday = produce_run("yesterday").await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let today = produce_run("today").await?;
    let first_of_today: BTreeMap<u32, u64> = today.iter().map(|(p, r)| (*p, r[0].0)).collect();
    assert_eq!(first_of_today, BTreeMap::from([(0, 5), (1, 5)]));

    // The (buggy) job consumes and commits everything, then stops.
    let group = Group::new(&sluice.broker.url, &app, "metrics", "reports");
    let job = group.join(json!({"client_id": "job"})).await?;
    let mut everything: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
    for &partition in &job.assignment {
        everything.insert(partition, group.consume(&job, partition, None, 6).await?);
    }
    for (partition, records) in &mut everything {
        let mut whole = yesterday[partition].clone();
        whole.extend(today[partition].iter().cloned());
        assert_eq!(*records, whole, "partition {partition}");
    }
    let described = group.described().await?;
    assert_eq!(
        committed(&described),
        BTreeMap::from([(0, Some(10)), (1, Some(10))])
    );
    group.leave(&job).await?;

    // Re-run since T: the seek puts every partition at its first record at or after T.
    let sought = group
        .ok("seek", json!({"to": "timestamp", "timestamp_ms": t}))
        .await?;
    assert_eq!(sought["offsets"], json!({"0": 5, "1": 5}), "{sought}");
    let described = group.described().await?;
    assert_eq!(
        committed(&described),
        BTreeMap::from([(0, Some(5)), (1, Some(5))]),
        "{described}"
    );
    assert_eq!(total_lag(&described), 10, "{described}");

    let rerun = group.join(json!({"client_id": "job-fixed"})).await?;
    assert_eq!(rerun.committed, first_of_today, "{rerun:?}");
    let mut replayed: BTreeMap<u32, Vec<Seen>> = BTreeMap::new();
    for &partition in &rerun.assignment {
        let from = rerun.committed.get(&partition).copied();
        replayed.insert(partition, group.consume(&rerun, partition, from, 3).await?);
    }
    assert_eq!(replayed, today, "exactly today's records are replayed");
    assert_eq!(total_lag(&group.described().await?), 0);
    Ok(())
}

/// A request's status, `Content-Type` and JSON body.
async fn raw(
    base: &str,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, String, Value)> {
    let mut request = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = response.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, content_type, body))
}

#[tokio::test(flavor = "multi_thread")]
async fn other_tenants_and_scopeless_keys_are_kept_out() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("orders", 2).await?;
    produce(
        &sluice.data,
        &app,
        "orders",
        vec![
            json!({"value": "o1", "partition": 0}),
            json!({"value": "o2", "partition": 1}),
        ],
    )
    .await?;
    let group = Group::new(&sluice.broker.url, &app, "orders", "billing");
    let member = group.join(json!({"client_id": "acme-billing"})).await?;
    group.commit(&member, &BTreeMap::from([(0, 1)])).await?;
    let before = group.described().await?;

    let other_admin = sluice.tenant(&sluice.operator, "other").await?;
    let intruder = sluice.key(&other_admin, &["consume"]).await?;
    let intruder_publisher = sluice.key(&other_admin, &["publish"]).await?;
    let acme_publisher = sluice.key(&sluice.admin, &["publish"]).await?;

    let base = "/v1/streams/orders/groups/billing";
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base.to_string(), None),
        (
            Method::POST,
            format!("{base}/join"),
            Some(json!({"client_id": "intruder"})),
        ),
        (
            Method::POST,
            format!("{base}/seek"),
            Some(json!({"to": "earliest"})),
        ),
        (
            Method::POST,
            format!("{base}/heartbeat"),
            Some(json!({"member_id": member.id, "generation": member.generation})),
        ),
        (
            Method::POST,
            format!("{base}/commit"),
            Some(
                json!({"member_id": member.id, "generation": member.generation, "offsets": {"0": 0}}),
            ),
        ),
        (
            Method::POST,
            format!("{base}/leave"),
            Some(json!({"member_id": member.id})),
        ),
        (
            Method::GET,
            "/v1/streams/orders/partitions/0/records?offset=earliest".to_string(),
            None,
        ),
        (
            Method::GET,
            "/v1/streams/orders/partitions/1/records".to_string(),
            None,
        ),
    ];
    let broker = &sluice.broker.url;
    // Another tenant's consume key: acme's stream does not exist for it.
    for (method, path, body) in &requests {
        let (status, content_type, answer) =
            raw(broker, method.clone(), path, &intruder, body.clone()).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert!(
            content_type.starts_with("application/problem+json"),
            "{method} {path}: {content_type}"
        );
        assert_eq!(answer["type"], problem("not-found"), "{method} {path}");
        assert_eq!(answer["status"], 404, "{method} {path}: {answer}");
    }
    // Keys without the consume scope, of either tenant: 403.
    for key in [&acme_publisher, &intruder_publisher] {
        for (method, path, body) in &requests {
            let (status, content_type, answer) =
                raw(broker, method.clone(), path, key, body.clone()).await?;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
            assert!(
                content_type.starts_with("application/problem+json"),
                "{method} {path}: {content_type}"
            );
            assert_eq!(answer["type"], problem("forbidden"), "{method} {path}");
        }
    }
    // None of it touched acme's group.
    let after = group.described().await?;
    assert_eq!(after, before, "acme's group changed");
    assert_eq!(members(&after).len(), 1);
    assert_eq!(committed(&after)[&0], Some(1));

    // The other tenant's own `orders` stream and `billing` group are its own.
    sluice
        .declare(&other_admin, "/v1/streams/orders", json!({"partitions": 1}))
        .await?;
    let theirs = Group::new(broker, &intruder, "orders", "billing");
    let (status, body) = theirs.describe().await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["type"], problem("not-found"), "{body}");
    let fetched = theirs.fetch(0, "offset=earliest").await?;
    assert_eq!(fetched["records"], json!([]), "{fetched}");
    assert_eq!(fetched["high_watermark"], 0, "{fetched}");
    let (status, _, body) = raw(
        broker,
        Method::GET,
        "/v1/streams/orders/partitions/1/records",
        &intruder,
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let stranger = theirs.join(json!({"client_id": "other-billing"})).await?;
    assert_eq!(stranger.assignment, [0]);
    assert!(stranger.committed.is_empty(), "{stranger:?}");
    let theirs_described = theirs.described().await?;
    assert_eq!(
        members(&theirs_described).keys().collect::<Vec<_>>(),
        [&stranger.id]
    );
    assert_eq!(
        group.described().await?,
        before,
        "acme's group changed when another tenant joined its own"
    );
    Ok(())
}
