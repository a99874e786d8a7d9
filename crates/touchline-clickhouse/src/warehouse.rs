use std::fmt;

use clickhouse::{Client, Compression};
use serde::Deserialize;

use crate::error::SinkError;
use crate::rows::Table;

/// Where and as whom to reach ClickHouse.
#[derive(Clone)]
pub struct ClickHouseConfig {
    /// HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The database holding Touchline's tables and views.
    pub database: String,
    pub user: String,
    pub password: String,
}

impl fmt::Debug for ClickHouseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickHouseConfig")
            .field("url", &self.url)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A ClickHouse server version, as `SELECT version()` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// Parses `18.16.1`, `25.8.2.29` and the like.
    pub fn parse(text: &str) -> Option<ServerVersion> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(ServerVersion { major, minor })
    }

    /// Whether the server supports what the client's row validation and
    /// compressed inserts rely on. 18.16 does not; 23.x and later do.
    pub fn is_modern(self) -> bool {
        self.major >= 23
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The longest query Touchline sends, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 << 20;

/// The most syntax-tree nodes of a query Touchline sends.
pub const MAX_AST_ELEMENTS: usize = 1 << 20;

/// A connection to the ClickHouse that holds Touchline's database, configured
/// for the server's version.
#[derive(Clone)]
pub struct Warehouse {
    /// Bound to no database: for creating it.
    server: Client,
    client: Client,
    database: String,
    version: ServerVersion,
}

/// The row of a `SELECT count() AS n ...`.
#[derive(clickhouse::Row, Deserialize)]
pub(crate) struct Count {
    pub(crate) n: u64,
}

#[derive(clickhouse::Row, Deserialize)]
struct VersionRow {
    version: String,
}

impl Warehouse {
    /// Connects, asks the server's version, and configures the client for it.
    pub async fn connect(config: &ClickHouseConfig) -> Result<Warehouse, SinkError> {
        let base = Client::default()
            .with_url(&config.url)
            .with_user(&config.user)
            .with_password(&config.password);
        let probe = base
            .clone()
            .with_validation(false)
            .with_compression(Compression::None);
        let VersionRow { version } = probe
            .query("SELECT version() AS version")
            .fetch_one::<VersionRow>()
            .await?;
        let version = ServerVersion::parse(&version).ok_or_else(|| {
            SinkError::Schema(format!("unrecognised ClickHouse version `{version}`"))
        })?;
        let client = if version.is_modern() {
            base.with_validation(true)
                .with_compression(Compression::Lz4)
        } else {
            probe
        };
        tracing::info!(url = %config.url, %version, modern = version.is_modern(), "connected to ClickHouse");
        Ok(Warehouse {
            server: client.clone(),
            // Derived tables are recomputed from reads with long lists of
            // values (see `derived`): allow queries up to 16 MiB, not 256 KiB, of
            // up to a million syntax-tree nodes (one per listed value), not
            // 50,000.
            client: client
                .with_database(&config.database)
                .with_option("max_query_size", MAX_QUERY_BYTES.to_string())
                .with_option("max_ast_elements", MAX_AST_ELEMENTS.to_string())
                .with_option("max_expanded_ast_elements", MAX_AST_ELEMENTS.to_string()),
            database: config.database.clone(),
            version,
        })
    }

    /// The client, bound to Touchline's database.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Touchline's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// The server's version.
    pub fn version(&self) -> ServerVersion {
        self.version
    }

    /// Runs one statement, with `{database}` replaced by the database name.
    pub async fn execute(&self, sql: &str) -> Result<(), SinkError> {
        let sql = sql.replace("{database}", &self.database);
        self.client.query(&sql).execute().await?;
        Ok(())
    }

    /// Runs one statement outside Touchline's database (which may not exist yet).
    pub async fn execute_unbound(&self, sql: &str) -> Result<(), SinkError> {
        self.server.query(sql).execute().await?;
        Ok(())
    }

    /// Runs a query, with `{database}` replaced, and reads every row.
    pub async fn fetch_all<T>(&self, sql: &str) -> Result<Vec<T>, SinkError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let sql = sql.replace("{database}", &self.database);
        Ok(self.client.query(&sql).fetch_all::<T>().await?)
    }

    /// Runs a query of one row, `SELECT count() AS n ...`, with `{database}`
    /// replaced, and returns `n`.
    pub async fn count(&self, sql: &str) -> Result<u64, SinkError> {
        let rows = self.fetch_all::<Count>(sql).await?;
        Ok(rows.first().map_or(0, |c| c.n))
    }

    /// Inserts `rows` into their table in one request.
    pub async fn insert<T: Table>(&self, rows: &[T]) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut insert = self.client.insert::<T>(<T as Table>::NAME).await?;
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_decide_the_client_mode() {
        let cases = [
            ("18.16.1", Some((18, 16)), false),
            ("22.8.21.38", Some((22, 8)), false),
            ("23.3.1.1", Some((23, 3)), true),
            ("25.8.2.29", Some((25, 8)), true),
            ("x.y", None, false),
        ];
        for (text, parsed, modern) in cases {
            let version = ServerVersion::parse(text);
            assert_eq!(version.map(|v| (v.major, v.minor)), parsed, "{text}");
            assert_eq!(
                version.is_some_and(ServerVersion::is_modern),
                modern,
                "{text}"
            );
        }
    }
}
