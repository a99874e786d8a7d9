//! Touchline's configuration: one typed structure for every command.
//!
//! Settings come from four layers, the first that sets a key wins:
//! a command-line flag, its `TOUCHLINE_*` environment variable, the TOML file
//! named by `--config` (or `TOUCHLINE_CONFIG`), and the default. Every default
//! suits the local stack, so no file is needed there. A file is read with
//! unknown keys rejected (the error names the key and its line) and the
//! result is validated before anything connects.
//!
//! Secrets (the `*password` keys) can be set inline, through the environment,
//! or as the path of a file holding them (`*password_file`, for mounted
//! Kubernetes secrets). They are held as [`Secret`], whose `Debug` and
//! `Serialize` print `<redacted>`, so logging or showing a configuration never
//! shows one.
//!
//! [`DEFAULTS_TOML`] is the documented default file (`touchline config
//! show-defaults`); the tests keep it equal to [`Config::default`] and listing
//! every key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use rdkafka::ClientConfig;
use serde::{Deserialize, Deserializer, Serialize};

/// The complete configuration of the `touchline` binary.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address serving `/metrics`, `/healthz` and `/readyz` (`touchline run`).
    /// Default `0.0.0.0:9464`; port 0 picks a free port.
    pub metrics_addr: SocketAddr,
    /// The Kafka cluster holding the source topics.
    pub kafka: KafkaSettings,
    /// The Confluent-compatible schema registry of the source topics.
    pub schema_registry: RegistrySettings,
    /// The ClickHouse holding Touchline's tables and views.
    pub clickhouse: ClickHouseSettings,
    /// How `touchline run` batches.
    pub pipeline: PipelineSettings,
    /// Pseudonymisation and free text.
    pub privacy: PrivacySettings,
}

/// `[kafka]`: brokers, topics, consumer group and security.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated. Default `127.0.0.1:9092`.
    pub brokers: String,
    /// Prefix of the source topic names (`<prefix>cx.chatbot.events`, ...) and
    /// of the topics Touchline keeps, for environments sharing a broker.
    /// Default empty.
    pub topic_prefix: String,
    /// Consumer group; instances of one group share the partitions.
    /// Default `touchline`.
    pub group_id: String,
    /// librdkafka `security.protocol`. Default `plaintext`.
    pub security_protocol: SecurityProtocol,
    /// `[kafka.ssl]`: TLS files, used with `ssl` and `sasl_ssl`.
    pub ssl: SslSettings,
    /// `[kafka.sasl]`: credentials, used with `sasl_plaintext` and `sasl_ssl`.
    pub sasl: SaslSettings,
    /// `[kafka.options]`: extra librdkafka settings. Default none. Values of
    /// settings that look secret print as `<redacted>`.
    #[serde(serialize_with = "serialize_options")]
    pub options: BTreeMap<String, String>,
}

/// Whether a librdkafka setting may hold a secret (`ssl.keystore.password`,
/// `ssl.key.pem`, `sasl.oauthbearer.client.secret`, ...).
fn is_secret_option(name: &str) -> bool {
    ["password", "secret", "pem", "sasl.oauthbearer.config"]
        .iter()
        .any(|part| name.contains(part))
}

/// `[kafka.options]` with the values of secret-looking settings redacted.
fn shown_options(options: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    options
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret_option(name) {
                "<redacted>"
            } else {
                value.as_str()
            };
            (name.as_str(), shown)
        })
        .collect()
}

fn serialize_options<S: serde::Serializer>(
    options: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    shown_options(options).serialize(serializer)
}

impl fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field cannot be forgotten here.
        let KafkaSettings {
            brokers,
            topic_prefix,
            group_id,
            security_protocol,
            ssl,
            sasl,
            options,
        } = self;
        f.debug_struct("KafkaSettings")
            .field("brokers", brokers)
            .field("topic_prefix", topic_prefix)
            .field("group_id", group_id)
            .field("security_protocol", security_protocol)
            .field("ssl", ssl)
            .field("sasl", sasl)
            .field("options", &shown_options(options))
            .finish()
    }
}

