//! Operations: what `deploy/` and `docs/operations.md` promise, checked
//! against the binary and against Prometheus's own tool.
//!
//! - The alert rules pass `promtool check rules` and their unit tests
//!   (`promtool test rules`), and `prometheus.yml` loads them.
//! - The Kubernetes manifests parse; the Deployment's probes point at the
//!   metrics port of the configuration in the ConfigMap, which passes
//!   `touchline config check`; passwords come from the Secret.
//! - Every query of the pipeline-health dashboard passes `promtool check
//!   rules`, and every metric the alerts and the dashboard name exists.
//! - `docs/operations.md` quotes `touchline config show-defaults` and names
//!   every metric and alert.
//! - A live `touchline run` serves `/metrics` (checked by `promtool check
//!   metrics`, labels bounded), `/healthz` and `/readyz` (503 naming the
//!   dependency that is down), and stops cleanly on SIGTERM.
//!
//! promtool comes from the Debian package `prometheus`, which `scripts/test`
//! installs; without it these tests fail rather than skip. The structural
//! checks collect every problem and fail once; the `fixture_*` tests give
//! them broken input, so a check that can never fail does not go unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use touchline_loadgen::{generate, Scenario};
use touchline_model::Channel;
use touchline_tests::{now_ms, repo_root, touchline_binary, Running, TestEnv};

const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERT_TESTS: &str = "deploy/prometheus/alerts.test.yml";
const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const KUBERNETES: &str = "deploy/kubernetes";
const DASHBOARD: &str = "deploy/grafana/dashboards/pipeline-health.json";
const OPERATIONS_DOC: &str = "docs/operations.md";
/// Where every metric is named (`"touchline_..."` string literals).
const METRICS_SOURCE: &str = "crates/touchline/src/metrics.rs";

// ---------------------------------------------------------------------------
// Prometheus alerts.

#[test]
fn alert_rules_pass_promtool() {
    let output = promtool(&["check", "rules", ALERTS], None);
    assert_success("promtool check rules", &output);
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let output = promtool(&["test", "rules", ALERT_TESTS], None);
    assert_success("promtool test rules", &output);
}

#[test]
fn prometheus_loads_the_alert_rules() {
    let root = repo_root();
    let output = promtool(&["check", "config", PROMETHEUS_CONFIG], None);
    assert_success("promtool check config", &output);

    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        rule_files: Vec<String>,
    }
    let config: Config = read_yaml(&root.join(PROMETHEUS_CONFIG));
    let alerts = Path::new(ALERTS)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    assert!(
        config.rule_files.iter().any(|f| f == alerts),
        "{PROMETHEUS_CONFIG} does not list {alerts} in rule_files: {:?}",
        config.rule_files
    );
    // The compose stack mounts the config alone into /etc/prometheus; each
    // rule file must be mounted beside it.
    let compose = fs::read_to_string(root.join("docker-compose.yml")).expect("compose file");
    for file in &config.rule_files {
        let mount = format!("./deploy/prometheus/{file}:/etc/prometheus/{file}");
        assert!(
            compose.contains(&mount),
            "docker-compose.yml does not mount {file} beside prometheus.yml (`{mount}`)"
        );
    }
}

