use std::collections::BTreeSet;

use super::*;

/// A configuration with every key set. The struct literals have no `..`, so
/// a new key does not compile until it is added here, and then
/// [`the_defaults_file_lists_every_key`] asks for it in [`DEFAULTS_TOML`].
fn every_key_set() -> Config {
    Config {
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
        kafka: KafkaSettings {
            brokers: "kafka-0:9093,kafka-1:9093".into(),
            topic_prefix: "staging.".into(),
            group_id: "touchline-staging".into(),
            security_protocol: SecurityProtocol::SaslSsl,
            ssl: SslSettings {
                ca_location: Some("ca.pem".into()),
                certificate_location: Some("client.pem".into()),
                key_location: Some("client.key".into()),
                key_password: Some(Secret::new("key password")),
                key_password_file: None,
            },
            sasl: SaslSettings {
                mechanism: Some(SaslMechanism::ScramSha512),
                username: Some("touchline".into()),
                password: Some(Secret::new("sasl password")),
                password_file: None,
            },
            options: BTreeMap::from([
                ("client.rack".into(), "a".into()),
                ("ssl.keystore.password".into(), "keystore password".into()),
            ]),
        },
        schema_registry: RegistrySettings {
            url: "https://registry:8081".into(),
            user: Some("touchline".into()),
            password: Some(Secret::new("registry password")),
            password_file: None,
        },
        clickhouse: ClickHouseSettings {
            url: "https://clickhouse:8443".into(),
            database: "cx".into(),
            user: "touchline".into(),
            password: Some(Secret::new("clickhouse password")),
            password_file: None,
        },
        pipeline: PipelineSettings {
            batch_max_messages: 1,
            batch_catch_up_messages: 2,
            batch_linger_ms: 1,
            derive_backlog_messages: 7,
            derive_interval_ms: 3,
            max_message_bytes: 100,
        },
        privacy: PrivacySettings {
            pseudonymisation: true,
            pseudonymisation_key: Some(Secret::new("pseudonymisation key of 32 bytes!")),
            pseudonymisation_key_file: None,
            store_text: vec![TextChannel::Chatbot, TextChannel::Social],
        },
    }
}

/// Dotted paths of the keys of a TOML table; the entries of
/// `[kafka.options]` are free-form and count as one key.
fn key_paths(table: &toml::Table, prefix: &str, paths: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(inner) if path != "kafka.options" => {
                key_paths(inner, &format!("{path}."), paths);
            }
            _ => {
                paths.insert(path);
            }
        }
    }
}

