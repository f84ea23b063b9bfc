//! The `sluice-control` binary: `serve` (the default) runs the control
//! plane; `openapi` prints the generated OpenAPI document.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_control::config::{Config, ConfigArgs, LogFormat};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "sluice-control", about = "Sluice control plane")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane (default).
    Serve,
    /// Print the OpenAPI document (as checked in at openapi/control-plane.json).
    Openapi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        use std::io::Write;
        std::io::stdout().write_all(sluice_control::api::openapi_json().as_bytes())?;
        return Ok(());
    }
    let config = Config::load(&cli.config).context("reading configuration")?;
    init_logs(config.log_format);
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    let state = sluice_control::build_state(config).await?;
    tracing::info!(url = %format!("http://{address}"), "sluice-control listening");
    sluice_control::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("sluice-control stopped");
    Ok(())
}

fn init_logs(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colours only on a terminal: log files must read as plain text.
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