#[test]
fn alerts_are_labelled_documented_and_name_real_metrics() {
    let root = repo_root();
    let problems = check_alerts(
        &read_yaml(&root.join(ALERTS)),
        &read(&root.join(OPERATIONS_DOC)),
        &exported_metrics(),
    );
    assert_no_problems("alerts", problems);
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn check_alerts(rules: &RuleFile, doc: &str, metrics: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for rule in rules.groups.iter().flat_map(|g| &g.rules) {
        let Some(name) = &rule.alert else {
            continue;
        };
        if !names.insert(name.clone()) {
            problems.push(format!("alert {name} is defined twice"));
        }
        match rule.labels.get("severity").map(String::as_str) {
            Some("critical" | "warning") => {}
            other => problems.push(format!(
                "alert {name}: severity is {other:?}, not critical or warning"
            )),
        }
        for annotation in ["summary", "description"] {
            if rule
                .annotations
                .get(annotation)
                .is_none_or(|a| a.is_empty())
            {
                problems.push(format!("alert {name} has no {annotation}"));
            }
        }
        if rule.for_.is_none() {
            problems.push(format!(
                "alert {name} has no `for`: it would fire on one bad sample"
            ));
        }
        if !doc.contains(name.as_str()) {
            problems.push(format!("alert {name} is not explained in {OPERATIONS_DOC}"));
        }
        for metric in unknown_metrics(&rule.expr, metrics) {
            problems.push(format!(
                "alert {name} uses {metric}, which Touchline does not export"
            ));
        }
    }
    if names.is_empty() {
        problems.push("no alerts".into());
    }
    problems
}

// ---------------------------------------------------------------------------
// Kubernetes.

#[test]
fn kubernetes_manifests_parse_and_are_complete() {
    let manifests = kubernetes_manifests();
    let kinds: BTreeSet<&str> = manifests.iter().map(|m| m.kind.as_str()).collect();
    for kind in [
        "Kustomization",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "Job",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} under {KUBERNETES}: {kinds:?}"
        );
    }
    let mut problems = Vec::new();
    for manifest in &manifests {
        if manifest.kind != "Kustomization"
            && str_at(&manifest.value, &["metadata", "name"]).is_none()
        {
            problems.push(format!(
                "{}: a {} without a name",
                manifest.file, manifest.kind
            ));
        }
    }
    let kustomization = manifests
        .iter()
        .find(|m| m.kind == "Kustomization")
        .expect("a kustomization");
    for resource in seq_at(&kustomization.value, &["resources"]) {
        let file = resource.as_str().unwrap_or_default();
        if !repo_root().join(KUBERNETES).join(file).is_file() {
            problems.push(format!(
                "kustomization.yaml lists {file}, which does not exist"
            ));
        }
    }
    assert_no_problems("Kubernetes manifests", problems);
}

#[test]
fn deployment_probes_config_and_secrets_agree() {
    let manifests = kubernetes_manifests();
    let config = configmap_toml(&manifests);
    let metrics_port = shown_config(&config)
        .lines()
        .find_map(|line| line.strip_prefix("metrics_addr = "))
        .and_then(|addr| addr.trim_matches('"').rsplit_once(':'))
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .expect("metrics_addr in the ConfigMap's configuration");
    assert_no_problems(
        "Kubernetes manifests",
        check_kubernetes(&manifests, &config, metrics_port),
    );
}