/// [`DEFAULTS_TOML`] with every commented-out key line turned into a key.
fn uncommented_defaults() -> String {
    DEFAULTS_TOML
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if looks_like_key(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn looks_like_key(line: &str) -> bool {
    line.split_once(" = ").is_some_and(|(key, _)| {
        key.chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c == '"' || c == '.')
    })
}

#[test]
fn the_defaults_file_is_the_default_configuration() {
    let parsed = Config::from_toml(DEFAULTS_TOML).expect("DEFAULTS_TOML parses");
    assert_eq!(parsed, Config::default());
    assert_eq!(Config::from_toml("").expect("empty"), Config::default());
    assert!(Config::default().problems().is_empty());
}

#[test]
fn the_defaults_file_lists_every_key() {
    let every = toml::Table::try_from(every_key_set()).expect("serialises");
    let mut expected = BTreeSet::new();
    key_paths(&every, "", &mut expected);
    for file_key in [
        "kafka.ssl.key_password_file",
        "kafka.sasl.password_file",
        "schema_registry.password_file",
        "clickhouse.password_file",
        "privacy.pseudonymisation_key_file",
    ] {
        expected.insert(file_key.to_owned());
    }

    let text = uncommented_defaults();
    let table: toml::Table = text.parse().expect("uncommented defaults parse");
    let mut listed = BTreeSet::new();
    key_paths(&table, "", &mut listed);
    assert_eq!(listed, expected, "keys of DEFAULTS_TOML vs Config");
    // Every commented-out example is a valid value of its key.
    Config::from_toml(&text).expect("every example in DEFAULTS_TOML is valid");
}

#[test]
fn every_key_is_documented_with_a_comment() {
    let mut previous = "";
    for line in DEFAULTS_TOML.lines() {
        let key = line.strip_prefix("# ").unwrap_or(line);
        if looks_like_key(key) && !key.starts_with('"') {
            assert!(
                previous.starts_with("# "),
                "`{line}` in DEFAULTS_TOML has no comment above it"
            );
        }
        previous = line;
    }
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    for (text, key) in [
        ("metrics_adr = \"0.0.0.0:1\"", "metrics_adr"),
        ("[kafka]\nbroker = \"x:1\"", "broker"),
        ("[kafka.sasl]\nuser = \"x\"", "user"),
        ("[clickhouse]\npasword = \"x\"", "pasword"),
        ("[pipelines]\nbatch_max_messages = 1", "pipelines"),
    ] {
        let error = Config::from_toml(text).expect_err(text).to_string();
        assert!(
            error.contains(&format!("unknown field `{key}`")),
            "{text}: {error}"
        );
    }
}

#[test]
fn wrong_types_and_values_say_which_key() {
    let error = Config::from_toml("[pipeline]\nbatch_linger_ms = \"fast\"")
        .expect_err("a string is not a number")
        .to_string();
    assert!(error.contains("batch_linger_ms"), "{error}");
    let error = Config::from_toml("[kafka]\nsecurity_protocol = \"tls\"")
        .expect_err("tls is not a protocol")
        .to_string();
    assert!(error.contains("security_protocol"), "{error}");
    assert!(error.contains("sasl_ssl"), "{error}");
    let error = Config::from_toml("metrics_addr = \"localhost\"")
        .expect_err("no port")
        .to_string();
    assert!(error.contains("metrics_addr"), "{error}");
}

#[test]
fn names_of_protocols_and_mechanisms_ignore_case() {
    let config = Config::from_toml(
        "[kafka]\nsecurity_protocol = \"SASL_SSL\"\n[kafka.sasl]\nmechanism = \"scram-sha-256\"",
    )
    .expect("parses");
    assert_eq!(config.kafka.security_protocol, SecurityProtocol::SaslSsl);
    assert_eq!(
        config.kafka.sasl.mechanism,
        Some(SaslMechanism::ScramSha256)
    );
}

#[test]
fn inconsistent_settings_are_reported_by_key() {
    let cases: &[(&str, &str)] = &[
        ("[kafka]\nbrokers = \" , \"", "kafka.brokers"),
        ("[kafka]\ntopic_prefix = \"a b\"", "kafka.topic_prefix"),
        ("[kafka]\ngroup_id = \"\"", "kafka.group_id"),
        (
            "[kafka.ssl]\nca_location = \"ca.pem\"",
            "kafka.ssl.ca_location is set but kafka.security_protocol is plaintext",
        ),
        (
            "[kafka]\nsecurity_protocol = \"ssl\"\n[kafka.ssl]\ncertificate_location = \"c.pem\"",
            "set both or neither",
        ),
        (
            "[kafka]\nsecurity_protocol = \"sasl_ssl\"",
            "kafka.sasl.mechanism is not set",
        ),
        (
            "[kafka.sasl]\nusername = \"u\"",
            "kafka.sasl.username is set but kafka.security_protocol is plaintext",
        ),
        (
            "[kafka.options]\n\"bootstrap.servers\" = \"x:1\"",
            "set kafka.brokers instead",
        ),
        (
            "[kafka.options]\n\"enable.auto.offset.store\" = \"true\"",
            "cannot be changed",
        ),
        (
            "[schema_registry]\nurl = \"registry:8081\"",
            "schema_registry.url",
        ),
        (
            "[schema_registry]\npassword = \"p\"",
            "schema_registry.user is not",
        ),
        (
            "[clickhouse]\npassword = \"p\"\npassword_file = \"f\"",
            "clickhouse.password and clickhouse.password_file are both set",
        ),
        (
            "[clickhouse]\ndatabase = \"cx; DROP\"",
            "clickhouse.database",
        ),
        ("[clickhouse]\nurl = \"http://\"", "clickhouse.url"),
        (
            "[pipeline]\nbatch_max_messages = 0",
            "pipeline.batch_max_messages",
        ),
        (
            "[pipeline]\nbatch_linger_ms = 0",
            "pipeline.batch_linger_ms",
        ),
        (
            "[pipeline]\nmax_message_bytes = 5",
            "pipeline.max_message_bytes",
        ),
        (
            "[pipeline]\nbatch_max_messages = 70000",
            "pipeline.batch_catch_up_messages (60000) is below pipeline.batch_max_messages (70000)",
        ),
        (
            "[pipeline]\nbatch_max_messages = 500\nbatch_catch_up_messages = 500\n\
             derive_backlog_messages = 499",
            "pipeline.derive_backlog_messages (499) is below pipeline.batch_catch_up_messages (500)",
        ),
        (
            "[pipeline]\nderive_backlog_messages = 59999",
            "pipeline.derive_backlog_messages (59999) is below pipeline.batch_catch_up_messages (60000)",
        ),
        (
            "[privacy]\npseudonymisation = true",
            "neither privacy.pseudonymisation_key nor privacy.pseudonymisation_key_file is set",
        ),
        (
            "[privacy]\npseudonymisation_key_file = \"k\"",
            "privacy.pseudonymisation is off",
        ),
        (
            "[privacy]\npseudonymisation = true\npseudonymisation_key = \"short\"",
            "privacy.pseudonymisation_key has 5 bytes",
        ),
        (
            "[privacy]\npseudonymisation = true\npseudonymisation_key = \"0123456789abcdef0123456789abcdef\"\npseudonymisation_key_file = \"k\"",
            "privacy.pseudonymisation_key and privacy.pseudonymisation_key_file are both set",
        ),
    ];
    for (text, expected) in cases {
        let config = Config::from_toml(text).expect(text);
        let problems = config.problems();
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{text}: expected a problem containing `{expected}`, got {problems:#?}"
        );
        assert!(config.validate().is_err());
    }
}

#[test]
fn a_complete_secure_configuration_is_valid() {
    let config = every_key_set();
    assert_eq!(config.problems(), Vec::<String>::new());
    let client = config.kafka.client().expect("client settings");
    assert_eq!(client.get("security.protocol"), Some("sasl_ssl"));
    assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
    assert_eq!(client.get("sasl.password"), Some("sasl password"));
    assert_eq!(client.get("ssl.ca.location"), Some("ca.pem"));
    assert_eq!(client.get("client.rack"), Some("a"));
    assert_eq!(
        client.get("bootstrap.servers"),
        Some("kafka-0:9093,kafka-1:9093")
    );
}

/// librdkafka refuses `ssl` and SCRAM settings at client creation when it
/// was built without OpenSSL; this build must take them.
#[test]
fn this_build_accepts_tls_and_scram() {
    let mut config = Config::default();
    config.kafka.security_protocol = SecurityProtocol::SaslSsl;
    config.kafka.sasl = SaslSettings {
        mechanism: Some(SaslMechanism::ScramSha512),
        username: Some("touchline".into()),
        password: Some(Secret::new("password")),
        password_file: None,
    };
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let client = config.kafka.client().expect("client settings");
    let created: Result<rdkafka::consumer::BaseConsumer, _> = client.create();
    if let Err(error) = created {
        panic!("librdkafka refuses sasl_ssl with SCRAM-SHA-512: {error}");
    }
}

#[test]
fn debug_output_never_shows_a_secret() {
    let config = every_key_set();
    let shown = format!("{config:?} {config:#?}");
    let printed = toml::to_string(&config).expect("serialises");
    for secret in [
        "key password",
        "sasl password",
        "registry password",
        "clickhouse password",
        "keystore password",
        "pseudonymisation key",
    ] {
        assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        assert!(!printed.contains(secret), "{secret} leaked in {printed}");
    }
    assert!(shown.contains("client.rack"), "{shown}");
    assert!(shown.contains("<redacted>"));
    let auth = config.schema_registry.auth().expect("auth").expect("some");
    assert!(!format!("{auth:?}").contains("registry password"));
    let connection = config.clickhouse.connection().expect("connection");
    assert!(!format!("{connection:?}").contains("clickhouse password"));
}

#[test]
fn secrets_are_read_from_their_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("password");
    std::fs::write(&file, "s3cret\n").expect("write");
    let mut config = Config::default();
    config.clickhouse.password_file = Some(file.clone());
    assert_eq!(
        config.clickhouse.connection().expect("reads").password,
        "s3cret"
    );
    config.schema_registry.user = Some("u".into());
    config.schema_registry.password_file = Some(file.clone());
    let auth = config.schema_registry.auth().expect("reads").expect("some");
    assert_eq!(auth.password, "s3cret");

    config.clickhouse.password_file = Some(dir.path().join("absent"));
    let error = format!(
        "{:#}",
        config.clickhouse.connection().expect_err("no such file")
    );
    assert!(error.contains("clickhouse.password_file"), "{error}");
    assert!(error.contains("absent"), "{error}");
    assert_eq!(config.missing_files().len(), 1);
}

