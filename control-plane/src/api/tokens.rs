//! `POST /v1/tokens` trades an API key for a short-lived JWT;
//! `GET /.well-known/jwks.json` publishes the keys that verify it.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Problems;
use crate::auth::jwt::{Claims, ISSUER};
use crate::auth::{self, Principal, api_key};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::model::api_key::Scope;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TokenParams {
    /// Lifetime in seconds, 60 up to the server's maximum (default: the maximum, 900 unless configured).
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Token {
    /// The JWT: send it as `Authorization: Bearer <token>`.
    pub token: String,
    pub token_type: String,
    pub expires_at: chrono::DateTime<Utc>,
    pub scopes: Vec<Scope>,
}

/// Exchange a tenant's API key (not a token, not the operator key) for a
/// short-lived EdDSA-signed JWT with the key's scopes. Revoking the key also
/// stops its tokens at the control plane. Operators use the operator key
/// itself: a token minted from it could not be revoked.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", params(TokenParams),
    responses((status = 201, body = Token), Problems),
    security(("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    principal: Principal,
    ApiQuery(params): ApiQuery<TokenParams>,
) -> ApiResult<(StatusCode, Json<Token>)> {
    let Principal::Tenant(key) = &principal else {
        // A token is only as revocable as the key it names: revoking an API
        // key stops its tokens, but the operator key has no record to
        // revoke, so a token minted from it would keep full operator power
        // until it expired, even after the key was rotated.
        return Err(ApiError::Forbidden(
            "tokens are issued for tenants' API keys, not for the operator key: operators \
             authenticate with the operator key itself (rotating it in the configuration \
             revokes it at once)"
                .into(),
        ));
    };
    let presented_key =
        auth::bearer_credential(&headers).is_some_and(|c| api_key::parse(c).is_some());
    if !presented_key {
        // Otherwise a token could renew itself forever.
        return Err(ApiError::Unauthorized(
            "tokens are issued for API keys, not for other tokens".into(),
        ));
    }
    let max = state.config.token_ttl_seconds;
    let ttl = params.ttl_seconds.unwrap_or(max);
    if !(60..=max).contains(&ttl) {
        return Err(ApiError::validation(
            "ttl_seconds",
            "range",
            format!("must be between 60 and {max}"),
        ));
    }
    let now = Utc::now();
    let (sub, tenant, scopes) = (
        key.key_id.clone(),
        Some(key.tenant.clone()),
        key.scopes.clone(),
    );
    let claims = Claims {
        iss: ISSUER.into(),
        sub,
        tenant,
        scopes: scopes.clone(),
        iat: now.timestamp(),
        exp: now.timestamp() + ttl as i64,
    };
    let token = state.signer.sign(&claims).map_err(ApiError::internal)?;
    let expires_at = now + chrono::Duration::seconds(ttl as i64);
    Ok((
        StatusCode::CREATED,
        Json(Token {
            token,
            token_type: "Bearer".into(),
            expires_at,
            scopes,
        }),
    ))
}

/// The public keys (JWKS) that verify tokens; brokers verify offline with them.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<jsonwebtoken::jwk::JwkSet> {
    Json(state.signer.jwks().clone())
}