/// `[kafka.ssl]`: TLS to the brokers. Every key is unset by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SslSettings {
    /// CA certificate(s), PEM, that sign the brokers' certificates
    /// (`ssl.ca.location`); unset: the system's CAs.
    pub ca_location: Option<PathBuf>,
    /// Client certificate, PEM, for mutual TLS (`ssl.certificate.location`).
    pub certificate_location: Option<PathBuf>,
    /// Private key of the client certificate, PEM (`ssl.key.location`).
    pub key_location: Option<PathBuf>,
    /// Password of the private key (`ssl.key.password`).
    pub key_password: Option<Secret>,
    /// File holding the password of the private key.
    pub key_password_file: Option<PathBuf>,
}

/// `[kafka.sasl]`: SASL authentication. Every key is unset by default.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SaslSettings {
    /// `sasl.mechanism`; required with the `sasl_*` protocols.
    pub mechanism: Option<SaslMechanism>,
    /// `sasl.username`.
    pub username: Option<String>,
    /// `sasl.password`.
    pub password: Option<Secret>,
    /// File holding the SASL password.
    pub password_file: Option<PathBuf>,
}

/// `[schema_registry]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Base URL. Default `http://127.0.0.1:8081`.
    pub url: String,
    /// Basic-auth user; unset: no authentication.
    pub user: Option<String>,
    /// Basic-auth password.
    pub password: Option<Secret>,
    /// File holding the basic-auth password.
    pub password_file: Option<PathBuf>,
}

/// `[clickhouse]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClickHouseSettings {
    /// HTTP interface. Default `http://127.0.0.1:8123`.
    pub url: String,
    /// Database of Touchline's tables and views. Default `cx`.
    pub database: String,
    /// User. Default `default`.
    pub user: String,
    /// Password; unset: empty.
    pub password: Option<Secret>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
}

/// `[pipeline]`: batching of `touchline run`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// A batch is written once it holds this many messages. Default 20000.
    pub batch_max_messages: usize,
    /// ...or this many, at least `batch_max_messages`, when as many wait
    /// on the broker for this instance as the batch starts. Default 60000.
    pub batch_catch_up_messages: usize,
    /// ...or this many milliseconds after it started. Default 500.
    pub batch_linger_ms: u64,
    /// Written messages that may wait for a derive round (their offsets
    /// are committed after it) before reading waits too. Default 1000000.
    pub derive_backlog_messages: u64,
    /// While messages keep coming, a derive round starts at most this many
    /// milliseconds after the previous one started. Default 5000.
    pub derive_interval_ms: u64,
    /// Larger messages become dead letters (`too_large`). Default 1048576.
    pub max_message_bytes: usize,
}

/// `[privacy]`: what customer data reaches ClickHouse, and in which form.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacySettings {
    /// Store emails, phone numbers and social handles (and customer ids) only
    /// as keyed hashes. Default false.
    pub pseudonymisation: bool,
    /// The HMAC key, at least 32 bytes.
    pub pseudonymisation_key: Option<Secret>,
    /// File holding the HMAC key.
    pub pseudonymisation_key_file: Option<PathBuf>,
    /// Channels whose message text is stored (`chatbot`, `social`). Default
    /// none.
    pub store_text: Vec<TextChannel>,
}

/// A channel whose records carry free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TextChannel {
    Chatbot,
    Social,
}

impl TextChannel {
    const ALL: [TextChannel; 2] = [TextChannel::Chatbot, TextChannel::Social];

    pub fn as_str(self) -> &'static str {
        self.channel().as_str()
    }

    /// The channel itself.
    pub fn channel(self) -> touchline_model::Channel {
        match self {
            TextChannel::Chatbot => touchline_model::Channel::Chatbot,
            TextChannel::Social => touchline_model::Channel::Social,
        }
    }
}

impl FromStr for TextChannel {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_named(text, &TextChannel::ALL, TextChannel::as_str)
    }
}

