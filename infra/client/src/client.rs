//! The client: one connection pool (reqwest's), a base URL, a credential,
//! extra headers and a retry policy. Everything but the pool is per clone,
//! so a caller keeps one pool and derives a client per broker URL, per
//! credential or per set of headers for the price of a few reference counts.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::error::ClientError;
use crate::retry::RetryPolicy;

/// What a client sends in `Authorization`.
#[derive(Clone)]
pub enum Credential {
    /// An API key `sk_...`, a JWT from `POST /v1/tokens`, the operator key
    /// or a node key: sent as `Authorization: Bearer <secret>`.
    Bearer(String),
    /// A caller's `Authorization` header value, passed through as given
    /// (a broker forwarding a request with its caller's credential).
    Authorization(HeaderValue),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        match self {
            Credential::Bearer(_) => f.write_str("Bearer(..)"),
            Credential::Authorization(_) => f.write_str("Authorization(..)"),
        }
    }
}

impl Credential {
    pub(crate) fn header_value(&self) -> Result<HeaderValue, ClientError> {
        let mut value = match self {
            Credential::Bearer(secret) => HeaderValue::try_from(format!("Bearer {secret}"))
                .map_err(|_| ClientError::InvalidHeader("authorization".into()))?,
            Credential::Authorization(value) => value.clone(),
        };
        value.set_sensitive(true);
        Ok(value)
    }
}

/// A client of one Sluice endpoint (a control plane or a broker).
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    /// Without a trailing `/`; paths start with one.
    pub(crate) base: Arc<str>,
    /// `Ok(None)`: no credential; `Err`: one that HTTP cannot carry,
    /// reported by every call rather than by the setter.
    pub(crate) authorization: Result<Option<HeaderValue>, String>,
    pub(crate) headers: Arc<HeaderMap>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
}

impl Client {
    /// A client of `base_url` (e.g. `http://127.0.0.1:8080`) with a new
    /// connection pool, no credential and the default [`RetryPolicy`].
    pub fn new(base_url: &str) -> Client {
        Client::with_http(reqwest::Client::new(), base_url)
    }

    /// A client over an existing connection pool (its timeouts, proxies,
    /// TLS settings are kept).
    pub fn with_http(http: reqwest::Client, base_url: &str) -> Client {
        Client {
            http,
            base: Arc::from(base_url.trim_end_matches('/')),
            authorization: Ok(None),
            headers: Arc::new(HeaderMap::new()),
            retry: RetryPolicy::default(),
            timeout: None,
        }
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The connection pool, for requests outside the API.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// This client with a connection pool of its own (a load generator
    /// spreading its requests over several connections).
    pub fn with_own_pool(&self) -> Client {
        Client {
            http: reqwest::Client::new(),
            ..self.clone()
        }
    }

    /// This client, sending to `base_url` (same pool, credential, headers).
    pub fn at(&self, base_url: &str) -> Client {
        Client {
            base: Arc::from(base_url.trim_end_matches('/')),
            ..self.clone()
        }
    }

    /// This client with `credential`.
    pub fn with_credential(&self, credential: Credential) -> Client {
        Client {
            authorization: credential
                .header_value()
                .map(Some)
                .map_err(|e| e.to_string()),
            ..self.clone()
        }
    }

    /// This client authenticating with `secret` as a bearer credential.
    pub fn with_bearer(&self, secret: &str) -> Client {
        self.with_credential(Credential::Bearer(secret.to_string()))
    }

    /// This client without a credential.
    pub fn anonymous(&self) -> Client {
        Client {
            authorization: Ok(None),
            ..self.clone()
        }
    }

    /// This client adding `name: value` to every request (replacing an
    /// earlier value of the same header).
    pub fn with_header(&self, name: HeaderName, value: HeaderValue) -> Client {
        let mut headers = (*self.headers).clone();
        headers.insert(name, value);
        Client {
            headers: Arc::new(headers),
            ..self.clone()
        }
    }

    /// This client with `policy` for every call (see [`crate::retry`]).
    pub fn with_retry(&self, policy: RetryPolicy) -> Client {
        Client {
            retry: policy,
            ..self.clone()
        }
    }

    /// This client with a timeout for every call (none by default: long
    /// polls and push streams last as long as they are asked to).
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client {
            timeout: Some(timeout),
            ..self.clone()
        }
    }
}
