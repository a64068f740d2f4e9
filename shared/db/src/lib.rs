//! Postgres: the connection pool, the embedded migrations, the diesel schema
//! and one model file per table; and [`documents`], the document lifecycle,
//! which writes through them.
//!
//! The pool is diesel-async over tokio-postgres (pure Rust, no libpq), pooled by
//! deadpool. Model functions take `&mut AsyncPgConnection` and return
//! `QueryResult`, so a caller can compose several of them in one transaction.

pub mod documents;
pub mod models;
pub mod schema;

use std::time::Duration;

use diesel_async::{
    AsyncPgConnection,
    async_connection_wrapper::AsyncConnectionWrapper,
    pooled_connection::{AsyncDieselConnectionManager, deadpool},
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness as _, embed_migrations};

/// The pool every process uses.
pub type Pool = deadpool::Pool<AsyncPgConnection>;
/// A connection checked out of the [`Pool`].
pub type PooledConnection = deadpool::Object<AsyncPgConnection>;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Migrations from several processes starting at once take turns behind this
/// advisory lock (an arbitrary constant: "folio" in ASCII).
const MIGRATION_LOCK: i64 = 0x66_6f6c_696f;

/// Builds a pool of at most `size` connections. No connection is opened yet.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, deadpool::BuildError> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url);
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(::deadpool::Runtime::Tokio1)
        .build()
}

/// `database_url` with a `statement_timeout` for every statement its
/// connections run: Postgres cancels one still running after `timeout`.
pub fn with_statement_timeout(database_url: &str, timeout: Duration) -> String {
    let separator = if database_url.contains('?') { '&' } else { '?' };
    format!("{database_url}{separator}options=-c%20statement_timeout%3D{}", timeout.as_millis())
}

/// Checks out a connection and runs `SELECT 1` on it.
pub async fn ping(pool: &Pool) -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl as _;
    let mut connection = pool.get().await?;
    diesel::sql_query("SELECT 1").execute(&mut connection).await?;
    Ok(())
}

/// Runs every pending migration, returning the versions it applied. Safe to run
/// from several processes at once.
pub async fn migrate(database_url: &str) -> anyhow::Result<Vec<String>> {
    use diesel::{Connection as _, RunQueryDsl as _};
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut connection = AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url)?;
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(&mut connection)?;
        let applied = connection
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(ToString::to_string).collect())
            .map_err(|error| anyhow::anyhow!("migration failed: {error}"));
        diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(&mut connection)?;
        applied
    })
    .await?
}