impl<'de> Deserialize<'de> for TextChannel {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for TextChannel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PrivacySettings {
    /// The pseudonymiser this configuration asks for, reading the key file.
    pub fn pseudonymiser(&self) -> anyhow::Result<touchline_model::Pseudonymiser> {
        if !self.pseudonymisation {
            return Ok(touchline_model::Pseudonymiser::disabled());
        }
        let key = read_secret(
            "privacy.pseudonymisation_key",
            self.pseudonymisation_key.as_ref(),
            self.pseudonymisation_key_file.as_deref(),
        )?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "privacy.pseudonymisation is on but no key is set: set \
                 privacy.pseudonymisation_key_file (or _key)"
            )
        })?;
        touchline_model::Pseudonymiser::keyed(key.expose().as_bytes())
            .context("privacy.pseudonymisation_key cannot be used")
    }

    /// The channels whose message text is stored.
    pub fn text_channels(&self) -> Vec<touchline_model::Channel> {
        self.store_text.iter().map(|c| c.channel()).collect()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            metrics_addr: SocketAddr::from(([0, 0, 0, 0], 9464)),
            kafka: KafkaSettings::default(),
            schema_registry: RegistrySettings::default(),
            clickhouse: ClickHouseSettings::default(),
            pipeline: PipelineSettings::default(),
            privacy: PrivacySettings::default(),
        }
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".to_owned(),
            topic_prefix: String::new(),
            group_id: "touchline".to_owned(),
            security_protocol: SecurityProtocol::Plaintext,
            ssl: SslSettings::default(),
            sasl: SaslSettings::default(),
            options: BTreeMap::new(),
        }
    }
}

impl Default for RegistrySettings {
    fn default() -> Self {
        RegistrySettings {
            url: "http://127.0.0.1:8081".to_owned(),
            user: None,
            password: None,
            password_file: None,
        }
    }
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        ClickHouseSettings {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "cx".to_owned(),
            user: "default".to_owned(),
            password: None,
            password_file: None,
        }
    }
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            batch_max_messages: 20_000,
            batch_catch_up_messages: 60_000,
            batch_linger_ms: 500,
            derive_backlog_messages: 1_000_000,
            derive_interval_ms: 5_000,
            max_message_bytes: touchline_avro::decoder::DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// The default configuration file, every key commented:
/// `touchline config show-defaults` prints it, and `docs/operations.md`
/// quotes it.
pub const DEFAULTS_TOML: &str = r#"# Touchline configuration (TOML). Every key is optional: the value shown is its
# default, which suits the local stack. Commented-out keys are unset.
#
# Precedence: command-line flag > TOUCHLINE_* environment variable > this file
# > default. Pass the file with `--config FILE` or TOUCHLINE_CONFIG, and check
# it with `touchline config check FILE`. Unknown keys are errors.
#
# A password can be set inline, through its variable, or as the path of a file
# holding it (`*_password_file`, e.g. a mounted Kubernetes Secret); set one or
# the other. Passwords are never logged.

# Address serving Prometheus /metrics, /healthz (alive) and /readyz (Kafka,
# schema registry and ClickHouse reachable), for `touchline run`. Port 0 picks
# a free port.
# env TOUCHLINE_METRICS_ADDR, flag --metrics-addr
metrics_addr = "0.0.0.0:9464"

[kafka]
# Bootstrap servers, comma-separated.
# env TOUCHLINE_KAFKA_BROKERS, flag --brokers
brokers = "127.0.0.1:9092"
# Prefix of the four source topic names (`<prefix>cx.chatbot.events`, ...) and
# of the topics Touchline keeps (identity links, suppression list, derive
# marks), for environments that share a broker.
# env TOUCHLINE_TOPIC_PREFIX, flag --topic-prefix
topic_prefix = ""
# Consumer group. Instances of one group share the source partitions: run at
# most as many instances as a source topic has partitions.
# env TOUCHLINE_GROUP_ID, flag --group-id
group_id = "touchline"
# librdkafka `security.protocol`: plaintext, ssl, sasl_plaintext or sasl_ssl.
# env TOUCHLINE_KAFKA_SECURITY_PROTOCOL, flag --kafka-security-protocol
security_protocol = "plaintext"

# TLS, with security_protocol ssl or sasl_ssl.
[kafka.ssl]
# CA certificate(s), PEM, that sign the brokers' certificates (unset: the
# system's CAs).
# env TOUCHLINE_KAFKA_SSL_CA_LOCATION, flag --kafka-ssl-ca-location
# ca_location = "/etc/touchline/kafka/ca.pem"
# Client certificate and its private key, PEM, for brokers that require
# mutual TLS.
# env TOUCHLINE_KAFKA_SSL_CERTIFICATE_LOCATION, flag --kafka-ssl-certificate-location
# certificate_location = "/etc/touchline/kafka/client.pem"
# env TOUCHLINE_KAFKA_SSL_KEY_LOCATION, flag --kafka-ssl-key-location
# key_location = "/etc/touchline/kafka/client.key"
# Password of the private key, or a file holding it.
# env TOUCHLINE_KAFKA_SSL_KEY_PASSWORD, flag --kafka-ssl-key-password
# key_password = "..."
# env TOUCHLINE_KAFKA_SSL_KEY_PASSWORD_FILE, flag --kafka-ssl-key-password-file
# key_password_file = "/etc/touchline/secrets/kafka-ssl-key-password"

