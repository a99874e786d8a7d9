//! The plan decoder against the oracle (the `Value`-tree decoder it
//! replaces), on the same bytes: the load generator's messages of every
//! channel and schema version, good and malformed, offered to every topic;
//! every truncation, byte change and appended byte of good messages; and
//! random records of writer schemas that evolve the readers in every way the
//! resolution rules cover (promotions, unions on either side, enum symbols,
//! defaults, writer-only fields of every type). Both must give the same
//! record, or the same dead-letter reason.

use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use touchline_loadgen::{generate, Encoder, Payload, Scenario, SchemaIds};
use touchline_model::{Channel, SourceRecord};

use super::oracle::Oracle;
use super::{DecodeError, Decoder, DEFAULT_MAX_MESSAGE_BYTES};
use crate::registry::StaticRegistry;
use crate::{upstream, wire};

/// Both decoders over the same registered schemas.
struct Pair {
    new: Decoder<StaticRegistry>,
    old: Oracle,
    compared: usize,
    mismatches: Vec<String>,
    /// How many decodes gave a record, and each reason.
    outcomes: std::collections::BTreeMap<&'static str, usize>,
}

impl Pair {
    fn new(schemas: &[(u32, String)]) -> Self {
        Pair {
            new: Decoder::new(
                StaticRegistry::new(schemas.iter().cloned()),
                DEFAULT_MAX_MESSAGE_BYTES,
            ),
            old: Oracle::new(schemas.iter().cloned(), DEFAULT_MAX_MESSAGE_BYTES),
            compared: 0,
            mismatches: Vec::new(),
            outcomes: Default::default(),
        }
    }

    /// The upstream versions under ids 1..=6, as the load generator frames them.
    fn upstream() -> Self {
        Pair::new(&upstream_schemas())
    }

    /// Decodes `bytes` with both and notes any difference.
    fn compare(&mut self, channel: Channel, bytes: &[u8], what: &str) {
        self.compared += 1;
        let new = self.new.decode_now(channel, bytes);
        let old = self.old.decode(channel, bytes);
        let kind = old.as_ref().map_or_else(DecodeError::reason, |_| "record");
        *self.outcomes.entry(kind).or_default() += 1;
        if let Some(difference) = difference(&new, &old) {
            if self.mismatches.len() < 20 {
                self.mismatches.push(format!(
                    "{what} on {channel}: {difference}\n  bytes {}",
                    hex(bytes)
                ));
            } else {
                self.mismatches.push(String::new());
            }
        }
    }

