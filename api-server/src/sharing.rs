//! Groups and sharing in domain terms, knowing no protobuf
//! (`sharing_service.rs` reads requests and `convert.rs` writes answers):
//! admins' groups, owners' shares, and who may read or change a document
//! ([`readable`], [`changeable`]), which DocumentService's reads and writes
//! ask here.
//!
//! A document is readable by its owner, by an admin, and by an account it is
//! shared with (`share::SHARED`, decided in SQL); it is changeable (deleted,
//! cancelled, retried, shared) only by its owner or an admin. A reader it is
//! shared with who tries to change it is told so (PERMISSION_DENIED), since
//! they can see it; anyone else gets NOT_FOUND, as if it did not exist.
//!
//! Whatever takes access away (an unshare, a member's removal, a group's
//! deletion) is announced on Redis (`<prefix>shares-changed`) after its
//! commit; each api-server's watch hub wakes the streams that read a
//! document through a share, which check again (see `crate::watch`).

use diesel_async::AsyncPgConnection;
use folio_core::cache::Cache;
use folio_db::{
    self as db,
    models::{
        document::{self, Document},
        group::{self, Group},
        share::{self, Share},
        user,
    },
};
use uuid::Uuid;

use crate::{
    audit::{self, AuditNote},
    auth::Principal,
    error::{ApiError, ApiResult},
};

/// The Redis channel (after the key prefix) of share changes that take
/// access away; the payload means nothing.
pub const SHARES_CHANNEL: &str = "shares-changed";

/// The document `id` if `principal` may read it: NOT_FOUND otherwise.
pub async fn readable(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> ApiResult<Document> {
    match document::find(conn, id).await? {
        Some(found) if principal.reaches(found.owner_id) => Ok(found),
        Some(found) if share::is_shared_with(conn, found.id, principal.user_id).await? => Ok(found),
        _ => Err(ApiError::NotFound(format!("no document {id}"))),
    }
}

/// The document `id` if `principal` may change it (its owner or an admin):
/// PERMISSION_DENIED for a reader it is shared with, NOT_FOUND otherwise.
pub async fn changeable(conn: &mut AsyncPgConnection, principal: &Principal, id: Uuid) -> ApiResult<Document> {
    let found = readable(conn, principal, id).await?;
    if principal.reaches(found.owner_id) {
        Ok(found)
    } else {
        Err(ApiError::PermissionDenied(format!(
            "document {id} is shared with you to read; only its owner or an admin may change or share it"
        ))
        .because("SHARED_FOR_READING"))
    }
}

/// A group's name as given, trimmed: 1 to 100 characters, none a control
/// character; or why not.
pub fn group_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("must be 1 to 100 characters without control characters");
    }
    Ok(name.to_owned())
}

/// A label as documents carry them, trimmed: 1 to 64 characters, none a
/// control character (the upload's rule too); or why not.
pub fn label(label: &str) -> Result<String, &'static str> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err("must be 1 to 64 characters without control characters");
    }
    Ok(label.to_owned())
}

/// A group with its members.
#[derive(Debug)]
pub struct Members {
    pub group: Group,
    pub members: Vec<Uuid>,
}

/// What a share makes readable.
#[derive(Debug, Clone)]
pub enum What {
    Document(Uuid),
    /// The documents of `owner` (None: the caller) carrying `label`.
    Label {
        label: String,
        owner: Option<Uuid>,
    },
}

/// With whom a share is made.
#[derive(Debug, Clone, Copy)]
pub enum Whom {
    User(Uuid),
    Group(Uuid),
}

/// Groups and shares, with what they need.
#[derive(Clone)]
pub struct Sharing {
    pub pool: db::Pool,
    pub cache: Cache,
}

impl Sharing {
    /// Creates a group; ALREADY_EXISTS when the name is taken.
    pub async fn create_group(&self, name: &str) -> ApiResult<Members> {
        let mut conn = self.pool.get().await?;
        let group = group::create(&mut conn, Uuid::new_v4(), name)
            .await?
            .ok_or_else(|| ApiError::AlreadyExists(format!("a group is named {name:?}")))?;
        note("group_created", format!("group:{}", group.id));
        Ok(Members {
            group,
            members: Vec::new(),
        })
    }

    /// Renames a group; ALREADY_EXISTS when another group has the name.
    pub async fn rename_group(&self, id: Uuid, name: &str) -> ApiResult<Members> {
        let mut conn = self.pool.get().await?;
        if group::name_taken(&mut conn, id, name).await? {
            return Err(ApiError::AlreadyExists(format!("a group is named {name:?}")));
        }
        let group = group::rename(&mut conn, id, name).await?.ok_or_else(|| no_group(id))?;
        note("group_renamed", format!("group:{id}"));
        self.members_of(&mut conn, group).await
    }

    /// Deletes a group with its memberships and the shares made with it.
    pub async fn delete_group(&self, id: Uuid) -> ApiResult<()> {
        let mut conn = self.pool.get().await?;
        if !group::delete(&mut conn, id).await? {
            return Err(no_group(id));
        }
        note("group_deleted", format!("group:{id}"));
        self.announce().await;
        Ok(())
    }

    /// Adds accounts to a group; NOT_FOUND naming the first id that is no
    /// account.
    pub async fn add_members(&self, id: Uuid, users: &[Uuid]) -> ApiResult<Members> {
        let mut conn = self.pool.get().await?;
        let group = group::find(&mut conn, id).await?.ok_or_else(|| no_group(id))?;
        let known = user::existing(&mut conn, users).await?;
        if let Some(unknown) = users.iter().find(|u| !known.contains(u)) {
            return Err(ApiError::NotFound(format!("no user {unknown}")));
        }
        group::add_members(&mut conn, id, users).await?;
        note("group_members_added", format!("group:{id}"));
        self.members_of(&mut conn, group).await
    }