# SASL, with security_protocol sasl_plaintext or sasl_ssl.
[kafka.sasl]
# Mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
# env TOUCHLINE_KAFKA_SASL_MECHANISM, flag --kafka-sasl-mechanism
# mechanism = "SCRAM-SHA-512"
# env TOUCHLINE_KAFKA_SASL_USERNAME, flag --kafka-sasl-username
# username = "touchline"
# The password, or a file holding it.
# env TOUCHLINE_KAFKA_SASL_PASSWORD, flag --kafka-sasl-password
# password = "..."
# env TOUCHLINE_KAFKA_SASL_PASSWORD_FILE, flag --kafka-sasl-password-file
# password_file = "/etc/touchline/secrets/kafka-password"

# Extra librdkafka settings, "name" = "value" (strings). Settings that have a
# key of their own above, and the offset handling Touchline does itself
# (group.id, enable.auto.commit, enable.auto.offset.store), are rejected.
# flag --kafka-option NAME=VALUE (repeatable; wins over the same name here)
[kafka.options]
# "client.rack" = "eu-west-1a"

[schema_registry]
# Base URL of the Confluent-compatible schema registry.
# env TOUCHLINE_SCHEMA_REGISTRY_URL, flag --schema-registry-url
url = "http://127.0.0.1:8081"
# Basic-auth user (unset: no authentication) and its password, or a file
# holding the password.
# env TOUCHLINE_SCHEMA_REGISTRY_USER, flag --schema-registry-user
# user = "touchline"
# env TOUCHLINE_SCHEMA_REGISTRY_PASSWORD, flag --schema-registry-password
# password = "..."
# env TOUCHLINE_SCHEMA_REGISTRY_PASSWORD_FILE, flag --schema-registry-password-file
# password_file = "/etc/touchline/secrets/schema-registry-password"

[clickhouse]
# HTTP interface.
# env TOUCHLINE_CLICKHOUSE_URL, flag --clickhouse-url
url = "http://127.0.0.1:8123"
# Database of Touchline's tables and of the views dashboards read.
# env TOUCHLINE_CLICKHOUSE_DATABASE, flag --clickhouse-database
database = "cx"
# env TOUCHLINE_CLICKHOUSE_USER, flag --clickhouse-user
user = "default"
# The password (unset: empty), or a file holding it.
# env TOUCHLINE_CLICKHOUSE_PASSWORD, flag --clickhouse-password
# password = "..."
# env TOUCHLINE_CLICKHOUSE_PASSWORD_FILE, flag --clickhouse-password-file
# password_file = "/etc/touchline/secrets/clickhouse-password"

# Batching of `touchline run`: a batch is written to ClickHouse, and its
# offsets committed, once it holds batch_max_messages or batch_linger_ms after
# it started, whichever comes first.
[pipeline]
# env TOUCHLINE_BATCH_MAX_MESSAGES, flag --batch-max-messages
batch_max_messages = 20000
# While a backlog waits (at least this many messages on the broker that this
# instance has not read, as a batch starts), batches hold up to this many:
# fewer, larger inserts cost ClickHouse less per message and catch up sooner,
# while a pipeline that keeps up writes small batches that stay fresh. At
# least batch_max_messages; equal to it, batches never grow.
# env TOUCHLINE_BATCH_CATCH_UP_MESSAGES, flag --batch-catch-up-messages
batch_catch_up_messages = 60000
# env TOUCHLINE_BATCH_LINGER_MS, flag --batch-linger-ms
batch_linger_ms = 500
# Contacts, journeys and daily metrics are derived in rounds beside the
# writes; a written batch's offsets are committed once its round is done. At
# most this many written messages wait for a round; then reading waits too.
# It bounds what a crash redelivers and the memory of the waiting work.
# env TOUCHLINE_DERIVE_BACKLOG_MESSAGES, flag --derive-backlog-messages
derive_backlog_messages = 1000000
# While messages keep coming, a round starts at most this often: each round
# reads whole tables, so fewer, larger rounds leave more of the machine to
# the timeline's writes, and the derived tables lag it by up to this much
# more. When nothing new arrives, a round starts at once. 0: back to back.
# env TOUCHLINE_DERIVE_INTERVAL_MS, flag --derive-interval-ms
derive_interval_ms = 5000
# Larger messages become dead letters (reason too_large).
# env TOUCHLINE_MAX_MESSAGE_BYTES, flag --max-message-bytes
max_message_bytes = 1048576

