//! The `sluice` command line: `sluice dev` runs the whole service on this machine;
//! `sluice test-pg` and `sluice prereqs` serve `make test`.

mod dev;
mod secret_file;
mod shutdown;
mod supervisor;
mod test_pg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sluice", version, about = "Sluice: managed message queues")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole service on this machine until Ctrl-C: a private Postgres, the control
    /// plane and one or more brokers, on loopback ports chosen afresh at each start unless
    /// given (`.sluice/dev.json` says which).
    Dev(dev::DevArgs),
    /// Run a command with a private Postgres server for its tests (SLUICE_TEST_PG_URL).
    TestPg(test_pg::TestPgArgs),
    /// Make sure the tools the tests need are installed (Postgres; apt-get when root).
    Prereqs,
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(err) => {
            // The whole chain of causes on one screen, without a backtrace: these errors
            // (a missing binary, a port in use) are about the machine, not our code.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Dev(args) => dev::run(args).map(|()| ExitCode::SUCCESS),
        Command::TestPg(args) => test_pg::run(args),
        Command::Prereqs => {
            let bins = sluice_devkit::PgBinaries::ensure()?;
            println!("Postgres binaries: {}", bins.bin_dir().display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
