"""The consumer a data engineer writes first: Kafka to ClickHouse in Python.

The peer of Touchline in `scripts/bench`: it reads the four source topics with
its own consumer group (confluent-kafka), decodes each Confluent-framed Avro
message with fastavro against the writer schema fetched from the schema
registry by id (cached) and resolved into the newest upstream schema of the
channel, applies the SPEC section 2 normalisation of the timeline row fields
and the section 3 identifier normal forms (for the row's identity key; the
`phonenumbers` port of libphonenumber, default region KR), and inserts the rows
into a copy of `timeline_events` over ClickHouse's HTTP interface, as
JSONEachRow, one request per batch. Offsets are committed after each insert
(at least once).

Not done, unlike Touchline: dead-letter rows (a message that does not decode
or normalise is counted and skipped), publishing identity links, the identity
graph, metrics, retries with backoff beyond a simple loop.

Usage:
  python peer.py --brokers 127.0.0.1:9092 --topic-prefix bench.x. \
      --registry http://127.0.0.1:8081 --clickhouse http://127.0.0.1:8123 \
      --database cx_peer --group-id peer-x --schemas schemas/upstream

Reads the topics to the ends they had at start-up, then prints one JSON
object: messages, rows, skipped, seconds.
"""

import argparse
import io
import json
import struct
import sys
import time
from datetime import datetime

import fastavro
import phonenumbers
import requests
from confluent_kafka import Consumer, TopicPartition

CHANNELS = {
    "cx.chatbot.events": ("chatbot", "chatbot.v2.avsc"),
    "cx.app.events": ("app", "app.v1.avsc"),
    "cx.social.events": ("social", "social.v1.avsc"),
    "cx.callcenter.records": ("call_center", "callcenter.v2.avsc"),
}
TOPICS = ("billing", "delivery", "account", "product", "technical")
EARLIEST_VALID_MS = 946_684_800_000
MAX_FUTURE_MS = 24 * 60 * 60 * 1000
MAX_CLIENT_DRIFT_MS = 10 * 60 * 1000
SENTIMENT = {"POSITIVE": 1.0, "NEUTRAL": 0.0, "NEGATIVE": -1.0}


class BadData(Exception):
    pass