# What customer data reaches ClickHouse (docs/design/20261122_privacy.md).
[privacy]
# Store emails, phone numbers and social handles, and customer ids, only as
# keyed hashes (HMAC-SHA256): `email:` and 32 hex digits. Identity resolution
# works the same; `touchline pseudonym IDENTIFIER` prints the stored form to
# look a customer up. Changing the key changes every stored form.
# env TOUCHLINE_PSEUDONYMISATION, flag --pseudonymisation
pseudonymisation = false
# The HMAC key (at least 32 bytes, e.g. `openssl rand -hex 32`), or a file
# holding it; required with pseudonymisation. Never logged.
# env TOUCHLINE_PSEUDONYMISATION_KEY, flag --pseudonymisation-key
# pseudonymisation_key = "..."
# env TOUCHLINE_PSEUDONYMISATION_KEY_FILE, flag --pseudonymisation-key-file
# pseudonymisation_key_file = "/etc/touchline/secrets/pseudonymisation-key"
# Channels whose message text (chatbot and social messages) is stored in
# cx.message_texts; unset: no text is stored.
# env TOUCHLINE_STORE_TEXT, flag --store-text
# store_text = ["chatbot", "social"]
"#;

/// A password or other secret. Its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for handing to a client; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(text))
    }
}

/// Serialised as `<redacted>` too (`touchline config show`): a shown
/// configuration is for reading, not for feeding back.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_ssl(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// librdkafka's `sasl.mechanism`, as far as the bundled librdkafka supports
/// it without Kerberos or OAuth callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl SaslMechanism {
    const ALL: [SaslMechanism; 3] = [
        SaslMechanism::Plain,
        SaslMechanism::ScramSha256,
        SaslMechanism::ScramSha512,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// Parses one of `all` by name, ignoring case; the error lists the names.
fn parse_named<T: Copy>(
    text: &str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> Result<T, String> {
    all.iter()
        .copied()
        .find(|item| name(*item).eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|item| name(*item)).collect();
            format!("`{text}` is not one of {}", names.join(", "))
        })
}

impl FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_named(text, &SecurityProtocol::ALL, SecurityProtocol::as_str)
    }
}

impl FromStr for SaslMechanism {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_named(text, &SaslMechanism::ALL, SaslMechanism::as_str)
    }
}

