//! `format=batches` fetches against real brokers: the answer is the stored
//! batches, framed, exactly as the segment files hold them. A client checks
//! every batch's CRC and decodes it with the storage format and gets the
//! same records a JSON fetch shows, through the hosting broker and through
//! another one (forwarding), with the offsets in `x-sluice-*` headers; an
//! empty long-poll answers no frames; bad parameters name themselves; and
//! the broker's metrics count produced and fetched records per partition.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_e2e::{Api, Deployment};
use sluice_storage::format::decode_batch;

/// One decoded record of a batches answer.
#[derive(Debug, PartialEq)]
struct Fetched {
    offset: u64,
    key: Option<String>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// Splits a batches body into frames, checks and decodes each batch, and
/// numbers its produced records (record 0 is the partition command).
fn decode_frames(mut body: &[u8]) -> anyhow::Result<Vec<Fetched>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        anyhow::ensure!(body.len() >= 16, "torn frame header");
        let base = u64::from_le_bytes(body[..8].try_into()?);
        let count = u32::from_le_bytes(body[8..12].try_into()?);
        let len = u32::from_le_bytes(body[12..16].try_into()?) as usize;
        let batch = body
            .get(16..16 + len)
            .ok_or_else(|| anyhow::anyhow!("torn batch"))?;
        let (decoded, used) = decode_batch(batch).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        anyhow::ensure!(used == len, "frame length {len}, batch {used}");
        anyhow::ensure!(decoded.records.len() == count as usize + 1, "record count");
        for (i, record) in decoded.records.into_iter().skip(1).enumerate() {
            out.push(Fetched {
                offset: base + i as u64,
                key: record.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                    .collect(),
            });
        }
        body = &body[16 + len..];
    }
    Ok(out)
}

async fn fetch_batches(
    api: &Api,
    key: &str,
    query: &str,
) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
    let response = reqwest::Client::new()
        .get(format!(
            "{}/v1/streams/events/partitions/0/records?format=batches&{query}",
            api.base
        ))
        .bearer_auth(key)
        .send()
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    Ok((status, headers, response.bytes().await?.to_vec()))
}

fn header(headers: &HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_are_the_stored_bytes_and_decode_to_the_json_records() -> anyhow::Result<()> {
    let sluice = Deployment::start().await?;
    let second = sluice.another_broker("n2")?;
    let app = sluice.key(&sluice.admin, &["publish", "consume"]).await?;
    sluice
        .declare(
            &sluice.admin,
            "/v1/streams/events",
            json!({"partitions": 1}),
        )
        .await?;
    let batches = [
        json!([
            {"key": "order-1", "value": "created", "headers": {"source": "web"}},
            {"key": "order-1", "value": "paid"},
            {"value": "AAEC/w==", "value_encoding": "base64"},
        ]),
        json!([{"key": "order-2", "value": "created"}, {"value": "tick"}]),
    ];
    for records in batches {
        let body = json!({ "records": records });
        let produced = sluice
            .data
            .post_ok(&app, "/v1/streams/events/records", body)
            .await?;
        assert!(produced["records"].is_array(), "{produced}");
    }

    let via_n2 = Api::new(&second.url);
    for api in [&sluice.data, &via_n2] {
        let (status, headers, body) = fetch_batches(api, &app, "offset=1").await?;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/vnd.sluice.batches")
        );
        assert_eq!(header(&headers, "x-sluice-start-offset"), 1);
        assert_eq!(header(&headers, "x-sluice-next-offset"), 5);
        assert_eq!(header(&headers, "x-sluice-high-watermark"), 5);
        assert_eq!(header(&headers, "x-sluice-earliest-offset"), 0);
        let records = decode_frames(&body)?;
        // Whole batches: the first starts at 0, before the requested offset.
        let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
        assert_eq!(records[0].key.as_deref(), Some("order-1"));
        assert_eq!(records[0].value, b"created");
        assert_eq!(
            records[0].headers,
            vec![("source".to_string(), "web".to_string())]
        );
        assert_eq!(records[2].value, vec![0, 1, 2, 255]);
        assert_eq!(records[4].value, b"tick");

        // The JSON fetch shows the same records.
        let (status, json) = api
            .call(
                Method::GET,
                "/v1/streams/events/partitions/0/records?offset=0",
                Some(&app),
                None,
            )
            .await?;
        assert_eq!(status, StatusCode::OK, "{json}");
        let values: Vec<&Value> = json["records"]
            .as_array()
            .map(|r| r.iter().map(|r| &r["value"]).collect())
            .unwrap_or_default();
        assert_eq!(
            values,
            vec!["created", "paid", "AAEC/w==", "created", "tick"]
        );
    }

    // The batch bytes are the segment file's bytes.
    let (_, _, body) = fetch_batches(&sluice.data, &app, "offset=0").await?;
    let segments = std::fs::read_dir(sluice.dir.path().join("broker/streams"))?
        .map(|d| Ok(d?.path().join("log")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut on_disk = Vec::new();
    for log in segments {
        for file in std::fs::read_dir(log)? {
            let path = file?.path();
            if path.extension().is_some_and(|e| e == "log") {
                on_disk.extend(std::fs::read(path)?);
            }
        }
    }
    let first_len = u32::from_le_bytes(body[12..16].try_into()?) as usize;
    let first_batch = &body[16..16 + first_len];
    assert!(on_disk.windows(first_len).any(|w| w == first_batch));

    // Nothing new: an empty long-poll.
    let (status, headers, body) = fetch_batches(&sluice.data, &app, "offset=5&wait_ms=200").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "x-sluice-next-offset"), 5);

    // Bad parameters name themselves.
    for (query, field) in [
        ("format=xml", "format"),
        ("wait_ms=soon", "wait_ms"),
        ("colour=red", "colour"),
    ] {
        let (status, problem) = sluice
            .data
            .call(
                Method::GET,
                &format!("/v1/streams/events/partitions/0/records?{query}"),
                Some(&app),
                None,
            )
            .await?;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {problem}"
        );
        assert_eq!(problem["field"], field, "{problem}");
    }

    // Metrics: produced and fetched records per partition and format.
    let metrics = reqwest::get(&sluice.broker.metrics_url)
        .await?
        .text()
        .await?;
    for line in [
        r#"sluice_stream_produced_records_total{tenant="acme",stream="events",partition="0"} 5"#,
        r#"sluice_stream_partition_end_offset{tenant="acme",stream="events",partition="0"} 5"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(
        metrics.contains(r#"sluice_stream_fetched_records_total{tenant="acme",stream="events",partition="0",format="batches"}"#),
        "{metrics}"
    );

    // A deleted stream's series leave /metrics with its partitions.
    let (status, body) = sluice
        .api
        .call(
            Method::DELETE,
            "/v1/streams/events",
            Some(&sluice.admin),
            None,
        )
        .await?;
    assert!(status.is_success(), "{status} {body}");
    let gone = sluice_e2e::eventually(std::time::Duration::from_secs(10), || async {
        match reqwest::get(&sluice.broker.metrics_url).await {
            Ok(response) if response.status().is_success() => response
                .text()
                .await
                .is_ok_and(|metrics| !metrics.contains(r#"stream="events""#)),
            _ => false,
        }
    })
    .await;
    let metrics = reqwest::get(&sluice.broker.metrics_url)
        .await?
        .text()
        .await?;
    let left: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains(r#"stream="events""#))
        .collect();
    assert!(
        gone,
        "the deleted stream's series stay in /metrics: {left:?}"
    );
    Ok(())
}
