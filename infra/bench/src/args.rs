//! Command-line flags. Every run is bounded by a message count and a
//! wall-clock limit, so the tool always stops by itself.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sluice-bench",
    version,
    about = "Load generator for Sluice's HTTP data API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Publish with confirms while consumers receive (long-poll) and ack.
    Queue(QueueArgs),
}

/// Where the load goes.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Start a private deployment (Postgres, sluice-control, sluice-broker found
    /// next to this executable) in a temporary directory. The default.
    #[arg(long, conflicts_with = "dev_json")]
    pub spawn: bool,
    /// Run against `make dev`'s instance described by this file (control_url,
    /// broker_url, operator_key), e.g. `.sluice/dev.json`.
    #[arg(long, value_name = "PATH")]
    pub dev_json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Messages to publish (and receive and ack) in total.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub messages: u64,
    /// Body size in bytes (at least 24: the send time is embedded in the body).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(24..=16 * 1024 * 1024))]
    pub size: u64,
    /// Concurrent publishers (one HTTP client each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub publishers: u64,
    /// Messages per publish request (the broker takes at most 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch: u64,
    /// Publish requests each publisher keeps in flight (awaiting their confirm).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub window: u64,
    /// Concurrent consumers, each looping receive → ack.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub consumers: u64,
    /// Messages per receive request (the broker takes 1..=100).
    #[arg(long, alias = "prefetch", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub max_messages: u64,
    /// Long-poll wait of each receive, in milliseconds (at most 20000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub wait_ms: u64,
    /// Lease of received messages; long enough that nothing is redelivered in a healthy run.
    #[arg(long, default_value_t = 120_000)]
    pub lease_ms: u64,
    /// Pace publishing to this many messages per second in total (0: as fast as
    /// the windows allow). Below the consumers' capacity, `e2e_latency_ms` shows
    /// latency at that load rather than the backlog of an overdriven queue.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Queue name; a fresh `bench-<random>` when not given.
    #[arg(long)]
    pub queue: Option<String>,
    /// Give up (and report what was done, `"complete": false`) after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Seconds spent on each baseline (`/healthz` round trips, raw fdatasync'd writes); 0 skips them.
    #[arg(long, default_value_t = 3)]
    pub baseline_secs: u64,
    /// Directory for the raw fdatasync baseline (default: the system temp dir,
    /// which is also where `--spawn` puts the broker's data).
    #[arg(long, value_name = "DIR")]
    pub fsync_dir: Option<PathBuf>,
}
