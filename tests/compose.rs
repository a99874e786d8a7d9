//! Checks that `docker-compose.yml` and the files under `deploy/` agree with
//! each other and with the repository.
//!
//! The compose file is the production path, but the development machines
//! cannot run containers, so nothing else notices when it names a file that
//! moved, a port nobody listens on, or a setting the binary does not read.
//! Every reference it makes is checked here: images, build contexts, mounted
//! paths, `env_file`s, host ports, `TOUCHLINE_*` variables, `depends_on`,
//! the Prometheus scrape targets, the Grafana provisioning files, and the
//! ClickHouse user each service connects as, with the password its server
//! gives that user.
//!
//! Each check collects every problem it finds and fails once, listing them.
//! The `fixture_*` tests give each check a broken input and expect it to
//! complain, so that a check which can never fail does not go unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use touchline_tests::repo_root;

const COMPOSE_FILE: &str = "docker-compose.yml";
const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const GRAFANA_PROVISIONING: &str = "deploy/grafana/provisioning";
const GRAFANA_DASHBOARDS: &str = "deploy/grafana/dashboards";
/// Where the `touchline` binary declares the variables it reads
/// (`env = "TOUCHLINE_..."` in its clap attributes).
const BINARY_SOURCE: &str = "crates/touchline/src";

/// Host ports that users of the stack, the README and the defaults of the
/// binary rely on.
const REQUIRED_HOST_PORTS: &[(u16, &str)] = &[
    (9092, "Kafka"),
    (8081, "schema registry"),
    (8123, "ClickHouse HTTP"),
    (9464, "touchline metrics"),
    (9090, "Prometheus"),
    (3000, "Grafana"),
];

/// The source topics of the spec; the pipeline does not create them.
const SOURCE_TOPICS: &[&str] = &[
    "cx.chatbot.events",
    "cx.app.events",
    "cx.social.events",
    "cx.callcenter.records",
];

const CLICKHOUSE_PLUGIN: &str = "grafana-clickhouse-datasource";

const USERS_SQL: &str = "deploy/clickhouse/users.sql";
const USERS_XML: &str = "deploy/clickhouse/users.xml";
/// The init script that creates the users of `users.sql` in the compose
/// ClickHouse.
const CREATE_USERS: &str = "deploy/clickhouse/create-users.sh";
/// Where `create-users.sh` reads `users.sql` in the ClickHouse container.
const USERS_SQL_IN_CONTAINER: &str = "/etc/touchline/clickhouse/users.sql";
/// Scripts the ClickHouse image runs when it starts on an empty volume.
const INITDB_DIR: &str = "/docker-entrypoint-initdb.d";

/// A least-privilege ClickHouse user of `deploy/clickhouse/`.
struct ClickHouseUser {
    name: &'static str,
    /// Its password in `users.sql`, which `create-users.sh` replaces.
    placeholder: &'static str,
    /// The variable its password comes from: `from_env` in `users.xml`, and
    /// in the compose ClickHouse the input of `create-users.sh`.
    password_variable: &'static str,
}

const CLICKHOUSE_USERS: &[ClickHouseUser] = &[
    ClickHouseUser {
        name: "touchline_admin",
        placeholder: "CHANGE-ME-admin",
        password_variable: "TOUCHLINE_CH_ADMIN_PASSWORD",
    },
    ClickHouseUser {
        name: "touchline",
        placeholder: "CHANGE-ME-pipeline",
        password_variable: "TOUCHLINE_CH_PIPELINE_PASSWORD",
    },
    ClickHouseUser {
        name: "dashboards",
        placeholder: "CHANGE-ME-dashboards",
        password_variable: "TOUCHLINE_CH_DASHBOARDS_PASSWORD",
    },
];

/// The user each subcommand of the binary connects to ClickHouse as; None
/// for one that never connects, and so gets no ClickHouse credentials.
const SUBCOMMAND_USERS: &[(&str, Option<&str>)] = &[
    ("migrate", Some("touchline_admin")),
    ("forget", Some("touchline_admin")),
    ("run", Some("touchline")),
    ("generate", None),
];

/// The user of Grafana's ClickHouse datasource.
const DASHBOARDS_USER: &str = "dashboards";

// ---------------------------------------------------------------------------
// The checks, run against the repository.

#[test]
fn compose_file_parses() {
    let compose = Compose::load(&repo_root());
    assert!(
        !compose.services.is_empty(),
        "{COMPOSE_FILE} defines no services"
    );
}

#[test]
fn images_are_pinned_or_built_from_the_repository() {
    let compose = Compose::load(&repo_root());
    assert_no_problems("images and builds", check_images(&compose));
}

#[test]
fn bind_mounts_env_files_and_volumes_exist() {
    let compose = Compose::load(&repo_root());
    assert_no_problems("mounts and env files", check_mounts_and_env_files(&compose));
}

#[test]
fn host_ports_are_unique_and_cover_the_stack() {
    let compose = Compose::load(&repo_root());
    assert_no_problems(
        "host ports",
        check_host_ports(&compose, REQUIRED_HOST_PORTS),
    );
}

#[test]
fn touchline_variables_are_read_by_the_binary() {
    let root = repo_root();
    let source = root.join(BINARY_SOURCE);
    assert!(
        source.is_dir(),
        "{BINARY_SOURCE} does not exist: the compose file runs the `touchline` binary and \
         sets its TOUCHLINE_* variables, so this test reads the variable names from its \
         source (crate `crates/touchline`). If the binary moved, update BINARY_SOURCE in \
         tests/compose.rs."
    );
    let known = touchline_env_literals(&source)
        .unwrap_or_else(|error| panic!("cannot read {BINARY_SOURCE}: {error}"));
    assert!(
        !known.is_empty(),
        "found no \"TOUCHLINE_...\" string literal under {BINARY_SOURCE}; the binary is \
         expected to declare each setting as `env = \"TOUCHLINE_X\"`"
    );
    // The clickhouse service sets the password variables of the users it
    // creates; create-users.sh reads them, not the binary.
    let known: BTreeSet<String> = known
        .into_iter()
        .chain(
            CLICKHOUSE_USERS
                .iter()
                .map(|user| user.password_variable.to_owned()),
        )
        .collect();
    let compose = Compose::load(&root);
    assert_no_problems(
        "TOUCHLINE_* variables",
        check_touchline_env(&compose, &known),
    );
}

#[test]
fn depends_on_names_services_that_can_satisfy_it() {
    let compose = Compose::load(&repo_root());
    assert_no_problems("depends_on", check_depends_on(&compose));
}

#[test]
fn kafka_init_creates_the_source_topics() {
    let compose = Compose::load(&repo_root());
    assert_no_problems("kafka-init", check_kafka_topics(&compose));
}

#[test]
fn prometheus_scrapes_services_and_ports_of_the_stack() {
    let root = repo_root();
    let compose = Compose::load(&root);
    assert_no_problems(
        "Prometheus scrape targets",
        check_prometheus(&compose, &root.join(PROMETHEUS_CONFIG)),
    );
}

#[test]
fn grafana_provisioning_parses_and_points_at_the_stack() {
    let root = repo_root();
    let compose = Compose::load(&root);
    assert_no_problems(
        "Grafana provisioning",
        check_grafana(
            &compose,
            &root.join(GRAFANA_PROVISIONING),
            &root.join(GRAFANA_DASHBOARDS),
        ),
    );
}

#[test]
fn clickhouse_user_files_name_the_same_users_and_passwords() {
    let root = repo_root();
    assert_no_problems(
        "ClickHouse user files",
        check_user_files(
            &root.join(USERS_SQL),
            &root.join(USERS_XML),
            &root.join(CREATE_USERS),
        ),
    );
}

#[test]
fn services_connect_to_clickhouse_as_their_users() {
    let root = repo_root();
    let compose = Compose::load(&root);
    assert_no_problems(
        "ClickHouse users",
        check_clickhouse_users(
            &compose,
            &root.join(USERS_SQL),
            &root.join(CREATE_USERS),
            &root.join(GRAFANA_PROVISIONING),
        ),
    );
}

