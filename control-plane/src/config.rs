//! The control plane's one typed configuration: defaults that work for
//! `make dev`, overridden by a TOML file, then `SLUICE_CONTROL_*` environment
//! variables, then command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP API (loopback by default).
    pub listen: SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
    /// Credential of the service's operators (creates tenants, sets quotas).
    /// Without it only tenant keys work.
    pub operator_key: Option<String>,
    /// Credential brokers present on `/internal/v1/*` (registration,
    /// heartbeats, the topology feed). Without it no broker can join.
    pub node_key: Option<String>,
    /// How long a declare or delete waits for the live brokers to apply it
    /// before answering 202 instead.
    pub apply_wait_ms: u64,
    /// Lifetime of the JWTs issued by `POST /v1/tokens`.
    pub token_ttl_seconds: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "postgres://postgres@127.0.0.1:5432/sluice".into(),
            db_max_connections: 16,
            operator_key: None,
            node_key: None,
            apply_wait_ms: 5_000,
            token_ttl_seconds: 900,
            max_body_bytes: 1 << 20,
            log_format: LogFormat::Text,
        }
    }
}

/// Command-line flags; each also reads its `SLUICE_CONTROL_*` variable.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct ConfigArgs {
    /// TOML file with any of the settings.
    #[arg(long, env = "SLUICE_CONTROL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[arg(long, env = "SLUICE_CONTROL_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[arg(long, env = "SLUICE_CONTROL_DATABASE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[arg(long, env = "SLUICE_CONTROL_OPERATOR_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_key: Option<String>,
    #[arg(long, env = "SLUICE_CONTROL_NODE_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    #[arg(long, env = "SLUICE_CONTROL_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
}

impl Config {
    pub fn load(args: &ConfigArgs) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &args.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("SLUICE_CONTROL_").ignore(&["config"]))
            .merge(Serialized::defaults(args))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_defaults() {
        let args = ConfigArgs {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            ..Default::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.token_ttl_seconds, 900);
    }
}
