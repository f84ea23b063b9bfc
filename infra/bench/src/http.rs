//! A small JSON-over-HTTP helper for the setup calls (tenants, keys, queues):
//! status and body back, error documents included.

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Calls `base + path` with an optional bearer key and JSON body.
pub async fn call(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = client.request(method.clone(), url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("reading the answer to {method} {url}"))?;
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, value))
}

/// Like [`call`], but anything other than a 2xx is an error naming the request.
pub async fn call_ok(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let (status, value) = call(client, method.clone(), url, key, body).await?;
    if !status.is_success() {
        bail!("{method} {url}: {status} {value}");
    }
    Ok(value)
}
