//! The broker's one typed configuration: defaults that work with `sluice dev`,
//! overridden by a TOML file, then `SLUICE_BROKER_*` environment variables,
//! then command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the data API (loopback by default).
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` listener, for the operator's scrape
    /// network only: the series name every tenant, queue and stream hosted here,
    /// so they are never served on the tenants' data port. Port 0 picks any
    /// free port (logged at start).
    pub metrics_listen: SocketAddr,
    /// URL clients and other brokers reach this broker at (default: `http://<listen>`).
    pub advertise_url: Option<String>,
    /// Stable identity of this node; its groups are placed on it by this id.
    pub node_id: String,
    pub zone: String,
    /// Base URL of the control plane.
    pub control_url: String,
    /// The credential brokers present to the control plane.
    pub node_key: String,
    /// Where the node keeps its Raft logs and snapshots.
    pub data_dir: PathBuf,
    /// How often the broker tells the control plane it is alive and what it applied.
    pub heartbeat_ms: u64,
    /// `text` or `json` log lines.
    pub log_format: String,
    /// Size at which a stream partition's log rolls to a new segment
    /// (Kafka's `log.segment.bytes`): retention frees whole segments.
    pub stream_segment_bytes: u64,
    /// A queue or partition nobody used for this long sleeps: closed, no
    /// task, timer or open file, woken by its next request or timer.
    pub hibernate_after_ms: u64,
    /// Awake groups beyond this (per kind: queues, partitions) sleep early,
    /// least recently used first: what bounds open files and memory.
    pub max_awake_groups: usize,
    /// The most groups (queues and stream partitions, asleep or awake)
    /// this broker hosts: it tells the control plane, which places no more
    /// on it and refuses declares with `capacity-exhausted` when every
    /// broker is full. 0: no limit.
    pub max_groups: u64,
    /// Free disk bytes the broker keeps under `data_dir`: while it has no
    /// more free, the control plane places no new group on it.
    pub disk_reserve_bytes: u64,
    /// Long-polls (receives and fetches with a wait) and push consume
    /// streams one tenant may hold open on this broker at once; beyond it
    /// 429. 0: no limit.
    pub max_waiting_per_tenant: usize,
    /// Pages of a queue's compact backlog kept in memory (4,096 messages,
    /// 80 KiB each; at least 3: the front, the one read ahead, the back);
    /// a deeper backlog spills the rest to page files in the queue's
    /// directory, so a backlog far bigger than memory costs a bounded
    /// window of it (issue 21).
    pub backlog_memory_pages: usize,
    /// Log entries a queue reads ahead of its consumers (a hint to the
    /// kernel, so draining a deep queue whose bodies left the page cache
    /// does not wait on the disk for each entry); 0 turns it off.
    pub log_read_ahead_entries: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            advertise_url: None,
            node_id: "node-1".into(),
            zone: "default".into(),
            control_url: "http://127.0.0.1:8080".into(),
            node_key: String::new(),
            data_dir: PathBuf::from(".sluice/broker"),
            heartbeat_ms: 2_000,
            log_format: "text".into(),
            stream_segment_bytes: 64 * 1024 * 1024,
            hibernate_after_ms: 30_000,
            max_awake_groups: 1_000,
            max_groups: 100_000,
            disk_reserve_bytes: 256 * 1024 * 1024,
            max_waiting_per_tenant: 1_000,
            backlog_memory_pages: crate::queue::spill::DEFAULT_MEMORY_PAGES,
            log_read_ahead_entries: crate::queue::read_ahead::DEFAULT_ENTRIES,
        }
    }
}

impl Config {
    /// When hosted groups sleep.
    pub fn hibernation(&self) -> crate::raft::sweeper::Hibernation {
        crate::raft::sweeper::Hibernation {
            after: std::time::Duration::from_millis(self.hibernate_after_ms),
            max_awake: self.max_awake_groups.max(1),
        }
    }

    pub fn advertise_url(&self) -> String {
        self.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

/// Command-line flags; each also reads its `SLUICE_BROKER_*` variable.
#[derive(Debug, Default, Clone, clap::Args, Serialize)]
pub struct ConfigArgs {
    /// TOML file with any of the settings.
    #[arg(long, env = "SLUICE_BROKER_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    #[arg(long, env = "SLUICE_BROKER_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[arg(long, env = "SLUICE_BROKER_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[arg(long, env = "SLUICE_BROKER_NODE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[arg(long, env = "SLUICE_BROKER_CONTROL_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_url: Option<String>,
    #[arg(long, env = "SLUICE_BROKER_NODE_KEY", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    #[arg(long, env = "SLUICE_BROKER_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Config {
    pub fn load(args: &ConfigArgs) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &args.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("SLUICE_BROKER_").ignore(&["config"]))
            .merge(Serialized::defaults(args))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_listener_is_its_own_setting_and_the_flag_wins() {
        let flag: SocketAddr = "127.0.0.1:19191".parse().expect("an address");
        let args = ConfigArgs {
            metrics_listen: Some(flag),
            ..ConfigArgs::default()
        };
        let config = Config::load(&args).expect("the defaults and a flag load");
        assert_eq!(config.metrics_listen, flag);
        assert_ne!(
            Config::default().metrics_listen,
            Config::default().listen,
            "metrics must not share the data port"
        );
    }
}
