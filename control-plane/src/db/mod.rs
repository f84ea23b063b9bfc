//! Postgres access: one module per table family. Every mutation of a
//! tenant's resources goes through [`mutation::Mutation`], which serialises
//! the tenant's changes, bumps the topology version and writes the audit log
//! in the same transaction as the change itself.

/// SQL text assembled from this crate's own constants (column lists, table
/// names), never from input: values always go through `bind`.
macro_rules! sql {
    ($($arg:tt)*) => {
        sqlx::AssertSqlSafe(format!($($arg)*))
    };
}

pub mod api_keys;
pub mod audit;
pub mod bindings;
pub mod exchanges;
pub mod mutation;
pub mod named;
pub mod nodes;
pub mod queues;
pub mod quotas;
pub mod streams;
pub mod tenants;

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Connects and brings the schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
