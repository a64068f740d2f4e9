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
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, deadpool},
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

/// Sets the pool's gauges (`folio_db_pool_connections`, `folio_db_pool_waiting`)
/// for a scrape.
pub fn record_pool_metrics(pool: &Pool) {
    let status = pool.status();
    folio_core::metrics::record_pool(status.size, status.available, status.waiting);
}

/// Builds a pool of at most `size` connections. No connection is opened yet.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, deadpool::BuildError> {
    build(AsyncDieselConnectionManager::<AsyncPgConnection>::new(database_url), size)
}

fn build(manager: AsyncDieselConnectionManager<AsyncPgConnection>, size: usize) -> Result<Pool, deadpool::BuildError> {
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(::deadpool::Runtime::Tokio1)
        .build()
}

tokio::task_local! {
    /// When the request being served must be answered by: set around a
    /// call's handler by [`with_deadline`].
    static DEADLINE: tokio::time::Instant;
}

/// Runs `work` (a call's handler) so that every connection it checks out of
/// a pool made by [`pool_with_statement_bound`] cancels its statements by
/// `deadline`, when that comes before the pool's bound.
pub async fn with_deadline<F: Future>(deadline: tokio::time::Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// How long after a call's deadline its statements are cancelled: the call
/// itself is answered at the deadline (DEADLINE_EXCEEDED), so its statement
/// must not fail first with a cancellation of its own.
const AFTER_DEADLINE: Duration = Duration::from_millis(100);

/// The `statement_timeout` for a connection being checked out now: `bound`,
/// or what is left of the current call's deadline, and [`AFTER_DEADLINE`],
/// when that is shorter. The margin applies to the bound too: a call whose
/// deadline is the server's bound (the pool's `bound`) must still end by its
/// deadline, not by its statement's cancellation a moment sooner.
fn statement_timeout(bound: Duration) -> Duration {
    DEADLINE
        .try_with(|deadline| deadline.saturating_duration_since(tokio::time::Instant::now()))
        .map_or(bound, |left| left.min(bound) + AFTER_DEADLINE)
}

async fn set_statement_timeout(conn: &mut AsyncPgConnection, bound: Duration) -> diesel::QueryResult<()> {
    use diesel_async::RunQueryDsl as _;
    let sql = format!("SET statement_timeout = {}", statement_timeout(bound).as_millis());
    diesel::sql_query(sql).execute(conn).await.map(|_| ())
}

/// Like [`pool`], with Postgres cancelling every statement still running
/// after `bound`, or by the deadline of the call that checked its connection
/// out ([`with_deadline`]) when that comes first. The timeout is set as each
/// connection is checked out, by the query that verifies it (which a pool
/// runs anyway), so it costs no extra round trip. A statement started late
/// in a long checkout may run past the deadline by as much as it had left
/// when the connection was checked out.
pub fn pool_with_statement_bound(database_url: &str, size: usize, bound: Duration) -> Result<Pool, deadpool::BuildError> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(move |conn| Box::pin(set_statement_timeout(conn, bound))));
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move {
            use diesel_async::AsyncConnection as _;
            let mut conn = AsyncPgConnection::establish(&url).await?;
            set_statement_timeout(&mut conn, bound)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        })
    });
    build(AsyncDieselConnectionManager::new_with_config(database_url, config), size)
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
