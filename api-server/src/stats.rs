//! Admin statistics in domain terms (SystemService's GetSystemStats and
//! ListTopUsers are shims over these): counts read from Postgres when asked.

use std::time::Duration;

use chrono::{DateTime, Utc};
use folio_db::{
    self as db,
    models::{
        document::{self, CodeCount, DayCount, StageTiming, StateCount},
        session,
        user::{self, RankBy, Ranked, RoleCount},
        worker,
    },
};

use crate::error::ApiResult;

/// The days GetSystemStats reports on.
pub const STATS_DAYS: i32 = 30;

/// GetSystemStats' report.
#[derive(Debug)]
pub struct SystemStats {
    pub users: Vec<RoleCount>,
    pub live_sessions: i64,
    pub states: Vec<StateCount>,
    pub stages: Vec<StageTiming>,
    pub days: Vec<DayCount>,
    pub failures: Vec<CodeCount>,
    pub workers_alive: i64,
}

/// The deployment's accounts, sessions, documents, days, failures and
/// workers (alive: seen within `alive_within`), read now.
pub async fn system_stats(pool: &db::Pool, alive_within: Duration) -> ApiResult<SystemStats> {
    let mut conn = pool.get().await?;
    Ok(SystemStats {
        users: user::counts_by_role(&mut conn).await?,
        live_sessions: session::count_live(&mut conn).await?,
        states: document::counts_by_state(&mut conn, None).await?,
        stages: document::stage_timings(&mut conn, None).await?,
        days: document::daily(&mut conn, STATS_DAYS).await?,
        failures: document::failures_by_code(&mut conn).await?,
        workers_alive: worker::count_alive(&mut conn, alive_within).await?,
    })
}

/// The `limit` accounts with the most of `by` in `[since, until)`.
pub async fn top_users(pool: &db::Pool, by: RankBy, since: DateTime<Utc>, until: DateTime<Utc>, limit: i64) -> ApiResult<Vec<Ranked>> {
    let mut conn = pool.get().await?;
    Ok(user::top(&mut conn, by, since, until, limit).await?)
}
