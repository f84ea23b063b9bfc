//! Stream settings: the one type the control plane validates, stores and
//! sends in its topology feed (`StreamSpec` in its API) and the brokers run
//! a stream's partitions by (retention, the record size limit), and the rules
//! a declared stream must keep ([`StreamSettings::validate`]).

use serde::{Deserialize, Serialize};

/// Most partitions one stream may have.
pub const MAX_PARTITIONS: u64 = 1024;

/// The shortest time retention (like Kafka, short windows are allowed:
/// scratch streams, tests); retention runs every couple of seconds.
const MIN_RETENTION_MS: u64 = 1_000;

/// One day in milliseconds, the unit of the settings' bounds.
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

// Unknown fields are ignored when reading this type, so the control plane
// can add a setting before every broker understands it; the control plane
// refuses unknown fields on its own input. Every field is serialised (no
// `skip_serializing_if`): that is how the control plane tells an unknown
// field from a known one. The doc comments are the published API's
// descriptions (`openapi/control-plane.json`, schema `StreamSpec`).
/// Settings of a stream, as declared with `PUT /v1/streams/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = StreamSpec))]
pub struct StreamSettings {
    /// Number of partitions, 1 to 1024.
    #[serde(default = "one")]
    pub partitions: u32,
    /// Replicas per partition: 1 today (3, 5 or 7 once brokers replicate).
    #[serde(default = "one_u8")]
    pub replication_factor: u8,
    /// Records older than this are deleted (at least 1 s, default 7 days; `null` keeps them forever).
    #[serde(default = "seven_days")]
    pub retention_ms: Option<u64>,
    /// Per partition: oldest segments are deleted beyond this size (default: no limit).
    #[serde(default)]
    pub retention_bytes: Option<u64>,
    /// Kept on broker disks this long; older segments are served from object storage.
    #[serde(default)]
    pub local_retention_ms: Option<u64>,
    /// Per partition, kept on broker disks up to this size; the rest from object storage.
    #[serde(default)]
    pub local_retention_bytes: Option<u64>,
    /// Largest record accepted, at most the tenant's `max_message_bytes` quota.
    /// Absent (`null`): the quota itself, whatever it is when a record arrives.
    #[serde(default)]
    pub max_message_bytes: Option<u64>,
}

fn one() -> u32 {
    1
}

fn one_u8() -> u8 {
    1
}

fn seven_days() -> Option<u64> {
    Some(7 * DAY_MS)
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            partitions: one(),
            replication_factor: one_u8(),
            retention_ms: seven_days(),
            retention_bytes: None,
            local_retention_ms: None,
            local_retention_bytes: None,
            max_message_bytes: None,
        }
    }
}

/// A stream setting the stream cannot honour: the field, the rule it broke
/// (`range`, `odd`, ...) and why. The control plane answers it as a
/// validation problem naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct InvalidSetting {
    pub field: String,
    pub rule: &'static str,
    pub detail: String,
}

impl InvalidSetting {
    fn new(field: &str, rule: &'static str, detail: impl Into<String>) -> Self {
        InvalidSetting {
            field: field.to_string(),
            rule,
            detail: detail.into(),
        }
    }
}

impl StreamSettings {
    /// Checks every setting's range and that local retention stays within
    /// retention. `max_message_bytes_quota` is the tenant's record size
    /// quota, which a stream's own limit may not exceed.
    pub fn validate(&self, max_message_bytes_quota: u64) -> Result<(), InvalidSetting> {
        in_range(
            "partitions",
            Some(u64::from(self.partitions)),
            1,
            MAX_PARTITIONS,
        )?;
        replication_factor_served(self.replication_factor)?;
        let century = 100 * 365 * DAY_MS;
        in_range("retention_ms", self.retention_ms, MIN_RETENTION_MS, century)?;
        in_range(
            "retention_bytes",
            self.retention_bytes,
            1 << 20,
            i64::MAX as u64,
        )?;
        in_range(
            "local_retention_ms",
            self.local_retention_ms,
            MIN_RETENTION_MS,
            century,
        )?;
        in_range(
            "local_retention_bytes",
            self.local_retention_bytes,
            1 << 20,
            i64::MAX as u64,
        )?;
        let quota = max_message_bytes_quota.max(1);
        in_range("max_message_bytes", self.max_message_bytes, 1, quota)?;
        if let (Some(local), Some(total)) = (self.local_retention_ms, self.retention_ms)
            && local > total
        {
            return Err(InvalidSetting::new(
                "local_retention_ms",
                "range",
                "must not exceed retention_ms",
            ));
        }
        if let (Some(local), Some(total)) = (self.local_retention_bytes, self.retention_bytes)
            && local > total
        {
            return Err(InvalidSetting::new(
                "local_retention_bytes",
                "range",
                "must not exceed retention_bytes",
            ));
        }
        Ok(())
    }
}

/// Checks `min <= value <= max` for an optional setting.
fn in_range(field: &str, value: Option<u64>, min: u64, max: u64) -> Result<(), InvalidSetting> {
    match value {
        Some(v) if v < min || v > max => Err(InvalidSetting::new(
            field,
            "range",
            format!("must be between {min} and {max}"),
        )),
        _ => Ok(()),
    }
}

/// Odd (1, 3, 5 or 7: a majority must hold every acknowledged record), and
/// today 1: brokers do not replicate partitions to one another yet, so more
/// is refused rather than accepted and left unserved.
fn replication_factor_served(replication_factor: u8) -> Result<(), InvalidSetting> {
    if !matches!(replication_factor, 1 | 3 | 5 | 7) {
        return Err(InvalidSetting::new(
            "replication_factor",
            "odd",
            "must be 1, 3, 5 or 7",
        ));
    }
    if replication_factor > 1 {
        return Err(InvalidSetting::new(
            "replication_factor",
            "available",
            "only 1 is served today: replication across brokers is not built yet",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_spec_reads_as_the_defaults_and_unknown_fields_are_ignored() {
        let settings: StreamSettings = serde_json::from_str("{}").expect("defaults");
        assert_eq!(settings, StreamSettings::default());
        assert_eq!(settings.retention_ms, Some(7 * DAY_MS));
        let newer: StreamSettings =
            serde_json::from_str(r#"{"partitions": 3, "compaction": true}"#).expect("newer");
        assert_eq!(newer.partitions, 3);
        assert!(serde_json::from_str::<StreamSettings>(r#"{"partitions": "3"}"#).is_err());
    }

    #[test]
    fn validation_names_the_field_and_rule() {
        assert_eq!(StreamSettings::default().validate(1 << 20), Ok(()));
        let cases = [
            (r#"{"partitions": 0}"#, "partitions", "range"),
            (r#"{"replication_factor": 2}"#, "replication_factor", "odd"),
            (
                r#"{"replication_factor": 3}"#,
                "replication_factor",
                "available",
            ),
            (r#"{"retention_ms": 10}"#, "retention_ms", "range"),
            (
                r#"{"max_message_bytes": 2000000}"#,
                "max_message_bytes",
                "range",
            ),
            (
                r#"{"retention_ms": 5000, "local_retention_ms": 6000}"#,
                "local_retention_ms",
                "range",
            ),
        ];
        for (json, field, rule) in cases {
            let settings: StreamSettings = serde_json::from_str(json).expect(json);
            let invalid = settings.validate(1 << 20).expect_err(json);
            assert_eq!(
                (invalid.field.as_str(), invalid.rule),
                (field, rule),
                "{json}"
            );
        }
    }
}
