use thiserror::Error;

/// Why a ClickHouse request failed, classified by what the caller should do.
#[derive(Debug, Error)]
pub enum SinkError {
    /// The server could not be reached or is overloaded: retry later, keep
    /// the offsets uncommitted meanwhile.
    #[error("ClickHouse unavailable: {0}")]
    Unavailable(#[source] clickhouse::error::Error),
    /// The server refused the request: retrying will not help.
    #[error("ClickHouse refused the request: {0}")]
    Rejected(#[source] clickhouse::error::Error),
    /// The database is not in the shape this build writes.
    #[error("ClickHouse schema is not what this build expects: {0}. Run `touchline migrate`.")]
    Schema(String),
}

impl SinkError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SinkError::Unavailable(_))
    }
}

/// Server error codes that mean "later" rather than "never": too many parts or
/// queries, timeouts, memory pressure, a replica or table being readied.
const RETRYABLE_CODES: &[&str] = &[
    "Code: 159", // TIMEOUT_EXCEEDED
    "Code: 202", // TOO_MANY_SIMULTANEOUS_QUERIES
    "Code: 209", // SOCKET_TIMEOUT
    "Code: 210", // NETWORK_ERROR
    "Code: 241", // MEMORY_LIMIT_EXCEEDED
    "Code: 242", // TABLE_IS_READ_ONLY
    "Code: 252", // TOO_MANY_PARTS
    "Code: 319", // UNKNOWN_STATUS_OF_INSERT
    "Code: 425", // SYSTEM_ERROR
];

impl From<clickhouse::error::Error> for SinkError {
    fn from(error: clickhouse::error::Error) -> Self {
        use clickhouse::error::Error as E;
        match &error {
            E::Network(_) | E::TimedOut => SinkError::Unavailable(error),
            E::BadResponse(message) if RETRYABLE_CODES.iter().any(|c| message.contains(c)) => {
                SinkError::Unavailable(error)
            }
            E::BadResponse(message) if message.contains("Code: 60") => {
                SinkError::Schema(message.clone())
            }
            _ => SinkError::Rejected(error),
        }
    }
}