impl<'de> Deserialize<'de> for SecurityProtocol {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for SaslMechanism {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecurityProtocol {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl Serialize for SaslMechanism {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// librdkafka settings that have a key of their own, and the key to use.
const DEDICATED_KAFKA_OPTIONS: &[(&str, &str)] = &[
    ("bootstrap.servers", "kafka.brokers"),
    ("metadata.broker.list", "kafka.brokers"),
    ("group.id", "kafka.group_id"),
    ("security.protocol", "kafka.security_protocol"),
    ("ssl.ca.location", "kafka.ssl.ca_location"),
    ("ssl.certificate.location", "kafka.ssl.certificate_location"),
    ("ssl.key.location", "kafka.ssl.key_location"),
    ("ssl.key.password", "kafka.ssl.key_password"),
    ("sasl.mechanism", "kafka.sasl.mechanism"),
    ("sasl.mechanisms", "kafka.sasl.mechanism"),
    ("sasl.username", "kafka.sasl.username"),
    ("sasl.password", "kafka.sasl.password"),
];

/// librdkafka settings Touchline's delivery guarantee depends on: offsets are
/// stored only after ClickHouse confirmed a batch.
const RESERVED_KAFKA_OPTIONS: &[&str] = &["enable.auto.commit", "enable.auto.offset.store"];

impl Config {
    /// Parses a TOML configuration; unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The defaults, overlaid with the file at `path` if there is one.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let Some(path) = path else {
            return Ok(Config::default());
        };
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the configuration file {} (given by --config or TOUCHLINE_CONFIG)",
                path.display()
            )
        })?;
        Config::from_toml(&text).map_err(|error| {
            anyhow::anyhow!(
                "invalid configuration file {}: {}\n`touchline config show-defaults` lists every key with its default",
                path.display(),
                error.to_string().trim_end()
            )
        })
    }

    /// Everything wrong with this configuration, one sentence each naming the
    /// key and what to do; empty when it is valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |text: String| problems.push(text);

        let kafka = &self.kafka;
        if kafka.brokers.split(',').all(|b| b.trim().is_empty()) {
            problem("kafka.brokers is empty: give at least one HOST:PORT".into());
        }
        if let Some(bad) = kafka
            .topic_prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            problem(format!(
                "kafka.topic_prefix `{}` has `{bad}`: Kafka topic names allow only letters, digits, `.`, `_` and `-`",
                kafka.topic_prefix
            ));
        }
        if kafka.group_id.trim().is_empty() {
            problem("kafka.group_id is empty: name the consumer group".into());
        }
        let protocol = kafka.security_protocol;
        let ssl = &kafka.ssl;
        let ssl_keys = [
            ("ca_location", ssl.ca_location.is_some()),
            ("certificate_location", ssl.certificate_location.is_some()),
            ("key_location", ssl.key_location.is_some()),
            ("key_password", ssl.key_password.is_some()),
            ("key_password_file", ssl.key_password_file.is_some()),
        ];
        if !protocol.uses_ssl() {
            for (key, _) in ssl_keys.iter().filter(|(_, set)| *set) {
                problem(format!(
                    "kafka.ssl.{key} is set but kafka.security_protocol is {}: set it to ssl or sasl_ssl, or remove the key",
                    protocol.as_str()
                ));
            }
        }
        if ssl.certificate_location.is_some() != ssl.key_location.is_some() {
            problem(
                "kafka.ssl.certificate_location and kafka.ssl.key_location go together (mutual TLS): set both or neither"
                    .into(),
            );
        }
        both_secrets(
            &mut problem,
            "kafka.ssl.key_password",
            ssl.key_password.is_some(),
            ssl.key_password_file.is_some(),
        );
        let sasl = &kafka.sasl;
        if protocol.uses_sasl() {
            if sasl.mechanism.is_none() {
                problem(format!(
                    "kafka.security_protocol is {} but kafka.sasl.mechanism is not set: set PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                    protocol.as_str()
                ));
            }
            if sasl.username.is_none() {
                problem(format!(
                    "kafka.security_protocol is {} but kafka.sasl.username is not set",
                    protocol.as_str()
                ));
            }
            if sasl.password.is_none() && sasl.password_file.is_none() {
                problem(format!(
                    "kafka.security_protocol is {} but neither kafka.sasl.password nor kafka.sasl.password_file is set",
                    protocol.as_str()
                ));
            }
        } else {
            let sasl_keys = [
                ("mechanism", sasl.mechanism.is_some()),
                ("username", sasl.username.is_some()),
                ("password", sasl.password.is_some()),
                ("password_file", sasl.password_file.is_some()),
            ];
            for (key, _) in sasl_keys.iter().filter(|(_, set)| *set) {
                problem(format!(
                    "kafka.sasl.{key} is set but kafka.security_protocol is {}: set it to sasl_plaintext or sasl_ssl, or remove the key",
                    protocol.as_str()
                ));
            }
        }
        both_secrets(
            &mut problem,
            "kafka.sasl.password",
            sasl.password.is_some(),
            sasl.password_file.is_some(),
        );
        for name in kafka.options.keys() {
            let name = name.as_str();
            if name.trim().is_empty() {
                problem("kafka.options has an empty setting name".into());
            } else if let Some((_, key)) = DEDICATED_KAFKA_OPTIONS.iter().find(|(n, _)| *n == name)
            {
                problem(format!(
                    "kafka.options.\"{name}\" has a key of its own: set {key} instead"
                ));
            } else if RESERVED_KAFKA_OPTIONS.contains(&name) {
                problem(format!(
                    "kafka.options.\"{name}\" cannot be changed: Touchline stores offsets only after ClickHouse confirmed their batch"
                ));
            }
        }

        let registry = &self.schema_registry;
        http_url(&mut problem, "schema_registry.url", &registry.url);
        if registry.user.is_none()
            && (registry.password.is_some() || registry.password_file.is_some())
        {
            problem(
                "schema_registry.password is set but schema_registry.user is not: set the basic-auth user too"
                    .into(),
            );
        }
        both_secrets(
            &mut problem,
            "schema_registry.password",
            registry.password.is_some(),
            registry.password_file.is_some(),
        );

        let clickhouse = &self.clickhouse;
        http_url(&mut problem, "clickhouse.url", &clickhouse.url);
        let mut database = clickhouse.database.chars();
        let identifier = database
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && database.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            problem(format!(
                "clickhouse.database `{}` is not a plain identifier (letters, digits and `_`, not starting with a digit)",
                clickhouse.database
            ));
        }
        if clickhouse.user.trim().is_empty() {
            problem("clickhouse.user is empty (ClickHouse's own default user is `default`)".into());
        }
        both_secrets(
            &mut problem,
            "clickhouse.password",
            clickhouse.password.is_some(),
            clickhouse.password_file.is_some(),
        );

        let privacy = &self.privacy;
        let has_key =
            privacy.pseudonymisation_key.is_some() || privacy.pseudonymisation_key_file.is_some();
        if privacy.pseudonymisation && !has_key {
            problem(
                "privacy.pseudonymisation is on but neither privacy.pseudonymisation_key nor \
                 privacy.pseudonymisation_key_file is set"
                    .into(),
            );
        }
        if !privacy.pseudonymisation && has_key {
            problem(
                "privacy.pseudonymisation_key is set but privacy.pseudonymisation is off: turn \
                 it on, or remove the key"
                    .into(),
            );
        }
        if let Some(key) = &privacy.pseudonymisation_key {
            let length = key.expose().len();
            if length < touchline_model::privacy::MIN_KEY_BYTES {
                problem(format!(
                    "privacy.pseudonymisation_key has {length} bytes: use at least {} (e.g. `openssl rand -hex 32`)",
                    touchline_model::privacy::MIN_KEY_BYTES
                ));
            }
        }
        both_secrets(
            &mut problem,
            "privacy.pseudonymisation_key",
            privacy.pseudonymisation_key.is_some(),
            privacy.pseudonymisation_key_file.is_some(),
        );

        let pipeline = &self.pipeline;
        if pipeline.batch_max_messages == 0 {
            problem("pipeline.batch_max_messages is 0: a batch needs at least 1 message".into());
        }
        if pipeline.batch_linger_ms == 0 {
            problem("pipeline.batch_linger_ms is 0: give the batch at least 1 ms to fill".into());
        }
        if pipeline.batch_catch_up_messages < pipeline.batch_max_messages {
            problem(format!(
                "pipeline.batch_catch_up_messages ({}) is below pipeline.batch_max_messages ({}): \
                 set it equal for batches that never grow",
                pipeline.batch_catch_up_messages, pipeline.batch_max_messages
            ));
        } else if pipeline.derive_backlog_messages < pipeline.batch_catch_up_messages as u64 {
            problem(format!(
                "pipeline.derive_backlog_messages ({}) is below pipeline.batch_catch_up_messages ({}): \
                 every large batch would wait for the previous one's derive round",
                pipeline.derive_backlog_messages, pipeline.batch_catch_up_messages
            ));
        }
        if pipeline.max_message_bytes < 6 {
            problem(format!(
                "pipeline.max_message_bytes is {}: no Confluent-framed Avro message is shorter than 6 bytes",
                pipeline.max_message_bytes
            ));
        }
        problems
    }

    /// Fails, listing every problem, unless the configuration is valid.
    pub fn validate(&self) -> anyhow::Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "invalid configuration (from the --config file, TOUCHLINE_* variables and flags):\n  \
             - {}\n`touchline config show` prints what is in effect, and \
             `touchline config show-defaults` documents every key",
            problems.join("\n  - ")
        )
    }

    /// Files the configuration names that do not exist here (certificates,
    /// keys, password files): worth a warning when checking a file on another
    /// machine than the one that runs it, an error at start-up.
    pub fn missing_files(&self) -> Vec<String> {
        let ssl = &self.kafka.ssl;
        let files = [
            ("kafka.ssl.ca_location", &ssl.ca_location),
            ("kafka.ssl.certificate_location", &ssl.certificate_location),
            ("kafka.ssl.key_location", &ssl.key_location),
            ("kafka.ssl.key_password_file", &ssl.key_password_file),
            ("kafka.sasl.password_file", &self.kafka.sasl.password_file),
            (
                "schema_registry.password_file",
                &self.schema_registry.password_file,
            ),
            ("clickhouse.password_file", &self.clickhouse.password_file),
            (
                "privacy.pseudonymisation_key_file",
                &self.privacy.pseudonymisation_key_file,
            ),
        ];
        files
            .into_iter()
            .filter_map(|(key, path)| {
                let path = path.as_ref()?;
                (!path.exists()).then(|| format!("{key}: {} does not exist", path.display()))
            })
            .collect()
    }
}

