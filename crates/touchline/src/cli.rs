//! Commands and their settings. A command's settings are one [`Config`]: the
//! defaults, overlaid with the TOML file of `--config` (or
//! `TOUCHLINE_CONFIG`), then with the flags below, each of which also reads a
//! `TOUCHLINE_*` environment variable (flag > environment > file > default).
//! Flags are `Option`s so that an unset one leaves the file's value alone; the
//! help text names each default, and a test keeps it equal to the config's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;
use touchline_avro::{Decoder, HttpRegistry};
use touchline_clickhouse::{migrate, summary, Warehouse};
use touchline_model::Channel;

use crate::config::{
    ClickHouseSettings, Config, RegistrySettings, SaslMechanism, Secret, SecurityProtocol,
    TextChannel, DEFAULTS_TOML,
};
use crate::derive::{Deriver, MarkProducer};
use crate::health::{Probe, Readiness};
use crate::identity::Identity;
use crate::metrics::{self, Metrics};
use crate::pipeline::{Pipeline, PipelineConfig};
use crate::replay;

const EXAMPLES: &str = "\
Examples:
  touchline migrate                    Create or upgrade the database `cx` (idempotent)
  touchline run                        Consume into ClickHouse until Ctrl-C or SIGTERM
  touchline generate --customers 500   Produce a demo load to the four topics
  touchline summary                    Show what reached ClickHouse, per channel
  touchline config show-defaults > touchline.toml
  touchline --config touchline.toml run

Settings: every setting has a default that suits the local stack (Kafka on
127.0.0.1:9092, schema registry on :8081, ClickHouse on :8123). Change it in a
TOML file (--config FILE or TOUCHLINE_CONFIG), with its TOUCHLINE_* environment
variable, or with its flag: a flag beats the variable, which beats the file.
`touchline <COMMAND> --help` lists the settings of a command.";

const RUN_EXAMPLES: &str = "\
Examples:
  touchline run
  touchline run --until-caught-up                  Exit once every partition is read to its end
  TOUCHLINE_GROUP_ID=touchline-eu touchline run
  touchline run --config /etc/touchline/touchline.toml --metrics-addr 127.0.0.1:9464

Endpoints on --metrics-addr: /metrics (Prometheus), /healthz (200 while the
process runs), /readyz (200 once Kafka, the schema registry and ClickHouse
answer; 503 with a JSON body naming what is not ready).";

const CONFIG_EXAMPLES: &str = "\
Examples:
  touchline config show-defaults > touchline.toml
  touchline config check touchline.toml
  touchline --config touchline.toml config show";

/// Touchline: one customer timeline from the chatbot, app, social and
/// call-center event streams.
///
/// Touchline consumes the four source topics (Confluent-framed Avro) from
/// Kafka, decodes each message with its schema from the schema registry,
/// normalises it into one event, links each customer's identifiers across
/// channels, and writes the timeline to ClickHouse. A message that cannot be
/// read becomes a dead letter with its reason, and the pipeline goes on.
///
/// Start with `touchline migrate`, then run `touchline run` on one instance or
/// more (at most as many as a source topic has partitions).
#[derive(Debug, Parser)]
#[command(name = "touchline", version, about, long_about, after_help = EXAMPLES)]
pub struct Cli {
    /// TOML configuration file; `touchline config show-defaults` prints every
    /// key with its default.
    #[arg(long, global = true, env = "TOUCHLINE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade Touchline's database, tables and views in ClickHouse.
    ///
    /// Applies, in order, the migrations the database has not had yet, and
    /// changes nothing otherwise: run it before the first `touchline run` and
    /// after every upgrade. `touchline run` checks the tables at start-up and
    /// asks for this command if they are behind.
    #[command(
        after_help = "Example:\n  touchline migrate --clickhouse-url http://clickhouse:8123 --clickhouse-database cx"
    )]
    Migrate {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
    /// Consume the four source topics into ClickHouse, as one member of the
    /// consumer group.
    ///
    /// Reads batches of messages, decodes and normalises them, and writes the
    /// timeline and the dead letters to ClickHouse; a batch's offsets are
    /// committed only once ClickHouse confirmed it. Instances with the same
    /// group id share the partitions. An unreachable registry or ClickHouse is
    /// waited out (consumption pauses), never dead-lettered. On SIGTERM or
    /// Ctrl-C it finishes the batch in hand, commits and exits.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
    /// Produce a seeded demo load to the four source topics and write its
    /// ground truth.
    ///
    /// Simulated customers go through journeys across the four channels, with
    /// messy identifiers, every upstream schema version, redeliveries,
    /// reordering and a share of malformed messages; the same seed gives the
    /// same messages. A development and demo tool: it uses the brokers, topic
    /// prefix and registry URL of the configuration, not the Kafka security
    /// settings or the registry credentials.
    #[command(
        after_help = "Examples:\n  touchline generate --customers 500\n  touchline generate --customers 5000 --rate 1000 --duration 600 --truth truth.json"
    )]
    Generate(Box<GenerateArgs>),
    /// Send dead letters back to their topics once their cause is fixed.
    ///
    /// Produces each dead letter (all, or those of one reason) with its
    /// original key and bytes to the topic it came from, then removes it from
    /// the dead-letter table; a running pipeline reads it again, and a message
    /// whose cause is not fixed becomes a dead letter again.
    #[command(
        after_help = "Examples:\n  touchline replay --reason unknown_schema\n  touchline replay --limit 1000"
    )]
    Replay(Box<ReplayArgs>),
    /// Print what has reached the timeline, per channel, and the dead letters
    /// by reason.
    Summary {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    },
    /// Erase a customer: every row in ClickHouse, its identity links, and
    /// its later events.
    ///
    /// Finds the customer of IDENTIFIER (typed, `<kind>:<value>`) in the
    /// identity graph, puts the fingerprints of all its identifiers on the
    /// suppression list (running instances then drop its later events and
    /// rebuild their graphs without them), tombstones its link sets in the
    /// identity-link topic, waits --settle-seconds, and deletes its rows from
    /// every table (timeline, identities, message texts, contacts, dead
    /// letters that contain its identifiers, ...), checking that none is
    /// left. Needs a ClickHouse user that may `ALTER TABLE ... DELETE` (the
    /// migration user) and the same privacy settings as `touchline run`.
    /// Prints counts only, never the identifiers.
    #[command(
        after_help = "Example:\n  touchline --config touchline.toml forget 'email:kim@example.com' --clickhouse-user touchline_admin"
    )]
    Forget(Box<ForgetArgs>),
    /// Print the form in which ClickHouse stores an identifier, to look a
    /// customer up.
    ///
    /// IDENTIFIER is typed, `<kind>:<value>` (`email:kim@example.com`,
    /// `phone:010-1234-5678`, `social:instagram:@kim`, `account:AC1`), and is
    /// normalised first. With `privacy.pseudonymisation` on, emails, phone
    /// numbers and social handles print as their keyed hash: search
    /// `cx.v_identities` (column identifier) or `cx.v_timeline` for that.
    #[command(
        after_help = "Examples:\n  touchline pseudonym 'email:Kim@Example.com'\n  touchline --config touchline.toml pseudonym 'phone:010-1234-5678'"
    )]
    Pseudonym {
        /// The identifier, `<kind>:<value>`.
        #[arg(value_name = "IDENTIFIER")]
        identifier: String,
        #[command(flatten)]
        privacy: PrivacyArgs,
    },
    /// Check a configuration file, show the configuration in effect, or print
    /// the defaults.
    #[command(subcommand, after_help = CONFIG_EXAMPLES)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file (exit 0 if valid, 1 if not).
    ///
    /// Checks the TOML syntax, that every key exists, every value has the
    /// right type and range, and that no settings contradict each other;
    /// every problem is printed with its key. Files the configuration refers
    /// to (certificates, password files) only draw a warning when missing,
    /// since they may exist only where Touchline runs. Only the file is
    /// checked: environment variables and flags are not applied.
    Check {
        /// The file to check [default: the one of --config or TOUCHLINE_CONFIG]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print the configuration `touchline run` would use (defaults, the file,
    /// environment variables, flags), as TOML; passwords print as
    /// `<redacted>`.
    Show(Box<SettingsArgs>),
    /// Print the default configuration: every key, commented, with its
    /// default, environment variable and flag.
    ShowDefaults,
}

