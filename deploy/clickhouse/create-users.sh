#!/bin/bash
# Creates Touchline's ClickHouse users from users.sql beside this file: an
# init script of the clickhouse/clickhouse-server image (mounted into
# /docker-entrypoint-initdb.d/ by docker-compose.yml). The image runs it once,
# on an empty data volume, while the server listens on 127.0.0.1 only, and
# this script connects as the image's administrator (CLICKHOUSE_USER,
# CLICKHOUSE_PASSWORD).
#
# users.sql stays the one list of users and grants; this script only fills in
#   - the passwords, from the variables users.xml reads on ClickHouse 18.16:
#       TOUCHLINE_CH_ADMIN_PASSWORD       touchline_admin ('CHANGE-ME-admin')
#       TOUCHLINE_CH_PIPELINE_PASSWORD    touchline ('CHANGE-ME-pipeline')
#       TOUCHLINE_CH_DASHBOARDS_PASSWORD  dashboards ('CHANGE-ME-dashboards')
#     each sent as its SHA-256 (`IDENTIFIED WITH sha256_hash`), so that no
#     password is quoted into SQL or written to the query log;
#   - the database, CLICKHOUSE_DB (default cx), in place of `cx`.
# It fails, and the container with it, when a password is unset or empty.
# USERS_SQL overrides where users.sql is read from
# (/etc/touchline/clickhouse/users.sql).
#
# The image sources a script that is not executable; the work happens in a
# subshell, so that neither its options nor its variables reach the image's
# entrypoint.

touchline_create_users() (
    set -euo pipefail
    users_sql="${USERS_SQL:-/etc/touchline/clickhouse/users.sql}"
    database="${CLICKHOUSE_DB:-cx}"
    if ! [[ "$database" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
        echo "create-users: CLICKHOUSE_DB '$database' is not a plain identifier" >&2
        exit 1
    fi
    edits=(-e "s/ ON cx\\./ ON $database./g")
    for pair in admin:TOUCHLINE_CH_ADMIN_PASSWORD \
        pipeline:TOUCHLINE_CH_PIPELINE_PASSWORD \
        dashboards:TOUCHLINE_CH_DASHBOARDS_PASSWORD; do
        placeholder="CHANGE-ME-${pair%%:*}"
        variable="${pair#*:}"
        if [ -z "${!variable:-}" ]; then
            echo "create-users: $variable is not set; it is the password of the user created with '$placeholder' in users.sql" >&2
            exit 1
        fi
        hash="$(printf '%s' "${!variable}" | sha256sum | cut -d ' ' -f 1)"
        edits+=(-e "s/IDENTIFIED WITH sha256_password BY '$placeholder'/IDENTIFIED WITH sha256_hash BY '$hash'/")
    done
    sql="$(sed "${edits[@]}" "$users_sql")"
    if grep -q "CHANGE-ME" <<<"$sql"; then
        echo "create-users: $users_sql has a password placeholder this script does not fill in" >&2
        exit 1
    fi
    echo "create-users: users of $users_sql in database $database"
    clickhouse-client --host 127.0.0.1 --user "${CLICKHOUSE_USER:-default}" \
        --password "${CLICKHOUSE_PASSWORD:-}" --multiquery <<<"$sql"
)

touchline_create_users