#[test]
fn promtool_accepts_the_prometheus_config() {
    let root = repo_root();
    let output = match Command::new("promtool")
        .args(["check", "config", PROMETHEUS_CONFIG])
        .current_dir(&root)
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            eprintln!(
                "note: promtool is not installed, so {PROMETHEUS_CONFIG} was not checked by \
                 Prometheus itself (Debian package `prometheus` provides it)"
            );
            return;
        }
        Err(error) => panic!("cannot run promtool: {error}"),
    };
    assert!(
        output.status.success(),
        "`promtool check config {PROMETHEUS_CONFIG}` failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

// ---------------------------------------------------------------------------
// The checks, each given a broken fixture: every one of them must be able to
// fail.

#[test]
fn fixture_image_pinning_rules() {
    for pinned in [
        "apache/kafka:3.9.1",
        "docker.io/library/postgres:16.4",
        "localhost:5000/team/app:1.2",
        "grafana/grafana@sha256:0123abcd",
    ] {
        assert_eq!(image_pin_problem(pinned), None, "{pinned} is pinned");
    }
    for floating in [
        "prom/prometheus",
        "prom/prometheus:latest",
        "localhost:5000/team/app",
        "clickhouse/clickhouse-server:head",
        "apache/kafka:${KAFKA_VERSION}",
    ] {
        assert!(
            image_pin_problem(floating).is_some(),
            "{floating} should count as unpinned"
        );
    }

    let fixture = Fixture::new("images");
    let compose = fixture.compose(
        "
        services:
          db: {image: 'postgres:latest'}
          app: {build: {context: ./app, dockerfile: Containerfile}}
          worker: {}
        ",
    );
    let problems = check_images(&compose);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    expect_problem(&problems, "`db`", "latest");
    expect_problem(&problems, "`app`", "./app");
    expect_problem(&problems, "`worker`", "neither");
}

#[test]
fn fixture_missing_paths_are_reported() {
    let fixture = Fixture::new("mounts");
    fixture.write("present.yml", "");
    let compose = fixture.compose(
        "
        services:
          app:
            image: 'app:1'
            env_file: [missing.env]
            volumes:
              - ./present.yml:/etc/app.yml:ro
              - ./absent/dir:/data
              - undeclared:/cache
              - declared:/state
              - /anonymous
              - {type: bind, source: ./gone.yml, target: /etc/gone.yml}
        volumes:
          declared:
        ",
    );
    let problems = check_mounts_and_env_files(&compose);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    expect_problem(&problems, "`app`", "missing.env");
    expect_problem(&problems, "`app`", "./absent/dir");
    expect_problem(&problems, "`app`", "undeclared");
    expect_problem(&problems, "`app`", "./gone.yml");
}

#[test]
fn fixture_port_clashes_and_missing_ports_are_reported() {
    let spec = |text: &str| parse_port_spec(text).map(|port| (port.host, port.container));
    assert_eq!(
        spec("127.0.0.1:8123:8123/tcp"),
        Ok((vec![8123], vec![8123]))
    );
    assert_eq!(
        spec("9464-9466:9464"),
        Ok((vec![9464, 9465, 9466], vec![9464]))
    );
    assert_eq!(spec("[::1]::80"), Ok((vec![], vec![80])));
    assert_eq!(spec("5000"), Ok((vec![], vec![5000])));
    assert!(spec("9466-9464:9464").is_err());
    assert!(spec("${PORT}:80").is_err());

    let fixture = Fixture::new("ports");
    let compose = fixture.compose(
        "
        services:
          a: {image: 'a:1', ports: ['8000:80', '9000-9001:9000']}
          b: {image: 'b:1', ports: [{target: 80, published: 9001}]}
          c: {image: 'c:1', ports: ['8000:8080/udp', '5000']}
        ",
    );
    let problems = check_host_ports(&compose, &[(8000, "web"), (7000, "admin")]);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    expect_problem(&problems, "9001/tcp", "`a` and `b`");
    expect_problem(&problems, "7000", "admin");
}

#[test]
fn fixture_env_scanner_reads_string_literals() {
    let fixture = Fixture::new("env-scanner");
    fixture.write(
        "src/main.rs",
        r#"
        #[arg(long, env = "TOUCHLINE_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        // TOUCHLINE_IN_A_COMMENT is not a string literal
        const PREFIX: &str = "TOUCHLINE_";
        let lower = "TOUCHLINE_lower";
        "#,
    );
    fixture.write(
        "src/config/mod.rs",
        r#"#[arg(env = "TOUCHLINE_GROUP_ID")] group: String,"#,
    );
    fixture.write("src/notes.md", r#""TOUCHLINE_NOT_RUST""#);
    let found = touchline_env_literals(&fixture.path("src")).unwrap();
    let expected: BTreeSet<String> = ["TOUCHLINE_GROUP_ID", "TOUCHLINE_KAFKA_BROKERS"]
        .map(String::from)
        .into();
    assert_eq!(found, expected);
}

#[test]
fn fixture_unknown_touchline_variable_is_reported() {
    let fixture = Fixture::new("env");
    fixture.write(
        "extra.env",
        "
        TOUCHLINE_FROM_FILE=1
        # TOUCHLINE_COMMENTED=1
        ",
    );
    let compose = fixture.compose(
        "
        services:
          run:
            image: 'touchline:1'
            env_file: extra.env
            environment: {TOUCHLINE_GROUP_ID: g, TOUCHLINE_GROUPID: typo, RUST_LOG: info}
          migrate:
            image: 'touchline:1'
            environment: ['TOUCHLINE_GROUP_ID=g', 'TOUCHLINE_KAFKA_BROKER=k:9092']
        ",
    );
    let known: BTreeSet<String> = ["TOUCHLINE_GROUP_ID".to_owned()].into();
    let problems = check_touchline_env(&compose, &known);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    expect_problem(&problems, "`run`", "TOUCHLINE_GROUPID");
    expect_problem(&problems, "`run`", "TOUCHLINE_FROM_FILE");
    expect_problem(&problems, "`migrate`", "TOUCHLINE_KAFKA_BROKER");
}

#[test]
fn fixture_bad_depends_on_is_reported() {
    let fixture = Fixture::new("depends-on");
    let compose = fixture.compose(
        "
        services:
          db: {image: 'db:1'}
          demo: {image: 'demo:1', profiles: [demo]}
          app:
            image: 'app:1'
            depends_on:
              db: {condition: service_healthy}
              cache: {condition: service_started}
              demo: {condition: service_completed_successfully}
          other: {image: 'other:1', depends_on: [db, ghost]}
        ",
    );
    let problems = check_depends_on(&compose);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    expect_problem(&problems, "`app`", "healthcheck");
    expect_problem(&problems, "`app`", "`cache`");
    expect_problem(&problems, "`app`", "profile");
    expect_problem(&problems, "`other`", "`ghost`");
}

#[test]
fn fixture_prometheus_targets_must_exist() {
    let fixture = Fixture::new("prometheus");
    fixture.write(
        "prometheus.yml",
        "
        scrape_configs:
          - job_name: touchline
            static_configs: [{targets: ['touchline:9999', 'nosuch:9090']}]
          - job_name: self
            dns_sd_configs: [{names: [prometheus], type: A}]
          - job_name: files
            file_sd_configs: [{files: [targets.json]}]
        ",
    );
    let compose = fixture.compose(
        "
        services:
          touchline:
            image: 'touchline:1'
            ports: ['9464:9464']
            environment: {TOUCHLINE_METRICS_ADDR: '0.0.0.0:9464'}
          prometheus:
            image: 'prom/prometheus:v3.5.0'
            ports: ['9090:9090']
        ",
    );
    let problems = check_prometheus(&compose, &fixture.path("prometheus.yml"));
    assert_eq!(problems.len(), 6, "{problems:#?}");
    expect_problem(&problems, "touchline:9999", "port 9999");
    expect_problem(&problems, "touchline:9999", "TOUCHLINE_METRICS_ADDR");
    expect_problem(&problems, "nosuch:9090", "no service");
    expect_problem(&problems, "`self`", "no port");
    expect_problem(&problems, "`files`", "file_sd_configs");
    expect_problem(&problems, "prometheus.yml", "not mounted");
}

#[test]
fn fixture_grafana_provisioning_errors_are_reported() {
    let fixture = Fixture::new("grafana");
    fixture.write(
        "provisioning/datasources/clickhouse.yaml",
        "
        datasources:
          - name: ClickHouse
            uid: clickhouse
            type: vertamedia-clickhouse-datasource
            jsonData: {host: ch, port: 9000, protocol: native, defaultDatabase: other}
            secureJsonData: {password: '${UNSET_PASSWORD}'}
        ",
    );
    fixture.write(
        "provisioning/datasources/prometheus.yaml",
        "
        datasources:
          - {name: Prometheus, uid: prometheus, type: prometheus, url: 'http://prom:9091'}
        ",
    );
    fixture.write(
        "provisioning/dashboards/touchline.yaml",
        "
        providers:
          - {name: touchline, type: file, options: {path: /var/lib/grafana/elsewhere}}
        ",
    );
    fixture.write("provisioning/broken.yaml", "key: [unclosed");
    fixture.write("dashboards/bad.json", "{ not json");
    let compose = fixture.compose(
        "
        services:
          grafana:
            image: 'grafana/grafana:12.1.1'
            volumes:
              - ./provisioning:/etc/grafana/provisioning:ro
              - ./dashboards:/etc/grafana/dashboards:ro
        ",
    );
    let problems = check_grafana(
        &compose,
        &fixture.path("provisioning"),
        &fixture.path("dashboards"),
    );
    expect_problem(&problems, "broken.yaml", "YAML");
    expect_problem(&problems, "vertamedia", CLICKHOUSE_PLUGIN);
    expect_problem(&problems, "`ch`", "no service");
    expect_problem(&problems, "defaultDatabase", "`other`");
    expect_problem(&problems, "UNSET_PASSWORD", "`grafana`");
    expect_problem(&problems, "http://prom:9091", "no service");
    expect_problem(&problems, "/var/lib/grafana/elsewhere", "mount");
    expect_problem(&problems, "`grafana`", "GF_INSTALL_PLUGINS");
    expect_problem(&problems, "bad.json", "JSON");
    expect_problem(&problems, "uid `clickhouse`", "no datasource");
    assert_eq!(problems.len(), 10, "{problems:#?}");
}

#[test]
fn fixture_kafka_init_must_create_every_topic() {
    let fixture = Fixture::new("kafka-init");
    let compose = fixture.compose(
        "
        services:
          kafka-init:
            image: 'apache/kafka:3.9.1'
            command: ['kafka-topics.sh --create --topic cx.app.events --partitions 4']
        ",
    );
    let problems = check_kafka_topics(&compose);
    assert_eq!(problems.len(), 3, "{problems:#?}");
    expect_problem(&problems, "`kafka-init`", "cx.chatbot.events");
}

#[test]
fn fixture_clickhouse_user_files_must_agree() {
    let fixture = Fixture::new("clickhouse-user-files");
    fixture.write(
        "users.sql",
        "
        CREATE USER IF NOT EXISTS touchline_admin IDENTIFIED WITH sha256_password BY 'CHANGE-ME-admin';
        CREATE USER IF NOT EXISTS touchline IDENTIFIED WITH sha256_password BY 'CHANGE-ME-pipe';
        CREATE USER IF NOT EXISTS reporting IDENTIFIED WITH sha256_password BY 'CHANGE-ME-reporting';
        ",
    );
    fixture.write(
        "users.xml",
        r#"
        <yandex>
          <profiles><dashboards><readonly>2</readonly></dashboards></profiles>
          <users>
            <touchline_admin><password from_env="TOUCHLINE_CH_ADMIN_PASSWORD"/></touchline_admin>
            <touchline><password from_env="TOUCHLINE_CH_DASHBOARDS_PASSWORD"/></touchline>
          </users>
        </yandex>
        "#,
    );
    fixture.write(
        "create-users.sh",
        "
        users_sql=/etc/touchline/clickhouse/users.sql
        for pair in admin:TOUCHLINE_CH_ADMIN_PASSWORD pipeline:TOUCHLINE_CH_PIPELINE_PASSWORD; do
        ",
    );
    let problems = check_user_files(
        &fixture.path("users.sql"),
        &fixture.path("users.xml"),
        &fixture.path("create-users.sh"),
    );
    expect_problem(&problems, "users.sql", "`reporting`");
    expect_problem(&problems, "users.sql", "`dashboards`");
    expect_problem(&problems, "`touchline`", "CHANGE-ME-pipe");
    expect_problem(
        &problems,
        "users.xml",
        "`touchline` reads TOUCHLINE_CH_DASHBOARDS_PASSWORD",
    );
    expect_problem(&problems, "users.xml", "no user `dashboards`");
    expect_problem(
        &problems,
        "create-users.sh",
        "TOUCHLINE_CH_DASHBOARDS_PASSWORD",
    );
    assert_eq!(problems.len(), 6, "{problems:#?}");
}

#[test]
fn fixture_wrong_clickhouse_user_or_undefined_password_is_reported() {
    let fixture = Fixture::new("clickhouse-users");
    fixture.write("users.sql", "");
    fixture.write("create-users.sh", "");
    fixture.write(
        "provisioning/datasources/clickhouse.yaml",
        "
        datasources:
          - name: ClickHouse
            type: grafana-clickhouse-datasource
            jsonData: {host: clickhouse, port: 9000, username: '${CLICKHOUSE_USER}'}
            secureJsonData: {password: '${TOUCHLINE_CH_DASHBOARDS_PASSWORD}'}
        ",
    );
    let compose = fixture.compose(
        "
        # Settings: CLICKHOUSE_USER (default), TOUCHLINE_CH_DASHBOARDS_PASSWORD (dashboards).
        services:
          clickhouse:
            image: 'clickhouse/clickhouse-server:25.8.29.51'
            environment:
              CLICKHOUSE_DB: other
              TOUCHLINE_CH_PIPELINE_PASSWORD: ${TOUCHLINE_CH_PIPELINE_PASSWORD:-pipeline}
              TOUCHLINE_CH_DASHBOARDS_PASSWORD: ${TOUCHLINE_CH_DASHBOARDS_PASSWORD:-dashboards}
            volumes:
              - ./users.sql:/docker-entrypoint-initdb.d/users.sql:ro
          migrate:
            image: 'touchline:1'
            command: [migrate]
            environment:
              TOUCHLINE_CLICKHOUSE_USER: ${CLICKHOUSE_USER:-default}
              TOUCHLINE_CLICKHOUSE_PASSWORD: ${TOUCHLINE_CH_ADMIN_PASSWORD:-admin}
          run:
            image: 'touchline:1'
            command: [run]
            environment:
              TOUCHLINE_CLICKHOUSE_USER: touchline
              TOUCHLINE_CLICKHOUSE_PASSWORD: ${TOUCHLINE_CH_PIPELINE_PASSWORD:-other}
          generate:
            image: 'touchline:1'
            command: [generate]
            environment: {TOUCHLINE_CLICKHOUSE_USER: touchline}
          replay:
            image: 'touchline:1'
            command: [replay]
          grafana:
            image: 'grafana/grafana:12.1.1'
            environment: {CLICKHOUSE_USER: '${CLICKHOUSE_USER:-default}'}
        ",
    );
    let problems = check_clickhouse_users(
        &compose,
        &fixture.path("users.sql"),
        &fixture.path("create-users.sh"),
        &fixture.path("provisioning"),
    );
    expect_problem(
        &problems,
        "`clickhouse`",
        "does not set TOUCHLINE_CH_ADMIN_PASSWORD",
    );
    expect_problem(
        &problems,
        "TOUCHLINE_CH_PIPELINE_PASSWORD (pipeline)",
        "header",
    );
    expect_problem(&problems, "`clickhouse`", "create-users.sh as a .sh file");
    expect_problem(&problems, "`clickhouse`", USERS_SQL_IN_CONTAINER);
    expect_problem(&problems, "users.sql", "placeholder passwords");
    expect_problem(&problems, "CLICKHOUSE_DB", "`other`");
    expect_problem(
        &problems,
        "`migrate`",
        "as `default`, not `touchline_admin`",
    );
    expect_problem(
        &problems,
        "`run`",
        "${TOUCHLINE_CH_PIPELINE_PASSWORD:-other}",
    );
    expect_problem(&problems, "`generate`", "never connects");
    expect_problem(&problems, "`replay`", "`touchline replay`");
    expect_problem(
        &problems,
        "datasource `ClickHouse`",
        "as `default`, not `dashboards`",
    );
    expect_problem(&problems, "datasource `ClickHouse`", "without a password");
    assert_eq!(problems.len(), 12, "{problems:#?}");
}

// ---------------------------------------------------------------------------
// Checks.

/// Every service runs a pinned image or one built from files that exist.
fn check_images(compose: &Compose) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in &compose.services {
        match service.get("build") {
            Some(build) => {
                let (context, dockerfile) = match build {
                    Value::String(context) => (context.clone(), "Dockerfile".to_owned()),
                    Value::Mapping(build) => (
                        str_field(build, "context").unwrap_or(".").to_owned(),
                        str_field(build, "dockerfile")
                            .unwrap_or("Dockerfile")
                            .to_owned(),
                    ),
                    _ => {
                        problems.push(format!("`{name}`: `build` is neither a path nor a mapping"));
                        continue;
                    }
                };
                let context_dir = compose.root.join(&context);
                if !context_dir.is_dir() {
                    problems.push(format!(
                        "`{name}`: build context {context} is not a directory"
                    ));
                } else if !context_dir.join(&dockerfile).is_file() {
                    problems.push(format!(
                        "`{name}`: dockerfile {dockerfile} does not exist in build context {context}"
                    ));
                }
                // An image name next to `build` only tags the result; it
                // must still not claim to be `latest`.
                if let Some(image) = str_field(service, "image") {
                    if image_tag(image) == Some("latest") {
                        problems.push(format!("`{name}`: built image is tagged `latest`: {image}"));
                    }
                }
            }
            None => match str_field(service, "image") {
                Some(image) => {
                    if let Some(problem) = image_pin_problem(image) {
                        problems.push(format!("`{name}`: image {image} {problem}"));
                    }
                }
                None => problems.push(format!("`{name}` has neither `image` nor `build`")),
            },
        }
    }
    problems
}

/// Why an image reference is not pinned to one version, if it is not.
fn image_pin_problem(image: &str) -> Option<&'static str> {
    if image.contains('$') {
        return Some("is interpolated; write the pinned tag literally so it can be checked");
    }
    if image.contains("@sha256:") {
        return None;
    }
    match image_tag(image) {
        None => Some("has no tag, which means `latest`; pin a version"),
        Some("latest") => Some("is `latest`; pin a version"),
        Some(tag) if !tag.chars().any(|c| c.is_ascii_digit()) => {
            Some("has a tag without a version number; pin a version")
        }
        Some(_) => None,
    }
}

