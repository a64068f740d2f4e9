//! `groups` and `group_members`: named sets of accounts that documents are
//! shared with (`shares.group_id`). Only admins change them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{group_members, groups};

/// A group as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = groups)]
pub struct Group {
    pub id: Uuid,
    /// Unique, case-insensitively.
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Creates the group; None when another group has the name.
pub async fn create(conn: &mut AsyncPgConnection, id: Uuid, name: &str) -> QueryResult<Option<Group>> {
    diesel::insert_into(groups::table)
        .values((groups::id.eq(id), groups::name.eq(name)))
        .on_conflict_do_nothing()
        .returning(Group::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Looks a group up by id.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Group>> {
    groups::table.find(id).select(Group::as_select()).first(conn).await.optional()
}

/// Whether a group other than `id` has the name `name` (case-insensitively).
pub async fn name_taken(conn: &mut AsyncPgConnection, id: Uuid, name: &str) -> QueryResult<bool> {
    let other = groups::table.filter(groups::id.ne(id)).filter(
        diesel::dsl::sql::<diesel::sql_types::Bool>("lower(name) = lower(")
            .bind::<diesel::sql_types::Text, _>(name)
            .sql(")"),
    );
    diesel::select(diesel::dsl::exists(other)).get_result(conn).await
}

/// Renames the group; None when there is none.
pub async fn rename(conn: &mut AsyncPgConnection, id: Uuid, name: &str) -> QueryResult<Option<Group>> {
    diesel::update(groups::table.find(id))
        .set((groups::name.eq(name), groups::updated_at.eq(diesel::dsl::now)))
        .returning(Group::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// Deletes the group with its memberships and the shares made with it;
/// whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(groups::table.find(id)).execute(conn).await? > 0)
}

/// Adds `users` to the group (those already in it stay); how many joined.
pub async fn add_members(conn: &mut AsyncPgConnection, id: Uuid, users: &[Uuid]) -> QueryResult<usize> {
    let rows: Vec<_> = users
        .iter()
        .map(|user| (group_members::group_id.eq(id), group_members::user_id.eq(*user)))
        .collect();
    diesel::insert_into(group_members::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await
}

/// Removes `users` from the group; how many were in it.
pub async fn remove_members(conn: &mut AsyncPgConnection, id: Uuid, users: &[Uuid]) -> QueryResult<usize> {
    diesel::delete(
        group_members::table
            .filter(group_members::group_id.eq(id))
            .filter(group_members::user_id.eq_any(users)),
    )
    .execute(conn)
    .await
}

/// Every group (those `member` belongs to, when given), by name.
pub async fn list(conn: &mut AsyncPgConnection, member: Option<Uuid>) -> QueryResult<Vec<Group>> {
    let mut query = groups::table.select(Group::as_select()).order(groups::name.asc()).into_boxed();
    if let Some(member) = member {
        let of_member = group_members::table
            .filter(group_members::user_id.eq(member))
            .select(group_members::group_id);
        query = query.filter(groups::id.eq_any(of_member));
    }
    query.load(conn).await
}

/// The members of `ids`, as (group, user) pairs ordered by group and user.
pub async fn members(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<(Uuid, Uuid)>> {
    group_members::table
        .filter(group_members::group_id.eq_any(ids))
        .order((group_members::group_id, group_members::user_id))
        .select((group_members::group_id, group_members::user_id))
        .load(conn)
        .await
}