    /// Asserts that the decoders agreed on at least `at_least` decodes that
    /// reached each of `reached` (a reason, or `record`).
    fn assert_agree(&self, at_least: usize, reached: &[&str]) {
        eprintln!("{} decodes: {:?}", self.compared, self.outcomes);
        assert!(
            self.mismatches.is_empty(),
            "{} of {} decodes differ, first ones:\n{}",
            self.mismatches.len(),
            self.compared,
            self.mismatches
                .iter()
                .filter(|m| !m.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            self.compared >= at_least,
            "only {} decodes compared",
            self.compared
        );
        for kind in reached {
            assert!(
                self.outcomes.contains_key(kind),
                "no decode gave {kind}: {:?}",
                self.outcomes
            );
        }
    }
}

/// How two outcomes differ: records compared as values or by their debug
/// form (so that a NaN equals a NaN; maps have no order), errors by their
/// dead-letter reason.
fn difference(
    new: &Result<SourceRecord, DecodeError>,
    old: &Result<SourceRecord, DecodeError>,
) -> Option<String> {
    match (new, old) {
        (Ok(a), Ok(b)) if a == b || format!("{a:?}") == format!("{b:?}") => None,
        (Err(a), Err(b)) if a.reason() == b.reason() => None,
        _ => Some(format!(
            "\n  plan   {}\n  oracle {}",
            outcome(new),
            outcome(old)
        )),
    }
}

fn outcome(result: &Result<SourceRecord, DecodeError>) -> String {
    match result {
        Ok(record) => format!("{record:?}"),
        Err(error) => format!("{}: {error}", error.reason()),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn upstream_schemas() -> Vec<(u32, String)> {
    (1..)
        .zip(upstream::ALL.iter().map(|s| s.text.to_owned()))
        .collect()
}

/// A load with every kind of message: all channels and versions, duplicates
/// and the load generator's malformed kinds.
fn load(seed: u64, customers: usize) -> Vec<(Channel, Vec<u8>, String)> {
    let mut scenario = Scenario::new(seed, customers, 1_767_225_600_000, 14);
    scenario.duplicate_rate = 0.02;
    scenario.bad_rate = 0.05;
    let generated = generate(&scenario).expect("a valid scenario");
    let encoder = Encoder::new(&SchemaIds::sequential()).expect("the upstream schemas");
    generated
        .messages
        .iter()
        .map(|message| {
            let what = match &message.payload {
                Payload::Avro { schema, .. } => (*schema).to_owned(),
                Payload::Bad(bad) => format!("{:?} of {}", bad.kind, bad.schema),
            };
            let bytes = encoder.encode(&message.payload).expect("encodes");
            (message.channel, bytes, what)
        })
        .collect()
}

#[test]
fn the_load_generators_messages_decode_as_the_value_tree_did_on_every_topic() {
    let mut pair = Pair::upstream();
    let messages = load(23, 150);
    let bad = messages
        .iter()
        .filter(|(_, _, w)| w.contains(" of "))
        .count();
    assert!(bad >= 20, "{bad} malformed messages");
    for (channel, bytes, what) in &messages {
        for topic in Channel::ALL {
            let what = format!("{what} (a {channel} message)");
            pair.compare(topic, bytes, &what);
        }
    }
    pair.assert_agree(
        4 * 2500,
        &[
            "record",
            "truncated_avro",
            "bad_magic",
            "unknown_schema",
            "wrong_schema_for_topic",
            "invalid_enum",
        ],
    );
}

/// Every cut, every byte set to a few telling values, bytes appended, and the
/// frame pointed at every registered id, of good messages of every version.
#[test]
fn mutated_messages_get_the_same_reason_as_from_the_value_tree() {
    let mut pair = Pair::upstream();
    let messages = load(5, 40);
    let mut per_version: std::collections::BTreeMap<String, usize> = Default::default();
    for (channel, bytes, what) in &messages {
        if what.contains(" of ") {
            continue;
        }
        let seen = per_version.entry(what.clone()).or_default();
        if *seen >= 12 {
            continue;
        }
        *seen += 1;
        mutate(&mut pair, *channel, bytes, what);
    }
    assert_eq!(per_version.len(), upstream::ALL.len(), "{per_version:?}");
    // And seeded random edits of them: one to four bit flips, telling bytes,
    // insertions, deletions, cuts, runs of 0xff, splices.
    let good: Vec<&(Channel, Vec<u8>, String)> = messages
        .iter()
        .filter(|(_, _, w)| !w.contains(" of "))
        .collect();
    let mut rng = Rng(0x6d75_7461);
    for round in 0..20_000 {
        let (channel, bytes, what) = good[rng.below(good.len())];
        let (_, other, _) = good[rng.below(good.len())];
        let edited = random_edits(&mut rng, bytes, other);
        pair.compare(*channel, &edited, &format!("{what} edit {round}"));
    }
    pair.assert_agree(
        70_000,
        &[
            "record",
            "truncated_avro",
            "truncated_frame",
            "unknown_schema",
            "wrong_schema_for_topic",
            "invalid_enum",
            "invalid_avro",
            "trailing_bytes",
        ],
    );
}

/// The mutations of one good message, each compared.
fn mutate(pair: &mut Pair, channel: Channel, bytes: &[u8], what: &str) {
    for cut in 0..bytes.len() {
        pair.compare(channel, &bytes[..cut], &format!("{what} cut at {cut}"));
    }
    for at in wire::HEADER_LEN..bytes.len() {
        for value in [
            0x00,
            0x01,
            0x02,
            0x7f,
            0x80,
            0xff,
            bytes[at] ^ 0x01,
            bytes[at] ^ 0x40,
        ] {
            if value == bytes[at] {
                continue;
            }
            let mut changed = bytes.to_vec();
            changed[at] = value;
            pair.compare(
                channel,
                &changed,
                &format!("{what} byte {at} set to {value:#04x}"),
            );
        }
        // A run of 0xff: a number that never ends, or a huge length.
        let mut run = bytes.to_vec();
        let end = (at + 10).min(run.len());
        run[at..end].fill(0xff);
        pair.compare(channel, &run, &format!("{what} 0xff from {at}"));
    }
    for tail in [&[0u8][..], &[2, 0x61], &[0xff], &[0x80, 0x80]] {
        let mut longer = bytes.to_vec();
        longer.extend_from_slice(tail);
        pair.compare(channel, &longer, &format!("{what} with {tail:?} appended"));
    }
    for id in 0..=8u32 {
        let mut other = bytes.to_vec();
        other[1..5].copy_from_slice(&id.to_be_bytes());
        pair.compare(channel, &other, &format!("{what} framed as schema {id}"));
    }
}

/// One to four random edits of `input`, with `other` to splice from.
fn random_edits(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    const TELLING: [u8; 10] = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x3f, 0x40, 0xc0];
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(8) {
            0 if len > wire::HEADER_LEN => {
                let at = wire::HEADER_LEN + rng.below(len - wire::HEADER_LEN);
                data[at] ^= 1 << rng.below(8);
            }
            1 if len > wire::HEADER_LEN => {
                let at = wire::HEADER_LEN + rng.below(len - wire::HEADER_LEN);
                data[at] = rng.pick(&TELLING);
            }
            2 => {
                let at = rng.below(len + 1);
                data.insert(at, rng.pick(&TELLING));
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(8)).min(len);
                data.drain(at..end);
            }
            4 => data.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(10)).min(len);
                data[at..end].fill(0xff);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ => data.push(rng.pick(&TELLING)),
        }
    }
    data
}

