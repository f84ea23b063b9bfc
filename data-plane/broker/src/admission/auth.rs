//! Authentication without a Postgres round trip: API keys are checked
//! against the verifiers in the topology feed (a revoked key disappears from
//! the next snapshot), JWTs against the control plane's JWKS, fetched once
//! and refreshed when a token names a key id it has not seen.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::control::ControlClient;
use crate::control::topology::Topology;
use crate::error::BrokerError;

/// A tenant key (or token) that passed every check.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: i64,
    pub tenant: String,
    pub key_id: String,
    pub scopes: Vec<String>,
    /// For a token: when it expires (Unix seconds). Requests that outlive
    /// it (push streams) end then.
    pub token_expires_at: Option<i64>,
}

impl Caller {
    pub fn require(&self, scope: &str) -> Result<(), BrokerError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(BrokerError::Forbidden(format!(
                "this endpoint needs a key with the `{scope}` scope"
            )))
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    scopes: Vec<String>,
    exp: i64,
}

const ISSUER: &str = "sluice-control";
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);

/// The control plane's token verification keys, by key id.
pub struct Jwks {
    client: ControlClient,
    keys: RwLock<(HashMap<String, DecodingKey>, Option<Instant>)>,
}

impl Jwks {
    pub fn new(client: ControlClient) -> Jwks {
        Jwks {
            client,
            keys: RwLock::new((HashMap::new(), None)),
        }
    }

    fn get(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok().and_then(|k| k.0.get(kid).cloned())
    }

    /// Refetches the JWKS, at most every few seconds (unknown kids must not
    /// let a client make the broker hammer the control plane).
    async fn refresh(&self) {
        let recently = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.1)
            .is_some_and(|at| at.elapsed() < JWKS_REFRESH_MIN);
        if recently {
            return;
        }
        match self.client.jwks().await {
            Ok(set) => {
                let keys = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        Some((jwk.common.key_id.clone()?, DecodingKey::from_jwk(jwk).ok()?))
                    })
                    .collect();
                if let Ok(mut guard) = self.keys.write() {
                    *guard = (keys, Some(Instant::now()));
                }
            }
            Err(err) => tracing::warn!(error = %err, "fetching the JWKS failed"),
        }
    }
}

pub async fn authenticate(
    topology: &Topology,
    jwks: &Jwks,
    authorization: Option<&str>,
) -> Result<Caller, BrokerError> {
    let credential = authorization
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, credential)| credential.trim())
        .ok_or_else(|| {
            BrokerError::Unauthorized("missing Authorization: Bearer <key or token>".into())
        })?;
    if let Some((id, secret)) = parse_api_key(credential) {
        let verifier = topology
            .keys
            .get(id)
            .filter(|v| secret_matches(secret, &v.secret_sha256))
            .ok_or_else(|| BrokerError::Unauthorized("unknown or revoked API key".into()))?;
        return caller(topology, id, verifier.scopes.clone());
    }
    let header = jsonwebtoken::decode_header(credential).map_err(|_| {
        BrokerError::Unauthorized("credential is neither an API key nor a token".into())
    })?;
    let kid = header
        .kid
        .ok_or_else(|| BrokerError::Unauthorized("token has no key id".into()))?;
    let key = match jwks.get(&kid) {
        Some(key) => key,
        None => {
            jwks.refresh().await;
            jwks.get(&kid)
                .ok_or_else(|| BrokerError::Unauthorized("token signed by an unknown key".into()))?
        }
    };
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    validation.leeway = 5;
    let claims = jsonwebtoken::decode::<Claims>(credential, &key, &validation)
        .map_err(|_| BrokerError::Unauthorized("invalid or expired token".into()))?
        .claims;
    // The key behind the token must still be in the feed (not revoked).
    let verifier = topology.keys.get(&claims.sub).ok_or_else(|| {
        BrokerError::Unauthorized("the key this token was issued for is revoked".into())
    })?;
    let scopes = claims
        .scopes
        .into_iter()
        .filter(|s| verifier.scopes.contains(s))
        .collect();
    let mut caller = caller(topology, &claims.sub, scopes)?;
    caller.token_expires_at = Some(claims.exp);
    Ok(caller)
}

