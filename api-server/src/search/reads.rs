//! Where searches read: the primary, or a streaming replica that has caught up.
//!
//! With `FOLIO_SEARCH_DATABASE_URL` set, a search first reads the primary's
//! WAL position (`pg_current_wal_lsn()`, one short round trip), then waits up
//! to `FOLIO_SEARCH_REPLICA_WAIT_MS` for the replica to have replayed that
//! far, and reads there; a replica further behind, or one that does not
//! answer, is passed over for the primary. So a search sees everything
//! committed before it began (a document READY, a deletion), replica or not:
//! a client that saw READY and then searches finds the document.

use std::time::{Duration, Instant};

use diesel::QueryableByName;
use diesel_async::RunQueryDsl as _;
use folio_db as db;

use crate::error::ApiResult;

/// How often a search looks again at a replica that has not caught up.
const POLL: Duration = Duration::from_millis(2);

/// The pools searches read from.
#[derive(Clone)]
pub struct Reads {
    primary: db::Pool,
    replica: Option<db::Pool>,
    wait: Duration,
}

/// Which server a search reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Primary,
    Replica,
}

#[derive(QueryableByName)]
struct Position {
    #[diesel(sql_type = diesel::sql_types::Text)]
    lsn: String,
}

#[derive(QueryableByName)]
struct Replayed {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    replayed: bool,
}

#[derive(QueryableByName)]
struct Behind {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    bytes: Option<i64>,
}

impl Reads {
    /// Reads from `primary` alone, or from `replica` when it has caught up
    /// within `wait`.
    pub fn new(primary: db::Pool, replica: Option<db::Pool>, wait: Duration) -> Self {
        Reads { primary, replica, wait }
    }

    /// Where a search that begins now reads: the replica once it has
    /// replayed what the primary has committed, else the primary.
    pub async fn source(&self) -> ApiResult<Source> {
        let Some(replica) = &self.replica else {
            return Ok(Source::Primary);
        };
        let target = self.primary_position().await?;
        let deadline = Instant::now() + self.wait;
        let caught_up = async {
            let mut conn = replica.get().await.ok()?;
            loop {
                let replayed = diesel::sql_query("SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) AS replayed")
                    .bind::<diesel::sql_types::Text, _>(&target)
                    .get_result::<Replayed>(&mut conn)
                    .await
                    .ok()?
                    .replayed;
                if replayed {
                    return Some(());
                }
                if Instant::now() + POLL > deadline {
                    return None;
                }
                tokio::time::sleep(POLL).await;
            }
        };
        let source = match tokio::time::timeout_at(deadline.into(), caught_up).await {
            Ok(Some(())) => Source::Replica,
            _ => Source::Primary,
        };
        if source == Source::Primary {
            tracing::debug!(target_lsn = %target, "the search replica is behind; searching the primary");
        }
        Ok(source)
    }

    /// The primary's WAL position now: what it has committed.
    async fn primary_position(&self) -> ApiResult<String> {
        let mut conn = self.primary.get().await?;
        Ok(diesel::sql_query("SELECT pg_current_wal_lsn()::text AS lsn")
            .get_result::<Position>(&mut conn)
            .await?
            .lsn)
    }

    /// A connection to `source`.
    pub async fn get(&self, source: Source) -> ApiResult<db::PooledConnection> {
        let pool = match (source, &self.replica) {
            (Source::Replica, Some(replica)) => replica,
            _ => &self.primary,
        };
        Ok(pool.get().await?)
    }

    /// How many bytes of WAL the replica has still to replay, or `None`
    /// without a replica or when either server does not answer.
    pub async fn replica_lag_bytes(&self) -> Option<i64> {
        let replica = self.replica.as_ref()?;
        let primary = self.primary_position().await.ok()?;
        let mut conn = replica.get().await.ok()?;
        diesel::sql_query("SELECT greatest(pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()), 0)::int8 AS bytes")
            .bind::<diesel::sql_types::Text, _>(&primary)
            .get_result::<Behind>(&mut conn)
            .await
            .ok()?
            .bytes
    }
}