def strip_logical_types(node):
    """Times stay integers and uuids strings, as the timeline stores them."""
    if isinstance(node, dict):
        return {k: strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [strip_logical_types(v) for v in node]
    return node


class Schemas:
    def __init__(self, registry, directory):
        self.registry = registry.rstrip("/")
        self.session = requests.Session()
        self.readers = {}
        for topic, (_, file) in CHANNELS.items():
            with open(f"{directory}/{file}") as f:
                self.readers[topic] = fastavro.parse_schema(strip_logical_types(json.load(f)))
        self.writers = {}

    def writer(self, schema_id):
        schema = self.writers.get(schema_id)
        if schema is None:
            response = self.session.get(f"{self.registry}/schemas/ids/{schema_id}", timeout=10)
            if response.status_code == 404:
                raise BadData(f"unknown schema {schema_id}")
            response.raise_for_status()
            text = json.loads(response.json()["schema"])
            schema = fastavro.parse_schema(strip_logical_types(text))
            self.writers[schema_id] = schema
        return schema


def decode(schemas, topic, payload):
    if payload is None or len(payload) < 5 or payload[0] != 0:
        raise BadData("bad frame")
    (schema_id,) = struct.unpack(">I", payload[1:5])
    body = io.BytesIO(payload[5:])
    try:
        record = fastavro.schemaless_reader(body, schemas.writer(schema_id), schemas.readers[topic])
    except BadData:
        raise
    except Exception as error:  # noqa: BLE001 - any decoding failure is bad data
        raise BadData(str(error)) from error
    if body.tell() != len(payload) - 5:
        raise BadData("trailing bytes")
    return record


# --- SPEC section 3: identifier normal forms ---------------------------------


def _trimmed(raw):
    if raw is None:
        return None
    value = raw.strip()
    return value or None


def email_id(raw):
    value = _trimmed(raw)
    if value is None:
        return None
    value = value.lower()
    parts = value.split("@")
    if len(parts) != 2 or not parts[0] or not parts[1] or "." not in parts[1]:
        return None
    return "email:" + value


def phone_id(raw):
    value = _trimmed(raw)
    if value is None or value.lower() == "anonymous":
        return None
    try:
        number = phonenumbers.parse(value, "KR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return "phone:" + phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def social_id(platform, handle):
    platform = platform.strip()
    if not platform or ":" in platform:
        return None
    handle = (handle or "").strip().lstrip("@").lstrip()
    if not handle:
        return None
    return f"social:{platform.lower()}:{handle.lower()}"


def plain_id(kind, raw):
    value = _trimmed(raw)
    return None if value is None else f"{kind}:{value}"


KIND_RANK = {"account": 0, "email": 1, "phone": 2, "social": 3, "device": 4, "visitor": 5}


def identity_key(ids):
    """The first identifier in anchor order (kind, then value), or ''."""
    found = [i for i in ids if i is not None]
    if not found:
        return ""
    return min(found, key=lambda i: (KIND_RANK[i.split(":", 1)[0]], i))


def customer_ids(person):
    if not person:
        return []
    return [
        plain_id("account", person.get("account_id")),
        email_id(person.get("email")),
        phone_id(person.get("phone")),
    ]


# --- SPEC section 2: the timeline row -----------------------------------------


def topic_of(label):
    if label is None:
        return "other"
    label = label.strip().lower()
    return label if label in TOPICS else "other"


def scaled(value, low, high):
    if value is None or not (low <= value <= high):
        return None
    return value


def parse_int(text):
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def non_empty(value, field):
    if not value or not value.strip():
        raise BadData(f"empty {field}")


def row_of(channel, r):
    sentiment = None
    csat = ces = nps = None
    contact = ""
    if channel == "chatbot":
        non_empty(r["event_id"], "event_id")
        non_empty(r["conversation_id"], "conversation_id")
        event_id = r["event_id"]
        occurred = r["occurred_at"]
        intent = r.get("intent")
        topic = topic_of(intent.split(".")[0] if intent is not None else None)
        contact = "chatbot:" + r["conversation_id"]
        kind = r["event_type"]
        csat = scaled(r.get("csat"), 1, 5)
        s = r.get("sentiment")
        sentiment = s if s is not None and -1.0 <= s <= 1.0 else None
        ids = customer_ids(r.get("user")) + [plain_id("visitor", r["visitor_id"])]
    elif channel == "app":
        non_empty(r["event_id"], "event_id")
        event_id = r["event_id"]
        server_ms = r["server_ts"] // 1000
        occurred = server_ms
        try:
            client_ms = int(datetime.fromisoformat(r["client_ts"].strip()).timestamp() * 1000)
            if abs(client_ms - server_ms) <= MAX_CLIENT_DRIFT_MS:
                occurred = client_ms
        except ValueError:
            pass
        props = r.get("properties") or {}
        kind = r["event_name"]
        if kind == "feedback_submitted":
            csat = scaled(parse_int(props.get("rating")), 1, 5)
        elif kind == "nps_answered":
            nps = scaled(parse_int(props.get("nps")), 0, 10)
        topic = topic_of(props.get("topic"))
        if kind == "support_request":
            contact = "app:" + event_id
        traits = r.get("traits") or {}
        ids = [
            plain_id("account", r.get("user_id")),
            email_id(traits.get("email")),
            phone_id(traits.get("phone")),
            plain_id("device", r["device_id"]),
        ]
    elif channel == "social":
        non_empty(r["id"], "id")
        non_empty(r["thread_id"], "thread_id")
        platform = r["platform"].lower()
        event_id = f"{platform}:{r['id']}"
        occurred = r["created_at_epoch_s"] * 1000
        kind = r["kind"]
        if kind == "REVIEW":
            csat = scaled(r.get("rating"), 1, 5)
        sentiment = SENTIMENT.get(r.get("sentiment_label"))
        topic = topic_of(r.get("topic"))
        contact = f"social:{platform}:{r['thread_id']}"
        if r["author_is_brand"]:
            ids = []
        else:
            ids = customer_ids(r.get("linked_customer")) + [
                social_id(r["platform"], r["author_handle"])
            ]
    else:
        non_empty(r["call_id"], "call_id")
        event_id = f"{r['call_id']}:{r['record_type']}"
        occurred = r["started_at"]
        survey = r.get("survey") or {}
        csat = scaled(survey.get("csat"), 1, 5)
        ces = scaled(survey.get("ces"), 1, 7)
        nps = scaled(survey.get("nps"), 0, 10)
        topic = topic_of(r["queue"])
        contact = "call_center:" + r["call_id"]
        kind = r["record_type"]
        ids = [plain_id("account", r.get("account_id")), phone_id(r["caller_number"])]
    return {
        "event_id": event_id,
        "channel": channel,
        "occurred_at": max(occurred // 1000, 0),
        "occurred_at_ms": occurred,
        "topic": topic,
        "contact_id": contact,
        "identity_key": identity_key(ids),
        "kind": kind,
        "csat": csat,
        "ces": ces,
        "nps": nps,
        "sentiment": sentiment,
    }


def check_time(occurred, now_ms):
    if occurred < EARLIEST_VALID_MS or occurred > now_ms + MAX_FUTURE_MS:
        raise BadData("timestamp out of range")


# --- the loop ------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--registry", default="http://127.0.0.1:8081")
    parser.add_argument("--clickhouse", default="http://127.0.0.1:8123")
    parser.add_argument("--database", required=True)
    parser.add_argument("--group-id", required=True)
    parser.add_argument("--schemas", required=True, help="directory of the upstream .avsc files")
    parser.add_argument("--batch", type=int, default=20000)
    parser.add_argument("--timeout-s", type=float, default=1800)
    args = parser.parse_args()

    started = time.monotonic()
    schemas = Schemas(args.registry, args.schemas)
    session = requests.Session()
    insert_url = args.clickhouse.rstrip("/") + "/"
    insert_query = f"INSERT INTO {args.database}.timeline_events FORMAT JSONEachRow"
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    topics = {args.topic_prefix + t: t for t in CHANNELS}
    ends = {}
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=30)
        for partition in metadata.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
            if high > low:
                ends[(topic, partition)] = high
    consumer.subscribe(list(topics))
    done = {}
    messages = rows_written = skipped = first_batch = 0
    first = last = None
    deadline = started + args.timeout_s
    while len(done) < len(ends) and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=args.batch, timeout=0.5)
        if not batch:
            continue
        now_ms = int(time.time() * 1000)
        now_s = now_ms // 1000
        lines = []
        for message in batch:
            if message.error():
                continue
            messages += 1
            topic = message.topic()
            key = (topic, message.partition())
            if key in ends and message.offset() + 1 >= ends[key]:
                done[key] = True
            source = topics.get(topic)
            if source is None:
                continue
            try:
                record = decode(schemas, source, message.value())
                row = row_of(CHANNELS[source][0], record)
                check_time(row["occurred_at_ms"], now_ms)
            except (BadData, KeyError, TypeError, AttributeError):
                skipped += 1
                continue
            row["source_topic"] = topic
            row["source_partition"] = message.partition()
            row["source_offset"] = message.offset()
            row["ingested_at"] = now_s
            row["version"] = now_ms * 1000
            lines.append(json.dumps(row))
        if lines:
            body = ("\n".join(lines) + "\n").encode()
            while True:
                try:
                    response = session.post(
                        insert_url, params={"query": insert_query}, data=body, timeout=60
                    )
                    if response.status_code == 200:
                        break
                    print(f"peer: insert failed: {response.text[:200]}", file=sys.stderr)
                except requests.RequestException as error:
                    print(f"peer: insert failed: {error}", file=sys.stderr)
                time.sleep(1)
            rows_written += len(lines)
        consumer.commit(asynchronous=False)
        last = time.monotonic()
        if first is None:
            first, first_batch = last, messages
    consumer.close()
    wall = time.monotonic() - started
    span = (last - first) if first is not None else 0.0
    print(
        json.dumps(
            {
                "complete": len(done) == len(ends),
                "messages": messages,
                "rows": rows_written,
                "skipped": skipped,
                "wall_s": wall,
                "first_to_last_batch_s": span,
                # Steady rate: messages after the first batch over the time
                # from the first batch's commit to the last one's.
                "messages_per_s": (messages - first_batch) / span if span > 0 else 0.0,
            }
        )
    )


if __name__ == "__main__":
    main()
