//! `users`: accounts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::users;

/// An account as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub active: bool,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The most documents the account may keep; None: the default.
    pub quota_documents: Option<i64>,
    /// The most bytes of documents the account may keep; None: the default.
    pub quota_bytes: Option<i64>,
    /// Whether logins need a second factor (a confirmed TOTP secret).
    pub mfa_enabled: bool,
    /// When the account proved it owns its email (None: not yet).
    pub email_verified_at: Option<DateTime<Utc>>,
    /// The weight of its fair share of the workers; None: its role's.
    pub share_weight: Option<i32>,
}

/// Inserts `user`; returns false when the email is taken.
pub async fn create(conn: &mut AsyncPgConnection, user: &User) -> QueryResult<bool> {
    let inserted = diesel::insert_into(users::table)
        .values(user)
        .on_conflict(users::email)
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Looks an account up by id.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<User>> {
    users::table.find(id).select(User::as_select()).first(conn).await.optional()
}

/// Which of `ids` are accounts.
pub async fn existing(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<Uuid>> {
    users::table.filter(users::id.eq_any(ids)).select(users::id).load(conn).await
}

/// Looks an account up by (normalised) email.
pub async fn find_by_email(conn: &mut AsyncPgConnection, email: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::email.eq(email))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()
}

/// Replaces the password hash.
pub async fn set_password_hash(conn: &mut AsyncPgConnection, id: Uuid, hash: &str) -> QueryResult<usize> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await
}

/// The fields an admin may change; `None` leaves a field as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub role: Option<String>,
    pub active: Option<bool>,
    pub display_name: Option<String>,
    /// `Some(None)` returns the account to the default quota.
    pub quota_documents: Option<Option<i64>>,
    pub quota_bytes: Option<Option<i64>>,
    /// `Some(None)` returns the account to its role's weight.
    pub share_weight: Option<Option<i32>>,
}

/// Applies `changes` and returns the updated account (None if there is none).
pub async fn update(conn: &mut AsyncPgConnection, id: Uuid, changes: &UserChanges) -> QueryResult<Option<User>> {
    diesel::update(users::table.find(id))
        .set((changes, users::updated_at.eq(diesel::dsl::now)))
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Filters of [`list`].
#[derive(Debug, Default)]
pub struct UserFilter {
    pub role: Option<String>,
    pub active: Option<bool>,
    pub email_prefix: Option<String>,
}

/// Where a page of [`list`] starts: after this (created_at, id).
pub type Cursor = (DateTime<Utc>, Uuid);

/// Lists accounts, oldest first.
pub async fn list(conn: &mut AsyncPgConnection, filter: &UserFilter, limit: i64, after: Option<Cursor>) -> QueryResult<Vec<User>> {
    let mut query = users::table.select(User::as_select()).into_boxed();
    if let Some(role) = &filter.role {
        query = query.filter(users::role.eq(role.clone()));
    }
    if let Some(active) = filter.active {
        query = query.filter(users::active.eq(active));
    }
    if let Some(prefix) = &filter.email_prefix {
        let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        query = query.filter(users::email.like(format!("{escaped}%")));
    }
    if let Some((created, id)) = after {
        query = query.filter(
            users::created_at
                .gt(created)
                .or(users::created_at.eq(created).and(users::id.gt(id))),
        );
    }
    query
        .order((users::created_at.asc(), users::id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

/// The user of a session, if the user is active and the session not revoked.
pub async fn live_in_session(conn: &mut AsyncPgConnection, user_id: Uuid, session_id: Uuid) -> QueryResult<Option<User>> {
    use crate::schema::sessions;
    let found: Option<(User, Option<DateTime<Utc>>)> = users::table
        .inner_join(sessions::table)
        .filter(users::id.eq(user_id))
        .filter(sessions::id.eq(session_id))
        .select((User::as_select(), sessions::revoked_at))
        .first(conn)
        .await
        .optional()?;
    Ok(found.and_then(|(user, revoked)| (user.active && revoked.is_none()).then_some(user)))
}

/// Accounts of one role with one active flag.
#[derive(Debug, Clone, QueryableByName)]
pub struct RoleCount {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub role: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub active: bool,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub users: i64,
}

/// Accounts by role and active flag.
pub async fn counts_by_role(conn: &mut AsyncPgConnection) -> QueryResult<Vec<RoleCount>> {
    diesel::sql_query("SELECT role, active, count(*)::int8 AS users FROM users GROUP BY role, active ORDER BY role, active DESC")
        .load(conn)
        .await
}

/// An account ranked by a count over a time window.
#[derive(Debug, Clone, QueryableByName)]
pub struct Ranked {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub email: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub display_name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub value: i64,
}

/// What accounts are ranked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RankBy {
    /// Documents uploaded.
    Documents,
    /// Bytes uploaded.
    Bytes,
    /// Calls in the audit log.
    Activity,
}

/// The `limit` accounts with the most documents, bytes or calls in
/// `[since, until)`, most first.
pub async fn top(
    conn: &mut AsyncPgConnection,
    by: RankBy,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Ranked>> {
    let (value, from) = match by {
        RankBy::Documents => (
            "count(*)",
            "documents t ON t.owner_id = u.id AND t.created_at >= $1 AND t.created_at < $2",
        ),
        RankBy::Bytes => (
            "sum(t.size_bytes)",
            "documents t ON t.owner_id = u.id AND t.created_at >= $1 AND t.created_at < $2",
        ),
        RankBy::Activity => ("count(*)", "audit_events t ON t.actor_id = u.id AND t.at >= $1 AND t.at < $2"),
    };
    diesel::sql_query(format!(
        "SELECT u.id, u.email, u.display_name, {value}::int8 AS value FROM users u JOIN {from} \
         GROUP BY u.id ORDER BY value DESC, u.email LIMIT $3"
    ))
    .bind::<diesel::sql_types::Timestamptz, _>(since)
    .bind::<diesel::sql_types::Timestamptz, _>(until)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await
}

/// Marks `id`'s email verified (now), unless it was already.
pub async fn set_email_verified(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<()> {
    diesel::update(users::table.find(id).filter(users::email_verified_at.is_null()))
        .set((
            users::email_verified_at.eq(diesel::dsl::now),
            users::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