/// Every setting of `touchline run` that has a flag.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub security: KafkaSecurityArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub privacy: PrivacyArgs,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Privacy")]
pub struct PrivacyArgs {
    /// Store emails, phone numbers, social handles and customer ids only as
    /// keyed hashes (HMAC-SHA256) [default: false]
    #[arg(long, env = "TOUCHLINE_PSEUDONYMISATION", value_name = "BOOL")]
    pub pseudonymisation: Option<bool>,
    /// The HMAC key, at least 32 bytes
    #[arg(
        long,
        env = "TOUCHLINE_PSEUDONYMISATION_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    pub pseudonymisation_key: Option<Secret>,
    /// File holding the HMAC key (e.g. a mounted secret)
    #[arg(long, env = "TOUCHLINE_PSEUDONYMISATION_KEY_FILE", value_name = "FILE")]
    pub pseudonymisation_key_file: Option<PathBuf>,
    /// Channels whose message text is stored, comma-separated: chatbot,
    /// social [default: none]
    #[arg(
        long,
        env = "TOUCHLINE_STORE_TEXT",
        value_name = "CHANNEL,...",
        value_delimiter = ','
    )]
    pub store_text: Option<Vec<TextChannel>>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Kafka")]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, comma-separated [default: 127.0.0.1:9092]
    #[arg(long, env = "TOUCHLINE_KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    pub brokers: Option<String>,
    /// Prefix of the four source topic names (`<prefix>cx.chatbot.events`,
    /// ...), for environments sharing a broker [default: none]
    #[arg(long, env = "TOUCHLINE_TOPIC_PREFIX", value_name = "PREFIX")]
    pub topic_prefix: Option<String>,
    /// Extra librdkafka setting (repeatable), e.g. `client.rack=eu-west-1a`;
    /// see [kafka.options] in `touchline config show-defaults`
    #[arg(long = "kafka-option", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub kafka_options: Vec<(String, String)>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Kafka security (TLS, SASL)")]
