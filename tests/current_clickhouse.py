#!/usr/bin/env python3
"""Proves Touchline's ClickHouse SQL on a current release.

The end-to-end suite runs against the ClickHouse these machines install
(18.16). This check runs the same files on a current engine, in process
through chDB (`pip install chdb-core`): every migration statement, then every
query under schemas/clickhouse/queries/, over a few rows that include a
redelivered event. It must print `N passed, 0 failed`.
"""

import pathlib
import sys

import chdb
from chdb import session

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas" / "clickhouse"
DATABASE = "cx_current_check"


def statements(sql: str) -> list[str]:
    """Splits a migration file exactly as touchline-clickhouse does."""
    out, current = [], []
    for line in sql.splitlines():
        code = line.strip()
        if not code or code.startswith("--"):
            continue
        current.append(line)
        if code.endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                out.append(statement)
            current = []
    rest = "\n".join(current).strip()
    if rest:
        out.append(rest)
    return out


def main() -> int:
    db = session.Session()
    passed, failures = 0, []

    def check(name, fn):
        nonlocal passed
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception as error:  # noqa: BLE001 - every failure is reported
            failures.append(name)
            print(f"FAIL {name}: {error}")

    version = db.query("SELECT version()", "CSV").bytes().decode().strip()
    print(f"chDB {chdb.__version__}, ClickHouse {version}")
    check("create database", lambda: db.query(f"CREATE DATABASE IF NOT EXISTS {DATABASE}"))
    for path in sorted(SCHEMAS.glob("*.sql")):
        for i, statement in enumerate(statements(path.read_text())):
            sql = statement.replace("{database}", DATABASE)
            check(f"{path.name} statement {i + 1}", lambda sql=sql: db.query(sql))
            # Idempotent: every statement may run twice, but for ALTERs, which
            # the migration ledger applies once (18.16 has no ADD COLUMN IF
            # NOT EXISTS).
            if not sql.lstrip().upper().startswith("ALTER"):
                check(f"{path.name} statement {i + 1} again", lambda sql=sql: db.query(sql))

    def insert_rows():
        db.query(
            f"INSERT INTO {DATABASE}.timeline_events "
            "(event_id, channel, occurred_at, occurred_at_ms, topic, contact_id, identity_key, kind, csat, "
            "ces, nps, sentiment, source_topic, source_partition, source_offset, ingested_at, version) VALUES "
            "('e1', 'chatbot', 1772323200, 1772323200000, 'billing', 'chatbot:c1', 'email:a@b.co', 'SURVEY_RESPONSE', 5, NULL, NULL, NULL, 'cx.chatbot.events', 0, 1, 1772323300, 1), "
            "('e1', 'chatbot', 1772323200, 1772323200000, 'billing', 'chatbot:c1', 'email:a@b.co', 'SURVEY_RESPONSE', 5, NULL, NULL, NULL, 'cx.chatbot.events', 0, 1, 1772323400, 2), "
            "('e2', 'call_center', 1772323260, 1772323260000, 'other', 'call_center:k', '', 'SURVEY', 2, 4, 9, NULL, 'cx.callcenter.records', 1, 7, 1772323300, 1)"
        )
        db.query(
            f"INSERT INTO {DATABASE}.identity_assignments VALUES "
            "('email:a@b.co', 'c_old', 'email:a@b.co', 1, 1772323300), "
            "('email:a@b.co', 'c_new', 'account:7', 2, 1772323400)"
        )
        db.query(
            f"INSERT INTO {DATABASE}.dead_letter_log "
            "(topic, `partition`, `offset`, key, reason, error, payload, received_at) VALUES "
            "('cx.app.events', 0, 5, 'device-1', 'bad_magic', 'first byte is 0x01', 'raw', 1772323300)"
        )

    check("insert sample rows", insert_rows)

    def timeline_dedups():
        rows = db.query(f"SELECT event_id, version FROM {DATABASE}.timeline_events FINAL ORDER BY event_id", "CSV")
        text = rows.bytes().decode().split()
        count = db.query(f"SELECT count() FROM {DATABASE}.v_timeline", "CSV").bytes().decode().strip()
        assert count == "2", f"v_timeline shows {count} rows for 2 distinct events: {text}"
        customers = db.query(
            f"SELECT event_id, customer_id FROM {DATABASE}.v_timeline ORDER BY event_id", "CSV"
        ).bytes().decode().split()
        assert customers == ['"e1","c_new"', '"e2",""'], f"customer ids follow identity: {customers}"

    check("v_timeline shows each event once, with its current customer", timeline_dedups)

    def insert_derived_rows():
        db.query(
            f"INSERT INTO {DATABASE}.contacts VALUES "
            "('chatbot:c1', 'chatbot', 'billing', 1772323200, 1772323200000, 0, 0, 0, NULL, NULL, NULL, 1000, NULL, 1, 'email:a@b.co', 1), "
            "('chatbot:c1', 'chatbot', 'billing', 1772236800, 1772236800000, 1, 1, 0, 5, NULL, NULL, 1500, NULL, 2, 'email:a@b.co', 2)"
        )
        db.query(
            f"INSERT INTO {DATABASE}.customer_state VALUES "
            "('c_new', ['chatbot'], 1, NULL, ['j_1'], ['billing'], [1772323200000], [1], [1], [0], [0], [0], [['chatbot:c1']], [['chatbot']], 1, 1772323300), "
            "('c_new', ['chatbot', 'app'], 2, 1.5, ['j_0', 'j_2'], ['billing', 'other'], [1772236800000, 1772323200000], [1, 1], [1, 1], [0, 0], [1, 0], [1, 0], [['chatbot:c1'], ['app:e9']], [['chatbot'], ['app']], 2, 1772323400), "
            "('c_old', [], 0, NULL, [], [], [], [], [], [], [], [], [], [], 3, 1772323400)"
        )
        db.query(
            f"INSERT INTO {DATABASE}.channel_daily VALUES "
            "('2026-03-01', 'chatbot', 1, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), "
            "('2026-03-01', 'chatbot', 2, 1, 2, 3.0, 1.0, 2.0, 0, 0, 0, 0, 2, 1, 2, 1, 3, 1, 2, 0, 0, 0, 0, 2), "
            "('2026-03-02', 'app', 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)"
        )
        db.query(
            f"INSERT INTO {DATABASE}.consistency_daily VALUES "
            "('2026-03-01', 1, 0, 1, 0, 0, NULL, NULL, 1), ('2026-03-01', 2, 1, 1, 1, 1, NULL, 12.5, 2)"
        )

    check("insert sample derived rows", insert_derived_rows)

    def derived_views():
        def rows(sql):
            return db.query(sql.replace("{db}", DATABASE), "CSV").bytes().decode().split()

        assert rows("SELECT contact_id, customer_id, toDate(started_at), resolved, first_response_s FROM {db}.v_contacts") == [
            '"chatbot:c1","c_new","2026-02-28",1,1.5'
        ], "v_contacts shows the newest version with its current customer"
        journeys = rows("SELECT journey_id, customer_id, topic, contacts, contact_ids FROM {db}.v_journeys ORDER BY journey_id")
        assert journeys == [
            '"j_0","c_new","billing",1,"[\'chatbot:c1\']"',
            '"j_2","c_new","other",1,"[\'app:e9\']"',
        ], f"v_journeys unrolls the newest state: {journeys}"
        assert rows("SELECT customer_id, channels_used, contacts, journeys, csat_range FROM {db}.v_customers") == [
            '"c_new",2,2,2,1.5'
        ], "v_customers hides a customer merged away"
        daily = rows("SELECT day, channel, contacts, resolution_rate, nps, containment_rate FROM {db}.v_channel_daily")
        assert daily == ['"2026-03-01","chatbot",2,0.5,-33.333333333333336,0.5'], f"v_channel_daily: {daily}"
        consistency = rows("SELECT day, journeys, multichannel_rate, resolution_gap_pp FROM {db}.v_consistency_daily")
        assert consistency == ['"2026-03-01",2,0.5,12.5'], f"v_consistency_daily: {consistency}"

    check("derived views show the newest versions, unrolled and with rates", derived_views)

    for path in sorted((SCHEMAS / "queries").glob("*.sql")):
        sql = path.read_text().replace("{database}", DATABASE)

        def run_query(sql=sql, name=path.name):
            result = db.query(sql, "CSV").bytes().decode().strip()
            assert result, f"{name} returned no rows over the sample data"

        check(f"query {path.name} returns rows", run_query)

    print(f"{passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
