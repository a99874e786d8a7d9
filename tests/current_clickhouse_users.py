#!/usr/bin/env python3
"""Parses deploy/clickhouse/users.sql on a current ClickHouse (chDB).

chDB runs ClickHouse in process with only the read-only users.xml access
storage, so it cannot execute CREATE USER, ROLE or GRANT (no writeable access
storage) nor switch users; what it can prove is that every statement parses
on a current release (`EXPLAIN AST`) and that the settings the file names
exist. The grants themselves are checked on ClickHouse 18.16 through
users.xml by tests/privacy.rs. Prints `N passed, 0 failed`.
"""

import pathlib
import re
import sys

from chdb import session

# The migration splitter, as touchline-clickhouse splits files.
from current_clickhouse import statements

ROOT = pathlib.Path(__file__).resolve().parent.parent
USERS_SQL = ROOT / "deploy" / "clickhouse" / "users.sql"


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
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