/// Writer schemas that evolve each reader: promotions, unions on either side,
/// enum symbols the reader lacks (with and without a default), missing and
/// extra fields of every type, reordered fields.
const VARIANTS: [(Channel, &str); 6] = [
    (
        Channel::Chatbot,
        r#"{"type": "record", "name": "ChatbotEvent", "namespace": "cx.source.chatbot", "fields": [
            {"name": "x_extra", "type": {"type": "record", "name": "Extra", "fields": [
                {"name": "flag", "type": "boolean"},
                {"name": "kind", "type": {"type": "enum", "name": "ExtraKind", "symbols": ["P", "Q"]}},
                {"name": "tags", "type": {"type": "array", "items": "string"}},
                {"name": "scores", "type": {"type": "map", "values": ["null", "double"]}},
                {"name": "blob", "type": "bytes"},
                {"name": "tag8", "type": {"type": "fixed", "name": "Tag8", "size": 8}},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "nothing", "type": "null"},
                {"name": "f", "type": "float"},
                {"name": "empties", "type": {"type": "array", "items": {"type": "record", "name": "Empty", "fields": []}}}
            ]}},
            {"name": "conversation_id", "type": "bytes"},
            {"name": "event_id", "type": "string"},
            {"name": "occurred_at", "type": "long"},
            {"name": "event_type", "type": {"type": "enum", "name": "ChatbotEventType",
                "symbols": ["USER_MESSAGE", "BOT_MESSAGE", "FROM_THE_FUTURE", "CONVERSATION_STARTED"]}},
            {"name": "visitor_id", "type": ["null", "string"]},
            {"name": "surface", "type": {"type": "enum", "name": "ChatSurface", "symbols": ["WEB", "TEAMS", "LINE"]}},
            {"name": "intent", "type": "string"},
            {"name": "intent_confidence", "type": ["null", "int", "double"]},
            {"name": "text", "type": ["null", "bytes"]},
            {"name": "csat", "type": "long"},
            {"name": "sentiment", "type": ["string", "null"]},
            {"name": "resolved", "type": ["null", "boolean"]},
            {"name": "user", "type": {"type": "record", "name": "ChatUser", "fields": [
                {"name": "phone", "type": ["null", "string"]},
                {"name": "account_id", "type": "string"},
                {"name": "nickname", "type": "string"}
            ]}}
        ]}"#,
    ),
    (
        Channel::Chatbot,
        r#"{"type": "record", "name": "ChatbotEvent", "namespace": "cx.source.chatbot", "fields": [
            {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "conversation_id", "type": "string"},
            {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "event_type", "type": "string"},
            {"name": "visitor_id", "type": "string"},
            {"name": "user", "type": ["null", {"type": "record", "name": "ChatUser", "fields": [
                {"name": "account_id", "type": ["null", "string"]},
                {"name": "email", "type": ["null", "string"]}
            ]}, "string"]},
            {"name": "surface", "type": "string"},
            {"name": "csat", "type": ["null", "int", "long"]},
            {"name": "sentiment", "type": "float"},
            {"name": "language", "type": ["null", "string"]},
            {"name": "bot_version", "type": ["string", "null"]}
        ]}"#,
    ),
    (
        Channel::CallCenter,
        r#"{"type": "record", "name": "CallRecord", "namespace": "cx.source.callcenter", "fields": [
            {"name": "call_id", "type": "string"},
            {"name": "record_type", "type": ["string", {"type": "enum", "name": "RecordType", "symbols": ["SURVEY", "CALL_COMPLETED"]}]},
            {"name": "started_at", "type": "int"},
            {"name": "ani", "type": "string"},
            {"name": "account_id", "type": ["null", "string"]},
            {"name": "queue", "type": "string"},
            {"name": "agent_id", "type": "null"},
            {"name": "wait_seconds", "type": "long"},
            {"name": "talk_seconds", "type": ["int", "null"]},
            {"name": "hold_seconds", "type": "int"},
            {"name": "wrap_seconds", "type": "int"},
            {"name": "transfers", "type": "int"},
            {"name": "disposition", "type": {"type": "enum", "name": "Disposition", "symbols": ["RESOLVED", "NEW_ONE"]}},
            {"name": "survey", "type": ["null", {"type": "record", "name": "Survey", "fields": [
                {"name": "csat", "type": ["null", "long"]},
                {"name": "nps", "type": "int"},
                {"name": "extra", "type": "double"}
            ]}]},
            {"name": "recording_consent", "type": ["null", "boolean"]}
        ]}"#,
    ),
    (
        Channel::CallCenter,
        r#"{"type": "record", "name": "CallRecord", "namespace": "cx.source.callcenter", "fields": [
            {"name": "call_id", "type": "string"},
            {"name": "record_type", "type": {"type": "enum", "name": "RecordType", "symbols": ["SURVEY", "CALL_COMPLETED", "VOICEMAIL"]}},
            {"name": "started_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "caller_number", "type": "string"},
            {"name": "wait_seconds", "type": "int"},
            {"name": "talk_seconds", "type": "int"},
            {"name": "hold_seconds", "type": "int"},
            {"name": "wrap_seconds", "type": "int"},
            {"name": "transfers", "type": "int"}
        ]}"#,
    ),
    (
        Channel::App,
        r#"{"type": "record", "name": "AppEvent", "namespace": "cx.source.app", "fields": [
            {"name": "event_id", "type": "string"},
            {"name": "event_name", "type": "string"},
            {"name": "client_ts", "type": "bytes"},
            {"name": "server_ts", "type": "int"},
            {"name": "device_id", "type": "string"},
            {"name": "platform", "type": {"type": "enum", "name": "Platform", "symbols": ["WEB", "IOS", "ANDROID", "TV"]}},
            {"name": "app_version", "type": "string"},
            {"name": "traits", "type": {"type": "map", "values": ["null", "string"]}},
            {"name": "user_id", "type": ["null", "string", "long"]},
            {"name": "properties", "type": {"type": "map", "values": "bytes"}}
        ]}"#,
    ),
    (
        Channel::Social,
        r#"{"type": "record", "name": "SocialEvent", "namespace": "cx.source.social", "fields": [
            {"name": "id", "type": "string"},
            {"name": "platform", "type": {"type": "enum", "name": "SocialPlatform", "symbols": ["X", "FACEBOOK", "INSTAGRAM", "KAKAO"]}},
            {"name": "kind", "type": {"type": "enum", "name": "SocialKind", "symbols": ["REVIEW", "MENTION", "DIRECT_MESSAGE", "REPLY"]}},
            {"name": "thread_id", "type": "string"},
            {"name": "author_handle", "type": "string"},
            {"name": "author_is_brand", "type": ["boolean", "null"]},
            {"name": "created_at_epoch_s", "type": "int"},
            {"name": "text", "type": "string"},
            {"name": "rating", "type": ["null", "float"]},
            {"name": "sentiment_label", "type": "string"},
            {"name": "linked_customer", "type": ["null", {"type": "record", "name": "LinkedCustomer", "fields": [
                {"name": "email", "type": "string"},
                {"name": "account_id", "type": ["null", "string"]}
            ]}]},
            {"name": "lang", "type": "null"},
            {"name": "tail", "type": {"type": "array", "items": {"type": "record", "name": "Empty", "fields": []}}}
        ]}"#,
    ),
];