pub struct KafkaSecurityArgs {
    /// librdkafka `security.protocol`: plaintext, ssl, sasl_plaintext or
    /// sasl_ssl [default: plaintext]
    #[arg(
        long = "kafka-security-protocol",
        env = "TOUCHLINE_KAFKA_SECURITY_PROTOCOL",
        value_name = "PROTOCOL",
        hide_short_help = true
    )]
    pub security_protocol: Option<SecurityProtocol>,
    /// CA certificate(s), PEM, that sign the brokers' certificates [default:
    /// the system's]
    #[arg(
        long = "kafka-ssl-ca-location",
        env = "TOUCHLINE_KAFKA_SSL_CA_LOCATION",
        value_name = "FILE",
        hide_short_help = true
    )]
    pub ssl_ca_location: Option<PathBuf>,
    /// Client certificate, PEM, for mutual TLS
    #[arg(
        long = "kafka-ssl-certificate-location",
        env = "TOUCHLINE_KAFKA_SSL_CERTIFICATE_LOCATION",
        value_name = "FILE",
        hide_short_help = true
    )]
    pub ssl_certificate_location: Option<PathBuf>,
    /// Private key of the client certificate, PEM
    #[arg(
        long = "kafka-ssl-key-location",
        env = "TOUCHLINE_KAFKA_SSL_KEY_LOCATION",
        value_name = "FILE",
        hide_short_help = true
    )]
    pub ssl_key_location: Option<PathBuf>,
    /// Password of the private key
    #[arg(
        long = "kafka-ssl-key-password",
        env = "TOUCHLINE_KAFKA_SSL_KEY_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub ssl_key_password: Option<Secret>,
    /// File holding the password of the private key
    #[arg(
        long = "kafka-ssl-key-password-file",
        env = "TOUCHLINE_KAFKA_SSL_KEY_PASSWORD_FILE",
        value_name = "FILE",
        hide_short_help = true
    )]
    pub ssl_key_password_file: Option<PathBuf>,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(
        long = "kafka-sasl-mechanism",
        env = "TOUCHLINE_KAFKA_SASL_MECHANISM",
        value_name = "MECHANISM",
        hide_short_help = true
    )]
    pub sasl_mechanism: Option<SaslMechanism>,
    /// SASL username
    #[arg(
        long = "kafka-sasl-username",
        env = "TOUCHLINE_KAFKA_SASL_USERNAME",
        value_name = "USER",
        hide_short_help = true
    )]
    pub sasl_username: Option<String>,
    /// SASL password
    #[arg(
        long = "kafka-sasl-password",
        env = "TOUCHLINE_KAFKA_SASL_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true,
        hide_short_help = true
    )]
    pub sasl_password: Option<Secret>,
    /// File holding the SASL password (e.g. a mounted secret)
    #[arg(
        long = "kafka-sasl-password-file",
        env = "TOUCHLINE_KAFKA_SASL_PASSWORD_FILE",
        value_name = "FILE",
        hide_short_help = true
    )]
    pub sasl_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Schema registry")]
pub struct RegistryArgs {
    /// Confluent-compatible schema registry [default: http://127.0.0.1:8081]
    #[arg(
        long = "schema-registry-url",
        env = "TOUCHLINE_SCHEMA_REGISTRY_URL",
        value_name = "URL"
    )]
    pub registry_url: Option<String>,
    /// Basic-auth user for the registry, if it needs one
    #[arg(
        long = "schema-registry-user",
        env = "TOUCHLINE_SCHEMA_REGISTRY_USER",
        value_name = "USER"
    )]
    pub registry_user: Option<String>,
    /// Basic-auth password for the registry
    #[arg(
        long = "schema-registry-password",
        env = "TOUCHLINE_SCHEMA_REGISTRY_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub registry_password: Option<Secret>,
    /// File holding the registry's basic-auth password (e.g. a mounted secret)
    #[arg(
        long = "schema-registry-password-file",
        env = "TOUCHLINE_SCHEMA_REGISTRY_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub registry_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "ClickHouse")]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP interface [default: http://127.0.0.1:8123]
    #[arg(
        long = "clickhouse-url",
        env = "TOUCHLINE_CLICKHOUSE_URL",
        value_name = "URL"
    )]
    pub clickhouse_url: Option<String>,
    /// Database holding Touchline's tables and the views dashboards read
    /// [default: cx]
    #[arg(
        long = "clickhouse-database",
        env = "TOUCHLINE_CLICKHOUSE_DATABASE",
        value_name = "NAME"
    )]
    pub clickhouse_database: Option<String>,
    /// ClickHouse user [default: default]
    #[arg(
        long = "clickhouse-user",
        env = "TOUCHLINE_CLICKHOUSE_USER",
        value_name = "USER"
    )]
    pub clickhouse_user: Option<String>,
    /// ClickHouse password [default: empty]
    #[arg(
        long = "clickhouse-password",
        env = "TOUCHLINE_CLICKHOUSE_PASSWORD",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub clickhouse_password: Option<Secret>,
    /// File holding the ClickHouse password (e.g. a mounted secret)
    #[arg(
        long = "clickhouse-password-file",
        env = "TOUCHLINE_CLICKHOUSE_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub clickhouse_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Pipeline")]
