//! Command-line flags. Every run is bounded by a message (record) count and
//! a wall-clock limit, so the tool always stops by itself.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Publish with confirms while consumers receive (long-poll, or with
    /// `--push` the Server-Sent Events consume stream) and ack.
    Queue(QueueArgs),
    /// Produce records with acks to a partitioned stream, then fetch every
    /// partition back and verify each record came back once; compares with
    /// the storage engine's raw append rate measured in the same run.
    Stream(StreamArgs),
    /// Declare many queues (and stream partitions) on one broker and measure
    /// what they cost it idle (CPU, memory, open files, threads, against a
    /// same-run baseline with none), the first publish on a random few, a
    /// graceful and a kill -9 restart, and the declare rate as they grow.
    Queues(QueuesArgs),
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
    /// Concurrent consumers, each looping receive → ack (or, with `--push`,
    /// each holding one consume stream).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub consumers: u64,
    /// Messages per receive request (the broker takes 1..=100); with `--push`,
    /// each consumer's prefetch window (the broker takes 1..=1000).
    #[arg(long, alias = "prefetch", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=MAX_PREFETCH))]
    pub max_messages: u64,
    /// Consume with the broker's push API (`GET /v1/queues/{q}/consume`,
    /// Server-Sent Events, `prefetch` = `--max-messages`) instead of
    /// long-polling `POST /receive`.
    #[arg(long)]
    pub push: bool,
    /// With `--push`: receipts per ack request at most. A consumer acks what
    /// has arrived whenever its stream has nothing more buffered, or as soon
    /// as this many messages are waiting (the broker takes 1..=1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub ack_batch: u64,
    /// With `--push`: when the stream has nothing more buffered, wait up to
    /// this many milliseconds for more messages before acking what has
    /// arrived (0: ack at once). Tokio's timer ticks in milliseconds.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub ack_linger_ms: u64,
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
    /// Publish everything first and start the consumers only once the last
    /// confirm is in: measures draining a deep queue, and (with `--spawn`)
    /// the broker's resident memory idle, holding the backlog, and drained.
    #[arg(long)]
    pub backlog: bool,
    /// With `--backlog` and `--spawn`: once the backlog is confirmed, kill the
    /// broker with SIGKILL and restart it, report how long it took to be
    /// ready, then drain: a complete run proves no confirmed message was lost.
    #[arg(long, requires = "backlog")]
    pub crash: bool,
    /// With `--backlog` and `--spawn`: once the backlog is confirmed, stop
    /// the broker with SIGTERM (it snapshots and closes its queues) and
    /// restart it before the drain.
    #[arg(long, requires = "backlog", conflicts_with = "crash")]
    pub restart: bool,
    /// With `--backlog` and `--spawn`: before the drain (and before the
    /// restart, if any), make the kernel drop the broker's files from its page cache
    /// (`posix_fadvise(DONTNEED)` on every file under its data directory;
    /// `/proc/sys/vm/drop_caches` needs more privilege than a container
    /// has), so the drain reads its bodies from disk: a cold drain.
    #[arg(long, requires = "backlog")]
    pub evict_cache: bool,
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

/// Largest `max_messages` of one `POST /receive` (the broker's limit).
pub const MAX_RECEIVE: u64 = 100;
/// Largest prefetch of one push consumer (the broker's `MAX_PREFETCH`).
pub const MAX_PREFETCH: u64 = 1000;

impl QueueArgs {
    /// Checks what clap cannot: the pull and push limits of `--max-messages` differ.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !self.push && self.max_messages > MAX_RECEIVE {
            anyhow::bail!(
                "--max-messages {} is over the receive limit of {MAX_RECEIVE} \
                 (up to {MAX_PREFETCH} works as a prefetch with --push)",
                self.max_messages
            );
        }
        Ok(())
    }

    /// `"push"` or `"pull"`, as the report names the consume mode.
    pub fn consume_mode(&self) -> &'static str {
        if self.push { "push" } else { "pull" }
    }
}

