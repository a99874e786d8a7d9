#!/usr/bin/env python3
"""Parses deploy/clickhouse/users.sql on a current ClickHouse (chDB).

chDB runs ClickHouse in process with only the read-only users.xml access
storage, so it cannot execute CREATE USER, ROLE or GRANT (no writeable access
storage) nor switch users; what it can prove is that every statement parses
on a current release (`EXPLAIN AST`) and that the settings the file names
exist. The grants themselves are checked on ClickHouse 18.16 through
users.xml by tests/privacy.rs.

It also runs create-users.sh, the compose stack's init script, with a stand-in
clickhouse-client that keeps what it is sent: every statement of that must
parse too, each user get the SHA-256 of its password variable, the grants
name CLICKHOUSE_DB, and an unset password must stop it. Prints `N passed, 0
failed`.
"""

import hashlib
import os
import pathlib
import re
import subprocess
import sys
import tempfile

from chdb import session

# The migration splitter, as touchline-clickhouse splits files.
from current_clickhouse import statements

ROOT = pathlib.Path(__file__).resolve().parent.parent
USERS_SQL = ROOT / "deploy" / "clickhouse" / "users.sql"
CREATE_USERS = ROOT / "deploy" / "clickhouse" / "create-users.sh"

# Users of users.sql and the variables create-users.sh reads their passwords
# from; the passwords hold what a naive substitution would get wrong.
PASSWORDS = {
    "touchline_admin": ("TOUCHLINE_CH_ADMIN_PASSWORD", "it's a \\ & / test"),
    "touchline": ("TOUCHLINE_CH_PIPELINE_PASSWORD", "pipe'line"),
    "dashboards": ("TOUCHLINE_CH_DASHBOARDS_PASSWORD", "dash$boards"),
}


def run_create_users(env: dict[str, str]) -> tuple[int, str | None, str]:
    """Runs create-users.sh with a clickhouse-client that keeps what it is
    sent; returns the exit status, that SQL (None if nothing was sent) and
    the script's stderr."""
    with tempfile.TemporaryDirectory() as stub:
        client = pathlib.Path(stub) / "clickhouse-client"
        client.write_text('#!/bin/sh\ncat > "$0.sql"\n')
        client.chmod(0o755)
        env = {
            "PATH": f"{stub}:{os.environ['PATH']}",
            "USERS_SQL": str(USERS_SQL),
            **env,
        }
        result = subprocess.run(
            ["bash", str(CREATE_USERS)], env=env, capture_output=True, text=True
        )
        sent = pathlib.Path(f"{client}.sql")
        return result.returncode, sent.read_text() if sent.exists() else None, result.stderr


def main() -> int:
    db = session.Session()
    passed, failed = 0, 0
    text = USERS_SQL.read_text()
    for statement in statements(text):
        first = statement.splitlines()[0]
        try:
            db.query(f"EXPLAIN AST {statement}", "CSV")
            passed += 1
            print(f"ok   parses: {first}")
        except Exception as error:  # noqa: BLE001 - every failure is reported
            failed += 1
            print(f"FAIL {first}: {error}")
    for setting in sorted(set(re.findall(r"SETTINGS (\w+) =", text))):
        rows = db.query(
            f"SELECT count() FROM system.settings WHERE name = '{setting}'", "CSV"
        ).bytes().decode().strip()
        if rows == "1":
            passed += 1
            print(f"ok   setting {setting} exists")
        else:
            failed += 1
            print(f"FAIL setting {setting} does not exist")

    env = {variable: password for variable, password in PASSWORDS.values()}
    status, sent, stderr = run_create_users({**env, "CLICKHOUSE_DB": "cx_renamed"})
    sent = sent or ""
    checks = [("create-users.sh exits 0 and sends SQL", status == 0 and sent, stderr)]
    for statement in statements(sent):
        first = statement.splitlines()[0]
        try:
            db.query(f"EXPLAIN AST {statement}", "CSV")
            checks.append((f"create-users.sh sends, parses: {first}", True, ""))
        except Exception as error:  # noqa: BLE001 - every failure is reported
            checks.append((f"create-users.sh sends {first}", False, error))
    for user, (variable, password) in PASSWORDS.items():
        digest = hashlib.sha256(password.encode()).hexdigest()
        expected = f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_hash BY '{digest}'"
        checks.append((f"{user} gets the SHA-256 of {variable}", expected in sent, sent))
        checks.append((f"no password of {variable} in the SQL", password not in sent, sent))
    checks.append((
        "grants name CLICKHOUSE_DB",
        " ON cx." not in sent and " ON cx_renamed.v_timeline " in sent,
        sent,
    ))
    for variable, _ in PASSWORDS.values():
        status, sent, stderr = run_create_users(
            {k: v for k, v in env.items() if k != variable}
        )
        checks.append((
            f"create-users.sh sends nothing and fails without {variable}",
            status != 0 and variable in stderr and sent is None,
            stderr,
        ))
    for name, ok, detail in checks:
        if ok:
            passed += 1
            print(f"ok   {name}")
        else:
            failed += 1
            print(f"FAIL {name}: {detail}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