/// splitmix64: a small seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

/// Strings that reach the resolution's edge cases: UUIDs in several forms,
/// the special floats, enum symbols, the words apache-avro's reasons looked for.
const STRINGS: [&str; 14] = [
    "",
    "a",
    "NaN",
    "-Infinity",
    "0f8fad5b-d9cb-469f-a165-70867728950e",
    "0F8FAD5B-D9CB-469F-A165-70867728950E",
    "0f8fad5bd9cb469fa16570867728950e",
    "SURVEY",
    "ANDROID",
    "NEGATIVE",
    "union station",
    "héllo",
    "k@example.com",
    "USER_MESSAGE",
];

/// A random value of `schema` (no references: the variants define each named
/// type once).
fn random_value(rng: &mut Rng, schema: &Schema) -> Value {
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(rng.below(2) == 1),
        Schema::Int => Value::Int(rng.pick(&[0, 1, -1, 5, 300, i32::MAX, i32::MIN])),
        Schema::Long => Value::Long(rng.pick(&[
            0,
            3,
            -7,
            1_772_323_200_000,
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN) - 1,
            i64::MAX,
        ])),
        Schema::Date => Value::Date(rng.pick(&[0, 20_000])),
        Schema::TimestampMillis => Value::TimestampMillis(rng.pick(&[0, 1_772_323_200_000])),
        Schema::Float => Value::Float(rng.pick(&[0.0, -0.5, 0.75, f32::MAX])),
        Schema::Double => Value::Double(rng.pick(&[0.0, 0.25, -1e300, 1e-9])),
        Schema::Bytes => Value::Bytes(match rng.below(4) {
            0 => vec![0xff, 0xfe],
            _ => rng.pick(&STRINGS).as_bytes().to_vec(),
        }),
        Schema::String => Value::String(rng.pick(&STRINGS).to_owned()),
        Schema::Uuid(_) => Value::Uuid(apache_avro::Uuid::from_u128(u128::from(rng.next()))),
        Schema::Fixed(fixed) => Value::Fixed(
            fixed.size,
            (0..fixed.size).map(|_| rng.pick(&[0u8, 7, 0xff])).collect(),
        ),
        Schema::Enum(e) => {
            let index = rng.below(e.symbols.len());
            Value::Enum(u32::try_from(index).unwrap_or(0), e.symbols[index].clone())
        }
        Schema::Union(union) => {
            let index = rng.below(union.variants().len());
            Value::Union(
                u32::try_from(index).unwrap_or(0),
                Box::new(random_value(rng, &union.variants()[index])),
            )
        }
        Schema::Array(array) => Value::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, &array.items))
                .collect(),
        ),
        Schema::Map(map) => Value::Map(
            (0..rng.below(4))
                .map(|n| (format!("k{n}"), random_value(rng, &map.types)))
                .collect(),
        ),
        Schema::Record(record) => Value::Record(
            record
                .fields
                .iter()
                .map(|f| (f.name.clone(), random_value(rng, &f.schema)))
                .collect(),
        ),
        other => panic!("no random values of {other:?}"),
    }
}

