//! `touchline-registry`: serves the development Schema Registry over HTTP.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tokio::net::TcpListener;
use touchline_registry::{router, Registry};
use tracing_subscriber::EnvFilter;

/// A development implementation of the Confluent Schema Registry REST API
/// (Avro only), for local stacks and tests.
///
/// It does NOT check compatibility: any valid Avro schema is accepted as the
/// next version of any subject, and `GET /config` answers
/// `{"compatibilityLevel": "NONE"}`. It does not delete, and refuses JSON
/// Schema, Protobuf and schema references. Production uses a real registry.
///
/// Log verbosity follows `RUST_LOG` (default `info`; `debug` logs every
/// request).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// Address and port to listen on; port 0 picks a free port (the log says
    /// which).
    #[arg(
        long,
        env = "TOUCHLINE_REGISTRY_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    listen: SocketAddr,

    /// JSON file that keeps schemas, ids and versions across restarts: loaded
    /// at start (created when missing), rewritten atomically after every
    /// change. Without it the state lives in memory only.
    #[arg(long, env = "TOUCHLINE_REGISTRY_DATA", value_name = "FILE")]
    data: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();

    let registry = match &cli.data {
        Some(path) => Registry::open(path)
            .with_context(|| format!("cannot open the registry data file {}", path.display()))?,
        None => Registry::in_memory(),
    };
    let listener = TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is the port in use?", cli.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    tracing::info!(
        addr = %addr,
        data = %cli.data.as_deref().map_or_else(|| "(memory only)".into(), |p| p.display().to_string()),
        compatibility = "NONE (not checked)",
        "listening"
    );

    axum::serve(listener, router(registry))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}