/// The tag of an image reference: after the last `:` of its last path part
/// (so a registry port is not taken for a tag).
fn image_tag(image: &str) -> Option<&str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let last = last.split('@').next().unwrap_or(last);
    last.split_once(':').map(|(_, tag)| tag)
}

/// Bind-mounted paths and `env_file`s exist; named volumes are declared.
fn check_mounts_and_env_files(compose: &Compose) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in &compose.services {
        match mounts(service) {
            Ok(mounts) => {
                for mount in mounts {
                    match mount.kind {
                        MountKind::Bind if !compose.root.join(&mount.source).exists() => {
                            problems.push(format!(
                                "`{name}`: bind-mounted host path {} does not exist (mounted at {})",
                                mount.source, mount.target
                            ));
                        }
                        MountKind::Volume if !compose.volumes.contains(&mount.source) => {
                            problems.push(format!(
                                "`{name}`: volume `{}` is not declared under the top-level `volumes`",
                                mount.source
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Err(error) => problems.push(format!("`{name}`: {error}")),
        }
        match env_files(service) {
            Ok(files) => {
                for (file, required) in files {
                    if required && !compose.root.join(&file).is_file() {
                        problems.push(format!("`{name}`: env_file {file} does not exist"));
                    }
                }
            }
            Err(error) => problems.push(format!("`{name}`: {error}")),
        }
    }
    problems
}

/// No two services publish the same host port, and the stack publishes
/// every port in `required`.
fn check_host_ports(compose: &Compose, required: &[(u16, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut owners: BTreeMap<(u16, String), Vec<&str>> = BTreeMap::new();
    for (name, service) in &compose.services {
        let ports = match ports(service) {
            Ok(ports) => ports,
            Err(error) => {
                problems.push(format!("`{name}`: {error}"));
                continue;
            }
        };
        for port in ports {
            for host in port.host {
                owners
                    .entry((host, port.protocol.clone()))
                    .or_default()
                    .push(name);
            }
        }
    }
    for ((port, protocol), services) in &owners {
        if services.len() > 1 {
            let services: Vec<String> = services.iter().map(|s| format!("`{s}`")).collect();
            problems.push(format!(
                "host port {port}/{protocol} is published by {}",
                services.join(" and ")
            ));
        }
    }
    for (port, what) in required {
        if !owners.keys().any(|(published, _)| published == port) {
            problems.push(format!(
                "no service publishes host port {port} ({what}), which the stack is expected to expose"
            ));
        }
    }
    problems
}

/// Every `TOUCHLINE_*` variable a service sets is one the binary reads.
fn check_touchline_env(compose: &Compose, known: &BTreeSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in &compose.services {
        let mut set: Vec<(String, String)> = Vec::new();
        match environment(service) {
            Ok(env) => set.extend(env.into_keys().map(|key| (key, "environment".to_owned()))),
            Err(error) => problems.push(format!("`{name}`: {error}")),
        }
        for (file, _) in env_files(service).unwrap_or_default() {
            // A missing env_file is reported by the mount check.
            if let Ok(text) = fs::read_to_string(compose.root.join(&file)) {
                set.extend(env_file_keys(&text).map(|key| (key, format!("env_file {file}"))));
            }
        }
        for (variable, origin) in set {
            if variable.starts_with("TOUCHLINE_") && !known.contains(&variable) {
                problems.push(format!(
                    "`{name}` sets {variable} (in its {origin}), which the binary never reads; \
                     known: {}",
                    known.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    problems
}

/// The `TOUCHLINE_*` string literals in the `.rs` files under `dir`.
fn touchline_env_literals(dir: &Path) -> io::Result<BTreeSet<String>> {
    const PREFIX: &str = "TOUCHLINE_";
    let mut found = BTreeSet::new();
    for file in files_under(dir)? {
        if file.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let text = fs::read_to_string(&file)?;
        for (start, _) in text.match_indices(&format!("\"{PREFIX}")) {
            let rest = &text[start + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            if end > PREFIX.len() && rest[end..].starts_with('"') {
                found.insert(rest[..end].to_owned());
            }
        }
    }
    Ok(found)
}

/// `depends_on` names existing services, with a condition they can meet.
fn check_depends_on(compose: &Compose) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in &compose.services {
        let dependencies = match depends_on(service) {
            Ok(dependencies) => dependencies,
            Err(error) => {
                problems.push(format!("`{name}`: {error}"));
                continue;
            }
        };
        for (target, condition) in dependencies {
            let Some(dependency) = compose.services.get(&target) else {
                problems.push(format!(
                    "`{name}` depends on `{target}`, but there is no service `{target}`"
                ));
                continue;
            };
            match condition.as_str() {
                "service_started" | "service_completed_successfully" => {}
                "service_healthy" if has_healthcheck(dependency) => {}
                "service_healthy" => problems.push(format!(
                    "`{name}` waits for `{target}` to be healthy, but `{target}` has no healthcheck"
                )),
                other => problems.push(format!(
                    "`{name}` depends on `{target}` with unknown condition `{other}`"
                )),
            }
            let needed = profiles(dependency);
            if !needed.is_empty() && !profiles(service).iter().any(|p| needed.contains(p)) {
                problems.push(format!(
                    "`{name}` depends on `{target}`, which only runs with profile(s) {needed:?}: \
                     `{name}` cannot start without them"
                ));
            }
        }
    }
    problems
}

/// The one-shot `kafka-init` service creates every source topic.
fn check_kafka_topics(compose: &Compose) -> Vec<String> {
    let Some(service) = compose.services.get("kafka-init") else {
        return vec!["there is no `kafka-init` service to create the source topics".to_owned()];
    };
    let script: String = ["entrypoint", "command"]
        .iter()
        .flat_map(|key| strings(service.get(*key)))
        .collect::<Vec<_>>()
        .join(" ");
    SOURCE_TOPICS
        .iter()
        .filter(|topic| !script.contains(*topic))
        .map(|topic| format!("`kafka-init` does not create topic {topic}"))
        .collect()
}

#[derive(Deserialize)]
struct PrometheusConfig {
    #[serde(default)]
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Deserialize)]
struct ScrapeConfig {
    job_name: String,
    #[serde(default)]
    static_configs: Vec<StaticConfig>,
    #[serde(default)]
    dns_sd_configs: Vec<DnsSdConfig>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
struct StaticConfig {
    #[serde(default)]
    targets: Vec<String>,
}

#[derive(Deserialize)]
struct DnsSdConfig {
    names: Vec<String>,
    port: Option<u16>,
}

/// The Prometheus config is the one mounted into the stack, and every scrape
/// target is a service and a port of it; there is a `touchline` job.
fn check_prometheus(compose: &Compose, config_path: &Path) -> Vec<String> {
    let shown = compose.shown(config_path);
    let config: PrometheusConfig = match read_yaml(config_path) {
        Ok(config) => config,
        Err(error) => return vec![error],
    };
    let mut problems = Vec::new();

    let prometheus = compose.services.iter().find(|(_, service)| {
        mounts(service).unwrap_or_default().iter().any(|mount| {
            mount.kind == MountKind::Bind && compose.mounts_path(&mount.source, config_path)
        })
    });
    if prometheus.is_none() {
        problems.push(format!("{shown} is not mounted into any service"));
    }

    for job in &config.scrape_configs {
        let job_name = &job.job_name;
        for key in job.other.keys().filter(|key| key.ends_with("_sd_configs")) {
            problems.push(format!(
                "job `{job_name}` uses {key}, which this test cannot check; \
                 use static_configs or dns_sd_configs, or teach tests/compose.rs"
            ));
        }
        let mut targets = Vec::new();
        for target in job.static_configs.iter().flat_map(|c| &c.targets) {
            match target.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
                Some((host, Ok(port))) => targets.push((target.clone(), host.to_owned(), port)),
                _ => problems.push(format!(
                    "job `{job_name}`: target {target} is not host:port"
                )),
            }
        }
        for dns in &job.dns_sd_configs {
            for name in &dns.names {
                match dns.port {
                    Some(port) => targets.push((format!("{name}:{port}"), name.clone(), port)),
                    None => problems.push(format!(
                        "job `{job_name}`: dns_sd_configs name {name} has no port \
                         (SRV lookups cannot be checked)"
                    )),
                }
            }
        }
        for (target, host, port) in targets {
            // Prometheus scraping itself by a loopback address.
            let host = match prometheus {
                Some((own, _)) if matches!(host.as_str(), "localhost" | "127.0.0.1") => own.clone(),
                _ => host,
            };
            let Some(service) = compose.services.get(&host) else {
                problems.push(format!(
                    "job `{job_name}` scrapes {target}, but there is no service `{host}`"
                ));
                continue;
            };
            if !compose.container_ports(service).contains(&port) {
                problems.push(format!(
                    "job `{job_name}` scrapes {target}, but service `{host}` neither publishes \
                     nor exposes container port {port}"
                ));
            }
            if let Some(addr) = environment(service)
                .ok()
                .and_then(|env| env.get("TOUCHLINE_METRICS_ADDR").cloned().flatten())
            {
                let addr = interpolation_defaults(&addr);
                if !addr.ends_with(&format!(":{port}")) {
                    problems.push(format!(
                        "job `{job_name}` scrapes {target}, but `{host}` serves metrics on \
                         TOUCHLINE_METRICS_ADDR={addr}"
                    ));
                }
            }
        }
    }
    let scrapes_touchline = config.scrape_configs.iter().any(|job| {
        job.job_name == "touchline"
            && (job
                .static_configs
                .iter()
                .flat_map(|c| &c.targets)
                .any(|t| t.starts_with("touchline:"))
                || job
                    .dns_sd_configs
                    .iter()
                    .any(|c| c.names.iter().any(|n| n == "touchline")))
    });
    if !scrapes_touchline {
        problems.push(format!(
            "{shown} has no job `touchline` scraping the `touchline` service"
        ));
    }
    problems
}

#[derive(Deserialize)]
struct DatasourceFile {
    #[serde(default)]
    datasources: Vec<Datasource>,
}

#[derive(Deserialize)]
struct Datasource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    uid: Option<String>,
    url: Option<String>,
    #[serde(rename = "jsonData", default)]
    json_data: Mapping,
    #[serde(rename = "secureJsonData", default)]
    secure_json_data: Mapping,
}

#[derive(Deserialize)]
struct DashboardProviderFile {
    #[serde(default)]
    providers: Vec<DashboardProvider>,
}

#[derive(Deserialize)]
struct DashboardProvider {
    name: String,
    options: DashboardProviderOptions,
}

#[derive(Deserialize)]
struct DashboardProviderOptions {
    path: String,
}

/// The Grafana provisioning files parse, are mounted, install and configure
/// the ClickHouse plugin, and point at services and ports of the stack.
fn check_grafana(compose: &Compose, provisioning: &Path, dashboards: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((grafana_name, grafana)) = compose.services.iter().find(|(_, service)| {
        str_field(service, "image").is_some_and(|i| i.starts_with("grafana/grafana"))
    }) else {
        return vec!["there is no service running a grafana/grafana image".to_owned()];
    };
    let grafana_mounts = mounts(grafana).unwrap_or_default();
    let grafana_env = environment(grafana).unwrap_or_default();
    let mount_of = |dir: &Path| {
        grafana_mounts
            .iter()
            .find(|m| m.kind == MountKind::Bind && compose.mounts_path(&m.source, dir))
    };
    match mount_of(provisioning) {
        Some(mount) if mount.target == "/etc/grafana/provisioning" => {}
        Some(mount) => problems.push(format!(
            "`{grafana_name}` mounts {} at {}, but Grafana reads /etc/grafana/provisioning",
            compose.shown(provisioning),
            mount.target
        )),
        None => problems.push(format!(
            "`{grafana_name}` does not mount {}",
            compose.shown(provisioning)
        )),
    }

    let files = match files_under(provisioning) {
        Ok(files) => files,
        Err(error) => {
            return vec![format!(
                "cannot read {}: {error}",
                compose.shown(provisioning)
            )]
        }
    };
    let mut datasources = Vec::new();
    for file in files.iter().filter(|f| has_extension(f, &["yaml", "yml"])) {
        let shown = compose.shown(file);
        let text = match fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) => {
                problems.push(format!("cannot read {shown}: {error}"));
                continue;
            }
        };
        if let Err(error) = serde_yaml::from_str::<Value>(&text) {
            problems.push(format!("{shown} is not valid YAML: {error}"));
            continue;
        }
        for variable in grafana_variables(&text) {
            if !grafana_env.contains_key(&variable) {
                problems.push(format!(
                    "{shown} uses ${{{variable}}}, which `{grafana_name}` does not set in its environment"
                ));
            }
        }
        let parent = file
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str());
        match parent {
            Some("datasources") => match serde_yaml::from_str::<DatasourceFile>(&text) {
                Ok(parsed) => datasources.extend(parsed.datasources),
                Err(error) => problems.push(format!("{shown}: not a datasource file: {error}")),
            },
            Some("dashboards") => match serde_yaml::from_str::<DashboardProviderFile>(&text) {
                Ok(parsed) => {
                    for provider in parsed.providers {
                        let path = Path::new(&provider.options.path);
                        let served = grafana_mounts.iter().any(|m| {
                            m.kind == MountKind::Bind
                                && path.starts_with(&m.target)
                                && compose.mounts_path(&m.source, dashboards)
                        });
                        if !served {
                            problems.push(format!(
                                "{shown}: provider `{}` reads {}, which is not a mount of {} in `{grafana_name}`",
                                provider.name,
                                provider.options.path,
                                compose.shown(dashboards)
                            ));
                        }
                    }
                }
                Err(error) => {
                    problems.push(format!("{shown}: not a dashboard provider file: {error}"))
                }
            },
            _ => {}
        }
    }

    let mut uids = BTreeSet::new();
    for datasource in &datasources {
        let name = &datasource.name;
        if let Some(uid) = &datasource.uid {
            if !uids.insert(uid.clone()) {
                problems.push(format!("datasource uid `{uid}` is used twice"));
            }
        }
        if let Some(url) = &datasource.url {
            match url_host_port(url) {
                Some((host, port)) => problems.extend(compose.service_port_problem(
                    &format!("datasource `{name}` url {url}"),
                    &host,
                    port,
                )),
                None => problems.push(format!(
                    "datasource `{name}`: cannot read host and port from url {url}"
                )),
            }
        }
        if datasource.kind.contains("clickhouse") {
            if datasource.kind != CLICKHOUSE_PLUGIN {
                problems.push(format!(
                    "datasource `{name}` has type {}; use the official plugin {CLICKHOUSE_PLUGIN}",
                    datasource.kind
                ));
            }
            let json = &datasource.json_data;
            let host = str_field(json, "host").unwrap_or_default();
            match json
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
            {
                Some(port) => problems.extend(compose.service_port_problem(
                    &format!("datasource `{name}` jsonData host `{host}` port {port}"),
                    host,
                    port,
                )),
                None => problems.push(format!("datasource `{name}` has no numeric jsonData.port")),
            }
            let database = str_field(json, "defaultDatabase").unwrap_or_default();
            let expected = compose.touchline_database();
            if database != expected {
                problems.push(format!(
                    "datasource `{name}` has jsonData.defaultDatabase `{database}`, but Touchline \
                     writes to `{expected}`"
                ));
            }
        }
    }
    for (uid, kind) in [
        ("clickhouse", CLICKHOUSE_PLUGIN),
        ("prometheus", "prometheus"),
    ] {
        if !datasources
            .iter()
            .any(|d| d.uid.as_deref() == Some(uid) && d.kind == kind)
        {
            problems.push(format!(
                "no datasource with uid `{uid}` and type {kind}: dashboards refer to it by that uid"
            ));
        }
    }

    let installs_plugin = [
        "GF_INSTALL_PLUGINS",
        "GF_PLUGINS_PREINSTALL",
        "GF_PLUGINS_PREINSTALL_SYNC",
    ]
    .iter()
    .filter_map(|key| grafana_env.get(*key).cloned().flatten())
    .any(|list| {
        list.split(',')
            .any(|plugin| plugin.trim().split(['@', ' ']).next() == Some(CLICKHOUSE_PLUGIN))
    });
    if !installs_plugin {
        problems.push(format!(
            "`{grafana_name}` does not install {CLICKHOUSE_PLUGIN} (GF_INSTALL_PLUGINS)"
        ));
    }

    match files_under(dashboards) {
        Ok(files) => {
            for file in files.iter().filter(|f| has_extension(f, &["json"])) {
                let parsed = fs::read_to_string(file)
                    .map_err(|e| e.to_string())
                    .and_then(|text| {
                        serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string())
                    });
                match parsed {
                    Ok(dashboard) if dashboard.get("uid").is_some_and(|u| u.is_string()) => {}
                    Ok(_) => problems.push(format!(
                        "dashboard {} has no string `uid`",
                        compose.shown(file)
                    )),
                    Err(error) => problems.push(format!(
                        "dashboard {} is not valid JSON: {error}",
                        compose.shown(file)
                    )),
                }
            }
        }
        Err(error) => problems.push(format!(
            "cannot read {}: {error}",
            compose.shown(dashboards)
        )),
    }
    problems
}

/// Environment variables a Grafana provisioning file expands: `$NAME`,
/// `${NAME}` and `$__env{NAME}`.
fn grafana_variables(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut found = BTreeSet::new();
    for (start, _) in text.match_indices('$') {
        let rest = &text[start + 1..];
        let rest = rest.strip_prefix("__env").unwrap_or(rest);
        let (name, closed) = match rest.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find(|c: char| !is_name(c)).unwrap_or(inner.len());
                (&inner[..end], inner[end..].starts_with('}'))
            }
            None => {
                let end = rest.find(|c: char| !is_name(c)).unwrap_or(rest.len());
                (&rest[..end], true)
            }
        };
        if closed && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            found.insert(name.to_owned());
        }
    }
    found
}

/// `users.sql` creates exactly the users of [`CLICKHOUSE_USERS`], with their
/// placeholders; `users.xml` reads each one's password from its variable, and
/// `create-users.sh` fills each placeholder from it.
fn check_user_files(users_sql: &Path, users_xml: &Path, create_users: &Path) -> Vec<String> {
    let read = |path: &Path| {
        fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
    };
    let (sql, xml, script) = match (read(users_sql), read(users_xml), read(create_users)) {
        (Ok(sql), Ok(xml), Ok(script)) => (sql, xml, script),
        (sql, xml, script) => {
            return [sql.err(), xml.err(), script.err()]
                .into_iter()
                .flatten()
                .collect()
        }
    };
    let mut problems = Vec::new();

    // `CREATE USER IF NOT EXISTS name IDENTIFIED WITH ... BY 'placeholder'`.
    let created: BTreeMap<&str, &str> = sql
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CREATE USER IF NOT EXISTS "))
        .filter_map(|rest| {
            let name = rest.split_whitespace().next()?;
            let placeholder = rest.split_once(" BY '")?.1.split('\'').next()?;
            Some((name, placeholder))
        })
        .collect();
    for user in CLICKHOUSE_USERS {
        match created.get(user.name) {
            None => problems.push(format!(
                "{USERS_SQL} does not create user `{}`, which tests/compose.rs expects",
                user.name
            )),
            Some(placeholder) if *placeholder != user.placeholder => problems.push(format!(
                "{USERS_SQL} gives user `{}` the password '{placeholder}', but create-users.sh \
                 replaces '{}'",
                user.name, user.placeholder
            )),
            Some(_) => {}
        }
    }
    for name in created.keys() {
        if !CLICKHOUSE_USERS.iter().any(|user| user.name == *name) {
            problems.push(format!(
                "{USERS_SQL} creates user `{name}`, which no service is checked against: \
                 add it to CLICKHOUSE_USERS in tests/compose.rs and create-users.sh"
            ));
        }
    }

    // Users are elements under <users>; profiles of the same names come
    // before it.
    let users = xml.split_once("<users>").map_or("", |(_, users)| users);
    for user in CLICKHOUSE_USERS {
        let element = users
            .split_once(&format!("<{}>", user.name))
            .and_then(|(_, rest)| rest.split_once(&format!("</{}>", user.name)))
            .map(|(element, _)| element);
        let Some(element) = element else {
            problems.push(format!("{USERS_XML} has no user `{}`", user.name));
            continue;
        };
        let variable = element
            .split_once("from_env=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(variable, _)| variable);
        if variable != Some(user.password_variable) {
            problems.push(format!(
                "{USERS_XML}: user `{}` reads {}, not {}",
                user.name,
                variable.unwrap_or("no password variable"),
                user.password_variable
            ));
        }
    }

    for user in CLICKHOUSE_USERS {
        let role = user.placeholder.trim_start_matches("CHANGE-ME-");
        if !script.contains(&format!("{role}:{}", user.password_variable)) {
            problems.push(format!(
                "{CREATE_USERS} does not fill in '{}' (user `{}`) from {}",
                user.placeholder, user.name, user.password_variable
            ));
        }
    }
    if !script.contains(USERS_SQL_IN_CONTAINER) {
        problems.push(format!(
            "{CREATE_USERS} does not read {USERS_SQL_IN_CONTAINER}, where docker-compose.yml \
             is expected to mount users.sql"
        ));
    }
    problems
}

/// ClickHouse creates the users of `users.sql` through `create-users.sh`,
/// with a password variable for each; every service that connects to
/// ClickHouse does so as the user of its job, with that user's password.
fn check_clickhouse_users(
    compose: &Compose,
    users_sql: &Path,
    create_users: &Path,
    provisioning: &Path,
) -> Vec<String> {
    let Some((server_name, server)) = compose.services.iter().find(|(_, service)| {
        str_field(service, "image").is_some_and(|i| i.starts_with("clickhouse/clickhouse-server"))
    }) else {
        return vec!["there is no service running a clickhouse/clickhouse-server image".to_owned()];
    };
    let mut problems = Vec::new();
    let server_env = environment(server).unwrap_or_default();

    // The password each user gets, as written in the compose file.
    let mut passwords: BTreeMap<&str, String> = BTreeMap::new();
    for user in CLICKHOUSE_USERS {
        let variable = user.password_variable;
        match server_env.get(variable).cloned().flatten() {
            Some(value) if !interpolation_defaults(&value).is_empty() => {
                for (name, default) in interpolated_variables(&value) {
                    let documented = match &default {
                        Some(default) => format!("{name} ({default})"),
                        None => name.clone(),
                    };
                    if !compose.header.contains(&documented) {
                        problems.push(format!(
                            "`{server_name}` sets {variable} from ${{{name}}}, but the header \
                             comment of {COMPOSE_FILE} does not list `{documented}`"
                        ));
                    }
                }
                passwords.insert(user.name, value);
            }
            _ => problems.push(format!(
                "`{server_name}` does not set {variable} (or sets it empty by default), the \
                 password of user `{}`: create-users.sh stops without it",
                user.name
            )),
        }
    }

    let server_mounts = mounts(server).unwrap_or_default();
    let binds = || server_mounts.iter().filter(|m| m.kind == MountKind::Bind);
    let in_initdb = |target: &str| target.starts_with(&format!("{INITDB_DIR}/"));
    if !binds().any(|m| {
        in_initdb(&m.target)
            && m.target.ends_with(".sh")
            && compose.mounts_path(&m.source, create_users)
    }) {
        problems.push(format!(
            "`{server_name}` does not mount {} as a .sh file into {INITDB_DIR}/, so nothing \
             creates Touchline's users",
            compose.shown(create_users)
        ));
    }
    if !binds()
        .any(|m| m.target == USERS_SQL_IN_CONTAINER && compose.mounts_path(&m.source, users_sql))
    {
        problems.push(format!(
            "`{server_name}` does not mount {} at {USERS_SQL_IN_CONTAINER}, where \
             create-users.sh reads it",
            compose.shown(users_sql)
        ));
    }
    for mount in
        binds().filter(|m| in_initdb(&m.target) && compose.mounts_path(&m.source, users_sql))
    {
        problems.push(format!(
            "`{server_name}` mounts {} into {INITDB_DIR} (at {}): the image would run \
             users.sql with its placeholder passwords",
            compose.shown(users_sql),
            mount.target
        ));
    }
    let database = compose.touchline_database();
    if let Some(db) = server_env.get("CLICKHOUSE_DB").cloned().flatten() {
        let db = interpolation_defaults(&db);
        if db != database {
            problems.push(format!(
                "`{server_name}` has CLICKHOUSE_DB `{db}`, the database create-users.sh grants \
                 on, but Touchline writes to `{database}`"
            ));
        }
    }

    // The same password expression as the server's, so that the variable
    // and its default are the same on both sides.
    let password_problem = |what: &str, user: &str, password: Option<String>| {
        // Without an expected password, the problem is reported above.
        let expected = passwords.get(user)?;
        match password {
            Some(password) if password == *expected => None,
            Some(password) => Some(format!(
                "{what} gives user `{user}` the password {password}, but `{server_name}` \
                 creates it with {expected}"
            )),
            None => Some(format!(
                "{what} connects as `{user}` without a password; `{server_name}` creates it \
                 with {expected}"
            )),
        }
    };

    for (name, service) in &compose.services {
        let runs_touchline = service.contains_key("build")
            || str_field(service, "image").is_some_and(|i| i.starts_with("touchline:"));
        if !runs_touchline {
            continue;
        }
        let subcommand = strings(service.get("command")).into_iter().next();
        let subcommand = subcommand.as_deref().unwrap_or("(none)");
        let env = environment(service).unwrap_or_default();
        let setting = |key: &str| env.get(key).cloned().flatten();
        match SUBCOMMAND_USERS
            .iter()
            .find(|(known, _)| *known == subcommand)
        {
            None => problems.push(format!(
                "`{name}` runs `touchline {subcommand}`, whose ClickHouse user tests/compose.rs \
                 does not know: add it to SUBCOMMAND_USERS"
            )),
            Some((_, None)) => {
                for key in [
                    "TOUCHLINE_CLICKHOUSE_USER",
                    "TOUCHLINE_CLICKHOUSE_PASSWORD",
                    "TOUCHLINE_CLICKHOUSE_PASSWORD_FILE",
                ] {
                    if env.contains_key(key) {
                        problems.push(format!(
                            "`{name}` sets {key}, but `touchline {subcommand}` never connects to \
                             ClickHouse: give it no credentials"
                        ));
                    }
                }
            }
            Some((_, Some(expected))) => {
                let user = setting("TOUCHLINE_CLICKHOUSE_USER")
                    .map(|user| interpolation_defaults(&user))
                    .unwrap_or_else(|| "default".to_owned());
                let what = format!("`{name}` (touchline {subcommand})");
                if user != *expected {
                    problems.push(format!(
                        "{what} connects to ClickHouse as `{user}`, not `{expected}` \
                         ({USERS_SQL})"
                    ));
                }
                problems.extend(password_problem(
                    &what,
                    expected,
                    setting("TOUCHLINE_CLICKHOUSE_PASSWORD"),
                ));
            }
        }
    }

    // Grafana's ClickHouse datasources, with the variables of its service.
    if let Some((grafana_name, grafana)) = compose.services.iter().find(|(_, service)| {
        str_field(service, "image").is_some_and(|i| i.starts_with("grafana/grafana"))
    }) {
        let grafana_env = environment(grafana).unwrap_or_default();
        let expand = |original: &str| {
            let mut text = original.to_owned();
            for variable in grafana_variables(original) {
                let value = grafana_env
                    .get(&variable)
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                for form in [
                    format!("$__env{{{variable}}}"),
                    format!("${{{variable}}}"),
                    format!("${variable}"),
                ] {
                    text = text.replace(&form, &value);
                }
            }
            text
        };
        let datasources = files_under(&provisioning.join("datasources"))
            .unwrap_or_default()
            .into_iter()
            .filter(|file| has_extension(file, &["yaml", "yml"]))
            .filter_map(|file| read_yaml::<DatasourceFile>(&file).ok())
            .flat_map(|file| file.datasources)
            .filter(|datasource| datasource.kind == CLICKHOUSE_PLUGIN);
        for datasource in datasources {
            let what = format!("`{grafana_name}`: datasource `{}`", datasource.name);
            let user = str_field(&datasource.json_data, "username")
                .map(|user| interpolation_defaults(&expand(user)))
                .unwrap_or_else(|| "default".to_owned());
            if user != DASHBOARDS_USER {
                problems.push(format!(
                    "{what} connects to ClickHouse as `{user}`, not `{DASHBOARDS_USER}` \
                     ({USERS_SQL})"
                ));
            }
            let password = str_field(&datasource.secure_json_data, "password").map(expand);
            problems.extend(password_problem(
                &what,
                DASHBOARDS_USER,
                password.filter(|p| !p.is_empty()),
            ));
        }
    }
    problems
}

/// The variables a compose value interpolates, each with its default
/// (`${NAME:-default}` or `${NAME-default}`; None for `${NAME}` and
/// `${NAME:?error}`).
fn interpolated_variables(value: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        let name_end = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(inner.len());
        let (name, modifier) = inner.split_at(name_end);
        let default = modifier
            .strip_prefix(":-")
            .or_else(|| modifier.strip_prefix('-'))
            .map(str::to_owned);
        found.push((name.to_owned(), default));
        rest = &rest[start + end + 1..];
    }
    found
}

// ---------------------------------------------------------------------------
// The compose model: just enough of the Compose specification to follow its
// references, accepting both the short and the long syntax.

struct Compose {
    /// The directory relative paths in the file start from.
    root: PathBuf,
    /// The comment at the top of the file, which documents its variables.
    header: String,
    services: BTreeMap<String, Mapping>,
    /// Names declared under the top-level `volumes`.
    volumes: BTreeSet<String>,
}

impl Compose {
    fn load(root: &Path) -> Compose {
        let path = root.join(COMPOSE_FILE);
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        Compose::parse(root, &text).unwrap_or_else(|error| panic!("{COMPOSE_FILE}: {error}"))
    }

    fn parse(root: &Path, text: &str) -> Result<Compose, String> {
        let mut document: Value =
            serde_yaml::from_str(text).map_err(|error| format!("not valid YAML: {error}"))?;
        document
            .apply_merge()
            .map_err(|error| format!("bad `<<` merge key: {error}"))?;
        let top = document
            .as_mapping()
            .ok_or("the top level is not a mapping")?;
        let services = top
            .get("services")
            .and_then(Value::as_mapping)
            .ok_or("there is no `services` mapping")?;
        let mut parsed = BTreeMap::new();
        for (name, service) in services {
            let name = name.as_str().ok_or("a service name is not a string")?;
            let service = service
                .as_mapping()
                .ok_or_else(|| format!("service `{name}` is not a mapping"))?;
            parsed.insert(name.to_owned(), service.clone());
        }
        let volumes = match top.get("volumes") {
            Some(Value::Mapping(volumes)) => volumes
                .keys()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err("the top-level `volumes` is not a mapping".to_owned()),
            None => BTreeSet::new(),
        };
        let header = text
            .lines()
            .take_while(|line| line.is_empty() || line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        Ok(Compose {
            root: root.to_path_buf(),
            header,
            services: parsed,
            volumes,
        })
    }

    /// `path` relative to the root, for messages.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// Whether a bind mount of `source` makes `path` visible: it is the
    /// path or a directory above it.
    fn mounts_path(&self, source: &str, path: &Path) -> bool {
        match (
            fs::canonicalize(self.root.join(source)),
            fs::canonicalize(path),
        ) {
            (Ok(source), Ok(path)) => path.starts_with(source),
            _ => false,
        }
    }

    /// Container ports a service listens on, as far as the file says:
    /// published, `expose`d, or `EXPOSE`d by the Dockerfile it builds.
    fn container_ports(&self, service: &Mapping) -> BTreeSet<u16> {
        let mut found: BTreeSet<u16> = ports(service)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|port| port.container)
            .collect();
        for exposed in strings(service.get("expose")) {
            if let Ok(range) = parse_range(exposed.split('/').next().unwrap_or_default()) {
                found.extend(range);
            }
        }
        if let Some(dockerfile) = self.dockerfile(service) {
            for line in fs::read_to_string(dockerfile).unwrap_or_default().lines() {
                if let Some(rest) = line.trim().strip_prefix("EXPOSE ") {
                    found.extend(
                        rest.split_whitespace()
                            .filter_map(|p| p.split('/').next()?.parse::<u16>().ok()),
                    );
                }
            }
        }
        found
    }

    fn dockerfile(&self, service: &Mapping) -> Option<PathBuf> {
        match service.get("build")? {
            Value::String(context) => Some(self.root.join(context).join("Dockerfile")),
            Value::Mapping(build) => Some(
                self.root
                    .join(str_field(build, "context").unwrap_or("."))
                    .join(str_field(build, "dockerfile").unwrap_or("Dockerfile")),
            ),
            _ => None,
        }
    }

    /// A problem if `host` is not a service listening on container `port`.
    fn service_port_problem(&self, what: &str, host: &str, port: u16) -> Option<String> {
        match self.services.get(host) {
            None => Some(format!("{what}: there is no service `{host}`")),
            Some(service) if !self.container_ports(service).contains(&port) => Some(format!(
                "{what}: service `{host}` neither publishes nor exposes container port {port}"
            )),
            Some(_) => None,
        }
    }

    /// The database the Touchline services write to: the default of their
    /// `TOUCHLINE_CLICKHOUSE_DATABASE`, else the binary's default `cx`.
    fn touchline_database(&self) -> String {
        self.services
            .values()
            .filter_map(|service| environment(service).ok())
            .find_map(|env| env.get("TOUCHLINE_CLICKHOUSE_DATABASE").cloned().flatten())
            .map(|value| interpolation_defaults(&value))
            .unwrap_or_else(|| "cx".to_owned())
    }
}

#[derive(Debug, PartialEq)]
enum MountKind {
    Bind,
    Volume,
    Other,
}

#[derive(Debug)]
struct Mount {
    kind: MountKind,
    source: String,
    target: String,
}

fn mounts(service: &Mapping) -> Result<Vec<Mount>, String> {
    let Some(volumes) = service.get("volumes") else {
        return Ok(Vec::new());
    };
    let volumes = volumes.as_sequence().ok_or("`volumes` is not a list")?;
    volumes
        .iter()
        .map(|entry| match entry {
            Value::String(spec) => {
                let mut parts = spec.splitn(3, ':');
                let first = parts.next().unwrap_or_default().to_owned();
                match parts.next() {
                    // A lone container path: an anonymous volume.
                    None => Ok(Mount {
                        kind: MountKind::Other,
                        source: String::new(),
                        target: first,
                    }),
                    Some(target) => Ok(Mount {
                        kind: if first.starts_with(['.', '/', '~']) {
                            MountKind::Bind
                        } else {
                            MountKind::Volume
                        },
                        source: first,
                        target: target.to_owned(),
                    }),
                }
            }
            Value::Mapping(long) => {
                let source = str_field(long, "source").unwrap_or_default().to_owned();
                let target = str_field(long, "target")
                    .ok_or("a long-syntax volume has no `target`")?
                    .to_owned();
                let kind = match str_field(long, "type") {
                    Some("bind") => MountKind::Bind,
                    Some("volume") if !source.is_empty() => MountKind::Volume,
                    _ => MountKind::Other,
                };
                Ok(Mount {
                    kind,
                    source,
                    target,
                })
            }
            _ => Err(format!(
                "volume entry {entry:?} is neither a string nor a mapping"
            )),
        })
        .collect()
}

/// `env_file` entries as (path, required).
fn env_files(service: &Mapping) -> Result<Vec<(String, bool)>, String> {
    let entries: Vec<&Value> = match service.get("env_file") {
        None => return Ok(Vec::new()),
        Some(Value::Sequence(entries)) => entries.iter().collect(),
        Some(entry) => vec![entry],
    };
    entries
        .into_iter()
        .map(|entry| match entry {
            Value::String(path) => Ok((path.clone(), true)),
            Value::Mapping(long) => Ok((
                str_field(long, "path")
                    .ok_or("an env_file entry has no `path`")?
                    .to_owned(),
                long.get("required")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            )),
            _ => Err(format!(
                "env_file entry {entry:?} is neither a path nor a mapping"
            )),
        })
        .collect()
}

/// The variable names an env file sets.
fn env_file_keys(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            line.split('=').next().unwrap_or_default().trim().to_owned()
        })
}

/// `environment` as a map from name to value (None for a bare name, which
/// passes the variable through from the host).
fn environment(service: &Mapping) -> Result<BTreeMap<String, Option<String>>, String> {
    match service.get("environment") {
        None => Ok(BTreeMap::new()),
        Some(Value::Mapping(env)) => env
            .iter()
            .map(|(key, value)| {
                let key = key
                    .as_str()
                    .ok_or_else(|| format!("environment key {key:?} is not a string"))?;
                Ok((key.to_owned(), scalar(value)))
            })
            .collect(),
        Some(Value::Sequence(env)) => env
            .iter()
            .map(|entry| {
                let entry = entry
                    .as_str()
                    .ok_or_else(|| format!("environment entry {entry:?} is not a string"))?;
                Ok(match entry.split_once('=') {
                    Some((key, value)) => (key.to_owned(), Some(value.to_owned())),
                    None => (entry.to_owned(), None),
                })
            })
            .collect(),
        Some(_) => Err("`environment` is neither a mapping nor a list".to_owned()),
    }
}

/// `depends_on` as (service, condition).
fn depends_on(service: &Mapping) -> Result<Vec<(String, String)>, String> {
    match service.get("depends_on") {
        None => Ok(Vec::new()),
        Some(Value::Sequence(names)) => names
            .iter()
            .map(|name| {
                name.as_str()
                    .map(|name| (name.to_owned(), "service_started".to_owned()))
                    .ok_or_else(|| format!("depends_on entry {name:?} is not a service name"))
            })
            .collect(),
        Some(Value::Mapping(long)) => long
            .iter()
            .map(|(name, options)| {
                let name = name
                    .as_str()
                    .ok_or_else(|| format!("depends_on key {name:?} is not a service name"))?;
                let condition = options
                    .as_mapping()
                    .and_then(|options| str_field(options, "condition"))
                    .unwrap_or("service_started");
                Ok((name.to_owned(), condition.to_owned()))
            })
            .collect(),
        Some(_) => Err("`depends_on` is neither a list nor a mapping".to_owned()),
    }
}

fn has_healthcheck(service: &Mapping) -> bool {
    service
        .get("healthcheck")
        .and_then(Value::as_mapping)
        .is_some_and(|check| {
            check.contains_key("test")
                && check.get("disable").and_then(Value::as_bool) != Some(true)
        })
}

fn profiles(service: &Mapping) -> Vec<String> {
    strings(service.get("profiles"))
}

#[derive(Debug)]
struct PortMapping {
    /// Host ports; empty when the port is not published (or the host picks).
    host: Vec<u16>,
    container: Vec<u16>,
    protocol: String,
}

fn ports(service: &Mapping) -> Result<Vec<PortMapping>, String> {
    let Some(ports) = service.get("ports") else {
        return Ok(Vec::new());
    };
    let ports = ports.as_sequence().ok_or("`ports` is not a list")?;
    ports
        .iter()
        .map(|entry| match entry {
            Value::String(spec) => parse_port_spec(spec),
            Value::Number(_) => parse_port_spec(&scalar(entry).unwrap_or_default()),
            Value::Mapping(long) => {
                let target = long
                    .get("target")
                    .and_then(scalar)
                    .ok_or("a long-syntax port has no `target`")?;
                let host = match long.get("published").and_then(scalar) {
                    Some(published) => parse_range(&published)?,
                    None => Vec::new(),
                };
                Ok(PortMapping {
                    host,
                    container: parse_range(&target)?,
                    protocol: str_field(long, "protocol").unwrap_or("tcp").to_owned(),
                })
            }
            _ => Err(format!(
                "port entry {entry:?} is neither a string nor a mapping"
            )),
        })
        .collect()
}

/// A short-syntax port: `[[IP:](HOST|RANGE):](PORT|RANGE)[/PROTOCOL]`.
fn parse_port_spec(spec: &str) -> Result<PortMapping, String> {
    if spec.contains('$') {
        return Err(format!(
            "port {spec} is interpolated; publish a literal port so it can be checked"
        ));
    }
    let (ports, protocol) = spec.split_once('/').unwrap_or((spec, "tcp"));
    // From the right, so that an IPv6 host address keeps its colons.
    let mut parts = ports.rsplitn(3, ':');
    let container = parse_range(parts.next().unwrap_or_default())?;
    let host = match parts.next() {
        None | Some("") => Vec::new(),
        Some(host) => parse_range(host)?,
    };
    Ok(PortMapping {
        host,
        container,
        protocol: protocol.to_owned(),
    })
}

/// `9464` or `9464-9467`.
fn parse_range(text: &str) -> Result<Vec<u16>, String> {
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("`{text}` is not a port or a port range"))
    };
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (parse(first)?, parse(last)?),
        None => (parse(text)?, parse(text)?),
    };
    if first > last {
        return Err(format!("port range `{text}` runs backwards"));
    }
    Ok((first..=last).collect())
}

