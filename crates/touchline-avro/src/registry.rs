//! Schema registry access: the Confluent REST API over HTTP, and a fixed
//! in-memory registry for tests.
//!
//! Only what Touchline needs is implemented: fetch a schema by id, register a
//! schema under a subject (the load generator), and list a subject's latest
//! version. Subjects follow the TopicNameStrategy: `<topic>-value`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// The subject of a topic's value schema under the TopicNameStrategy.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// Why a registry request failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RegistryError {
    /// The registry answered that it has no schema with this id: bad data.
    #[error("schema id {id} is not in the registry")]
    NotFound { id: u32 },
    /// The registry could not be reached or failed: retry later.
    #[error("schema registry unavailable: {reason}")]
    Unavailable { reason: String },
    /// The registry refused the request (credentials, invalid schema): a
    /// configuration problem that retrying will not fix.
    #[error("schema registry refused the request: {reason}")]
    Rejected { reason: String },
}

impl RegistryError {
    /// Whether the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// Where writer schemas come from.
pub trait SchemaRegistry: Send + Sync {
    /// The schema text registered under `id`.
    fn schema_by_id(&self, id: u32) -> impl Future<Output = Result<String, RegistryError>> + Send;
}

/// Basic-auth credentials for a registry.
#[derive(Clone)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A Confluent-compatible registry reached over HTTP.
#[derive(Debug, Clone)]
pub struct HttpRegistry {
    base: String,
    auth: Option<BasicAuth>,
    http: reqwest::Client,
}

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
}

#[derive(Deserialize)]
struct IdBody {
    id: u32,
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

impl HttpRegistry {
    /// A client for the registry at `base_url`, e.g. `http://127.0.0.1:8081`.
    pub fn new(base_url: &str, auth: Option<BasicAuth>) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| RegistryError::Rejected {
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(HttpRegistry {
            base: base_url.trim_end_matches('/').to_owned(),
            auth,
            http,
        })
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Registers `schema` under `subject` and returns its global id; the same
    /// schema registered twice keeps its id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.base);
        let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" });
        let request = self.http.post(&url).json(&body);
        let response = self.send(request).await?;
        let IdBody { id } = decode_json(response, &url).await?;
        Ok(id)
    }

    /// Whether the registry answers at all (used for readiness).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/subjects", self.base);
        self.send(self.http.get(&url)).await.map(drop)
    }

    /// Sends a request; any answer, success or not, is returned.
    async fn send_raw(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = request.header(reqwest::header::ACCEPT, CONTENT_TYPE);
        if let Some(auth) = &self.auth {
            request = request.basic_auth(&auth.username, Some(&auth.password));
        }
        request
            .send()
            .await
            .map_err(|e| RegistryError::Unavailable {
                reason: format!("{} ({e})", self.base),
            })
    }

    /// Sends a request; an unsuccessful answer becomes an error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RegistryError> {
        let response = self.send_raw(request).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_from(response).await)
        }
    }
}

/// Classifies an unsuccessful answer: server-side trouble is retryable,
/// anything the client did wrong is not.
async fn error_from(response: reqwest::Response) -> RegistryError {
    let status = response.status();
    let url = response.url().to_string();
    let detail = match response.json::<ErrorBody>().await {
        Ok(ErrorBody {
            error_code,
            message,
        }) => format!(
            "{status} error_code={} {}",
            error_code.unwrap_or_default(),
            message.unwrap_or_default()
        ),
        Err(_) => status.to_string(),
    };
    let reason = format!("{url}: {detail}");
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        RegistryError::Unavailable { reason }
    } else {
        RegistryError::Rejected { reason }
    }
}

async fn decode_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    url: &str,
) -> Result<T, RegistryError> {
    response
        .json::<T>()
        .await
        .map_err(|e| RegistryError::Unavailable {
            reason: format!("{url}: unreadable response ({e})"),
        })
}

impl SchemaRegistry for HttpRegistry {
    async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let url = format!("{}/schemas/ids/{id}", self.base);
        let response = self.send_raw(self.http.get(&url)).await?;
        match response.status() {
            status if status.is_success() => {
                Ok(decode_json::<SchemaBody>(response, &url).await?.schema)
            }
            reqwest::StatusCode::NOT_FOUND => Err(RegistryError::NotFound { id }),
            _ => Err(error_from(response).await),
        }
    }
}

/// A registry held in memory, for tests: fixed schemas, and a switch that
/// makes it fail as an unreachable registry would.
#[derive(Debug, Default)]
pub struct StaticRegistry {
    schemas: RwLock<HashMap<u32, String>>,
    down: AtomicBool,
}

impl StaticRegistry {
    /// A registry holding `schemas` by id.
    pub fn new(schemas: impl IntoIterator<Item = (u32, String)>) -> Self {
        StaticRegistry {
            schemas: RwLock::new(schemas.into_iter().collect()),
            down: AtomicBool::new(false),
        }
    }

    /// Makes every later request fail as unavailable (`true`) or succeed again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl SchemaRegistry for StaticRegistry {
    async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(RegistryError::Unavailable {
                reason: "test registry switched off".into(),
            });
        }
        let schemas = self.schemas.read().unwrap_or_else(|e| e.into_inner());
        schemas
            .get(&id)
            .cloned()
            .ok_or(RegistryError::NotFound { id })
    }
}
