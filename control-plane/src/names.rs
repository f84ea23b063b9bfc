//! The documented charset and length of every name a client chooses.
//!
//! Resource names (exchanges, queues, streams) are URL path segments, so they
//! are kept to characters that never need escaping:
//! 1–128 characters from `A–Z a–z 0–9 . _ -`, starting with a letter or digit.
//! Names starting with `amq.` or `sluice.` are reserved, and so is `default`
//! (the default exchange).
//!
//! Tenant names end up in hostnames and metrics labels: 2–63 characters from
//! `a–z 0–9 -`, starting with a letter, not ending with `-`.

use crate::error::ApiError;

pub const RESOURCE_NAME_MAX: usize = 128;
pub const DEFAULT_EXCHANGE: &str = "default";

/// Validates a resource name given by the client as `field`.
pub fn resource(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > RESOURCE_NAME_MAX {
        return Err(ApiError::validation(
            field,
            "length",
            format!("must be 1 to {RESOURCE_NAME_MAX} characters"),
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !first_ok || !all_ok {
        return Err(ApiError::validation(
            field,
            "charset",
            "must contain only A-Z a-z 0-9 . _ - and start with a letter or digit",
        ));
    }
    Ok(())
}

/// Validates a name the client wants to create: a valid name that is not reserved.
pub fn declarable(field: &str, name: &str) -> Result<(), ApiError> {
    resource(field, name)?;
    if name.starts_with("amq.") || name.starts_with("sluice.") || name == DEFAULT_EXCHANGE {
        return Err(ApiError::validation(
            field,
            "reserved",
            "names starting with `amq.` or `sluice.`, and `default`, are reserved",
        ));
    }
    Ok(())
}

pub fn tenant(field: &str, name: &str) -> Result<(), ApiError> {
    let len_ok = (2..=63).contains(&name.len());
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ends_ok = name.starts_with(|c: char| c.is_ascii_lowercase()) && !name.ends_with('-');
    if !len_ok || !chars_ok || !ends_ok {
        return Err(ApiError::validation(
            field,
            "charset",
            "must be 2 to 63 characters from a-z 0-9 -, start with a letter and not end with -",
        ));
    }
    Ok(())
}

/// Free-text labels (API key names): 1–64 printable characters.
pub fn label(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(ApiError::validation(
            field,
            "length",
            "must be 1 to 64 printable characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_names() {
        for ok in ["a", "orders", "orders.v1", "A_b-c.9", &"x".repeat(128)] {
            assert!(resource("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(resource("name", bad).is_err(), "{bad}");
        }
        assert!(declarable("name", "amq.topic").is_err());
        assert!(declarable("name", "default").is_err());
        assert!(declarable("name", "sluice.x").is_err());
    }

    #[test]
    fn tenant_names() {
        assert!(tenant("name", "acme").is_ok());
        assert!(tenant("name", "acme-2").is_ok());
        for bad in ["a", "Acme", "2acme", "acme-", "ac_me", &"a".repeat(64)] {
            assert!(tenant("name", bad).is_err(), "{bad}");
        }
    }
}
