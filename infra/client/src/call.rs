//! One API request, ready to send: per-request settings are chained on it
//! and `.await` sends it (retrying per [`crate::retry`]) and decodes the
//! answer. The body is serialised once, when the call is built, and each
//! attempt sends the same bytes.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{Client, Credential};
use crate::error::ClientError;
use crate::retry::{self, RetryPolicy};

/// An answer as it came: status, headers and the whole body.
#[derive(Debug)]
pub struct Answer {
    pub method: Method,
    /// Path and query the request was sent to.
    pub path: String,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// `METHOD /path`, as errors name a request.
    pub fn request(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The error this answer is, unless its status is a success.
    pub fn error_unless_success(&self) -> Result<(), ClientError> {
        if self.status.is_success() {
            return Ok(());
        }
        Err(ClientError::from_answer(
            self.request(),
            self.status,
            retry::retry_after(&self.headers),
            &self.body,
        ))
    }

    /// The body decoded as `T`, whatever the status.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_slice(&self.body).map_err(|source| ClientError::Decode {
            request: self.request(),
            status: self.status,
            source,
        })
    }

    /// A header's value as text, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Turns an answer into what a call returns.
pub(crate) type Decode<T> = fn(Answer) -> Result<T, ClientError>;

/// Success answers decoded from JSON.
pub(crate) fn json<T: DeserializeOwned>(answer: Answer) -> Result<T, ClientError> {
    answer.error_unless_success()?;
    answer.json()
}

/// Success answers whose body is of no interest (204, or read elsewhere).
pub(crate) fn empty(answer: Answer) -> Result<(), ClientError> {
    answer.error_unless_success()
}

fn raw(answer: Answer) -> Result<Answer, ClientError> {
    Ok(answer)
}

/// A request to send; see the module docs.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<T> {
    client: Client,
    method: Method,
    path: String,
    body: Result<Option<(Bytes, HeaderValue)>, serde_json::Error>,
    headers: HeaderMap,
    authorization: Option<Credential>,
    base: Option<String>,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    retry_unavailable: bool,
    decode: Decode<T>,
    answer: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Call({} {})", self.method, self.path)
    }
}

impl<T: DeserializeOwned> Call<T> {
    /// A call whose success answer is JSON decoded as `T`.
    pub(crate) fn new(client: &Client, method: Method, path: String) -> Call<T> {
        Call::decoded(client, method, path, json::<T>)
    }
}

impl<T> Call<T> {
    pub(crate) fn decoded(
        client: &Client,
        method: Method,
        path: String,
        decode: Decode<T>,
    ) -> Call<T> {
        // Reads and declares are safe to repeat after a 503; see `crate::retry`.
        let retry_unavailable = method == Method::GET || method == Method::PUT;
        Call {
            client: client.clone(),
            method,
            path,
            body: Ok(None),
            headers: HeaderMap::new(),
            authorization: None,
            base: None,
            timeout: None,
            retry: None,
            retry_unavailable,
            decode,
            answer: PhantomData,
        }
    }

    /// Sends `body` as JSON (serialised now, once).
    pub fn json(mut self, body: &impl Serialize) -> Call<T> {
        self.body = serde_json::to_vec(body).map(|bytes| {
            Some((
                Bytes::from(bytes),
                HeaderValue::from_static("application/json"),
            ))
        });
        self
    }

    /// Sends `body` as it is, with `content_type` (malformed JSON, in a test).
    pub fn body(mut self, body: impl Into<Bytes>, content_type: HeaderValue) -> Call<T> {
        self.body = Ok(Some((body.into(), content_type)));
        self
    }