#[test]
fn a_file_that_cannot_be_read_or_parsed_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let absent = dir.path().join("absent.toml");
    let error = format!("{:#}", Config::load(Some(&absent)).expect_err("absent"));
    assert!(error.contains("absent.toml"), "{error}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[kafka]\nbrokerz = \"x:1\"\n").expect("write");
    let error = format!("{:#}", Config::load(Some(&bad)).expect_err("bad"));
    assert!(error.contains("bad.toml"), "{error}");
    assert!(error.contains("brokerz"), "{error}");
    assert!(error.contains("line 2"), "{error}");
}

#[test]
fn the_pseudonymisation_key_comes_from_its_file_and_text_channels_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("key");
    std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").expect("write");
    let config = Config::from_toml(&format!(
        "[privacy]\npseudonymisation = true\npseudonymisation_key_file = {:?}\nstore_text = [\"Chatbot\"]",
        file.display().to_string()
    ))
    .expect("parses");
    assert!(config.problems().is_empty(), "{:?}", config.problems());
    let keyed = config.privacy.pseudonymiser().expect("reads the key");
    let inline = touchline_model::Pseudonymiser::keyed(b"0123456789abcdef0123456789abcdef")
        .expect("long enough");
    let email = touchline_model::Identifier::parse("email:kim@example.com").expect("valid");
    assert_eq!(keyed.stored(&email), inline.stored(&email));
    assert_eq!(
        config.privacy.text_channels(),
        [touchline_model::Channel::Chatbot]
    );
    assert!(!Config::default()
        .privacy
        .pseudonymiser()
        .expect("off")
        .is_enabled());
    let error = Config::from_toml("[privacy]\nstore_text = [\"app\"]")
        .expect_err("app has no text")
        .to_string();
    assert!(error.contains("chatbot, social"), "{error}");
}