/// Host and port of an `http(s)://host:port/...` URL.
fn url_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_owned(), port.parse().ok()?)),
        None => Some((
            authority.to_owned(),
            if scheme == "https" { 443 } else { 80 },
        )),
    }
}

/// A value with `${VAR:-default}` and `${VAR-default}` replaced by their
/// defaults (and a bare `${VAR}` by nothing), as when nothing is set.
fn interpolation_defaults(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 2..start + end];
        if let Some((_, default)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
            out.push_str(default);
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn str_field<'a>(mapping: &'a Mapping, key: &str) -> Option<&'a str> {
    mapping.get(key).and_then(Value::as_str)
}

/// A string or a list of strings, as a list.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
        Some(value) => scalar(value).into_iter().collect(),
        None => Vec::new(),
    }
}

// ---------------------------------------------------------------------------
// Files.

fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_yaml::from_str(&text)
        .map_err(|error| format!("{} does not parse: {error}", path.display()))
}

/// Every file below `dir`, recursively, in a stable order.
fn files_under(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e))
}

fn assert_no_problems(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s) in {COMPOSE_FILE} or deploy/:\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// Fails unless some problem mentions both `subject` and `detail`.
fn expect_problem(problems: &[String], subject: &str, detail: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.contains(subject) && p.contains(detail)),
        "expected a problem about {subject:?} mentioning {detail:?}, got:\n{problems:#?}"
    );
}

/// A scratch directory of files for one fixture test.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("compose-fixtures")
            .join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("clear the previous fixture directory");
        }
        fs::create_dir_all(&dir).expect("create the fixture directory");
        Fixture { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Writes a file of the fixture, `text` dedented.
    fn write(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create a fixture subdirectory");
        }
        fs::write(&path, dedent(text)).expect("write a fixture file");
    }

    /// The fixture's compose file, `yaml` dedented.
    fn compose(&self, yaml: &str) -> Compose {
        let text = dedent(yaml);
        self.write(COMPOSE_FILE, &text);
        Compose::parse(&self.dir, &text)
            .unwrap_or_else(|error| panic!("fixture compose file: {error}\n{text}"))
    }
}

/// Removes the indentation common to all lines, so that fixtures can be
/// written as indented blocks.
fn dedent(text: &str) -> String {
    let indent = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or("").trim_end());
        out.push('\n');
    }
    out
}