pub struct PipelineArgs {
    /// Consumer group; instances of one group share the partitions
    /// [default: touchline]
    #[arg(long, env = "TOUCHLINE_GROUP_ID", value_name = "GROUP")]
    pub group_id: Option<String>,
    /// Write a batch once it holds this many messages [default: 20000]
    #[arg(long, env = "TOUCHLINE_BATCH_MAX_MESSAGES", value_name = "N")]
    pub batch_max_messages: Option<usize>,
    /// ...or up to this many while at least as many wait on the broker
    /// unread [default: 60000]
    #[arg(long, env = "TOUCHLINE_BATCH_CATCH_UP_MESSAGES", value_name = "N")]
    pub batch_catch_up_messages: Option<usize>,
    /// ...or this many milliseconds after it started [default: 500]
    #[arg(long, env = "TOUCHLINE_BATCH_LINGER_MS", value_name = "MS")]
    pub batch_linger_ms: Option<u64>,
    /// Written messages that may wait for a derive round before reading
    /// waits too [default: 1000000]
    #[arg(long, env = "TOUCHLINE_DERIVE_BACKLOG_MESSAGES", value_name = "N")]
    pub derive_backlog_messages: Option<u64>,
    /// While messages keep coming, start a derive round at most this many
    /// milliseconds after the previous one started [default: 5000]
    #[arg(long, env = "TOUCHLINE_DERIVE_INTERVAL_MS", value_name = "MS")]
    pub derive_interval_ms: Option<u64>,
    /// Messages larger than this become dead letters [default: 1048576]
    #[arg(long, env = "TOUCHLINE_MAX_MESSAGE_BYTES", value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Address serving /metrics, /healthz and /readyz; port 0 picks a free
    /// port [default: 0.0.0.0:9464]
    #[arg(long, env = "TOUCHLINE_METRICS_ADDR", value_name = "ADDR:PORT")]
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Exit once every assigned partition has been read to its end (for
    /// batch jobs, demos and tests). An instance assigned no partition
    /// never exits: run at most as many as the topics have partitions.
    #[arg(long)]
    pub until_caught_up: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Only dead letters with this reason, e.g. `unknown_schema` (see `touchline summary`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Replay at most this many.
    #[arg(long, default_value_t = 1_000_000)]
    pub limit: u64,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// The identifier, `<kind>:<value>`.
    #[arg(value_name = "IDENTIFIER")]
    pub identifier: String,
    #[command(flatten)]
    pub settings: SettingsArgs,
    /// Seconds between suppressing and deleting: time for running instances
    /// to read the suppression list and write the batch in hand.
    #[arg(long, default_value_t = 15)]
    pub settle_seconds: u64,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Simulated customers; each lives through one or more cross-channel journeys.
    #[arg(long, default_value_t = 1000)]
    pub customers: usize,
    /// Seed: the same seed gives the same events, byte for byte.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Days of history to simulate.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// First simulated day as Unix milliseconds (default: so that the history
    /// ends at the start of today, UTC).
    #[arg(long)]
    pub start_ms: Option<i64>,
    /// Share of messages delivered twice.
    #[arg(long, default_value_t = 0.02)]
    pub duplicate_rate: f64,
    /// Share of extra malformed messages (they must end as dead letters).
    #[arg(long, default_value_t = 0.005)]
    pub bad_rate: f64,
    /// Messages per second, never exceeded: a producer that falls behind
    /// does not catch up in a burst (default: as fast as the broker takes
    /// them).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Stop producing after this many seconds; the truth covers what was produced.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Where to write the ground truth (JSON) of what was produced.
    #[arg(long)]
    pub truth: Option<std::path::PathBuf>,
}

/// Sets `value` when the flag (or its variable) was given.
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// Overrides a secret and its file as one setting: a higher layer that sets
/// either replaces both.
fn set_secret(
    key: &str,
    flag: &str,
    inline: Option<Secret>,
    file: Option<PathBuf>,
    target: (&mut Option<Secret>, &mut Option<PathBuf>),
) -> anyhow::Result<()> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!(
            "both --{flag} and --{flag}-file (or their TOUCHLINE_* variables) are set for \
             {key}: keep one"
        ),
        (Some(secret), None) => {
            *target.0 = Some(secret);
            *target.1 = None;
        }
        (None, Some(path)) => {
            *target.0 = None;
            *target.1 = Some(path);
        }
        (None, None) => {}
    }
    Ok(())
}

impl SettingsArgs {
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        self.kafka.apply(config);
        self.security.apply(config)?;
        self.registry.apply(&mut config.schema_registry)?;
        self.clickhouse.apply(&mut config.clickhouse)?;
        let pipeline = &self.pipeline;
        set(&mut config.kafka.group_id, pipeline.group_id.clone());
        set(
            &mut config.pipeline.batch_max_messages,
            pipeline.batch_max_messages,
        );
        set(
            &mut config.pipeline.batch_catch_up_messages,
            pipeline.batch_catch_up_messages,
        );
        set(
            &mut config.pipeline.batch_linger_ms,
            pipeline.batch_linger_ms,
        );
        set(
            &mut config.pipeline.derive_backlog_messages,
            pipeline.derive_backlog_messages,
        );
        set(
            &mut config.pipeline.derive_interval_ms,
            pipeline.derive_interval_ms,
        );
        set(
            &mut config.pipeline.max_message_bytes,
            pipeline.max_message_bytes,
        );
        set(&mut config.metrics_addr, pipeline.metrics_addr);
        self.privacy.apply(config)
    }
}

impl PrivacyArgs {
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        let privacy = &mut config.privacy;
        set(&mut privacy.pseudonymisation, self.pseudonymisation);
        set(&mut privacy.store_text, self.store_text.clone());
        set_secret(
            "privacy.pseudonymisation_key",
            "pseudonymisation-key",
            self.pseudonymisation_key.clone(),
            self.pseudonymisation_key_file.clone(),
            (
                &mut privacy.pseudonymisation_key,
                &mut privacy.pseudonymisation_key_file,
            ),
        )
    }
}

impl KafkaArgs {
    fn apply(&self, config: &mut Config) {
        set(&mut config.kafka.brokers, self.brokers.clone());
        set(&mut config.kafka.topic_prefix, self.topic_prefix.clone());
        config
            .kafka
            .options
            .extend(self.kafka_options.iter().cloned());
    }
}

