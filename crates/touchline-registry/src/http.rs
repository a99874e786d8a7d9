//! The REST API: routes, request bodies, responses and the Confluent error
//! form `{"error_code": N, "message": "..."}`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::schema::ParsedSchema;
use crate::store::{NotFound, Registry, SchemaId, SubjectVersion, VersionSelector};

/// The content type of every response, as the Confluent registry sends it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types the Confluent registry accepts for JSON bodies.
const ACCEPTED_CONTENT_TYPES: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// Confluent error codes used here.
mod code {
    pub const SUBJECT_NOT_FOUND: u32 = 40401;
    pub const VERSION_NOT_FOUND: u32 = 40402;
    pub const SCHEMA_NOT_FOUND: u32 = 40403;
    pub const INVALID_SCHEMA: u32 = 42201;
    pub const INVALID_VERSION: u32 = 42202;
    pub const STORE_ERROR: u32 = 50001;
}

/// Builds the HTTP service for `registry`.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/config", get(config))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/versions", get(schema_versions))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route(
            "/subjects/{subject}/versions",
            get(subject_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(subject_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(subject_version_schema),
        )
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(registry)
}

/// A JSON response with the registry's content type.
struct SrJson<T>(StatusCode, T);

impl<T: Serialize> IntoResponse for SrJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.1) {
            Ok(body) => {
                let mut response = (self.0, body).into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
                response
            }
            Err(error) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                500,
                format!("cannot encode the response: {error}"),
            )
            .into_response(),
        }
    }
}

fn ok<T: Serialize>(body: T) -> SrJson<T> {
    SrJson(StatusCode::OK, body)
}

/// An error in the Confluent form.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// An error whose code is the HTTP status, as Confluent's REST layer
    /// reports failures outside the registry's own codes.
    fn http(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, u32::from(status.as_u16()), message)
    }

    fn invalid_schema(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::INVALID_SCHEMA,
            format!("Invalid schema: {reason}"),
        )
    }

    fn schema_id_not_found(id: SchemaId) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code::SCHEMA_NOT_FOUND,
            format!("Schema {id} not found"),
        )
    }
}

impl From<NotFound> for ApiError {
    fn from(not_found: NotFound) -> Self {
        let code = match not_found {
            NotFound::Subject(_) => code::SUBJECT_NOT_FOUND,
            NotFound::Version(_) => code::VERSION_NOT_FOUND,
            NotFound::Schema => code::SCHEMA_NOT_FOUND,
        };
        Self::new(StatusCode::NOT_FOUND, code, not_found.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message});
        let mut response = (self.status, body.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

/// A JSON request body, checked for an accepted content type, with failures
/// reported in the Confluent error form.
struct SrBody<T>(T);

impl<S, T> FromRequest<S> for SrBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !accepted_content_type(request.headers()) {
            return Err(ApiError::http(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "HTTP 415 Unsupported Media Type",
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::http(rejection.status(), rejection.body_text()))?;
        serde_json::from_slice(&bytes).map(SrBody).map_err(|error| {
            if error.is_data() {
                ApiError::http(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
            } else {
                ApiError::http(StatusCode::BAD_REQUEST, error.to_string())
            }
        })
    }
}

fn accepted_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    ACCEPTED_CONTENT_TYPES
        .iter()
        .any(|accepted| essence.eq_ignore_ascii_case(accepted))
}

/// The body of `POST /subjects/{subject}/versions` and `POST /subjects/{subject}`.
///
/// Other fields Confluent clients may send (`metadata`, `ruleSet`, ...) are
/// accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaRequest {
    schema: Option<String>,
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<serde_json::Value>>,
}

impl SchemaRequest {
    /// Checks the type and references and parses the schema.
    fn parse(self) -> Result<ParsedSchema, ApiError> {
        if let Some(schema_type) = &self.schema_type {
            if !schema_type.eq_ignore_ascii_case("AVRO") {
                return Err(ApiError::invalid_schema(format_args!(
                    "schema type {schema_type} is not supported; this registry accepts only AVRO"
                )));
            }
        }
        if self
            .references
            .is_some_and(|references| !references.is_empty())
        {
            return Err(ApiError::invalid_schema(
                "schema references are not supported by this registry",
            ));
        }
        let text = self
            .schema
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| ApiError::invalid_schema("empty schema"))?;
        ParsedSchema::parse(&text).map_err(ApiError::invalid_schema)
    }
}

/// `{"subject", "version", "id", "schema"}` as Confluent returns it.
#[derive(Debug, Serialize)]
struct SubjectVersionBody {
    subject: String,
    version: u32,
    id: SchemaId,
    schema: String,
}

impl From<SubjectVersion> for SubjectVersionBody {
    fn from(found: SubjectVersion) -> Self {
        Self {
            subject: found.subject,
            version: found.version,
            id: found.id,
            schema: found.schema,
        }
    }
}