    /// Adds a header to this request (replacing the client's value of it).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Call<T> {
        self.headers.insert(name, value);
        self
    }

    /// Authenticates this request with `secret` instead of the client's credential.
    pub fn bearer(self, secret: &str) -> Call<T> {
        self.credential(Credential::Bearer(secret.to_string()))
    }

    /// Authenticates this request with `credential` instead of the client's.
    pub fn credential(mut self, credential: Credential) -> Call<T> {
        self.authorization = Some(credential);
        self
    }

    /// Sends this request to `base_url` instead of the client's.
    pub fn base_url(mut self, base_url: &str) -> Call<T> {
        self.base = Some(base_url.trim_end_matches('/').to_string());
        self
    }

    /// A timeout for this request (the whole exchange, body included).
    pub fn timeout(mut self, timeout: Duration) -> Call<T> {
        self.timeout = Some(timeout);
        self
    }

    /// The retry policy for this request instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Call<T> {
        self.retry = Some(policy);
        self
    }

    /// Whether a 503 answer is retried (the policy still bounds it); each
    /// API method sets what [`crate::retry`] documents.
    pub fn retry_unavailable(mut self, safe: bool) -> Call<T> {
        self.retry_unavailable = safe;
        self
    }

    /// The same request, its success answer decoded as `U` instead (a
    /// `serde_json::Value` to see the answer exactly as sent).
    pub fn json_as<U: DeserializeOwned>(self) -> Call<U> {
        self.map_decode(json::<U>)
    }

    /// The same request, its answer returned as it came, failures included.
    pub fn raw(self) -> Call<Answer> {
        self.map_decode(raw)
    }

    fn map_decode<U>(self, decode: Decode<U>) -> Call<U> {
        Call {
            client: self.client,
            method: self.method,
            path: self.path,
            body: self.body,
            headers: self.headers,
            authorization: self.authorization,
            base: self.base,
            timeout: self.timeout,
            retry: self.retry,
            retry_unavailable: self.retry_unavailable,
            decode,
            answer: PhantomData,
        }
    }

    /// Sends the request, retrying per policy; the last response, whatever
    /// its status, and the request's path.
    pub(crate) async fn response(self) -> Result<(reqwest::Response, Method, String), ClientError> {
        let body = match self.body {
            Ok(body) => body,
            Err(source) => {
                return Err(ClientError::Encode {
                    request: format!("{} {}", self.method, self.path),
                    source,
                });
            }
        };
        let authorization = match &self.authorization {
            Some(credential) => Some(credential.header_value()?),
            None => self
                .client
                .authorization
                .clone()
                .map_err(ClientError::InvalidHeader)?,
        };
        let base = self.base.as_deref().unwrap_or(&self.client.base);
        let url = format!("{base}{}", self.path);
        let policy = self.retry.unwrap_or(self.client.retry);
        let timeout = self.timeout.or(self.client.timeout);
        let (mut attempts, mut waited) = (0u32, Duration::ZERO);
        loop {
            let mut request = self.client.http.request(self.method.clone(), &url);
            if let Some(value) = &authorization {
                request = request.header(AUTHORIZATION, value.clone());
            }
            if !self.client.headers.is_empty() {
                request = request.headers((*self.client.headers).clone());
            }
            if !self.headers.is_empty() {
                request = request.headers(self.headers.clone());
            }
            if let Some((bytes, content_type)) = &body {
                request = request
                    .header(CONTENT_TYPE, content_type.clone())
                    .body(bytes.clone());
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let response = request
                .send()
                .await
                .map_err(|source| ClientError::Transport {
                    request: format!("{} {}", self.method, self.path),
                    source,
                })?;
            attempts += 1;
            if retry::retryable(response.status(), self.retry_unavailable) {
                let after = retry::retry_after(response.headers());
                if let Some(wait) = policy.next_wait(attempts, waited, after) {
                    // Read the refusal to its end so its connection is reused.
                    let _ = response.bytes().await;
                    tokio::time::sleep(wait).await;
                    waited += wait;
                    continue;
                }
            }
            return Ok((response, self.method, self.path));
        }
    }

    /// Sends the request and decodes the answer.
    pub async fn send(self) -> Result<T, ClientError> {
        let decode = self.decode;
        let (mut response, method, path) = self.response().await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(source) => {
                return Err(ClientError::Transport {
                    request: format!("{method} {path}"),
                    source,
                });
            }
        };
        decode(Answer {
            method,
            path,
            status,
            headers,
            body,
        })
    }
}

impl<T: Send + 'static> IntoFuture for Call<T> {
    type Output = Result<T, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl Client {
    /// Any request: `path` (with its query) relative to the base URL. Its
    /// answer comes back as it is, unless turned into a typed call with
    /// [`Call::json_as`]; this is the way to send what the typed methods
    /// would refuse to build (a test's malformed body).
    pub fn request(&self, method: Method, path: &str) -> Call<Answer> {
        Call::decoded(self, method, path.to_string(), raw)
    }
}