impl KafkaSecurityArgs {
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        let kafka = &mut config.kafka;
        set(&mut kafka.security_protocol, self.security_protocol);
        let ssl = &mut kafka.ssl;
        set(&mut ssl.ca_location, self.ssl_ca_location.clone().map(Some));
        set(
            &mut ssl.certificate_location,
            self.ssl_certificate_location.clone().map(Some),
        );
        set(
            &mut ssl.key_location,
            self.ssl_key_location.clone().map(Some),
        );
        set_secret(
            "kafka.ssl.key_password",
            "kafka-ssl-key-password",
            self.ssl_key_password.clone(),
            self.ssl_key_password_file.clone(),
            (&mut ssl.key_password, &mut ssl.key_password_file),
        )?;
        let sasl = &mut kafka.sasl;
        set(&mut sasl.mechanism, self.sasl_mechanism.map(Some));
        set(&mut sasl.username, self.sasl_username.clone().map(Some));
        set_secret(
            "kafka.sasl.password",
            "kafka-sasl-password",
            self.sasl_password.clone(),
            self.sasl_password_file.clone(),
            (&mut sasl.password, &mut sasl.password_file),
        )
    }
}

impl RegistryArgs {
    fn apply(&self, registry: &mut RegistrySettings) -> anyhow::Result<()> {
        set(&mut registry.url, self.registry_url.clone());
        set(&mut registry.user, self.registry_user.clone().map(Some));
        set_secret(
            "schema_registry.password",
            "schema-registry-password",
            self.registry_password.clone(),
            self.registry_password_file.clone(),
            (&mut registry.password, &mut registry.password_file),
        )
    }
}

impl ClickHouseArgs {
    fn apply(&self, clickhouse: &mut ClickHouseSettings) -> anyhow::Result<()> {
        set(&mut clickhouse.url, self.clickhouse_url.clone());
        set(&mut clickhouse.database, self.clickhouse_database.clone());
        set(&mut clickhouse.user, self.clickhouse_user.clone());
        set_secret(
            "clickhouse.password",
            "clickhouse-password",
            self.clickhouse_password.clone(),
            self.clickhouse_password_file.clone(),
            (&mut clickhouse.password, &mut clickhouse.password_file),
        )
    }
}

/// A command's configuration: the defaults, the file, then `apply` (the
/// flags and their variables); validated.
fn configure(
    file: Option<&Path>,
    apply: impl FnOnce(&mut Config) -> anyhow::Result<()>,
) -> anyhow::Result<Config> {
    let config = resolve(file, apply)?;
    config.validate()?;
    Ok(config)
}

/// The layers of a configuration, not yet validated.
fn resolve(
    file: Option<&Path>,
    apply: impl FnOnce(&mut Config) -> anyhow::Result<()>,
) -> anyhow::Result<Config> {
    let mut config = Config::load(file)?;
    apply(&mut config)?;
    Ok(config)
}

/// Connects to ClickHouse as the configuration says.
async fn connect(settings: &ClickHouseSettings) -> anyhow::Result<Warehouse> {
    let connection = settings.connection()?;
    Warehouse::connect(&connection).await.with_context(|| {
        format!(
            "cannot connect to ClickHouse at {} as user `{}`; check that it is running and \
             that clickhouse.url, user and password are right (local stack: `scripts/stack up`)",
            settings.url, settings.user
        )
    })
}

fn registry_client(settings: &RegistrySettings) -> anyhow::Result<HttpRegistry> {
    HttpRegistry::new(&settings.url, settings.auth()?)
        .context("cannot set up the schema registry client")
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        let file = self.config.as_deref();
        match self.command {
            Command::Migrate { clickhouse } => {
                let config = configure(file, |c| clickhouse.apply(&mut c.clickhouse))?;
                let warehouse = connect(&config.clickhouse).await?;
                let applied = migrate::migrate(&warehouse).await?;
                if applied.is_empty() {
                    println!(
                        "ClickHouse database `{}` is up to date",
                        warehouse.database()
                    );
                } else {
                    println!(
                        "applied {} migration(s) to `{}`: {}",
                        applied.len(),
                        warehouse.database(),
                        applied.join(", ")
                    );
                }
                Ok(())
            }
            Command::Run(args) => {
                let config = configure(file, |c| args.settings.apply(c))?;
                run(config, args.until_caught_up).await
            }
            Command::Generate(args) => {
                let config = configure(file, |c| {
                    args.kafka.apply(c);
                    args.registry.apply(&mut c.schema_registry)
                })?;
                generate(&config, *args).await
            }
            Command::Replay(args) => {
                let config = configure(file, |c| args.settings.apply(c))?;
                let warehouse = connect(&config.clickhouse).await?;
                migrate::check(&warehouse).await?;
                let replayed =
                    replay::replay(&config, &warehouse, args.reason.as_deref(), args.limit).await?;
                println!("replayed {replayed} dead letters");
                Ok(())
            }
            Command::Summary { clickhouse } => {
                let config = configure(file, |c| clickhouse.apply(&mut c.clickhouse))?;
                print_summary(&connect(&config.clickhouse).await?).await
            }
            Command::Forget(args) => {
                let config = configure(file, |c| args.settings.apply(c))?;
                let identifier = touchline_model::Identifier::parse(&args.identifier)
                    .map_err(|error| anyhow::anyhow!("not an identifier: {error}"))?;
                let warehouse = connect(&config.clickhouse).await?;
                migrate::check(&warehouse).await?;
                let report = crate::forget::forget(
                    &config,
                    &warehouse,
                    &identifier,
                    Duration::from_secs(args.settle_seconds),
                )
                .await?;
                println!(
                    "forgot 1 customer: {} identifiers suppressed, {} identity link sets \
                     tombstoned, {} contacts, {} days of aggregates to recompute",
                    report.identifiers, report.link_sets, report.contacts, report.days
                );
                for erased in &report.erased {
                    println!("  {:<22} {:>8} rows deleted", erased.table, erased.rows);
                }
                Ok(())
            }
            Command::Pseudonym {
                identifier,
                privacy,
            } => {
                let config = configure(file, |c| privacy.apply(c))?;
                let pseudonymiser = config.privacy.pseudonymiser()?;
                // The error names the rule, never the value.
                let stored = pseudonymiser
                    .stored_typed(&identifier)
                    .map_err(|error| anyhow::anyhow!("not an identifier: {error}"))?;
                println!("{stored}");
                Ok(())
            }
            Command::Config(command) => config_command(file, command),
        }
    }
}

