//! Consumer groups over HTTP against a real control plane and broker:
//! members join and split the partitions, a rebalance fences the old
//! generation until the member rejoins and revokes moved partitions before
//! their new owner gets them, commits are owner-only, describe
//! shows committed offsets and lag, and seek moves an empty group.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};

async fn group_call(
    data: &Api,
    key: &str,
    action: &str,
    body: Value,
) -> anyhow::Result<(StatusCode, Value)> {
    data.call(
        Method::POST,
        &format!("/v1/streams/orders/groups/billing/{action}"),
        Some(key),
        Some(body),
    )
    .await
}

fn partitions(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_split_partitions_commit_and_seek() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("orders", 4).await?;
    let data = &sluice.data;
    for p in 0..4 {
        let records: Vec<Value> = (0..3)
            .map(|i| json!({"value": format!("{p}-{i}"), "partition": p}))
            .collect();
        data.post_ok(
            &app,
            "/v1/streams/orders/records",
            json!({ "records": records }),
        )
        .await?;
    }

    let (status, a) = group_call(data, &app, "join", json!({"client_id": "a"})).await?;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(partitions(&a["assignment"]), [0, 1, 2, 3]);
    let a_id = a["member_id"].as_str().unwrap().to_string();
    let (status, b) = group_call(data, &app, "join", json!({"client_id": "b"})).await?;
    assert_eq!(status, StatusCode::OK, "{b}");
    let b_id = b["member_id"].as_str().unwrap().to_string();
    let generation = b["generation"].as_u64().unwrap();
    assert!(generation > a["generation"].as_u64().unwrap());

    // a's generation is stale: 409 until it rejoins with its member id.
    let (status, problem) = group_call(
        data,
        &app,
        "heartbeat",
        json!({"member_id": a_id, "generation": a["generation"]}),
    )
    .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://sluice.dev/problems/stale-generation"
    );
    let (status, a) = group_call(data, &app, "join", json!({"member_id": a_id})).await?;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["generation"], generation);
    // Revoke first: a keeps two, lets go of two; b gets nothing yet.
    assert_eq!(partitions(&a["assignment"]), [0, 1], "{a}");
    assert_eq!(partitions(&a["revoked"]), [2, 3], "{a}");
    assert_eq!(a["rebalance_in_progress"], true, "{a}");
    assert_eq!(partitions(&b["assignment"]), [] as [u64; 0], "{b}");
    let b_heartbeat = json!({"member_id": b_id, "generation": generation});
    let (status, b) = group_call(data, &app, "heartbeat", b_heartbeat.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(partitions(&b["assignment"]), [] as [u64; 0], "{b}");
    assert_eq!(b["rebalance_in_progress"], true, "{b}");
    // a's heartbeat in the new generation acknowledges: then b owns them,
    // in the same generation.
    let (status, a_beat) = group_call(
        data,
        &app,
        "heartbeat",
        json!({"member_id": a_id, "generation": generation}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{a_beat}");
    assert_eq!(partitions(&a_beat["revoked"]), [] as [u64; 0], "{a_beat}");
    let (status, b) = group_call(data, &app, "heartbeat", b_heartbeat).await?;
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["generation"], generation, "{b}");
    assert_eq!(b["rebalance_in_progress"], false, "{b}");
    let (mut mine, theirs) = (partitions(&a["assignment"]), partitions(&b["assignment"]));
    assert_eq!(theirs, [2, 3], "{b}");
    mine.extend(&theirs);
    mine.sort();
    assert_eq!(mine, [0, 1, 2, 3], "each partition has one owner");

    // Commits: the owner only.
    let b_partition = theirs[0];
    let (status, body) = group_call(
        data,
        &app,
        "commit",
        json!({"member_id": b_id, "generation": generation, "offsets": {b_partition.to_string(): 2}}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, problem) = group_call(
        data,
        &app,
        "commit",
        json!({"member_id": a_id, "generation": generation, "offsets": {b_partition.to_string(): 3}}),
    )
    .await?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    let (status, described) = data
        .call(
            Method::GET,
            "/v1/streams/orders/groups/billing",
            Some(&app),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{described}");
    assert_eq!(described["members"].as_array().unwrap().len(), 2);
    let lag = &described["partitions"][b_partition as usize];
    assert_eq!(lag["committed"], 2, "{described}");
    assert_eq!(lag["high_watermark"], 3);
    assert_eq!(lag["lag"], 1);

    // Seek needs an empty group; then every partition is back at 0.
    let (status, problem) = group_call(data, &app, "seek", json!({"to": "earliest"})).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    for id in [&a_id, &b_id] {
        let (status, body) = group_call(data, &app, "leave", json!({"member_id": id})).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, sought) = group_call(data, &app, "seek", json!({"to": "latest"})).await?;
    assert_eq!(status, StatusCode::OK, "{sought}");
    assert_eq!(sought["offsets"], json!({"0": 3, "1": 3, "2": 3, "3": 3}));
    let (_, described) = data
        .call(
            Method::GET,
            "/v1/streams/orders/groups/billing",
            Some(&app),
            None,
        )
        .await?;
    assert!(
        described["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["lag"] == 0),
        "{described}"
    );

    // Errors: unknown group 404, bad name 422, publish-only key 403.
    let (status, _) = data
        .call(
            Method::GET,
            "/v1/streams/orders/groups/nobody",
            Some(&app),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, problem) = data
        .call(
            Method::POST,
            "/v1/streams/orders/groups/b%20d/join",
            Some(&app),
            Some(json!({})),
        )
        .await?;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "group");
    let publisher = sluice.key(&sluice.admin, &["publish"]).await?;
    let (status, _) = group_call(data, &publisher, "join", json!({})).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_is_deleted_once_it_has_no_members() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("orders", 2).await?;
    let data = &sluice.data;
    let delete = |key: String| async move {
        data.call(
            Method::DELETE,
            "/v1/streams/orders/groups/billing",
            Some(&key),
            None,
        )
        .await
    };
    let (status, problem) = delete(app.clone()).await?;
    assert_eq!(status, StatusCode::NOT_FOUND, "unknown group: {problem}");

    let (status, a) = group_call(data, &app, "join", json!({"client_id": "a"})).await?;
    assert_eq!(status, StatusCode::OK, "{a}");
    let generation = a["generation"].clone();
    let (status, body) = group_call(
        data,
        &app,
        "commit",
        json!({"member_id": a["member_id"], "generation": generation, "offsets": {"0": 0}}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A live member: refused with 409, the group stays.
    let (status, problem) = delete(app.clone()).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://sluice.dev/problems/group-not-empty"
    );
    // A publish-only key may not delete.
    let publisher = sluice.key(&sluice.admin, &["publish"]).await?;
    let (status, _) = delete(publisher).await?;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) =
        group_call(data, &app, "leave", json!({"member_id": a["member_id"]})).await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = delete(app.clone()).await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Gone with its offsets: describe 404s, a new join starts from scratch.
    let (status, _) = data
        .call(
            Method::GET,
            "/v1/streams/orders/groups/billing",
            Some(&app),
            None,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, again) = group_call(data, &app, "join", json!({})).await?;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["committed"], json!({}), "{again}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_to_a_timestamp_lands_on_the_exact_record() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("orders", 1).await?;
    let data = &sluice.data;
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    // One request, one batch: the time index only knows the batch.
    data.post_ok(
        &app,
        "/v1/streams/orders/records",
        json!({"records": [
            {"value": "old", "timestamp": base},
            {"value": "middle", "timestamp": base + 1_000},
            {"value": "new", "timestamp": base + 2_000}
        ]}),
    )
    .await?;
    for (at, expected) in [
        (base + 500, 1),
        (base + 2_000, 2),
        (base - 1, 0),
        (base + 9_000, 3),
    ] {
        let (status, sought) = group_call(
            data,
            &app,
            "seek",
            json!({"to": "timestamp", "timestamp_ms": at}),
        )
        .await?;
        assert_eq!(status, StatusCode::OK, "{sought}");
        assert_eq!(sought["offsets"], json!({"0": expected}), "at {at}");
        // A fetch from the same timestamp agrees.
        let (status, fetched) = data
            .call(
                Method::GET,
                &format!("/v1/streams/orders/partitions/0/records?timestamp={at}"),
                Some(&app),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{fetched}");
        let first = fetched["records"][0]["offset"].as_u64().unwrap_or(3);
        assert_eq!(first, expected, "{fetched}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn seek_to_explicit_offsets_and_to_earliest() -> anyhow::Result<()> {
    let (sluice, app) = Deployment::with_stream("orders", 2).await?;
    let data = &sluice.data;
    for p in 0..2 {
        let records: Vec<Value> = (0..3)
            .map(|i| json!({"value": format!("{p}-{i}"), "partition": p}))
            .collect();
        data.post_ok(
            &app,
            "/v1/streams/orders/records",
            json!({ "records": records }),
        )
        .await?;
    }
    let lags = |described: &Value| -> Vec<(Value, Value)> {
        described["partitions"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| (p["committed"].clone(), p["lag"].clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let describe = || async {
        data.call(
            Method::GET,
            "/v1/streams/orders/groups/billing",
            Some(&app),
            None,
        )
        .await
    };

    let (status, sought) = group_call(data, &app, "seek", json!({"to": "latest"})).await?;
    assert_eq!(status, StatusCode::OK, "{sought}");
    let (status, sought) = group_call(data, &app, "seek", json!({"to": "earliest"})).await?;
    assert_eq!(status, StatusCode::OK, "{sought}");
    assert_eq!(sought["offsets"], json!({"0": 0, "1": 0}));
    let (_, described) = describe().await?;
    assert_eq!(
        lags(&described),
        [(json!(0), json!(3)), (json!(0), json!(3))],
        "{described}"
    );

    // Explicit offsets: the partitions named move, the others keep theirs.
    let (status, sought) = group_call(
        data,
        &app,
        "seek",
        json!({"to": "offsets", "offsets": {"1": 2}}),
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{sought}");
    assert_eq!(sought["offsets"], json!({"0": 0, "1": 2}));
    let (_, described) = describe().await?;
    assert_eq!(
        lags(&described),
        [(json!(0), json!(3)), (json!(2), json!(1))],
        "{described}"
    );
    // A member joining now starts from the sought offsets.
    let (status, joined) = group_call(data, &app, "join", json!({})).await?;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["committed"], json!({"0": 0, "1": 2}), "{joined}");
    Ok(())
}
