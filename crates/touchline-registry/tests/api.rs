//! The REST API over real HTTP: each test starts the server on an ephemeral
//! port (in process, or the built binary) and talks to it with `reqwest`.

// The helpers below are test code too: a failed step should fail the test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use touchline_registry::{router, Registry};

const SR_JSON: &str = "application/vnd.schemaregistry.v1+json";

const RECORD_V1: &str = r#"{"type":"record","name":"Order","namespace":"test","fields":[{"name":"id","type":"string"}]}"#;
const RECORD_V2: &str = r#"{"type":"record","name":"Order","namespace":"test","fields":[{"name":"id","type":"string"},{"name":"total","type":["null","double"],"default":null}]}"#;

/// A registry served in process on 127.0.0.1 with an ephemeral port; the
/// server stops when this is dropped.
struct Server {
    base: String,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(registry: Registry) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router(registry)).await.unwrap();
        });
        Self { base, task }
    }

    async fn in_memory() -> Self {
        Self::start(Registry::in_memory()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Response {
        Client::new().get(self.url(path)).send().await.unwrap()
    }

    /// POSTs `body` as the registry's content type.
    async fn post(&self, path: &str, body: &Value) -> Response {
        self.post_as(path, SR_JSON, body.to_string()).await
    }

    async fn post_as(&self, path: &str, content_type: &str, body: String) -> Response {
        Client::new()
            .post(self.url(path))
            .header(CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Registers `schema` under `subject` and returns its id.
    async fn register(&self, subject: &str, schema: &str) -> u64 {
        let response = self
            .post(
                &format!("/subjects/{subject}/versions"),
                &json!({ "schema": schema }),
            )
            .await;
        let body = ok_json(response).await;
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        body["id"].as_u64().unwrap()
    }

    /// Subjects with their versions and the id of each version.
    async fn snapshot(&self) -> Vec<(String, Vec<(u64, u64)>)> {
        let subjects = ok_json(self.get("/subjects").await).await;
        let mut snapshot = Vec::new();
        for subject in subjects.as_array().unwrap() {
            let subject = subject.as_str().unwrap();
            let versions = ok_json(self.get(&format!("/subjects/{subject}/versions")).await).await;
            let mut pairs = Vec::new();
            for version in versions.as_array().unwrap() {
                let version = version.as_u64().unwrap();
                let found = ok_json(
                    self.get(&format!("/subjects/{subject}/versions/{version}"))
                        .await,
                )
                .await;
                pairs.push((version, found["id"].as_u64().unwrap()));
            }
            snapshot.push((subject.to_owned(), pairs));
        }
        snapshot
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Asserts a 200 with the registry content type and returns the JSON body.
async fn ok_json(response: Response) -> Value {
    let status = response.status();
    assert_eq!(response.headers()[CONTENT_TYPE], SR_JSON);
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Asserts a Confluent error with `status` and `error_code`; returns the message.
async fn error(response: Response, status: StatusCode, error_code: u64) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()[CONTENT_TYPE], SR_JSON);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error_code"], error_code, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body["message"].as_str().unwrap().to_owned()
}

/// From where cargo runs the test, not the checkout it was built in, which a
/// build cache shared by several checkouts may keep long after it is gone.
fn upstream_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest.join("../../schemas/upstream")
}

fn upstream(name: &str) -> String {
    std::fs::read_to_string(upstream_dir().join(name)).unwrap()
}

#[tokio::test]
async fn register_then_read_back_through_every_endpoint() {
    let server = Server::in_memory().await;
    let id = server.register("orders-value", RECORD_V1).await;
    assert_eq!(id, 1);

    let by_id = ok_json(server.get("/schemas/ids/1").await).await;
    assert_eq!(by_id, json!({ "schema": RECORD_V1 }));

    let where_used = ok_json(server.get("/schemas/ids/1/versions").await).await;
    assert_eq!(
        where_used,
        json!([{"subject": "orders-value", "version": 1}])
    );

    assert_eq!(
        ok_json(server.get("/subjects").await).await,
        json!(["orders-value"])
    );
    assert_eq!(
        ok_json(server.get("/subjects/orders-value/versions").await).await,
        json!([1])
    );

    let expected = json!({"subject": "orders-value", "version": 1, "id": 1, "schema": RECORD_V1});
    for version in ["1", "latest", "-1"] {
        let path = format!("/subjects/orders-value/versions/{version}");
        assert_eq!(ok_json(server.get(&path).await).await, expected, "{path}");
    }

    let raw = server
        .get("/subjects/orders-value/versions/latest/schema")
        .await;
    assert_eq!(raw.headers()[CONTENT_TYPE], SR_JSON);
    assert_eq!(raw.text().await.unwrap(), RECORD_V1);

    let lookup = ok_json(
        server
            .post("/subjects/orders-value", &json!({ "schema": RECORD_V1 }))
            .await,
    )
    .await;
    assert_eq!(lookup, expected);

    assert_eq!(
        ok_json(server.get("/config").await).await,
        json!({"compatibilityLevel": "NONE"})
    );
    assert_eq!(
        ok_json(server.get("/schemas/types").await).await,
        json!(["AVRO"])
    );
    assert_eq!(ok_json(server.get("/").await).await, json!({}));
}

#[tokio::test]
async fn reregistering_a_schema_returns_its_id_without_a_new_version() {
    let server = Server::in_memory().await;
    let first = server.register("orders-value", RECORD_V1).await;
    let again = server.register("orders-value", RECORD_V1).await;
    // The same schema laid out differently is the same schema.
    let reformatted = r#"{
        "namespace": "test", "name": "Order", "type": "record",
        "fields": [ { "type": {"type": "string"}, "name": "id" } ]
    }"#;
    let relaid = server.register("orders-value", reformatted).await;
    assert_eq!((first, again, relaid), (1, 1, 1));
    assert_eq!(
        ok_json(server.get("/subjects/orders-value/versions").await).await,
        json!([1])
    );

    // An older version registered again returns that version's id.
    let second = server.register("orders-value", RECORD_V2).await;
    assert_eq!(second, 2);
    assert_eq!(server.register("orders-value", RECORD_V1).await, 1);
    assert_eq!(
        ok_json(server.get("/subjects/orders-value/versions").await).await,
        json!([1, 2])
    );

    // Lookup also compares parsed schemas, and returns the first text.
    let found = ok_json(
        server
            .post("/subjects/orders-value", &json!({ "schema": reformatted }))
            .await,
    )
    .await;
    assert_eq!(found["version"], 1);
    assert_eq!(found["id"], 1);
    assert_eq!(found["schema"], RECORD_V1);
}

#[tokio::test]
async fn a_schema_differing_in_doc_or_default_gets_its_own_id() {
    let server = Server::in_memory().await;
    let plain = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
    let documented =
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","doc":"d"}]}"#;
    let defaulted =
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","default":0}]}"#;
    assert_eq!(server.register("r-value", plain).await, 1);
    assert_eq!(server.register("r-value", documented).await, 2);
    assert_eq!(server.register("r-value", defaulted).await, 3);
}

#[tokio::test]
async fn the_same_schema_under_two_subjects_has_one_id() {
    let server = Server::in_memory().await;
    let a = server.register("a-value", RECORD_V1).await;
    let other = server.register("a-value", RECORD_V2).await;
    let b = server.register("b-value", RECORD_V1).await;
    assert_eq!(a, b);
    assert_ne!(a, other);

    // Each subject numbers its own versions.
    let in_b = ok_json(server.get("/subjects/b-value/versions/1").await).await;
    assert_eq!(in_b["id"], a);

    let where_used = ok_json(server.get(&format!("/schemas/ids/{a}/versions")).await).await;
    assert_eq!(
        where_used,
        json!([
            {"subject": "a-value", "version": 1},
            {"subject": "b-value", "version": 1}
        ])
    );
    assert_eq!(
        ok_json(server.get("/subjects").await).await,
        json!(["a-value", "b-value"])
    );
}

#[tokio::test]
async fn versions_can_be_read_one_by_one() {
    let server = Server::in_memory().await;
    let v1 = server.register("orders-value", RECORD_V1).await;
    let v2 = server.register("orders-value", RECORD_V2).await;
    let first = ok_json(server.get("/subjects/orders-value/versions/1").await).await;
    let latest = ok_json(server.get("/subjects/orders-value/versions/latest").await).await;
    assert_eq!(first["id"], v1);
    assert_eq!(first["schema"], RECORD_V1);
    assert_eq!(latest["id"], v2);
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["schema"], RECORD_V2);
}

#[tokio::test]
async fn lookup_distinguishes_unknown_subject_from_unknown_schema() {
    let server = Server::in_memory().await;
    server.register("a-value", RECORD_V1).await;
    server.register("b-value", RECORD_V2).await;

    let missing_subject = server
        .post("/subjects/nope-value", &json!({ "schema": RECORD_V1 }))
        .await;
    let message = error(missing_subject, StatusCode::NOT_FOUND, 40401).await;
    assert!(message.contains("nope-value"), "{message}");

    // Registered, but under another subject.
    let elsewhere = server
        .post("/subjects/a-value", &json!({ "schema": RECORD_V2 }))
        .await;
    error(elsewhere, StatusCode::NOT_FOUND, 40403).await;

    let invalid = server
        .post("/subjects/a-value", &json!({ "schema": "{not avro" }))
        .await;
    error(invalid, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;
}

#[tokio::test]
async fn reads_of_missing_things_answer_confluent_error_codes() {
    let server = Server::in_memory().await;
    server.register("orders-value", RECORD_V1).await;

    let message = error(
        server.get("/schemas/ids/99").await,
        StatusCode::NOT_FOUND,
        40403,
    )
    .await;
    assert!(message.contains("not found"), "{message}");
    error(
        server.get("/schemas/ids/99/versions").await,
        StatusCode::NOT_FOUND,
        40403,
    )
    .await;
    error(
        server.get("/schemas/ids/0").await,
        StatusCode::NOT_FOUND,
        40403,
    )
    .await;
    error(
        server.get("/schemas/ids/abc").await,
        StatusCode::NOT_FOUND,
        404,
    )
    .await;
    error(
        server.get("/subjects/nope-value/versions").await,
        StatusCode::NOT_FOUND,
        40401,
    )
    .await;
    error(
        server.get("/subjects/nope-value/versions/latest").await,
        StatusCode::NOT_FOUND,
        40401,
    )
    .await;
    error(
        server.get("/subjects/orders-value/versions/2").await,
        StatusCode::NOT_FOUND,
        40402,
    )
    .await;
    for version in ["0", "-2", "abc", "2147483648"] {
        error(
            server
                .get(&format!("/subjects/orders-value/versions/{version}"))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        )
        .await;
    }
    error(server.get("/nowhere").await, StatusCode::NOT_FOUND, 404).await;
    let delete = Client::new()
        .delete(server.url("/subjects/orders-value/versions"))
        .send()
        .await
        .unwrap();
    error(delete, StatusCode::METHOD_NOT_ALLOWED, 405).await;
}

#[tokio::test]
async fn bad_registrations_are_refused_and_change_nothing() {
    let server = Server::in_memory().await;
    let path = "/subjects/orders-value/versions";

    let invalid_avro = server
        .post(path, &json!({"schema": r#"{"type":"record","name":"R"}"#}))
        .await;
    let message = error(invalid_avro, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;
    assert!(message.starts_with("Invalid schema"), "{message}");

    let not_json = server.post(path, &json!({"schema": "{oops"})).await;
    error(not_json, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;

    let unknown_type = server
        .post(path, &json!({"schema": r#"{"type":"strin"}"#}))
        .await;
    error(unknown_type, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;

    for schema_type in ["PROTOBUF", "JSON"] {
        let other = server
            .post(
                path,
                &json!({"schema": "syntax = \"proto3\";", "schemaType": schema_type}),
            )
            .await;
        let message = error(other, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;
        assert!(message.contains(schema_type), "{message}");
    }

    let empty = server.post(path, &json!({})).await;
    error(empty, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;

    let references = server
        .post(
            path,
            &json!({"schema": RECORD_V1, "references": [{"name": "x", "subject": "y", "version": 1}]}),
        )
        .await;
    error(references, StatusCode::UNPROCESSABLE_ENTITY, 42201).await;

    let malformed = server.post_as(path, SR_JSON, "{".to_owned()).await;
    error(malformed, StatusCode::BAD_REQUEST, 400).await;

    let wrong_shape = server.post_as(path, SR_JSON, "[1]".to_owned()).await;
    error(wrong_shape, StatusCode::UNPROCESSABLE_ENTITY, 422).await;

    let body = json!({ "schema": RECORD_V1 }).to_string();
    let form = server
        .post_as(path, "application/x-www-form-urlencoded", body.clone())
        .await;
    error(form, StatusCode::UNSUPPORTED_MEDIA_TYPE, 415).await;
    let text = server.post_as(path, "text/plain", body).await;
    error(text, StatusCode::UNSUPPORTED_MEDIA_TYPE, 415).await;

    assert_eq!(ok_json(server.get("/subjects").await).await, json!([]));
    error(
        server.get("/schemas/ids/1").await,
        StatusCode::NOT_FOUND,
        40403,
    )
    .await;
}

#[tokio::test]
async fn explicit_avro_type_and_every_accepted_content_type_work() {
    let server = Server::in_memory().await;
    let path = "/subjects/orders-value/versions";
    let body = json!({"schema": RECORD_V1, "schemaType": "AVRO", "references": []}).to_string();
    for content_type in [
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        "application/json; charset=utf-8",
    ] {
        let response = server.post_as(path, content_type, body.clone()).await;
        assert_eq!(ok_json(response).await, json!({"id": 1}), "{content_type}");
    }
}

#[tokio::test]
async fn upstream_schemas_register_as_versions_of_their_topic() {
    let server = Server::in_memory().await;
    let subject = "cx.chatbot.events-value";
    let v1 = upstream("chatbot.v1.avsc");
    let v2 = upstream("chatbot.v2.avsc");
    let id1 = server.register(subject, &v1).await;
    let id2 = server.register(subject, &v2).await;
    assert_ne!(id1, id2);
    assert_eq!(
        ok_json(server.get(&format!("/subjects/{subject}/versions")).await).await,
        json!([1, 2])
    );
    let latest = ok_json(
        server
            .get(&format!("/subjects/{subject}/versions/latest"))
            .await,
    )
    .await;
    assert_eq!(latest["id"], id2);
    assert_eq!(latest["schema"], v2);
    assert_eq!(
        ok_json(server.get(&format!("/schemas/ids/{id1}")).await).await["schema"],
        v1
    );

    // Every upstream schema is valid Avro to the registry.
    let mut files: Vec<_> = std::fs::read_dir(upstream_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "avsc"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let stem = file.file_stem().unwrap().to_str().unwrap();
        let id = server
            .register(&format!("upstream.{stem}-value"), &text)
            .await;
        let stored = ok_json(server.get(&format!("/schemas/ids/{id}")).await).await;
        assert_eq!(stored["schema"], text, "{}", file.display());
    }
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_versions() {
    let server = Server::in_memory().await;
    let mut tasks = Vec::new();
    for field in 0..16 {
        let url = server.url("/subjects/many-value/versions");
        tasks.push(tokio::spawn(async move {
            let schema = format!(
                r#"{{"type":"record","name":"R","fields":[{{"name":"f{field}","type":"int"}}]}}"#
            );
            let response = Client::new()
                .post(url)
                .header(CONTENT_TYPE, SR_JSON)
                .body(json!({ "schema": schema }).to_string())
                .send()
                .await
                .unwrap();
            ok_json(response).await["id"].as_u64().unwrap()
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=16).collect::<Vec<_>>());
    assert_eq!(
        ok_json(server.get("/subjects/many-value/versions").await).await,
        json!((1..=16).collect::<Vec<_>>())
    );
}

#[tokio::test]
async fn a_data_file_keeps_ids_and_versions_across_a_restart() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("state").join("registry.json");

    let server = Server::start(Registry::open(&data).unwrap()).await;
    assert_eq!(server.register("a-value", RECORD_V1).await, 1);
    assert_eq!(server.register("a-value", RECORD_V2).await, 2);
    assert_eq!(server.register("b-value", RECORD_V2).await, 2);
    let before = server.snapshot().await;
    drop(server);

    let server = Server::start(Registry::open(&data).unwrap()).await;
    assert_eq!(server.snapshot().await, before);
    assert_eq!(
        ok_json(server.get("/schemas/ids/1").await).await["schema"],
        RECORD_V1
    );
    // Known schemas keep their ids; a new one takes the next id.
    assert_eq!(server.register("b-value", RECORD_V2).await, 2);
    assert_eq!(server.register("b-value", RECORD_V1).await, 1);
    assert_eq!(server.register("c-value", r#""string""#).await, 3);
    assert_eq!(
        ok_json(server.get("/subjects/b-value/versions").await).await,
        json!([1, 2])
    );
    assert!(!directory.path().join("state/registry.json.tmp").exists());
}

#[test]
fn a_corrupt_data_file_is_refused_with_its_path() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("registry.json");
    std::fs::write(&data, "{\"format\": 1, \"schemas\": [").unwrap();
    let error = Registry::open(&data).unwrap_err();
    assert!(error.to_string().contains("registry.json"), "{error}");
}

/// The built binary, started with `args` plus `--listen 127.0.0.1:0`.
struct Binary {
    child: tokio::process::Child,
    base: String,
}

impl Binary {
    async fn start(args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_touchline-registry"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("TOUCHLINE_REGISTRY_LISTEN")
            .env_remove("TOUCHLINE_REGISTRY_DATA")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("listening") {
                    let (_, rest) = line.split_once("addr=").unwrap();
                    return rest.split_whitespace().next().unwrap().to_owned();
                }
            }
            panic!("the registry exited before listening");
        })
        .await
        .unwrap();
        // Keep draining the log so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    async fn register(&self, subject: &str, schema: &str) -> u64 {
        let response = Client::new()
            .post(format!("{}/subjects/{subject}/versions", self.base))
            .header(CONTENT_TYPE, SR_JSON)
            .body(json!({ "schema": schema }).to_string())
            .send()
            .await
            .unwrap();
        ok_json(response).await["id"].as_u64().unwrap()
    }

    /// Sends SIGTERM and expects a clean exit.
    async fn terminate(mut self) {
        let pid = self.child.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(exit.success(), "{exit}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_binary_persists_with_data_and_stops_on_sigterm() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("registry.json");
    let data = data.to_str().unwrap();

    let registry = Binary::start(&["--data", data]).await;
    assert_eq!(registry.register("a-value", RECORD_V1).await, 1);
    assert_eq!(registry.register("a-value", RECORD_V2).await, 2);
    registry.terminate().await;

    let registry = Binary::start(&["--data", data]).await;
    assert_eq!(registry.register("a-value", RECORD_V2).await, 2);
    assert_eq!(registry.register("b-value", RECORD_V1).await, 1);
    let versions = Client::new()
        .get(format!("{}/subjects/a-value/versions", registry.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ok_json(versions).await, json!([1, 2]));
    registry.terminate().await;
}

#[test]
fn help_says_compatibility_is_not_checked() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_touchline-registry"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("NOT check compatibility"), "{help}");
    assert!(help.contains("TOUCHLINE_REGISTRY_LISTEN"), "{help}");
    assert!(help.contains("TOUCHLINE_REGISTRY_DATA"), "{help}");
}

#[test]
fn a_corrupt_data_file_stops_the_binary_with_a_clear_error() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("registry.json");
    std::fs::write(&data, "not json").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_touchline-registry"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env_remove("TOUCHLINE_REGISTRY_LISTEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("registry.json"), "{stderr}");
}
