//! Versioned schema objects: the SQL files of `schemas/clickhouse/`, applied
//! in order, each once, recorded in `schema_migrations`.
//!
//! Every statement is idempotent on its own (`IF NOT EXISTS`), so two
//! instances migrating at once, or a migration interrupted half-way, converge;
//! an `ALTER TABLE ... ADD COLUMN` (ClickHouse 18.16 has no `IF NOT EXISTS`
//! for it) that finds its column already there counts as applied.
//! The SQL runs unchanged on ClickHouse 18.16 and on current releases; the
//! test suite proves both.

use clickhouse::Row;
use serde::Deserialize;

use crate::derived::{
    ChannelDayRow, ConsistencyDayRow, ContactFactRow, ContactRow, CustomerStateRow,
    IdentityChannelRow, ScoreRow,
};
use crate::error::SinkError;
use crate::rows::{DeadLetterRow, IdentityRow, Table, TextRow, TimelineRow};
use crate::warehouse::Warehouse;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub id: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($id:literal, $name:literal) => {
        Migration {
            id: $id,
            name: $name,
            sql: include_str!(concat!("../../../schemas/clickhouse/", $name, ".sql")),
        }
    };
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_timeline"),
    migration!(2, "0002_dead_letters"),
    migration!(3, "0003_identities"),
    migration!(4, "0004_dead_letter_keys"),
    migration!(5, "0005_contacts_journeys"),
    migration!(6, "0006_privacy"),
];

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS {database}.schema_migrations \
     (id UInt32, name String, applied_at DateTime) \
     ENGINE = ReplacingMergeTree ORDER BY id";

/// The statements of a migration file: split at `;` ending a line, with
/// comment-only and blank text dropped.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let code = line.trim();
        if code.starts_with("--") || code.is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if code.ends_with(';') {
            let statement = current.trim().trim_end_matches(';').trim().to_owned();
            if !statement.is_empty() {
                out.push(statement);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if !rest.is_empty() {
        out.push(rest.to_owned());
    }
    out
}

#[derive(Row, Deserialize)]
struct AppliedRow {
    id: u32,
}

/// Creates the database if needed and applies the migrations not yet applied.
/// Returns the names of those it applied.
pub async fn migrate(warehouse: &Warehouse) -> Result<Vec<&'static str>, SinkError> {
    warehouse
        .execute_unbound(&format!(
            "CREATE DATABASE IF NOT EXISTS {}",
            warehouse.database()
        ))
        .await?;
    warehouse.execute(LEDGER).await?;
    let applied: Vec<u32> = warehouse
        .client()
        .query("SELECT id FROM schema_migrations FINAL")
        .fetch_all::<AppliedRow>()
        .await?
        .into_iter()
        .map(|row| row.id)
        .collect();
    let mut done = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.id)) {
        for statement in statements(migration.sql) {
            match warehouse.execute(&statement).await {
                Err(SinkError::Rejected(error))
                    if statement.starts_with("ALTER")
                        && error.to_string().contains("already exists") =>
                {
                    tracing::info!(migration = migration.name, %error, "column already added");
                }
                result => result?,
            }
        }
        warehouse
            .execute(&format!(
                "INSERT INTO {{database}}.schema_migrations (id, name, applied_at) \
                 VALUES ({}, '{}', now())",
                migration.id, migration.name
            ))
            .await?;
        tracing::info!(migration = migration.name, "applied migration");
        done.push(migration.name);
    }
    Ok(done)
}

#[derive(Row, Deserialize)]
struct ColumnRow {
    name: String,
}

/// A table the sink writes and the columns it writes.
fn columns<T: Table>() -> (&'static str, &'static [&'static str]) {
    (<T as Table>::NAME, <T as Row>::COLUMN_NAMES)
}

/// Checks that the tables the sink writes exist with the columns it writes,
/// so that a missing migration fails at start-up with a clear message instead
/// of at the first insert.
pub async fn check(warehouse: &Warehouse) -> Result<(), SinkError> {
    let expected: [(&str, &[&str]); 11] = [
        columns::<TimelineRow>(),
        columns::<DeadLetterRow>(),
        columns::<IdentityRow>(),
        columns::<TextRow>(),
        columns::<ContactFactRow>(),
        columns::<ScoreRow>(),
        columns::<IdentityChannelRow>(),
        columns::<ContactRow>(),
        columns::<CustomerStateRow>(),
        columns::<ChannelDayRow>(),
        columns::<ConsistencyDayRow>(),
    ];
    for (table, columns) in expected {
        let present: Vec<String> = warehouse
            .client()
            .query("SELECT name FROM system.columns WHERE database = ? AND table = ?")
            .bind(warehouse.database())
            .bind(table)
            .fetch_all::<ColumnRow>()
            .await?
            .into_iter()
            .map(|row| row.name)
            .collect();
        if present.is_empty() {
            return Err(SinkError::Schema(format!(
                "table {}.{table} does not exist",
                warehouse.database()
            )));
        }
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !present.iter().any(|p| p == c))
            .collect();
        if !missing.is_empty() {
            return Err(SinkError::Schema(format!(
                "table {}.{table} lacks columns {}",
                warehouse.database(),
                missing.join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_files_into_statements() {
        let sql = "-- a comment; with a semicolon\nCREATE TABLE a\n(x Int8);\n\n\
                   CREATE VIEW b AS\nSELECT 1;\nSELECT 2";
        assert_eq!(
            statements(sql),
            [
                "CREATE TABLE a\n(x Int8)",
                "CREATE VIEW b AS\nSELECT 1",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn every_migration_has_statements_and_a_unique_increasing_id() {
        let mut last = 0;
        for migration in MIGRATIONS {
            assert!(migration.id > last, "{} out of order", migration.name);
            last = migration.id;
            let statements = statements(migration.sql);
            assert!(!statements.is_empty(), "{} is empty", migration.name);
            for statement in statements {
                assert!(
                    statement.contains("{database}."),
                    "{}: every object is qualified with {{database}}: {statement}",
                    migration.name
                );
            }
        }
    }
}