fn config_command(file: Option<&Path>, command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::ShowDefaults => {
            print!("{DEFAULTS_TOML}");
            Ok(())
        }
        ConfigCommand::Show(settings) => {
            // Printed even when invalid, to show where a bad value came from.
            let config = resolve(file, |c| settings.apply(c))?;
            print!(
                "{}",
                toml::to_string(&config).context("cannot print the configuration")?
            );
            config.validate()
        }
        ConfigCommand::Check { file: checked } => {
            let Some(path) = checked.as_deref().or(file) else {
                bail!(
                    "no file to check: give one (`touchline config check FILE`), or set \
                     --config or TOUCHLINE_CONFIG"
                );
            };
            let config = Config::load(Some(path))?;
            let problems = config.problems();
            if !problems.is_empty() {
                bail!(
                    "{} is not valid:\n  - {}",
                    path.display(),
                    problems.join("\n  - ")
                );
            }
            for missing in config.missing_files() {
                eprintln!("warning: {missing} here; it must exist where Touchline runs");
            }
            println!("{}: valid", path.display());
            Ok(())
        }
    }
}

async fn run(config: Config, until_caught_up: bool) -> anyhow::Result<()> {
    tracing::info!(?config, "starting");
    // From the start, so that a SIGTERM while connecting stops cleanly.
    let shutdown = shutdown_signal();
    let warehouse = connect(&config.clickhouse).await?;
    migrate::check(&warehouse).await.with_context(|| {
        format!(
            "the tables of database `{}` are not ready for this version; create or upgrade \
             them with `touchline migrate` (same settings) first",
            warehouse.database()
        )
    })?;
    let metrics = Metrics::new()?;
    let listener = metrics::bind(config.metrics_addr).await?;
    let readiness = Readiness::new();
    let (stop_services, services_stop) = watch::channel(false);
    let server = tokio::spawn(metrics.clone().serve(
        listener,
        readiness.clone(),
        services_stop.clone(),
    ));
    let registry = registry_client(&config.schema_registry)?;
    let decoder = Decoder::new(registry.clone(), config.pipeline.max_message_bytes);
    let client = config.kafka.client()?;
    let topics = Channel::ALL
        .iter()
        .map(|c| format!("{}{}", config.kafka.topic_prefix, c.source_topic()))
        .collect();
    let probe = Probe::new(
        &client,
        &config.kafka.group_id,
        topics,
        registry,
        warehouse.clone(),
        metrics.clone(),
        readiness.clone(),
    )?;
    let probe = tokio::spawn(probe.run(services_stop));
    let identity = Identity::new(
        &client,
        &config.kafka.topic_prefix,
        config.privacy.pseudonymiser()?,
        metrics.clone(),
    )
    .await?;
    let marks = MarkProducer::new(&client, &config.kafka.topic_prefix).await?;
    let mut stopping = shutdown.clone();
    tokio::spawn(async move {
        if stopping.wait_for(|stop| *stop).await.is_ok() {
            readiness.stopping();
        }
    });
    let (stop_follower, follower_stop) = watch::channel(false);
    let follower = tokio::spawn(Arc::clone(&identity).follow(
        client.clone(),
        warehouse.clone(),
        marks.clone(),
        follower_stop,
    ));
    let pipeline_config = PipelineConfig {
        group_id: config.kafka.group_id.clone(),
        topic_prefix: config.kafka.topic_prefix.clone(),
        batch_max_messages: config.pipeline.batch_max_messages,
        batch_catch_up_messages: config.pipeline.batch_catch_up_messages,
        batch_linger: Duration::from_millis(config.pipeline.batch_linger_ms),
        derive_backlog_messages: config.pipeline.derive_backlog_messages,
        derive_interval: Duration::from_millis(config.pipeline.derive_interval_ms),
        until_caught_up,
        text_channels: config.privacy.text_channels(),
    };
    let pipeline = Pipeline::new(
        pipeline_config,
        &client,
        decoder,
        warehouse.clone(),
        identity,
        Deriver::new(marks, warehouse, metrics.clone()),
        metrics,
    )?;
    let totals = pipeline.run(shutdown).await;
    let _ = stop_follower.send(true);
    let followed = follower.await.context("the identity follower panicked")?;
    let _ = stop_services.send(true);
    let _ = probe.await;
    match tokio::time::timeout(metrics::SHUTDOWN_GRACE, server).await {
        Ok(Ok(Err(error))) => tracing::warn!(error = %format!("{error:#}"), "metrics server"),
        Ok(_) => {}
        Err(_) => tracing::warn!("the metrics server did not stop in time; dropped"),
    }
    let totals = totals?;
    followed?;
    println!(
        "consumed {} messages in {} batches (largest {}): {} timeline rows, {} dead letters",
        totals.messages, totals.batches, totals.largest_batch, totals.events, totals.dead_letters
    );
    Ok(())
}