#[test]
fn evolved_writer_schemas_resolve_as_the_value_tree_did() {
    let mut schemas = upstream_schemas();
    for (n, (_, text)) in (0u32..).zip(VARIANTS.iter()) {
        schemas.push((100 + n, (*text).to_owned()));
    }
    let mut pair = Pair::new(&schemas);
    let mut rng = Rng(0x7061_6972);
    let mut decoded = Vec::new();
    for (n, (channel, text)) in (0u32..).zip(VARIANTS.iter()) {
        let schema = Schema::parse_str(text).expect("a valid variant");
        let writer = GenericDatumWriter::builder(&schema)
            .build()
            .expect("a writer");
        let mut ok = 0usize;
        for round in 0..1000 {
            let value = random_value(&mut rng, &schema);
            let body = writer.write_value_to_vec(value).expect("encodes");
            let framed = wire::frame(100 + n, &body);
            let what = format!("variant {n} record {round}");
            if pair.new.decode_now(*channel, &framed).is_ok() {
                ok += 1;
            }
            pair.compare(*channel, &framed, &what);
            if round < 4 {
                mutate(&mut pair, *channel, &framed, &what);
            }
        }
        decoded.push(ok);
    }
    pair.assert_agree(
        VARIANTS.len() * 1000,
        &["record", "truncated_avro", "invalid_enum", "invalid_avro"],
    );
    // Variant 3 lacks a field the reader has no default for: it never decodes.
    let expected_to_decode = [true, true, true, false, true, true];
    for (n, (ok, expected)) in decoded.iter().zip(expected_to_decode).enumerate() {
        assert_eq!(
            *ok > 3,
            expected,
            "variant {n}: {ok} of 1000 decoded ({decoded:?})"
        );
    }
}