    /// Removes accounts from a group; from their next call, what was shared
    /// with them through it is not theirs to read.
    pub async fn remove_members(&self, id: Uuid, users: &[Uuid]) -> ApiResult<Members> {
        let mut conn = self.pool.get().await?;
        let group = group::find(&mut conn, id).await?.ok_or_else(|| no_group(id))?;
        if group::remove_members(&mut conn, id, users).await? > 0 {
            self.announce().await;
        }
        note("group_members_removed", format!("group:{id}"));
        self.members_of(&mut conn, group).await
    }

    /// The groups `principal` is in (an admin: every group), by name.
    pub async fn groups(&self, principal: &Principal) -> ApiResult<Vec<Members>> {
        let mut conn = self.pool.get().await?;
        let groups = group::list(&mut conn, principal.owner_scope()).await?;
        let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
        let pairs = group::members(&mut conn, &ids).await?;
        Ok(groups
            .into_iter()
            .map(|group| {
                let members = pairs.iter().filter(|(g, _)| *g == group.id).map(|(_, u)| *u).collect();
                Members { group, members }
            })
            .collect())
    }

    /// Shares `what` with `whom`, to read: the owner of what is shared, or
    /// an admin. The share made before, if the same.
    pub async fn share(&self, principal: &Principal, what: What, whom: Whom) -> ApiResult<Share> {
        let mut conn = self.pool.get().await?;
        let (owner_id, document_id, label) = match what {
            What::Document(id) => {
                let found = changeable(&mut conn, principal, id).await?;
                (found.owner_id, Some(found.id), None)
            }
            What::Label { label, owner } => {
                let owner = match owner {
                    Some(owner) if !principal.reaches(owner) => {
                        return Err(ApiError::PermissionDenied(
                            "only an admin may share another owner's documents".into(),
                        ));
                    }
                    Some(owner) if user::find(&mut conn, owner).await?.is_none() => {
                        return Err(ApiError::NotFound(format!("no user {owner}")));
                    }
                    Some(owner) => owner,
                    None => principal.user_id,
                };
                (owner, None, Some(label))
            }
        };
        let (user_id, group_id) = match whom {
            Whom::User(user) if user == owner_id => {
                return Err(ApiError::invalid("user_id", "is the owner, who reads these documents already"));
            }
            Whom::User(user) => {
                user::find(&mut conn, user)
                    .await?
                    .ok_or_else(|| ApiError::NotFound(format!("no user {user}")))?;
                (Some(user), None)
            }
            Whom::Group(id) => {
                group::find(&mut conn, id).await?.ok_or_else(|| no_group(id))?;
                (None, Some(id))
            }
        };
        let share = share::create(
            &mut conn,
            &Share {
                id: Uuid::new_v4(),
                owner_id,
                document_id,
                label,
                user_id,
                group_id,
                created_by: Some(principal.user_id),
                created_at: chrono::Utc::now(),
            },
        )
        .await?;
        note("shared", format!("share:{}", share.id));
        Ok(share)
    }

    /// The shares of the caller's documents (an admin: everyone's, or those
    /// of `owner`), or those reaching `document`, newest first.
    pub async fn shares(&self, principal: &Principal, document: Option<Uuid>, owner: Option<Uuid>) -> ApiResult<Vec<Share>> {
        let owner = match (owner, principal.owner_scope()) {
            (owner, None) => owner,
            (None, own) => own,
            (Some(owner), Some(own)) if owner == own => Some(own),
            (Some(_), Some(_)) => return Err(ApiError::PermissionDenied("only an admin may list another owner's shares".into())),
        };
        let mut conn = self.pool.get().await?;
        let document = match document {
            Some(id) => Some(changeable(&mut conn, principal, id).await?),
            None => None,
        };
        let reaching = document.as_ref().map(|d| (d.id, d.labels.as_slice()));
        Ok(share::list(&mut conn, owner, reaching).await?)
    }

    /// Removes a share: its documents' owner or an admin; NOT_FOUND for
    /// anyone else.
    pub async fn unshare(&self, principal: &Principal, id: Uuid) -> ApiResult<()> {
        let mut conn = self.pool.get().await?;
        let found = share::find(&mut conn, id)
            .await?
            .filter(|s| principal.reaches(s.owner_id))
            .ok_or_else(|| ApiError::NotFound(format!("no share {id}")))?;
        share::delete(&mut conn, found.id).await?;
        note("unshared", format!("share:{id}"));
        self.announce().await;
        Ok(())
    }

    async fn members_of(&self, conn: &mut AsyncPgConnection, group: Group) -> ApiResult<Members> {
        let members = group::members(conn, &[group.id]).await?.into_iter().map(|(_, u)| u).collect();
        Ok(Members { group, members })
    }

    /// Tells every api-server that access was taken away, so watch streams
    /// reading through a share check again at once (each also checks on its
    /// timer, in case this notice is lost).
    async fn announce(&self) {
        let mut connection = self.cache.connection();
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(self.cache.key(SHARES_CHANNEL))
            .arg("")
            .query_async(&mut connection)
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "share change not announced; watch streams check at their next re-check");
        }
    }
}

fn no_group(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no group {id}"))
}

fn note(event: &str, target: String) {
    audit::note(AuditNote {
        event: event.into(),
        target,
        ..Default::default()
    });
}