async fn generate(config: &Config, args: GenerateArgs) -> anyhow::Result<()> {
    use touchline_loadgen::{ProduceOptions, Scenario};

    if config.kafka.has_security_or_options() || config.schema_registry.user.is_some() {
        tracing::warn!(
            "`touchline generate` uses only kafka.brokers, kafka.topic_prefix and \
             schema_registry.url; the Kafka security settings, kafka.options and the registry \
             credentials are ignored"
        );
    }

    // History ends at the start of today (UTC), so that runs on the same day
    // produce the same events, byte for byte.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let today_ms = now_ms - now_ms.rem_euclid(touchline_loadgen::DAY_MS);
    let mut scenario = Scenario::new(
        args.seed,
        args.customers,
        args.start_ms
            .unwrap_or_else(|| Scenario::start_ending_at(today_ms, args.days)),
        args.days,
    );
    scenario.duplicate_rate = args.duplicate_rate;
    scenario.bad_rate = args.bad_rate;
    let generated = touchline_loadgen::generate(&scenario)?;
    let counts = &generated.truth.counts;
    eprintln!(
        "generated {} messages: {} distinct events, {} redeliveries, {} malformed",
        counts.messages, counts.events, counts.duplicates, counts.bad
    );
    let mut options = ProduceOptions::new(&config.kafka.brokers, &config.schema_registry.url);
    options.topic_prefix.clone_from(&config.kafka.topic_prefix);
    options.rate_per_s = args.rate;
    options.duration = args.duration.map(Duration::from_secs);
    let mut progress = crate::progress::Bar::new("producing", counts.messages as u64);
    let report = touchline_loadgen::produce(&generated, &options, |p| {
        progress.update(p.acknowledged as u64);
    })
    .await?;
    progress.finish();
    println!(
        "produced {} of {} messages in {:.1} s{}",
        report.produced,
        report.total,
        report.elapsed.as_secs_f64(),
        if report.stopped_early {
            " (stopped at --duration)"
        } else {
            ""
        }
    );
    if let Some(path) = args.truth {
        generated.prefix(report.produced).truth.write_json(&path)?;
        println!("ground truth written to {}", path.display());
    }
    Ok(())
}

/// Turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(false);
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
        tracing::info!("shutting down: flushing and committing");
        let _ = sender.send(true);
    });
    receiver
}

async fn print_summary(warehouse: &Warehouse) -> anyhow::Result<()> {
    let channels = summary::channels(warehouse).await?;
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>8} {:>7}  {:<10} {:<10}",
        "channel", "events", "customers", "contacts", "csat_n", "csat_%", "first day", "last day"
    );
    for row in &channels {
        let csat = row
            .csat_percent()
            .map_or_else(|| "-".to_owned(), |p| format!("{p:.1}"));
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>8} {:>7}  {:<10} {:<10}",
            row.channel,
            row.events,
            row.customers,
            row.contacts,
            row.csat_responses,
            csat,
            day(row.first_event_ms),
            day(row.last_event_ms)
        );
    }
    let total: u64 = channels.iter().map(|r| r.events).sum();
    println!("{:<12} {:>10}", "all", total);
    let dead = summary::dead_letters(warehouse).await?;
    if dead.is_empty() {
        println!("dead letters: none");
    } else {
        let listed: Vec<String> = dead
            .iter()
            .map(|d| format!("{} {}", d.reason, d.messages))
            .collect();
        println!("dead letters: {}", listed.join(", "));
    }
    print_consistency(warehouse).await
}

/// The omnichannel consistency over every day: per channel CSAT %, NPS and
/// resolution, the gaps between channels, and the journeys.
async fn print_consistency(warehouse: &Warehouse) -> anyhow::Result<()> {
    use touchline_model::metrics::{ConsistencyDay, GAP_MINIMUM};

    let channels = summary::consistency_channels(warehouse).await?;
    let period = summary::consistency_period(warehouse).await?;
    let shown = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    #[allow(clippy::cast_precision_loss)]
    let share = |part: u64, whole: u64| (whole > 0).then(|| 100.0 * part as f64 / whole as f64);
    println!();
    println!("omnichannel consistency, all {} days", period.days);
    println!(
        "{:<12} {:>9} {:>10} {:>8} {:>7} {:>6} {:>9} {:>12}",
        "channel", "contacts", "resolved_%", "csat_n", "csat_%", "nps", "frt_s", "contained_%"
    );
    let mut days = Vec::with_capacity(channels.len());
    for row in &channels {
        let m = row.as_channel_day();
        #[allow(clippy::cast_precision_loss)]
        let nps = (m.nps_responses > 0).then(|| {
            100.0 * (m.nps_promoters as f64 - m.nps_detractors as f64) / m.nps_responses as f64
        });
        #[allow(clippy::cast_precision_loss)]
        let frt = (m.frt_responses > 0).then(|| m.frt_sum_s / m.frt_responses as f64);
        println!(
            "{:<12} {:>9} {:>10} {:>8} {:>7} {:>6} {:>9} {:>12}",
            row.channel,
            m.contacts,
            shown(m.resolution_pct()),
            m.csat_responses,
            shown(m.csat_pct()),
            shown(nps),
            shown(frt),
            shown(share(m.conversations - m.handed_off, m.conversations)),
        );
        days.push(m);
    }
    let gaps = ConsistencyDay::of(&[], &days);
    println!(
        "gaps over all days (channels with at least {GAP_MINIMUM}): CSAT {} pp, resolution {} pp; \
         mean daily gap: CSAT {} pp, resolution {} pp",
        shown(gaps.csat_gap_pp),
        shown(gaps.resolution_gap_pp),
        shown(period.mean_daily_csat_gap_pp),
        shown(period.mean_daily_resolution_gap_pp),
    );
    println!(
        "journeys: {}, multichannel {}%, one-contact resolution {}%, repeat contact {}%",
        period.journeys,
        shown(share(period.multichannel_journeys, period.journeys)),
        shown(share(period.ocr_journeys, period.journeys)),
        shown(share(period.repeat_journeys, period.journeys)),
    );
    Ok(())
}