/// Whether `caller`, authenticated when its request began, may still use
/// `scope` under `topology`: its key is still in the feed (not revoked, not
/// expired), its tenant still active, and the key still grants the scope.
/// Requests that outlive many feed snapshots (push streams) ask again, so
/// revocation and suspension reach them as they reach new requests, and a
/// token's expiry ends them too.
pub fn recheck(topology: &Topology, caller: &Caller, scope: &str) -> Result<(), BrokerError> {
    if caller
        .token_expires_at
        .is_some_and(|exp| exp <= Utc::now().timestamp())
    {
        return Err(BrokerError::Unauthorized("token expired".into()));
    }
    let granted = topology
        .keys
        .get(&caller.key_id)
        .map(|verifier| {
            caller
                .scopes
                .iter()
                .filter(|s| verifier.scopes.contains(s))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let current = self::caller(topology, &caller.key_id, granted)?;
    if current.tenant_id != caller.tenant_id {
        return Err(BrokerError::Unauthorized(
            "unknown or revoked API key".into(),
        ));
    }
    current.require(scope)
}

fn caller(topology: &Topology, key_id: &str, scopes: Vec<String>) -> Result<Caller, BrokerError> {
    let verifier = topology
        .keys
        .get(key_id)
        .ok_or_else(|| BrokerError::Unauthorized("unknown or revoked API key".into()))?;
    if verifier.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(BrokerError::Unauthorized("API key expired".into()));
    }
    let tenant = topology
        .tenants
        .get(&verifier.tenant_id)
        .ok_or_else(|| BrokerError::Unauthorized("unknown API key".into()))?;
    if tenant.status != "active" {
        return Err(BrokerError::TenantSuspended(tenant.name.clone()));
    }
    Ok(Caller {
        tenant_id: tenant.id,
        tenant: tenant.name.clone(),
        key_id: key_id.to_string(),
        scopes,
        token_expires_at: None,
    })
}

/// `sk_<id>_<secret>`, the control plane's key format.
fn parse_api_key(credential: &str) -> Option<(&str, &str)> {
    let (id, secret) = credential.strip_prefix("sk_")?.split_once('_')?;
    (!id.is_empty() && !secret.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some((id, secret))
}

fn secret_matches(secret: &str, expected_hex: &str) -> bool {
    let Ok(expected) = hex::decode(expected_hex) else {
        return false;
    };
    Sha256::digest(secret.as_bytes())
        .as_slice()
        .ct_eq(&expected)
        .into()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sluice_protocol::feed::Quotas;

    use super::*;
    use crate::control::topology::{FeedTenant, KeyVerifier};

    fn topology(status: &str) -> Topology {
        let mut t = Topology::default();
        let quotas = Quotas {
            max_queues: 1,
            max_exchanges: 1,
            max_bindings: 1,
            max_streams: 1,
            max_partitions: 1,
            max_api_keys: 1,
            max_message_bytes: 1,
            publish_messages_per_second: 1,
            publish_bytes_per_second: 1,
            max_storage_bytes: 1,
        };
        t.tenants.insert(
            7,
            Arc::new(FeedTenant {
                id: 7,
                name: "acme".into(),
                status: status.into(),
                quotas,
            }),
        );
        t.keys.insert(
            "abc".into(),
            Arc::new(KeyVerifier {
                id: "abc".into(),
                tenant_id: 7,
                scopes: vec!["publish".into()],
                secret_sha256: hex::encode(Sha256::digest(b"s3cret")),
                expires_at: None,
            }),
        );
        t
    }

    fn jwks() -> Jwks {
        Jwks::new(ControlClient::new("http://127.0.0.1:1", "k").expect("client"))
    }

    #[tokio::test]
    async fn api_keys_are_verified_from_the_feed() {
        let t = topology("active");
        let caller = authenticate(&t, &jwks(), Some("Bearer sk_abc_s3cret"))
            .await
            .expect("valid");
        assert_eq!((caller.tenant.as_str(), caller.tenant_id), ("acme", 7));
        assert!(caller.require("publish").is_ok());
        assert!(caller.require("consume").is_err());
        for bad in [
            None,
            Some("Bearer sk_abc_wrong"),
            Some("Bearer sk_nope_s3cret"),
            Some("Basic x"),
        ] {
            assert!(matches!(
                authenticate(&t, &jwks(), bad).await,
                Err(BrokerError::Unauthorized(_))
            ));
        }
        let suspended = topology("suspended");
        let result = authenticate(&suspended, &jwks(), Some("Bearer sk_abc_s3cret")).await;
        assert!(matches!(result, Err(BrokerError::TenantSuspended(_))));
    }

    #[tokio::test]
    async fn a_caller_is_rechecked_against_later_snapshots() {
        let t = topology("active");
        let caller = authenticate(&t, &jwks(), Some("Bearer sk_abc_s3cret"))
            .await
            .expect("valid");
        assert!(recheck(&t, &caller, "publish").is_ok());
        assert!(matches!(
            recheck(&t, &caller, "consume"),
            Err(BrokerError::Forbidden(_))
        ));
        let mut revoked = topology("active");
        revoked.keys.clear();
        assert!(matches!(
            recheck(&revoked, &caller, "publish"),
            Err(BrokerError::Unauthorized(_))
        ));
        assert!(matches!(
            recheck(&topology("suspended"), &caller, "publish"),
            Err(BrokerError::TenantSuspended(_))
        ));
        let mut narrowed = topology("active");
        if let Some(key) = narrowed.keys.get_mut("abc") {
            Arc::make_mut(key).scopes = vec!["consume".into()];
        }
        assert!(matches!(
            recheck(&narrowed, &caller, "publish"),
            Err(BrokerError::Forbidden(_))
        ));
        let mut expired = topology("active");
        if let Some(key) = expired.keys.get_mut("abc") {
            Arc::make_mut(key).expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
        }
        assert!(matches!(
            recheck(&expired, &caller, "publish"),
            Err(BrokerError::Unauthorized(_))
        ));
        // A token's caller ends when the token does.
        let token = Caller {
            token_expires_at: Some(Utc::now().timestamp() + 60),
            ..caller.clone()
        };
        assert!(recheck(&t, &token, "publish").is_ok());
        let ended = Caller {
            token_expires_at: Some(Utc::now().timestamp() - 1),
            ..caller
        };
        assert!(matches!(
            recheck(&t, &ended, "publish"),
            Err(BrokerError::Unauthorized(_))
        ));
    }
}