/// How fetched records travel (`format=` of the fetch); `stream::fetch::
/// fetch_page` is the one place that reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FetchFormat {
    /// Decoded records in JSON.
    Json,
    /// Stored batches straight from the segment files, decoded here.
    Batches,
}

impl FetchFormat {
    pub fn name(self) -> &'static str {
        match self {
            FetchFormat::Json => "json",
            FetchFormat::Batches => "batches",
        }
    }
}

#[derive(Debug, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Records to produce (and fetch back) in total.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub records: u64,
    /// Value size in bytes (at least 48: a run tag, the record's id and its
    /// send time are embedded at the start of the value).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(48..=16 * 1024 * 1024))]
    pub size: u64,
    /// Partitions of the benchmark stream.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub partitions: u64,
    /// Concurrent producers (one HTTP client each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub producers: u64,
    /// Records per produce request.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch: u64,
    /// Produce requests each producer keeps in flight (awaiting their ack).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub window: u64,
    /// Concurrent fetchers, each reading its share of the partitions
    /// (default: one per partition; at most the partition count).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub fetchers: Option<u64>,
    /// Distinct record keys, `k0`..: keyed records are spread over the
    /// partitions by the broker's murmur2 partitioner (a request's batch is
    /// split per partition). 0: keyless, each request sticks to one partition.
    #[arg(long, default_value_t = 0)]
    pub keys: u64,
    /// Records per fetch request (the broker takes 1..=1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub fetch_max_records: u64,
    /// Value bytes per fetch request, roughly (at least one record is returned).
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub fetch_max_bytes: u64,
    /// Wire format of fetched records.
    #[arg(long, value_enum, default_value_t = FetchFormat::Json)]
    pub fetch_format: FetchFormat,
    /// Fetch while producing (long-polling) and report the end-to-end
    /// latency, produce send → fetched; without it the partitions are read
    /// after the last ack.
    #[arg(long)]
    pub follow: bool,
    /// Long-poll wait of each fetch with `--follow`, in milliseconds (at most 20000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub wait_ms: u64,
    /// Stream name; a fresh `bench-<random>` when not given.
    #[arg(long)]
    pub stream: Option<String>,
    /// Stop producing after this many seconds, and stop fetching this many
    /// seconds after the producers finished (then report what was done,
    /// `"complete": false`).
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    /// Seconds spent on each HTTP/disk baseline (`/healthz` round trips, raw
    /// fdatasync'd writes); 0 skips them.
    #[arg(long, default_value_t = 3)]
    pub baseline_secs: u64,
    /// The storage-engine baseline appends `--records` records and goes on
    /// until this many seconds have passed (within `--timeout-secs`); 0 skips it.
    #[arg(long, default_value_t = 3)]
    pub engine_secs: u64,
    /// Directory for the disk baselines, raw fdatasync and storage engine
    /// (default: the spawned deployment's temp dir, else the system temp dir).
    #[arg(long, alias = "fsync-dir", value_name = "DIR")]
    pub baseline_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QueuesArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Queues to declare (all idle, `{}` settings).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub queues: u64,
    /// Declares in flight at once, one control-plane client each.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub concurrency: u64,
    /// Streams to declare after the queues; their partitions are Raft groups
    /// like queues and count with them in the per-queue figures.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub streams: u64,
    /// Partitions of each of the `--streams` (the control plane takes 1..=1024).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub partitions_per_stream: u64,
    /// Random queues to wake once all are idle: publish one message with
    /// confirm, receive it, ack it (at most `--queues`).
    #[arg(long, default_value_t = 200)]
    pub touch: u64,
    /// Length of each idle measurement window, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub idle_secs: u64,
    /// Queues declared at the end with `--queues` already present (0: none).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub more: u64,
    /// Skip the graceful and kill -9 broker restarts (they need `--spawn`
    /// and are skipped against `--dev-json` anyway).
    #[arg(long)]
    pub no_restart: bool,
    /// Give up (and report what was done, `"complete": false`) after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_secs: u64,
}