/// `YYYY-MM-DD` of a millisecond timestamp, UTC.
fn day(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d").to_string())
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not NAME=VALUE (e.g. client.rack=eu-west-1a)"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// `(env, flag, default)` of every setting in `DEFAULTS_TOML`, from its
    /// `# env X, flag --y` comment and the key line after it (`None` for a
    /// key without a default, which is commented out).
    fn documented_settings() -> Vec<(String, String, Option<String>)> {
        let mut settings = Vec::new();
        let mut pending: Option<(String, String)> = None;
        for line in DEFAULTS_TOML.lines() {
            if let Some(rest) = line.strip_prefix("# env ") {
                let (env, flag) = rest.split_once(", flag ").expect("`# env X, flag --y`");
                pending = Some((env.to_owned(), flag.to_owned()));
            } else if let Some((env, flag)) = pending.take() {
                let default = (!line.starts_with('#')).then(|| {
                    let (_, value) = line.split_once(" = ").expect("key = value");
                    value.trim_matches('"').to_owned()
                });
                settings.push((env, flag, default));
            }
        }
        settings
    }

    fn run_command() -> clap::Command {
        Cli::command().find_subcommand("run").expect("run").clone()
    }

    #[test]
    fn flags_variables_and_the_defaults_file_agree() {
        let run = run_command();
        let documented = documented_settings();
        assert!(documented.len() > 20, "{documented:?}");
        for (env, flag, default) in &documented {
            let arg = run
                .get_arguments()
                .find(|a| a.get_long().map(|l| format!("--{l}")) == Some(flag.clone()))
                .unwrap_or_else(|| panic!("DEFAULTS_TOML names {flag}, which `run` lacks"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env.as_str()),
                "{flag}"
            );
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            if let Some(default) = default {
                let shown = if default.is_empty() {
                    "none"
                } else {
                    default.as_str()
                };
                assert!(
                    help.contains(&format!("[default: {shown}]")),
                    "the help of {flag} should say `[default: {shown}]`: {help}"
                );
            }
        }
        for arg in run.get_arguments() {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
                continue;
            };
            if env == "TOUCHLINE_CONFIG" {
                continue;
            }
            assert!(
                documented.iter().any(|(e, _, _)| e == env),
                "{env} is not documented in DEFAULTS_TOML"
            );
        }
    }

    fn settings_of(args: &[&str]) -> Config {
        let cli = Cli::try_parse_from(args).expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let mut config = Config::from_toml(
            "[kafka]\nbrokers = \"file:9092\"\ngroup_id = \"from-file\"\n\
             [kafka.options]\n\"client.rack\" = \"file\"\n\"linger.ms\" = \"5\"\n\
             [clickhouse]\npassword_file = \"/run/secrets/ch\"\n",
        )
        .expect("file");
        run.settings.apply(&mut config).expect("applies");
        config
    }

    #[test]
    fn flags_override_the_file_key_by_key() {
        let config = settings_of(&[
            "touchline",
            "run",
            "--brokers",
            "flag:9092",
            "--kafka-option",
            "client.rack=flag",
            "--clickhouse-password",
            "inline",
            "--batch-linger-ms",
            "20",
        ]);
        assert_eq!(config.kafka.brokers, "flag:9092");
        assert_eq!(config.kafka.group_id, "from-file");
        assert_eq!(config.kafka.options["client.rack"], "flag");
        assert_eq!(config.kafka.options["linger.ms"], "5");
        assert_eq!(config.pipeline.batch_linger_ms, 20);
        assert_eq!(config.pipeline.batch_max_messages, 20_000);
        // A password flag replaces the file's password_file: one setting.
        assert_eq!(
            config.clickhouse.password.as_ref().map(Secret::expose),
            Some("inline")
        );
        assert_eq!(config.clickhouse.password_file, None);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn a_password_and_its_file_on_one_layer_conflict() {
        let cli = Cli::try_parse_from([
            "touchline",
            "run",
            "--clickhouse-password",
            "p",
            "--clickhouse-password-file",
            "f",
        ])
        .expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let error = run
            .settings
            .apply(&mut Config::default())
            .expect_err("conflict");
        assert!(error.to_string().contains("clickhouse.password"), "{error}");
    }

    #[test]
    fn bad_flag_values_are_refused_with_the_choices() {
        let error = Cli::try_parse_from(["touchline", "run", "--kafka-security-protocol", "tls"])
            .expect_err("tls is not a protocol")
            .to_string();
        assert!(error.contains("sasl_ssl"), "{error}");
        assert!(Cli::try_parse_from(["touchline", "run", "--metrics-addr", "9464"]).is_err());
    }

    #[test]
    fn every_command_has_a_paragraph_and_the_top_level_has_examples() {
        let mut cli = Cli::command();
        cli.build();
        for command in cli.get_subcommands() {
            if command.get_name() == "help" {
                continue;
            }
            assert!(
                command.get_about().is_some(),
                "{} has no help",
                command.get_name()
            );
        }
        let help = cli.render_long_help().to_string();
        assert!(help.contains("Examples:"), "{help}");
        let run = run_command().render_long_help().to_string();
        assert!(run.contains("/readyz"), "{run}");
    }

    #[test]
    fn kafka_options_are_key_value_pairs() {
        assert_eq!(
            parse_key_value("security.protocol = SASL_SSL"),
            Ok(("security.protocol".into(), "SASL_SSL".into()))
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
