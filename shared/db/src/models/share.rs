//! `shares`: read access to one document, or to every document of one owner
//! carrying a label, granted to an account or a group; and [`Reach`], which
//! documents a reader reaches, written once as SQL ([`SHARED`]) that every
//! read path puts inside its own query (lists, watch replays, search
//! candidates), so visibility is decided by Postgres through the shares'
//! indexes, never by loading lists into memory.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::shares;

/// A share as stored: what (`document_id` or `label`, of `owner_id`'s
/// documents) with whom (`user_id` or `group_id`).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = shares)]
pub struct Share {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub document_id: Option<Uuid>,
    pub label: Option<String>,
    pub user_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    /// Who shared it (the owner or an admin); None once that account is gone.
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The one rule of sharing, as SQL: the document `{d}` (a `documents` row's
/// alias) is shared with the account `{viewer}` (an SQL uuid expression) when
/// a share names it, or names a label it carries and its owner, and is made
/// with that account or with a group it belongs to. Owners and admins reach
/// documents by [`Reach`] without it.
pub const SHARED: &str = "EXISTS (SELECT 1 FROM shares s \
     WHERE (s.document_id = {d}.id OR (s.label IS NOT NULL AND s.owner_id = {d}.owner_id AND s.label = ANY ({d}.labels))) \
     AND (s.user_id = {viewer} OR s.group_id IN (SELECT m.group_id FROM group_members m WHERE m.user_id = {viewer})))";

/// [`SHARED`] for the row aliased `d` and the account `viewer`, written in
/// as a uuid literal (a `Uuid` prints only hex digits and dashes), so the
/// same text serves diesel's boxed queries and raw ones.
pub fn shared_sql(d: &str, viewer: Uuid) -> String {
    SHARED.replace("{d}", d).replace("{viewer}", &format!("'{viewer}'::uuid"))
}

/// Which documents a caller reaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Every document (an admin's "all").
    #[default]
    Everyone,
    /// The account's own.
    Own(Uuid),
    /// Those shared with the account, not its own.
    SharedWith(Uuid),
    /// Its own and those shared with it.
    Readable(Uuid),
}

impl Reach {
    /// The condition on the `documents` row aliased `d`.
    pub fn sql(&self, d: &str) -> String {
        match *self {
            Reach::Everyone => "TRUE".to_owned(),
            Reach::Own(user) => format!("{d}.owner_id = '{user}'::uuid"),
            Reach::SharedWith(user) => format!("({d}.owner_id <> '{user}'::uuid AND {})", shared_sql(d, user)),
            Reach::Readable(user) => format!("({d}.owner_id = '{user}'::uuid OR {})", shared_sql(d, user)),
        }
    }

    /// The condition for diesel queries over `documents` (alone or joined).
    pub fn condition(&self) -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
        diesel::dsl::sql(&self.sql("documents"))
    }

    /// Whether a document of `owner` may pass, as far as can be told without
    /// the shares: what a watch stream checks of an event the hub handed it
    /// (the hub decided the shares, see `readers`).
    pub fn admits_owner(&self, owner: Uuid) -> bool {
        match *self {
            Reach::Own(user) => owner == user,
            Reach::SharedWith(user) => owner != user,
            Reach::Everyone | Reach::Readable(_) => true,
        }
    }
}

/// Stores `share`, or finds the same share made before; the row either way.
pub async fn create(conn: &mut AsyncPgConnection, share: &Share) -> QueryResult<Share> {
    let inserted = diesel::insert_into(shares::table)
        .values(share)
        .on_conflict_do_nothing()
        .returning(Share::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(inserted) = inserted {
        return Ok(inserted);
    }
    let mut query = shares::table
        .filter(shares::owner_id.eq(share.owner_id))
        .select(Share::as_select())
        .into_boxed();
    query = match (&share.document_id, &share.label) {
        (Some(document), _) => query.filter(shares::document_id.eq(document)),
        (None, label) => query.filter(shares::label.eq(label.clone().unwrap_or_default())),
    };
    query = match (share.user_id, share.group_id) {
        (Some(user), _) => query.filter(shares::user_id.eq(user)),
        (None, group) => query.filter(shares::group_id.eq(group.unwrap_or_default())),
    };
    query.first(conn).await
}

/// Looks a share up by id.
pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Share>> {
    shares::table.find(id).select(Share::as_select()).first(conn).await.optional()
}

/// Deletes a share; whether there was one.
pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(shares::table.find(id)).execute(conn).await? > 0)
}

/// The shares of `owner`'s documents (None: everyone's), or of one document
/// (those naming it and those naming a label it carries), newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    owner: Option<Uuid>,
    document: Option<(Uuid, &[Option<String>])>,
) -> QueryResult<Vec<Share>> {
    let mut query = shares::table
        .select(Share::as_select())
        .order((shares::created_at.desc(), shares::id.desc()))
        .into_boxed();
    if let Some(owner) = owner {
        query = query.filter(shares::owner_id.eq(owner));
    }
    if let Some((id, labels)) = document {
        let labels: Vec<String> = labels.iter().flatten().cloned().collect();
        query = query.filter(shares::document_id.eq(id).or(shares::label.eq_any(labels)));
    }
    query.load(conn).await
}

/// Whether document `id` is shared with `viewer` ([`SHARED`]).
pub async fn is_shared_with(conn: &mut AsyncPgConnection, id: Uuid, viewer: Uuid) -> QueryResult<bool> {
    use crate::schema::documents;
    let shared = documents::table
        .filter(documents::id.eq(id))
        .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(&shared_sql("documents", viewer)));
    diesel::select(diesel::dsl::exists(shared)).get_result(conn).await
}

/// A document and an account it is shared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, QueryableByName)]
pub struct Reader {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub document_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub user_id: Uuid,
}

/// Which of `documents` are shared with which of `among` ([`SHARED`], each
/// pair decided by the same rule), in one query: what the watch hub asks of
/// a page of events for the readers whose streams are open.
pub async fn readers(conn: &mut AsyncPgConnection, documents: &[Uuid], among: &[Uuid]) -> QueryResult<Vec<Reader>> {
    if documents.is_empty() || among.is_empty() {
        return Ok(Vec::new());
    }
    let shared = SHARED.replace("{d}", "d").replace("{viewer}", "v.id");
    diesel::sql_query(format!(
        "SELECT d.id AS document_id, v.id AS user_id FROM documents d CROSS JOIN unnest($2::uuid[]) AS v (id) \
         WHERE d.id = ANY ($1) AND d.owner_id <> v.id AND {shared}"
    ))
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(documents)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(among)
    .load(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reach_writes_the_viewer_as_a_literal_and_keeps_the_rule_whole() {
        let user = Uuid::nil();
        assert_eq!(Reach::Everyone.sql("d"), "TRUE");
        assert_eq!(Reach::Own(user).sql("d"), format!("d.owner_id = '{user}'::uuid"));
        let readable = Reach::Readable(user).sql("d");
        assert!(readable.contains("s.document_id = d.id") && readable.contains("m.user_id = '00000000-0000-0000-0000-000000000000'::uuid"));
        assert!(!readable.contains('{'), "{readable}");
        assert!(Reach::SharedWith(user).admits_owner(Uuid::new_v4()) && !Reach::SharedWith(user).admits_owner(user));
    }
}