/// `GET /`: the empty object Confluent answers, handy as a health check.
async fn root() -> SrJson<serde_json::Value> {
    ok(json!({}))
}

/// `GET /config`: compatibility is not checked, so the level is `NONE`.
async fn config() -> SrJson<serde_json::Value> {
    ok(json!({"compatibilityLevel": "NONE"}))
}

/// `GET /schemas/types`.
async fn schema_types() -> SrJson<[&'static str; 1]> {
    ok(["AVRO"])
}

/// Parses a schema id path segment; Confluent answers a non-number with a
/// plain 404.
fn parse_id(id: &str) -> Result<SchemaId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::http(StatusCode::NOT_FOUND, "HTTP 404 Not Found"))
}

/// Parses a version path segment: a positive 32-bit integer, `latest`, or `-1`.
fn parse_version(version: &str) -> Result<VersionSelector, ApiError> {
    if version.eq_ignore_ascii_case("latest") || version == "-1" {
        return Ok(VersionSelector::Latest);
    }
    match version.parse::<i32>() {
        Ok(number) if number > 0 => Ok(VersionSelector::Number(number.unsigned_abs())),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            code::INVALID_VERSION,
            format!(
                "The specified version '{version}' is not a valid version id. \
                 Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )),
    }
}

/// `GET /schemas/ids/{id}`.
async fn schema_by_id(
    State(registry): State<Registry>,
    Path(id): Path<String>,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let id = parse_id(&id)?;
    let schema = registry
        .schema(id)
        .await
        .ok_or_else(|| ApiError::schema_id_not_found(id))?;
    Ok(ok(json!({ "schema": schema })))
}

/// `GET /schemas/ids/{id}/versions`.
async fn schema_versions(
    State(registry): State<Registry>,
    Path(id): Path<String>,
) -> Result<SrJson<Vec<serde_json::Value>>, ApiError> {
    let id = parse_id(&id)?;
    let versions = registry
        .schema_versions(id)
        .await
        .ok_or_else(|| ApiError::schema_id_not_found(id))?;
    Ok(ok(versions
        .into_iter()
        .map(|(subject, version)| json!({"subject": subject, "version": version}))
        .collect()))
}

/// `GET /subjects`.
async fn subjects(State(registry): State<Registry>) -> SrJson<Vec<String>> {
    ok(registry.subjects().await)
}

/// `GET /subjects/{subject}/versions`.
async fn subject_versions(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
) -> Result<SrJson<Vec<u32>>, ApiError> {
    Ok(ok(registry.versions(&subject).await?))
}

/// `GET /subjects/{subject}/versions/{version}`.
async fn subject_version(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<SrJson<SubjectVersionBody>, ApiError> {
    let selector = parse_version(&version)?;
    let found = registry.version(&subject, selector).await?;
    Ok(ok(found.into()))
}

/// `GET /subjects/{subject}/versions/{version}/schema`: the schema itself.
async fn subject_version_schema(
    State(registry): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let selector = parse_version(&version)?;
    let found = registry.version(&subject, selector).await?;
    let mut response = found.schema.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(response)
}

/// `POST /subjects/{subject}/versions`.
async fn register(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    SrBody(request): SrBody<SchemaRequest>,
) -> Result<SrJson<serde_json::Value>, ApiError> {
    let schema = request.parse().inspect_err(|error| {
        tracing::info!(subject = %subject, reason = %error.message, "refused schema");
    })?;
    let registration = registry.register(&subject, schema).await.map_err(|error| {
        let error = with_causes(&error);
        tracing::error!(subject = %subject, error = %error, "cannot store schema");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            code::STORE_ERROR,
            format!("Error in the backend data store: {error}"),
        )
    })?;
    if registration.created {
        tracing::info!(
            subject = %subject,
            id = registration.id,
            version = registration.version,
            "registered schema"
        );
    } else {
        tracing::debug!(
            subject = %subject,
            id = registration.id,
            version = registration.version,
            "schema already registered"
        );
    }
    Ok(ok(json!({ "id": registration.id })))
}

/// `POST /subjects/{subject}`: which version of the subject holds a schema.
async fn lookup(
    State(registry): State<Registry>,
    Path(subject): Path<String>,
    SrBody(request): SrBody<SchemaRequest>,
) -> Result<SrJson<SubjectVersionBody>, ApiError> {
    let schema = request.parse()?;
    let found = registry.lookup(&subject, &schema).await?;
    Ok(ok(found.into()))
}

/// `error` followed by each of its causes, separated by `: `.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

async fn route_not_found() -> ApiError {
    ApiError::http(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::http(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}

/// Logs every request with its outcome at debug level.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}
