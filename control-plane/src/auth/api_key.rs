//! The API key format `sk_<key id>_<secret>` and how its secret is stored.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ID_LEN: usize = 12;
const SECRET_LEN: usize = 40;

/// A freshly generated key: the id (public, shown in lists), the full
/// credential (shown once) and the hash that is stored.
pub struct NewKey {
    pub id: String,
    pub credential: String,
    pub secret_hash: Vec<u8>,
}

fn random_alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

pub fn generate() -> NewKey {
    // Lowercase ids keep them readable in logs; the secret carries the entropy
    // (40 alphanumerics ≈ 238 bits).
    let id = random_alphanumeric(ID_LEN).to_ascii_lowercase();
    let secret = random_alphanumeric(SECRET_LEN);
    NewKey {
        credential: format!("sk_{id}_{secret}"),
        secret_hash: hash_secret(&secret),
        id,
    }
}

pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Splits `sk_<id>_<secret>`; `None` when the credential is not shaped like a key.
pub fn parse(credential: &str) -> Option<(&str, &str)> {
    let rest = credential.strip_prefix("sk_")?;
    let (id, secret) = rest.split_once('_')?;
    if id.is_empty() || secret.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((id, secret))
}

/// Compares in constant time so response timing does not reveal the hash.
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    hash_secret(secret).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = generate();
        let (id, secret) = parse(&key.credential).expect("parses");
        assert_eq!(id, key.id);
        assert!(secret_matches(secret, &key.secret_hash));
        assert!(!secret_matches("wrong", &key.secret_hash));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in ["", "sk_", "sk_abc", "sk__secret", "pk_abc_def", "sk_a-b_c"] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