/// Writer schemas whose every message fails resolution in the same way.
#[test]
fn schemas_that_cannot_resolve_fail_as_they_did() {
    let broken = [
        // A reader field with no default missing from the writer.
        r#"{"type": "record", "name": "SocialEvent", "namespace": "cx.source.social", "fields": [
            {"name": "id", "type": "string"}
        ]}"#,
        // A type the reader's type does not take.
        r#"{"type": "record", "name": "SocialEvent", "namespace": "cx.source.social", "fields": [
            {"name": "id", "type": "long"}, {"name": "platform", "type": "string"},
            {"name": "kind", "type": "string"}, {"name": "thread_id", "type": "string"},
            {"name": "author_handle", "type": "string"}, {"name": "author_is_brand", "type": "boolean"},
            {"name": "created_at_epoch_s", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "text", "type": "string"}
        ]}"#,
        // An enum the reader's string does not take.
        r#"{"type": "record", "name": "SocialEvent", "namespace": "cx.source.social", "fields": [
            {"name": "id", "type": "string"}, {"name": "platform", "type": "string"},
            {"name": "kind", "type": "string"}, {"name": "thread_id", "type": "string"},
            {"name": "author_handle", "type": {"type": "enum", "name": "H", "symbols": ["A"]}},
            {"name": "author_is_brand", "type": "boolean"},
            {"name": "created_at_epoch_s", "type": "long"}, {"name": "text", "type": "string"}
        ]}"#,
    ];
    let mut schemas = upstream_schemas();
    for (n, text) in (0u32..).zip(broken.iter()) {
        schemas.push((200 + n, (*text).to_owned()));
    }
    let mut pair = Pair::new(&schemas);
    let mut rng = Rng(0x6272_6f6b);
    for (n, text) in (0u32..).zip(broken.iter()) {
        let schema = Schema::parse_str(text).expect("a valid schema");
        let writer = GenericDatumWriter::builder(&schema)
            .build()
            .expect("a writer");
        for round in 0..20 {
            let body = writer
                .write_value_to_vec(random_value(&mut rng, &schema))
                .expect("encodes");
            let framed = wire::frame(200 + n, &body);
            let what = format!("broken {n} record {round}");
            let error = pair
                .new
                .decode_now(Channel::Social, &framed)
                .expect_err("cannot resolve");
            assert!(!error.is_retryable(), "{error}");
            pair.compare(Channel::Social, &framed, &what);
            if round < 2 {
                mutate(&mut pair, Channel::Social, &framed, &what);
            }
        }
    }
    pair.assert_agree(60, &["invalid_avro", "invalid_enum"]);
}

