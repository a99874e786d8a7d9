//! What can go wrong, each with what to do about it.

use std::path::PathBuf;

use thiserror::Error;

/// Why generating, encoding, producing or reading a truth file failed.
#[derive(Debug, Error)]
pub enum LoadgenError {
    /// A scenario setting is out of range: fix the flag.
    #[error("invalid scenario: {setting} {reason}")]
    InvalidScenario {
        setting: &'static str,
        reason: String,
    },
    /// The schema registry did not answer: it is not running or not there.
    #[error(
        "cannot reach the schema registry at {url}: {reason}; \
         start the local stack with `scripts/stack up` or pass the right --registry URL"
    )]
    RegistryUnreachable { url: String, reason: String },
    /// The schema registry refused an upstream schema.
    #[error(
        "the schema registry at {url} refused schema `{schema}` under subject `{subject}`: {reason}; \
         check the subject's compatibility setting, or reset the registry's data"
    )]
    RegistryRejected {
        url: String,
        schema: &'static str,
        subject: String,
        reason: String,
    },
    /// The Kafka broker did not answer.
    #[error(
        "cannot reach the Kafka broker at {brokers}: {reason}; \
         start the local stack with `scripts/stack up` or pass the right --brokers"
    )]
    BrokerUnreachable { brokers: String, reason: String },
    /// A source topic does not exist on the broker.
    #[error(
        "topic `{topic}` does not exist on the Kafka broker at {brokers}; \
         `scripts/stack up` creates the four source topics"
    )]
    MissingTopic { topic: String, brokers: String },
    /// The Kafka producer could not be configured (a bad setting).
    #[error("cannot create a Kafka producer for {brokers}: {source}")]
    ProducerConfig {
        brokers: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A message was not acknowledged by the broker, after librdkafka's retries.
    #[error(
        "producing to topic `{topic}` on {brokers} failed after {produced} acknowledged messages: {source}; \
         is the broker still up (`scripts/stack status`)?"
    )]
    Delivery {
        topic: String,
        brokers: String,
        produced: usize,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A generated document does not fit its schema: a bug in the generator.
    #[error("generated document does not encode with schema `{schema}` (a load-generator bug): {reason}")]
    Encode { schema: String, reason: String },
    /// A message names a schema version that has no registry id.
    #[error("no schema id for `{schema}`: register every upstream version before encoding")]
    MissingSchemaId { schema: String },
    /// The truth file could not be written or read.
    #[error("cannot {action} the truth file {path}: {reason}")]
    TruthFile {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
}