/// Reports a secret set both inline and as a file.
fn both_secrets(problem: &mut impl FnMut(String), key: &str, inline: bool, file: bool) {
    if inline && file {
        problem(format!(
            "{key} and {key}_file are both set: keep one (the file is meant for mounted secrets)"
        ));
    }
}

fn http_url(problem: &mut impl FnMut(String), key: &str, url: &str) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(|host| host.trim_matches('/').is_empty()) {
        problem(format!(
            "{key} `{url}` is not an http:// or https:// URL with a host"
        ));
    }
}

/// A secret set inline or as a file holding it (one trailing newline, as
/// editors and `kubectl create secret --from-file` leave, is removed).
fn read_secret(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
) -> anyhow::Result<Option<Secret>> {
    if let Some(secret) = inline {
        return Ok(Some(secret.clone()));
    }
    let Some(path) = file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read {key}_file {}: mount the secret there, or set {key} instead",
            path.display()
        )
    })?;
    let text = text
        .strip_suffix('\n')
        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t));
    Ok(Some(Secret::new(text)))
}

impl KafkaSettings {
    /// Connection settings shared by every Kafka client of the process:
    /// brokers, security and `[kafka.options]`. Reads the password files.
    pub fn client(&self) -> anyhow::Result<ClientConfig> {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &self.brokers);
        if self.security_protocol != SecurityProtocol::Plaintext {
            client.set("security.protocol", self.security_protocol.as_str());
        }
        let ssl = &self.ssl;
        let files = [
            ("ssl.ca.location", &ssl.ca_location),
            ("ssl.certificate.location", &ssl.certificate_location),
            ("ssl.key.location", &ssl.key_location),
        ];
        for (name, path) in files {
            if let Some(path) = path {
                client.set(name, path.display().to_string());
            }
        }
        if let Some(password) = read_secret(
            "kafka.ssl.key_password",
            ssl.key_password.as_ref(),
            ssl.key_password_file.as_deref(),
        )? {
            client.set("ssl.key.password", password.expose());
        }
        let sasl = &self.sasl;
        if let Some(mechanism) = sasl.mechanism {
            client.set("sasl.mechanism", mechanism.as_str());
        }
        if let Some(username) = &sasl.username {
            client.set("sasl.username", username);
        }
        if let Some(password) = read_secret(
            "kafka.sasl.password",
            sasl.password.as_ref(),
            sasl.password_file.as_deref(),
        )? {
            client.set("sasl.password", password.expose());
        }
        for (name, value) in &self.options {
            client.set(name, value);
        }
        Ok(client)
    }

    /// Whether anything beyond brokers and topic prefix is configured (which
    /// `touchline generate` does not use).
    pub fn has_security_or_options(&self) -> bool {
        self.security_protocol != SecurityProtocol::Plaintext || !self.options.is_empty()
    }
}

impl RegistrySettings {
    /// The registry's basic-auth credentials, reading the password file.
    pub fn auth(&self) -> anyhow::Result<Option<touchline_avro::registry::BasicAuth>> {
        let Some(user) = &self.user else {
            return Ok(None);
        };
        let password = read_secret(
            "schema_registry.password",
            self.password.as_ref(),
            self.password_file.as_deref(),
        )?;
        Ok(Some(touchline_avro::registry::BasicAuth {
            username: user.clone(),
            password: password.map(|p| p.expose().to_owned()).unwrap_or_default(),
        }))
    }
}

impl ClickHouseSettings {
    /// The connection settings of `touchline-clickhouse`, reading the password
    /// file.
    pub fn connection(&self) -> anyhow::Result<touchline_clickhouse::ClickHouseConfig> {
        let password = read_secret(
            "clickhouse.password",
            self.password.as_ref(),
            self.password_file.as_deref(),
        )?;
        Ok(touchline_clickhouse::ClickHouseConfig {
            url: self.url.clone(),
            database: self.database.clone(),
            user: self.user.clone(),
            password: password.map(|p| p.expose().to_owned()).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests;
