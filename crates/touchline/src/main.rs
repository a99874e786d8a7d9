//! `touchline`: Touchline's command-line entry point.
//!
//! This binary wires the crates together: the Kafka consumer group
//! ([`pipeline`]), the Avro decoder (`touchline-avro`), the normaliser
//! (`touchline-model`) and the ClickHouse sink (`touchline-clickhouse`).

mod cli;
mod config;
mod derive;
mod forget;
mod health;
mod identity;
mod metrics;
mod pipeline;
mod produce;
mod progress;
mod replay;
mod unread;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not the system allocator: a batch allocates and frees hundreds
/// of thousands of small strings and rows, and glibc's malloc spent about a
/// third of the pipeline's CPU on them (`BENCHMARKS.md`, where the time goes).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