#[test]
fn the_configmap_passes_touchline_config_check() {
    let config = configmap_toml(&kubernetes_manifests());
    let dir = TempDir::new("configmap");
    let file = dir.write("touchline.toml", &config);
    let output = touchline(&["config", "check"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_success("touchline config check (ConfigMap)", &output);
    assert!(String::from_utf8_lossy(&output.stdout).contains("valid"));
}

/// One YAML document of `deploy/kubernetes/`.
struct Manifest {
    file: String,
    kind: String,
    value: Yaml,
}

fn kubernetes_manifests() -> Vec<Manifest> {
    let dir = repo_root().join(KUBERNETES);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {KUBERNETES}: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut manifests = Vec::new();
    for path in files {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for document in serde_yaml::Deserializer::from_str(&read(&path)) {
            let value = Yaml::deserialize(document)
                .unwrap_or_else(|e| panic!("{KUBERNETES}/{file} does not parse: {e}"));
            if value.is_null() {
                continue;
            }
            let kind = str_at(&value, &["kind"])
                .unwrap_or_else(|| panic!("{KUBERNETES}/{file}: a document without `kind`"))
                .to_owned();
            assert!(
                str_at(&value, &["apiVersion"]).is_some(),
                "{KUBERNETES}/{file}: {kind} without apiVersion"
            );
            manifests.push(Manifest {
                file: file.clone(),
                kind,
                value,
            });
        }
    }
    manifests
}

/// The `touchline.toml` of the ConfigMap.
fn configmap_toml(manifests: &[Manifest]) -> String {
    manifests
        .iter()
        .filter(|m| m.kind == "ConfigMap")
        .find_map(|m| str_at(&m.value, &["data", "touchline.toml"]))
        .expect("a ConfigMap with data `touchline.toml`")
        .to_owned()
}

/// The configuration `touchline config show` prints for `toml` alone.
fn shown_config(toml: &str) -> String {
    let dir = TempDir::new("shown");
    let file = dir.write("touchline.toml", toml);
    let output = touchline(&["config", "show", "--config"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_success("touchline config show", &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Checks the workloads (Deployment and Job) against the configuration and
/// the Service and PodDisruptionBudget against the Deployment.
fn check_kubernetes(manifests: &[Manifest], config: &str, metrics_port: u16) -> Vec<String> {
    let mut problems = Vec::new();
    let config_maps: BTreeMap<&str, &Yaml> = manifests
        .iter()
        .filter(|m| m.kind == "ConfigMap")
        .filter_map(|m| Some((str_at(&m.value, &["metadata", "name"])?, &m.value)))
        .collect();
    let secret_files: Vec<&str> = config
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once("_file = "))
        .map(|(_, path)| path.trim().trim_matches('"'))
        .collect();

    let deployments: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| m.kind == "Deployment")
        .collect();
    if deployments.len() != 1 {
        problems.push(format!(
            "expected one Deployment, found {}",
            deployments.len()
        ));
    }
    let mut pod_labels = BTreeMap::new();
    for deployment in &deployments {
        let spec = &deployment.value["spec"];
        let replicas = spec["replicas"].as_u64().unwrap_or(1);
        if replicas < 2 {
            problems.push(format!(
                "Deployment has {replicas} replica(s): run 2 or more in the group"
            ));
        }
        pod_labels = string_map(&spec["template"]["metadata"]["labels"]);
        let selector = string_map(&spec["selector"]["matchLabels"]);
        if selector.is_empty() || !is_subset(&selector, &pod_labels) {
            problems.push("Deployment's selector does not match its pod labels".into());
        }
        problems.extend(check_workload(
            "Deployment",
            &spec["template"]["spec"],
            "run",
            metrics_port,
            &config_maps,
            &secret_files,
        ));
    }
    for job in manifests.iter().filter(|m| m.kind == "Job") {
        problems.extend(check_workload(
            "Job",
            &job.value["spec"]["template"]["spec"],
            "migrate",
            metrics_port,
            &config_maps,
            &secret_files,
        ));
    }

    let services: Vec<&Manifest> = manifests.iter().filter(|m| m.kind == "Service").collect();
    if services.is_empty() {
        problems.push("no Service for the metrics port".into());
    }
    for service in services {
        let spec = &service.value["spec"];
        let selector = string_map(&spec["selector"]);
        if selector.is_empty() || !is_subset(&selector, &pod_labels) {
            problems.push("Service's selector does not select the Deployment's pods".into());
        }
        let ports = seq_at(spec, &["ports"]);
        if !ports
            .iter()
            .any(|p| names_port(&p["targetPort"], metrics_port))
        {
            problems.push(format!(
                "Service does not target the metrics port ({metrics_port} or `metrics`)"
            ));
        }
    }

    for pdb in manifests.iter().filter(|m| m.kind == "PodDisruptionBudget") {
        let spec = &pdb.value["spec"];
        let selector = string_map(&spec["selector"]["matchLabels"]);
        if selector.is_empty() || !is_subset(&selector, &pod_labels) {
            problems.push("PodDisruptionBudget does not select the Deployment's pods".into());
        }
        let replicas = deployments
            .first()
            .and_then(|d| d.value["spec"]["replicas"].as_u64())
            .unwrap_or(1);
        match (
            spec["maxUnavailable"].as_u64(),
            spec["minAvailable"].as_u64(),
        ) {
            (Some(max), None) if max >= 1 => {}
            (None, Some(min)) if min < replicas => {}
            _ => problems.push(
                "PodDisruptionBudget must allow one eviction: maxUnavailable >= 1, or \
                 minAvailable below the replicas"
                    .into(),
            ),
        }
    }
    if !manifests.iter().any(|m| m.kind == "PodDisruptionBudget") {
        problems.push("no PodDisruptionBudget".into());
    }
    problems
}

/// Checks one pod spec: the command, the configuration file mounted from the
/// ConfigMap, passwords from a Secret, resources, and (for `run`) probes on
/// the metrics port.
fn check_workload(
    what: &str,
    pod: &Yaml,
    command: &str,
    metrics_port: u16,
    config_maps: &BTreeMap<&str, &Yaml>,
    secret_files: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let containers = seq_at(pod, &["containers"]);
    let Some(container) = containers.first() else {
        return vec![format!("{what} has no container")];
    };
    let args: Vec<&str> = seq_at(container, &["args"])
        .into_iter()
        .filter_map(Yaml::as_str)
        .collect();
    if args.first() != Some(&command) {
        problems.push(format!("{what} runs {args:?}, not `touchline {command}`"));
    }

    let volumes = seq_at(pod, &["volumes"]);
    let volume = |name: &str| {
        volumes
            .iter()
            .copied()
            .find(|v| v["name"].as_str() == Some(name))
    };
    let mounts: Vec<(&str, &Yaml)> = seq_at(container, &["volumeMounts"])
        .iter()
        .filter_map(|m| Some((m["mountPath"].as_str()?, volume(m["name"].as_str()?)?)))
        .collect();

    let env = seq_at(container, &["env"]);
    let config_path = env
        .iter()
        .find(|e| e["name"].as_str() == Some("TOUCHLINE_CONFIG"))
        .and_then(|e| e["value"].as_str());
    match config_path {
        None => problems.push(format!("{what} does not set TOUCHLINE_CONFIG")),
        Some(path) => {
            let found = mounts.iter().find_map(|(mount, volume)| {
                let key = path.strip_prefix(mount)?.trim_start_matches('/');
                let map = volume["configMap"]["name"].as_str()?;
                Some((map, key))
            });
            match found {
                None => problems.push(format!(
                    "{what}: TOUCHLINE_CONFIG={path} is not in a mounted ConfigMap"
                )),
                Some((map, key)) => {
                    let has_key = config_maps
                        .get(map)
                        .is_some_and(|m| !m["data"][key].is_null());
                    if !has_key {
                        problems.push(format!(
                            "{what}: TOUCHLINE_CONFIG={path}, but ConfigMap {map} has no key {key}"
                        ));
                    }
                }
            }
        }
    }
    for variable in &env {
        let name = variable["name"].as_str().unwrap_or_default();
        if name.contains("PASSWORD") && !variable["value"].is_null() {
            problems.push(format!(
                "{what} sets {name} inline: take it from a Secret (valueFrom.secretKeyRef or a \
                 *_password_file)"
            ));
        }
    }
    for file in secret_files {
        let from_secret = mounts.iter().any(|(mount, volume)| {
            file.starts_with(&format!("{mount}/")) && !volume["secret"].is_null()
        });
        if !from_secret {
            problems.push(format!(
                "{what}: the configuration reads {file}, which no Secret volume provides"
            ));
        }
    }

    let resources = &container["resources"];
    for (kind, resource) in [
        ("requests", "cpu"),
        ("requests", "memory"),
        ("limits", "memory"),
    ] {
        if resources[kind][resource].is_null() {
            problems.push(format!("{what} has no resources.{kind}.{resource}"));
        }
    }

    if command == "run" {
        let ports = seq_at(container, &["ports"]);
        let named = ports.iter().find(|p| p["name"].as_str() == Some("metrics"));
        match named.and_then(|p| p["containerPort"].as_u64()) {
            Some(port) if port == u64::from(metrics_port) => {}
            other => problems.push(format!(
                "{what}: container port `metrics` is {other:?}, but metrics_addr listens on \
                 {metrics_port}"
            )),
        }
        for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
            let get = &container[probe]["httpGet"];
            if get["path"].as_str() != Some(path) {
                problems.push(format!("{what}: {probe} does not GET {path}"));
            }
            if !names_port(&get["port"], metrics_port) {
                problems.push(format!(
                    "{what}: {probe} port {:?} is not the metrics port ({metrics_port})",
                    get["port"]
                ));
            }
        }
        if let Some(get) = container.get("startupProbe").map(|p| &p["httpGet"]) {
            if !names_port(&get["port"], metrics_port) {
                problems.push(format!("{what}: startupProbe is not on the metrics port"));
            }
        }
    }
    problems
}

/// A port given as the name `metrics` or as the number.
fn names_port(port: &Yaml, metrics_port: u16) -> bool {
    port.as_str() == Some("metrics") || port.as_u64() == Some(u64::from(metrics_port))
}

// ---------------------------------------------------------------------------
// The pipeline-health dashboard.

#[test]
fn pipeline_health_dashboard_queries_pass_promtool() {
    let dashboard: Json =
        serde_json::from_str(&read(&repo_root().join(DASHBOARD))).expect("dashboard JSON");
    let (queries, problems) = dashboard_queries(&dashboard, &exported_metrics());
    assert_no_problems("pipeline-health dashboard", problems);

    // What the dashboard must show, by the metric behind it.
    let all = queries
        .iter()
        .map(|(_, q)| q.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for metric in [
        "touchline_messages_consumed_total",
        "touchline_events_written_total",
        "touchline_dead_letters_total",
        "touchline_consumer_lag_messages",
        "touchline_insert_seconds_bucket",
        "touchline_batch_messages",
        "touchline_end_to_end_latency_seconds_bucket",
        "touchline_identity_graph_identifiers",
        "touchline_identity_changes_total",
        "touchline_retries_total",
    ] {
        assert!(
            all.contains(metric),
            "no panel of {DASHBOARD} shows {metric}"
        );
    }

    let problems = promql_problems(&queries);
    assert_no_problems("pipeline-health dashboard PromQL", problems);
}

/// Every `(panel title, PromQL)` of a Grafana dashboard, with problems of
/// form: uid, title, datasources, metric names.
fn dashboard_queries(
    dashboard: &Json,
    metrics: &BTreeSet<String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let mut problems = Vec::new();
    if dashboard["uid"].as_str().is_none_or(str::is_empty) {
        problems.push("no fixed uid".into());
    }
    if dashboard["title"].as_str().is_none_or(str::is_empty) {
        problems.push("no title".into());
    }
    if !dashboard["id"].is_null() {
        problems.push("has an `id`; Grafana assigns those".into());
    }
    let mut panels: Vec<&Json> = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    let mut queries = Vec::new();
    for panel in panels.into_iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
        let uid = |value: &Json| value["uid"].as_str().map(str::to_owned);
        if uid(&panel["datasource"]).as_deref() != Some("prometheus") {
            problems.push(format!(
                "panel `{title}`: datasource is not uid `prometheus`"
            ));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel `{title}` has no query"));
        }
        for target in targets {
            if let Some(ds) = uid(&target["datasource"]) {
                if ds != "prometheus" {
                    problems.push(format!("panel `{title}`: a query on datasource {ds}"));
                }
            }
            let Some(expr) = target["expr"].as_str() else {
                problems.push(format!("panel `{title}`: a query without expr"));
                continue;
            };
            for metric in unknown_metrics(expr, metrics) {
                problems.push(format!(
                    "panel `{title}` uses {metric}, which Touchline does not export"
                ));
            }
            queries.push((title.clone(), expr.to_owned()));
        }
    }
    (queries, problems)
}

/// Puts each query, with Grafana's variables replaced, into a recording
/// rule of a temporary rules file and asks promtool; one problem per query
/// it rejects.
fn promql_problems(queries: &[(String, String)]) -> Vec<String> {
    let dir = TempDir::new("promql");
    let mut problems = Vec::new();
    for (index, (title, expr)) in queries.iter().enumerate() {
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$__range", "1h");
        let rules = serde_json::json!({
            "groups": [{
                "name": "dashboard",
                "rules": [{ "record": format!("dashboard:query_{index}"), "expr": expr }]
            }]
        });
        // JSON is YAML: the expression needs no quoting.
        let file = dir.write(&format!("query_{index}.yml"), &rules.to_string());
        let output = promtool_in(&["check", "rules"], None, &[&file]);
        if !output.status.success() {
            problems.push(format!(
                "panel `{title}`: `{expr}` is rejected: {}{}",
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    problems
}

// ---------------------------------------------------------------------------
// Documentation and the `touchline config` commands.

#[test]
fn operations_doc_quotes_the_defaults_and_names_every_metric() {
    let doc = read(&repo_root().join(OPERATIONS_DOC));
    let output = touchline(&["config", "show-defaults"])
        .output()
        .expect("runs");
    assert_success("touchline config show-defaults", &output);
    let defaults = String::from_utf8_lossy(&output.stdout);
    assert!(
        doc.contains(&format!("```toml\n{defaults}```")),
        "{OPERATIONS_DOC} must quote `touchline config show-defaults` verbatim in a ```toml \
         block; update it from the command's output"
    );
    let mut problems = Vec::new();
    for metric in exported_metrics() {
        if !doc.contains(&format!("`{metric}`")) {
            problems.push(format!("{metric} is not listed in {OPERATIONS_DOC}"));
        }
    }
    for endpoint in ["/metrics", "/healthz", "/readyz"] {
        if !doc.contains(endpoint) {
            problems.push(format!("{endpoint} is not described in {OPERATIONS_DOC}"));
        }
    }
    assert_no_problems(OPERATIONS_DOC, problems);
}

#[test]
fn settings_take_the_flag_then_the_variable_then_the_file() {
    let dir = TempDir::new("precedence");
    let file = dir.write(
        "touchline.toml",
        "[kafka]\nbrokers = \"file:9092\"\ngroup_id = \"file-group\"\ntopic_prefix = \"file.\"\n\
         [clickhouse]\ndatabase = \"file_db\"\npassword_file = \"/run/secrets/clickhouse\"\n",
    );
    let output = touchline(&["config", "show", "--brokers", "flag:9092"])
        .env("TOUCHLINE_CONFIG", &file)
        .env("TOUCHLINE_KAFKA_BROKERS", "env:9092")
        .env("TOUCHLINE_GROUP_ID", "env-group")
        .env("TOUCHLINE_CLICKHOUSE_PASSWORD", "from-the-environment")
        .output()
        .expect("runs");
    assert_success("touchline config show", &output);
    let shown = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "brokers = \"flag:9092\"",  // flag beats variable and file
        "group_id = \"env-group\"", // variable beats file
        "topic_prefix = \"file.\"", // file beats default
        "database = \"file_db\"",
        "batch_linger_ms = 500",     // default
        "password = \"<redacted>\"", // the variable replaced the file's password_file
    ] {
        assert!(
            shown.contains(expected),
            "expected `{expected}` in:\n{shown}"
        );
    }
    assert!(
        !shown.contains("from-the-environment"),
        "a password was shown:\n{shown}"
    );
    assert!(!shown.contains("password_file"), "{shown}");
}

#[test]
fn config_check_names_what_is_wrong_and_exits_1() {
    let dir = TempDir::new("check");
    let cases = [
        ("unknown.toml", "[kafka]\nbrokerz = \"x:9092\"\n", "brokerz"),
        (
            "type.toml",
            "[pipeline]\nbatch_max_messages = \"many\"\n",
            "batch_max_messages",
        ),
        (
            "conflict.toml",
            "[kafka]\nsecurity_protocol = \"sasl_ssl\"\n",
            "kafka.sasl.mechanism",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.write(name, text);
        let output = touchline(&["config", "check"])
            .arg(&file)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{name}: expected `{expected}` in {stderr}"
        );
        assert!(
            stderr.contains(name),
            "{name}: the error should name the file: {stderr}"
        );
    }
    let output = touchline(&["config", "check"])
        .arg(dir.path().join("absent.toml"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.toml"));
}

// ---------------------------------------------------------------------------
// A live `touchline run`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_serves_metrics_health_and_readiness() {
    let env = TestEnv::new("ops_metrics");
    let partitions = 2;
    env.create_topics(partitions).await;
    let mut scenario = Scenario::new(11, 40, Scenario::start_ending_at(now_ms(), 3), 3);
    scenario.bad_rate = 0.05;
    let generated = generate(&scenario).expect("a valid scenario");
    let events = generated.truth.counts.events;
    env.produce(&generated).await;
    env.run_touchline("migrate", &[]);

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut run = Running(
        env.touchline("run")
            .env("TOUCHLINE_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .spawn()
            .expect("touchline run starts"),
    );

    // Ready, then caught up: every partition's lag measured and 0.
    let deadline = Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        run.assert_running();
        assert!(
            Instant::now() < deadline,
            "not caught up in time; last /readyz: {:?}",
            get(&format!("{base}/readyz")).await
        );
        if let Some((200, text)) = get(&format!("{base}/metrics")).await {
            let samples = samples(&text);
            let lags: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.name == "touchline_consumer_lag_messages")
                .collect();
            let written: f64 = samples
                .iter()
                .filter(|s| s.name == "touchline_events_written_total")
                .map(|s| s.value)
                .sum();
            let expected_lags = 4 * usize::try_from(partitions).unwrap_or_default();
            #[allow(clippy::cast_precision_loss)]
            let all_written = written >= events as f64;
            if lags.len() == expected_lags && lags.iter().all(|s| s.value == 0.0) && all_written {
                break text;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // promtool reads the exposition as Prometheus would.
    let output = promtool(&["check", "metrics"], Some(&metrics));
    assert_success("promtool check metrics", &output);
    assert_no_problems("metric labels", label_problems(&samples(&metrics), &env));
    // Every metric, except those only an anomaly creates a series of.
    for name in exported_metrics()
        .into_iter()
        .filter(|name| name != "touchline_scores_dropped_total")
    {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} is not exported"
        );
    }

    let (status, health) = get(&format!("{base}/healthz"))
        .await
        .expect("/healthz answers");
    assert_eq!((status, health.trim()), (200, "ok"));
    let (status, body) = get(&format!("{base}/readyz"))
        .await
        .expect("/readyz answers");
    let ready: Json = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ready["ready"], true, "{body}");
    for dependency in ["kafka", "schema_registry", "clickhouse"] {
        assert_eq!(ready["checks"][dependency], "ok", "{body}");
    }

    // An instance whose registry is unreachable is alive but not ready, and
    // says why.
    let unready_port = free_port();
    let mut unready = Running(
        env.touchline("run")
            .env(
                "TOUCHLINE_METRICS_ADDR",
                format!("127.0.0.1:{unready_port}"),
            )
            .env(
                "TOUCHLINE_SCHEMA_REGISTRY_URL",
                format!("http://127.0.0.1:{}", free_port()),
            )
            .env("TOUCHLINE_GROUP_ID", format!("{}-unready", env.group))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("touchline run starts"),
    );
    let unready_base = format!("http://127.0.0.1:{unready_port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        unready.assert_running();
        assert!(
            Instant::now() < deadline,
            "/readyz never reported every check"
        );
        if let Some((status, body)) = get(&format!("{unready_base}/readyz")).await {
            if !body.contains("not checked yet") {
                assert_eq!(status, 503, "{body}");
                break body;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let report: Json = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(
        report["not_ready"],
        serde_json::json!(["schema_registry"]),
        "{body}"
    );
    assert_eq!(
        get(&format!("{unready_base}/healthz"))
            .await
            .map(|(s, _)| s),
        Some(200)
    );
    stop_gracefully(&mut unready, unready_port);

    // SIGTERM: the pipeline commits and exits 0, and the metrics port closes.
    stop_gracefully(&mut run, port);
    env.drop_database().await;
}

/// SIGTERM: an exit 0 within 30 s, and `port` closed.
fn stop_gracefully(run: &mut Running, port: u16) {
    run.stop(Duration::from_secs(30));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the metrics port {port} is still open after exit"
    );
}

/// One sample of the text exposition format.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (label values without `"`,
/// `,` or `}`, as Touchline's are).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some(Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Labels must be bounded: known names, and values from small known sets.
fn label_problems(samples: &[Sample], env: &TestEnv) -> Vec<String> {
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
    let mut problems = Vec::new();
    for sample in samples {
        for (key, value) in &sample.labels {
            let bounded = match key.as_str() {
                "channel" => channels.contains(&value.as_str()),
                "topic" => value.starts_with(&env.prefix) && value.len() < 100,
                "partition" => value.parse::<u32>().is_ok_and(|p| p < 64),
                "reason" | "stage" | "table" | "score" | "dependency" | "version" => {
                    value.len() <= 32
                        && value
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || "_.0123456789".contains(c))
                }
                "le" => true,
                _ => false,
            };
            if !bounded {
                problems.push(format!(
                    "{}: label {key}=\"{value}\" is not bounded",
                    sample.name
                ));
            }
        }
    }
    problems
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------
// Fixtures: each check given broken input.

#[test]
fn fixture_broken_promql_is_rejected() {
    let problems = promql_problems(&[
        (
            "good".into(),
            "sum(rate(touchline_batches_total[$__rate_interval]))".into(),
        ),
        ("bad".into(), "sum(rate(touchline_batches_total[5m])".into()),
    ]);
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(problems[0].contains("`bad`"), "{problems:#?}");
}

#[test]
fn fixture_dashboard_problems_are_reported() {
    let metrics: BTreeSet<String> = ["touchline_batches_total".to_owned()].into();
    let dashboard = serde_json::json!({
        "id": 3,
        "title": "t",
        "panels": [
            {"type": "row", "title": "r", "panels": [
                {"type": "timeseries", "title": "nested", "datasource": {"uid": "clickhouse"},
                 "targets": [{"expr": "rate(touchline_batches_total[5m])"}]}
            ]},
            {"type": "timeseries", "title": "typo", "datasource": {"uid": "prometheus"},
             "targets": [{"expr": "rate(touchline_batchez_total[5m])"}]},
            {"type": "stat", "title": "empty", "datasource": {"uid": "prometheus"}}
        ]
    });
    let (queries, problems) = dashboard_queries(&dashboard, &metrics);
    assert_eq!(queries.len(), 2);
    for expected in [
        "no fixed uid",
        "`id`",
        "`nested`: datasource",
        "touchline_batchez_total",
        "`empty` has no query",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem with `{expected}`: {problems:#?}"
        );
    }
}

#[test]
fn fixture_alert_problems_are_reported() {
    let rules: RuleFile = serde_yaml::from_str(
        "groups:\n- name: g\n  rules:\n  \
         - alert: Documented\n    expr: up == 0\n    for: 1m\n    labels: {severity: critical}\n    \
           annotations: {summary: s, description: d}\n  \
         - alert: Sloppy\n    expr: rate(touchline_nope_total[5m]) > 0\n    labels: {severity: page}\n",
    )
    .expect("fixture");
    let metrics = BTreeSet::new();
    let problems = check_alerts(&rules, "Documented", &metrics);
    for expected in [
        "severity",
        "no summary",
        "no description",
        "no `for`",
        "not explained",
        "touchline_nope_total",
    ] {
        assert!(
            problems
                .iter()
                .any(|p| p.contains("Sloppy") && p.contains(expected)),
            "expected a problem with `{expected}`: {problems:#?}"
        );
    }
    assert!(
        !problems.iter().any(|p| p.contains("Documented")),
        "{problems:#?}"
    );
}

#[test]
fn fixture_kubernetes_problems_are_reported() {
    let text = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: touchline-config}
data:
  touchline.toml: "x"
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: touchline}
spec:
  replicas: 1
  selector: {matchLabels: {app: touchline}}
  template:
    metadata: {labels: {app: touchline}}
    spec:
      containers:
        - name: touchline
          args: ["run"]
          env:
            - {name: TOUCHLINE_CONFIG, value: /etc/touchline/config/other.toml}
            - {name: TOUCHLINE_CLICKHOUSE_PASSWORD, value: hunter2}
          ports: [{name: metrics, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /healthz, port: metrics}}
          livenessProbe: {httpGet: {path: /healthz, port: 9999}}
          volumeMounts: [{name: config, mountPath: /etc/touchline/config}]
      volumes: [{name: config, configMap: {name: touchline-config}}]
---
apiVersion: v1
kind: Service
metadata: {name: touchline-metrics}
spec:
  selector: {app: other}
  ports: [{port: 80, targetPort: http}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: touchline}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: touchline}}
"#;
    let manifests: Vec<Manifest> = serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            let value = Yaml::deserialize(document).expect("fixture");
            let kind = value["kind"].as_str().unwrap_or_default().to_owned();
            Manifest {
                file: "fixture".into(),
                kind,
                value,
            }
        })
        .collect();
    let config = "metrics_addr = \"0.0.0.0:9464\"\n[clickhouse]\npassword_file = \"/etc/touchline/secrets/clickhouse-password\"\n";
    let problems = check_kubernetes(&manifests, config, 9464);
    for expected in [
        "1 replica",
        "no key other.toml",
        "TOUCHLINE_CLICKHOUSE_PASSWORD inline",
        "no Secret volume provides",
        "resources.requests.cpu",
        "container port `metrics` is Some(8080)",
        "readinessProbe does not GET /readyz",
        "livenessProbe port",
        "Service's selector",
        "Service does not target",
        "PodDisruptionBudget must allow one eviction",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem with `{expected}`: {problems:#?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Helpers.

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

fn str_at<'a>(value: &'a Yaml, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))?
        .as_str()
}

fn seq_at<'a>(value: &'a Yaml, path: &[&str]) -> Vec<&'a Yaml> {
    path.iter()
        .try_fold(value, |value, key| value.get(*key))
        .and_then(Yaml::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn string_map(value: &Yaml) -> BTreeMap<String, String> {
    value
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
        .collect()
}

fn is_subset(small: &BTreeMap<String, String>, large: &BTreeMap<String, String>) -> bool {
    small.iter().all(|(k, v)| large.get(k) == Some(v))
}

/// The metric names Touchline registers, from the `"touchline_..."` string
/// literals of its metrics module.
fn exported_metrics() -> BTreeSet<String> {
    let source = read(&repo_root().join(METRICS_SOURCE));
    let names: BTreeSet<String> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("touchline_")
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 10, "found only {names:?} in {METRICS_SOURCE}");
    names
}

/// Names `touchline_*` in `expr` that are not exported metrics (histogram
/// series `_bucket`, `_sum` and `_count` count as their histogram).
fn unknown_metrics(expr: &str, metrics: &BTreeSet<String>) -> Vec<String> {
    let mut unknown = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("touchline_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| metrics.contains(*base))
            .unwrap_or(name);
        if !metrics.contains(base) {
            unknown.push(name.to_owned());
        }
        rest = &tail[end..];
    }
    unknown
}

/// `touchline <args>`, with no `TOUCHLINE_*` variable of the test's own
/// environment leaking in.
fn touchline(args: &[&str]) -> Command {
    let mut command = Command::new(touchline_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TOUCHLINE_") {
            command.env_remove(name);
        }
    }
    command.args(args);
    command
}

fn promtool(args: &[&str], stdin: Option<&str>) -> Output {
    promtool_in(args, stdin, &[])
}

/// `promtool <args> <paths>` in the repository, `stdin` on its standard input.
fn promtool_in(args: &[&str], stdin: Option<&str>, extra: &[&Path]) -> Output {
    let mut command = Command::new("promtool");
    command.args(args).args(extra).current_dir(repo_root());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap_or_else(|error| {
        panic!(
            "cannot run promtool ({error}); install the Debian package `prometheus` \
             (scripts/test does)"
        )
    });
    if let Some(text) = stdin {
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(text.as_bytes()).expect("write to promtool");
    }
    child.wait_with_output().expect("promtool runs")
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = std::env::temp_dir().join(format!(
            "touchline-deploy-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path).expect("temporary directory");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, text).expect("write a temporary file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
