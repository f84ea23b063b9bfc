//! Who is calling: every request carries `Authorization: Bearer <credential>`
//! where the credential is the operator key, a tenant API key, or a JWT from
//! `POST /v1/tokens`. Handlers take a [`Principal`] and ask it for the scope
//! they need.

pub mod api_key;
pub mod jwt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use chrono::Utc;
use subtle::ConstantTimeEq;

use crate::db;
use crate::error::ApiError;
use crate::model::api_key::Scope;
use crate::state::AppState;

/// A tenant key (or a token issued for one) that passed every check.
#[derive(Debug, Clone)]
pub struct TenantKey {
    pub tenant_id: i64,
    pub tenant: String,
    pub key_id: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone)]
pub enum Principal {
    Operator,
    Tenant(TenantKey),
}

impl Principal {
    /// The name recorded in the audit log.
    pub fn actor(&self) -> String {
        match self {
            Principal::Operator => "operator".into(),
            Principal::Tenant(key) => format!("key:{}", key.key_id),
        }
    }

    pub fn require_operator(&self) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Tenant(_) => Err(ApiError::Forbidden(
                "this endpoint needs the operator credential".into(),
            )),
        }
    }

    /// The caller's tenant, if its key holds `scope` (`admin` implies `manage`).
    pub fn require(&self, scope: Scope) -> Result<&TenantKey, ApiError> {
        let key = self.tenant_key()?;
        let held = key.scopes.contains(&scope)
            || (scope == Scope::Manage && key.scopes.contains(&Scope::Admin));
        if !held {
            return Err(ApiError::Forbidden(format!(
                "this endpoint needs a key with the `{}` scope",
                scope.as_str()
            )));
        }
        Ok(key)
    }

    /// The caller's tenant, whatever the key's scopes (topology reads).
    pub fn tenant_key(&self) -> Result<&TenantKey, ApiError> {
        match self {
            Principal::Tenant(key) => Ok(key),
            Principal::Operator => Err(ApiError::Forbidden(
                "operator credentials are not tenant keys; use a key of the tenant".into(),
            )),
        }
    }

    /// May this caller read tenant `name`'s own records (quotas)? Another
    /// tenant's key gets 404, as if the tenant did not exist.
    pub fn can_see_tenant(&self, name: &str) -> Result<(), ApiError> {
        match self {
            Principal::Operator => Ok(()),
            Principal::Tenant(key) if key.tenant == name => Ok(()),
            Principal::Tenant(_) => Err(ApiError::not_found("tenant", name)),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !parts.headers.contains_key(header::AUTHORIZATION) {
            return Err(ApiError::Unauthorized(
                "missing Authorization: Bearer <key or token>".into(),
            ));
        }
        let credential = bearer_credential(&parts.headers).ok_or_else(|| {
            ApiError::Unauthorized("Authorization must be `Bearer <key or token>`".into())
        })?;
        authenticate(state, credential).await
    }
}

/// The credential of an `Authorization: Bearer <credential>` header (the
/// scheme is case-insensitive, RFC 7235).
pub fn bearer_credential(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

/// Whether `credential` is the configured operator key (constant time).
pub fn is_operator_key(state: &AppState, credential: &str) -> bool {
    state
        .operator_key_hash
        .as_ref()
        .is_some_and(|expected| bool::from(api_key::hash_secret(credential).ct_eq(expected)))
}

pub async fn authenticate(state: &AppState, credential: &str) -> Result<Principal, ApiError> {
    if let Some(expected) = &state.operator_key_hash
        && bool::from(api_key::hash_secret(credential).ct_eq(expected))
    {
        return Ok(Principal::Operator);
    }
    if let Some((id, secret)) = api_key::parse(credential) {
        let record = db::api_keys::lookup(&state.pool, id)
            .await?
            .filter(|r| api_key::secret_matches(secret, &r.secret_hash))
            .ok_or_else(|| ApiError::Unauthorized("unknown API key".into()))?;
        let key = record.check_usable(Utc::now())?;
        db::api_keys::touch(&state.pool, &key.key_id);
        return Ok(Principal::Tenant(key));
    }
    let claims = state
        .signer
        .verify(credential)
        .ok_or_else(|| ApiError::Unauthorized("invalid or expired token".into()))?;
    // Tokens were once minted for the operator key too (`sub: operator`, no
    // tenant); none is honoured now, since nothing could revoke them.
    if claims.tenant.is_none() {
        return Err(ApiError::Unauthorized(
            "operator tokens are not accepted: use the operator key itself".into(),
        ));
    }
    // The key behind a token may have been revoked since it was issued.
    let record = db::api_keys::lookup(&state.pool, &claims.sub)
        .await?
        .ok_or_else(|| {
            ApiError::Unauthorized("the key this token was issued for no longer exists".into())
        })?;
    let mut key = record.check_usable(Utc::now())?;
    key.scopes.retain(|s| claims.scopes.contains(s));
    Ok(Principal::Tenant(key))
}
