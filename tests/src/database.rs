//! One throwaway database per test, so tests run in parallel without seeing each other.

use std::str::FromStr;

use sqlx::{
    ConnectOptions, Connection, PgPool,
    postgres::{PgConnectOptions, PgConnection},
};

/// A database created for one test; `scripts/test` drops leftovers before each run.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The database's name (`test_<uuid>`).
    pub name: String,
    /// A URL the servers under test connect with.
    pub url: String,
    /// A pool for the test's own direct SQL (assertions and deliberate corruption).
    pub pool: PgPool,
}

impl TestDb {
    /// Locks the stock rows of `sku` until the returned transaction ends: a reserve of it
    /// waits in the database meanwhile.
    pub async fn lock_stock(
        &self,
        sku: &str,
    ) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut lock = self.pool.begin().await?;
        sqlx::query(
            "select 1 from inventory.stock_levels
              where item_id = (select id from inventory.items where sku = $1) for update",
        )
        .bind(sku)
        .execute(&mut *lock)
        .await?;
        Ok(lock)
    }

    /// Creates an empty database in the cluster named by `TEST_DATABASE_URL`.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = std::env::var("TEST_DATABASE_URL").map_err(|_| {
            anyhow::anyhow!(
                "TEST_DATABASE_URL is not set: run the tests through scripts/test, which starts \
                 a private PostgreSQL and sets it"
            )
        })?;
        Self::create_in(&admin_url).await
    }

    /// Creates an empty database in the cluster `admin_url` connects to (its database is
    /// only used to create the new one).
    pub async fn create_in(admin_url: &str) -> anyhow::Result<Self> {
        let admin = PgConnectOptions::from_str(admin_url)?;
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect_with(&admin).await?;
        // The name is ours (a UUID), never input, so formatting it into DDL is safe.
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let options = admin.database(&name);
        let url = options.to_url_lossy().to_string();
        let pool =
            sqlx::postgres::PgPoolOptions::new().max_connections(5).connect_with(options).await?;
        Ok(Self { name, url, pool })
    }
}
