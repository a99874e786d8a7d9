//! Every metric the pipeline exports, named in one place, and the HTTP
//! endpoint that serves them with the health checks (`/metrics`, `/healthz`,
//! `/readyz`). Labels are bounded: channel, reason, score kind, stage, table,
//! dependency, and topic and partition of the source topics; never a
//! customer, event or contact id.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::health::Readiness;

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
    /// Events dropped because they carry an erased identifier, by channel.
    pub suppressed: IntCounterVec,
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
    /// Seconds per derive round (contacts, customers and days recomputed
    /// for the batches confirmed since the previous round).
    pub derive_seconds: Histogram,
    /// Messages of confirmed batches waiting for the next derive round.
    pub underived_messages: IntGauge,
    /// Messages of the source partitions assigned to this instance that
    /// the broker holds beyond what it has read (librdkafka's statistics).
    pub unread_messages: IntGauge,
    /// Batches flushed.
    pub batches: IntCounter,
    /// Link sets this instance produced to the identity-link topic.
    pub links_produced: IntCounter,
    /// Identifier assignments written because a customer was created,
    /// merged or split.
    pub identity_changes: IntCounter,
    /// Identifiers in this instance's identity graph.
    pub identifiers: IntGauge,
    /// Messages of each source partition not yet committed by the consumer
    /// group, by topic and partition (set by the readiness probe).
    pub consumer_lag: IntGaugeVec,
    /// 1 when a dependency (kafka, schema_registry, clickhouse) passed the
    /// last readiness check, else 0.
    pub dependency_up: IntGaugeVec,
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
        let suppressed = counter(
            "touchline_events_suppressed_total",
            "Events dropped, not stored, because they carry an identifier erased by `touchline forget`.",
            &["channel"],
        )?;
        let retries = counter(
            "touchline_retries_total",
            "Failed attempts that will be retried.",
            &["stage"],
        )?;
        // Known label values start at 0, so that a rate is defined (and a
        // dashboard shows 0) before the first event of each.
        for channel in touchline_model::Channel::ALL {
            consumed.with_label_values(&[channel.as_str()]);
            written.with_label_values(&[channel.as_str()]);
            suppressed.with_label_values(&[channel.as_str()]);
        }
        for stage in ["registry", "clickhouse", "kafka"] {
            retries.with_label_values(&[stage]);
        }
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
        let derive_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "touchline_derive_round_seconds",
                "Seconds per derive round: contacts, customers and days recomputed for the batches confirmed since the previous round.",
            )
            .buckets(prometheus::exponential_buckets(0.01, 2.0, 14)?),
        )?;
        registry.register(Box::new(derive_seconds.clone()))?;
        let underived_messages = IntGauge::new(
            "touchline_underived_messages",
            "Messages of confirmed batches waiting for the next derive round; their offsets are committed after it.",
        )?;
        registry.register(Box::new(underived_messages.clone()))?;
        let unread_messages = IntGauge::new(
            "touchline_unread_messages",
            "Messages of the source partitions assigned to this instance that the broker holds \
             beyond what it has read, from librdkafka's statistics each second.",
        )?;
        registry.register(Box::new(unread_messages.clone()))?;
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
        let gauge = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntGaugeVec> {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let consumer_lag = gauge(
            "touchline_consumer_lag_messages",
            "Messages of a source partition not yet committed by the consumer group \
             (high watermark minus committed offset); every instance reports every partition.",
            &["topic", "partition"],
        )?;
        let dependency_up = gauge(
            "touchline_dependency_up",
            "1 when the dependency passed the last readiness check, else 0.",
            &["dependency"],
        )?;
        let build_info = gauge(
            "touchline_build_info",
            "Always 1; the version of the running binary is in its label.",
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Metrics {
            registry,
            consumed,
            written,
            dead_letters,
            scores_dropped,
            suppressed,
            batch_size,
            insert_seconds,
            retries,
            latency_seconds,
            cached_schemas,
            derive_seconds,
            underived_messages,
            unread_messages,
            batches,
            links_produced,
            identity_changes,
            identifiers,
            consumer_lag,
            dependency_up,
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

    /// Serves, on `listener` (from [`bind`]) until `stop` turns true:
    /// `/metrics` (Prometheus text format), `/healthz` (200 while the process
    /// serves HTTP) and `/readyz` (200 or 503 with a JSON body naming what is
    /// not ready). Requests in flight when `stop` comes are answered.
    pub async fn serve(
        self,
        listener: TcpListener,
        readiness: Readiness,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let app = Router::new()
            .route(
                "/metrics",
                get(move || async move {
                    (
                        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
                        self.render(),
                    )
                }),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/readyz",
                get(move || async move {
                    let (ready, body) = readiness.report();
                    let status = if ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, Json(body)).into_response()
                }),
            );
        let stopped = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
            .context("the metrics server failed")
    }
}

/// Binds the address of `/metrics`, `/healthz` and `/readyz`, so that a taken
/// address fails the start instead of a background task.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for metrics on {addr}; set metrics_addr (TOUCHLINE_METRICS_ADDR, \
             --metrics-addr) to a free address, or port 0 for any"
        )
    })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    Ok(listener)
}

/// How long a stopping metrics server may take to answer the requests in
/// flight before it is dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
