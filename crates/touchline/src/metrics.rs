//! Every metric the pipeline exports, named in one place, and the HTTP
//! endpoint that serves them. Labels are bounded: channel, reason, score kind;
//! never a customer, event or contact id.

use std::net::SocketAddr;

use anyhow::Context;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The pipeline's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Messages read from Kafka, by channel.
    pub consumed: IntCounterVec,
    /// Timeline rows confirmed by ClickHouse, by channel.
    pub written: IntCounterVec,
    /// Messages sent to the dead-letter table, by reason.
    pub dead_letters: IntCounterVec,
    /// Scores dropped for being outside their scale, by channel and score.
    pub scores_dropped: IntCounterVec,
    /// Messages per flushed batch.
    pub batch_size: Histogram,
    /// Seconds per ClickHouse insert, by table.
    pub insert_seconds: HistogramVec,
    /// Failed attempts that will be retried, by stage (registry, clickhouse).
    pub retries: IntCounterVec,
    /// Seconds from the broker's timestamp of a message to ClickHouse
    /// confirming its row.
    pub latency_seconds: Histogram,
    /// Writer schemas held in the decoder's cache.
    pub cached_schemas: IntGauge,
    /// Batches flushed.
    pub batches: IntCounter,
    /// Link sets this instance produced to the identity-link topic.
    pub links_produced: IntCounter,
    /// Identifier assignments written because a customer was created,
    /// merged or split.
    pub identity_changes: IntCounter,
    /// Identifiers in this instance's identity graph.
    pub identifiers: IntGauge,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let consumed = counter(
            "touchline_messages_consumed_total",
            "Messages read from the source topics.",
            &["channel"],
        )?;
        let written = counter(
            "touchline_events_written_total",
            "Timeline rows confirmed by ClickHouse (redeliveries included).",
            &["channel"],
        )?;
        let dead_letters = counter(
            "touchline_dead_letters_total",
            "Messages written to the dead-letter table.",
            &["reason"],
        )?;
        let scores_dropped = counter(
            "touchline_scores_dropped_total",
            "Scores dropped for being outside their scale; the event is kept.",
            &["channel", "score"],
        )?;
        let retries = counter(
            "touchline_retries_total",
            "Failed attempts that will be retried.",
            &["stage"],
        )?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new("touchline_batch_messages", "Messages per flushed batch.")
                .buckets(prometheus::exponential_buckets(1.0, 4.0, 9)?),
        )?;
        registry.register(Box::new(batch_size.clone()))?;
        let insert_seconds = HistogramVec::new(
            HistogramOpts::new("touchline_insert_seconds", "Seconds per ClickHouse insert.")
                .buckets(prometheus::exponential_buckets(0.001, 2.5, 12)?),
            &["table"],
        )?;
        registry.register(Box::new(insert_seconds.clone()))?;
        let latency_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "touchline_end_to_end_latency_seconds",
                "Seconds from a message's broker timestamp to its row being confirmed by ClickHouse.",
            )
            .buckets(prometheus::exponential_buckets(0.01, 2.0, 14)?),
        )?;
        registry.register(Box::new(latency_seconds.clone()))?;
        let cached_schemas = IntGauge::new(
            "touchline_registry_cached_schemas",
            "Writer schemas held in the decoder's cache.",
        )?;
        registry.register(Box::new(cached_schemas.clone()))?;
        let batches = IntCounter::new("touchline_batches_total", "Batches flushed.")?;
        registry.register(Box::new(batches.clone()))?;
        let links_produced = IntCounter::new(
            "touchline_identity_links_produced_total",
            "Identifier sets this instance produced to the identity-link topic.",
        )?;
        registry.register(Box::new(links_produced.clone()))?;
        let identity_changes = IntCounter::new(
            "touchline_identity_changes_total",
            "Identifier assignments written because customers were created, merged or split.",
        )?;
        registry.register(Box::new(identity_changes.clone()))?;
        let identifiers = IntGauge::new(
            "touchline_identity_graph_identifiers",
            "Identifiers in this instance's identity graph.",
        )?;
        registry.register(Box::new(identifiers.clone()))?;
        Ok(Metrics {
            registry,
            consumed,
            written,
            dead_letters,
            scores_dropped,
            batch_size,
            insert_seconds,
            retries,
            latency_seconds,
            cached_schemas,
            batches,
            links_produced,
            identity_changes,
            identifiers,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(error) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Serves `/metrics` and `/healthz` on `addr` until the process ends.
    pub async fn serve(self, addr: SocketAddr) -> anyhow::Result<()> {
        let app = Router::new()
            .route("/metrics", get(move || async move { self.render() }))
            .route("/healthz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!(
                "cannot listen for metrics on {addr}; set TOUCHLINE_METRICS_ADDR to a free address"
            )
        })?;
        tracing::info!(%addr, "serving /metrics");
        axum::serve(listener, app).await?;
        Ok(())
    }
}