/// An Avro `long`, zig-zag varint encoded.
fn long(value: i64) -> Vec<u8> {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (zigzag & 0x7f) as u8;
        zigzag >>= 7;
        if zigzag == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// Lengths and counts far past the end of the body are truncation when
/// apache-avro would have tried to allocate for them, and malformed when they
/// are over its allocation limit; nothing is allocated for them either way.
#[test]
fn hostile_lengths_and_counts_are_refused_before_anything_is_allocated() {
    let schemas = [
        (
            300,
            r#"{"type": "record", "name": "AppEvent", "namespace": "cx.source.app", "fields": [
                {"name": "traits", "type": {"type": "map", "values": "string"}}]}"#,
        ),
        (
            301,
            r#"{"type": "record", "name": "AppEvent", "namespace": "cx.source.app", "fields": [
                {"name": "event_id", "type": "string"}]}"#,
        ),
        (
            302,
            r#"{"type": "record", "name": "AppEvent", "namespace": "cx.source.app", "fields": [
                {"name": "nulls", "type": {"type": "array", "items": "null"}}]}"#,
        ),
    ];
    let mut registered = upstream_schemas();
    registered.extend(schemas.iter().map(|(id, text)| (*id, (*text).to_owned())));
    let mut pair = Pair::new(&registered);
    let cases: Vec<(u32, Vec<u8>, &str)> = vec![
        (300, long(1 << 40), "invalid_avro"),
        (300, long(1_000_000), "truncated_avro"),
        (300, [long(-1_000_000), long(5)].concat(), "truncated_avro"),
        (300, [long(1), long(400_000_000)].concat(), "truncated_avro"),
        (300, [long(i64::MIN), long(5)].concat(), "invalid_avro"),
        (301, long(400_000_000), "truncated_avro"),
        (301, long(1 << 40), "invalid_avro"),
        (301, long(-1), "invalid_avro"),
        (302, long(1 << 33), "invalid_avro"),
        // Within the limit and taking no bytes: read, then the reader's
        // missing fields fail it.
        (302, [long(1_000), long(0)].concat(), "invalid_avro"),
    ];
    for (id, body, reason) in cases {
        let framed = wire::frame(id, &body);
        let error = pair
            .new
            .decode_now(Channel::App, &framed)
            .expect_err(reason);
        assert_eq!(
            error.reason(),
            reason,
            "schema {id}, body {}: {error}",
            hex(&body)
        );
        pair.compare(
            Channel::App,
            &framed,
            &format!("schema {id} body {}", hex(&body)),
        );
    }
    pair.assert_agree(10, &["truncated_avro", "invalid_avro"]);
}
