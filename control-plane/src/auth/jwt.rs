//! Short-lived JWTs signed with Ed25519 (EdDSA). The signing keys live in
//! Postgres so every control-plane replica signs with the same key, and the
//! public halves are published as a JWKS for brokers to verify offline.

use std::collections::HashMap;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm,
    OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::model::api_key::Scope;

pub const ISSUER: &str = "sluice-control";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The API key id the token was issued for (tokens naming `operator`,
    /// minted by older versions, are refused).
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub scopes: Vec<Scope>,
    pub iat: i64,
    pub exp: i64,
}

pub struct Signer {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: JwkSet,
}

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("key material: {0}")]
    Key(String),
}

impl Signer {
    /// Loads the signing keys, creating the first one if there is none.
    pub async fn load_or_create(pool: &PgPool) -> Result<Signer, SignerError> {
        let mut rows = load(pool).await?;
        if rows.is_empty() {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(|e| SignerError::Key(e.to_string()))?;
            let kid = format!("k{}", chrono::Utc::now().timestamp());
            // Two replicas starting together may both generate; the first insert wins.
            sqlx::query("INSERT INTO signing_keys (kid, private_der) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(&kid)
                .bind(pkcs8.as_ref())
                .execute(pool)
                .await?;
            rows = load(pool).await?;
        }
        let mut decoding = HashMap::new();
        let mut jwks = JwkSet { keys: Vec::new() };
        let mut newest = None;
        for (kid, der) in rows {
            let pair =
                Ed25519KeyPair::from_pkcs8(&der).map_err(|e| SignerError::Key(e.to_string()))?;
            let public = aws_lc_rs::signature::KeyPair::public_key(&pair)
                .as_ref()
                .to_vec();
            let encoding = EncodingKey::from_ed_der(&der);
            jwks.keys.push(public_jwk(&kid, &public));
            decoding.insert(kid.clone(), DecodingKey::from_ed_der(&public));
            newest = Some((kid, encoding));
        }
        let (kid, encoding) = newest.ok_or_else(|| SignerError::Key("no signing key".into()))?;
        Ok(Signer {
            kid,
            encoding,
            decoding,
            jwks,
        })
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks signature, issuer and expiry; `None` for any invalid token.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.decoding.get(header.kid.as_deref()?)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .ok()
            .map(|d| d.claims)
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }
}

/// The JWK (RFC 8037 `OKP` / `Ed25519`) of a public key.
fn public_jwk(kid: &str, public: &[u8]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_string()),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public),
        }),
    }
}

async fn load(pool: &PgPool) -> Result<Vec<(String, Vec<u8>)>, sqlx::Error> {
    sqlx::query_as("SELECT kid, private_der FROM signing_keys ORDER BY created_at, kid")
        .fetch_all(pool)
        .await
}
