//! `folio.v1.UserService` (admin only, by the policy table): accounts and the
//! audit log. Each RPC is a shim: it reads the request into domain terms
//! (here, naming the request's fields in what it refuses), calls an inner
//! function below, which takes and returns domain values (ids, filters,
//! `UserChanges`, user and audit rows, `Page`s), and converts the answer
//! (`convert.rs`).

use folio_auth::Role;
use folio_db::models::{
    audit_event::{self, AuditEvent, AuditFilter},
    user::{self, Cursor, User, UserChanges, UserFilter},
};
use folio_proto::v1::{
    self as pb, CreateUserRequest, GetUserRequest, ListAuditEventsRequest, ListAuditEventsResponse, ListUsersRequest, ListUsersResponse,
    ResetMfaRequest, UpdateUserRequest, user_service_server::UserService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    accounts::{self, Accounts, NewUser},
    audit::{self, AuditNote},
    convert::{audit_events_to_proto, refused_to_violations, role_from_proto, to_time, user_to_proto, users_to_proto},
    error::{ApiError, ApiResult},
    mail::Alert,
    page_token::{self, Page},
};

const USERS_TAG: &str = "u1";
const AUDIT_TAG: &str = "a1";

/// The UserService implementation.
pub struct Users {
    pub accounts: Accounts,
}

#[tonic::async_trait]
impl UserService for Users {
    async fn create_user(&self, request: Request<CreateUserRequest>) -> Result<Response<pb::User>, Status> {
        let new = new_user(&request.into_inner())?;
        Ok(Response::new(user_to_proto(&self.create(new).await?)))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let id = parse_id("id", &request.get_ref().id)?;
        Ok(Response::new(user_to_proto(&self.get(id).await?)))
    }

    async fn list_users(&self, request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        let (filter, after, page_size) = users_query(request.into_inner())?;
        Ok(Response::new(users_to_proto(self.list(&filter, after, page_size).await?)))
    }

    async fn update_user(&self, request: Request<UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        let (id, changes) = user_changes(request.into_inner())?;
        Ok(Response::new(user_to_proto(&self.update(id, &changes).await?)))
    }

    async fn reset_mfa(&self, request: Request<ResetMfaRequest>) -> Result<Response<pb::User>, Status> {
        let id = parse_id("user_id", &request.get_ref().user_id)?;
        let user = self.accounts.reset_mfa(id).await?;
        self.accounts.alert(id, Alert::MfaOff).await;
        audit::note(AuditNote {
            event: "mfa_reset".into(),
            target: format!("user:{id}"),
            ..Default::default()
        });
        Ok(Response::new(user_to_proto(&user)))
    }

    async fn list_audit_events(&self, request: Request<ListAuditEventsRequest>) -> Result<Response<ListAuditEventsResponse>, Status> {
        let (filter, before, page_size) = audit_query(request.into_inner())?;
        Ok(Response::new(audit_events_to_proto(
            self.audit_events(&filter, before, page_size).await?,
        )))
    }
}

/// The account a CreateUserRequest asks for (UNSPECIFIED role: a member);
/// an unknown role is refused first, then every invalid detail is named.
fn new_user(request: &CreateUserRequest) -> ApiResult<NewUser> {
    let role = match request.role {
        0 => Role::Member,
        value => role_from_proto(value).ok_or_else(|| ApiError::invalid("role", "is not a known role"))?,
    };
    NewUser::check(&request.email, &request.password, &request.display_name, role).map_err(refused_to_violations)
}

/// ListUsers' filter, where its page token left off, and its page size.
fn users_query(request: ListUsersRequest) -> ApiResult<(UserFilter, Option<Cursor>, i64)> {
    let page_size = page_token::page_size(request.page_size, 50, 500)?;
    let after = match request.page_token.as_str() {
        "" => None,
        token => Some(
            page_token::decode_time_id(USERS_TAG, token)
                .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))?,
        ),
    };
    let role = match request.role {
        0 => None,
        value => Some(role_from_proto(value).ok_or_else(|| ApiError::invalid("role", "is not a known role"))?),
    };
    let filter = UserFilter {
        role: role.map(|r| r.as_str().to_owned()),
        active: request.active,
        email_prefix: Some(request.email_prefix.trim().to_lowercase()).filter(|p| !p.is_empty()),
    };
    Ok((filter, after, page_size))
}

/// The user an UpdateUserRequest changes and the changes its mask names, in
/// the mask's order: the first invalid path or value is refused.
fn user_changes(request: UpdateUserRequest) -> ApiResult<(Uuid, UserChanges)> {
    let changes_in = request.user.ok_or_else(|| ApiError::invalid("user", "is required"))?;
    let id = parse_id("user.id", &changes_in.id)?;
    let paths = request.update_mask.map(|mask| mask.paths).unwrap_or_default();
    if paths.is_empty() {
        return Err(ApiError::invalid(
            "update_mask",
            "must name at least one of role, active, display_name, quota_documents, quota_bytes, share_weight",
        ));
    }
    let mut changes = UserChanges::default();
    for path in &paths {
        match path.as_str() {
            "role" => {
                let role = role_from_proto(changes_in.role).ok_or_else(|| ApiError::invalid("user.role", "is not a known role"))?;
                changes.role = Some(role.as_str().to_owned());
            }
            "active" => changes.active = Some(changes_in.active),
            "display_name" => {
                let name = accounts::display_name(&changes_in.display_name).map_err(|why| ApiError::invalid("user.display_name", why))?;
                changes.display_name = Some(name);
            }
            "quota_documents" => changes.quota_documents = Some(quota("user.quota_documents", changes_in.quota_documents)?),
            "quota_bytes" => changes.quota_bytes = Some(quota("user.quota_bytes", changes_in.quota_bytes)?),
            "share_weight" => changes.share_weight = Some(share_weight(changes_in.share_weight)?),
            other => {
                return Err(ApiError::invalid(
                    "update_mask",
                    format!("{other:?} cannot be updated (role, active, display_name, quota_documents, quota_bytes, share_weight can)"),
                ));
            }
        }
    }
    Ok((id, changes))
}

/// An account's own share weight as UpdateUser sets it: unset returns the
/// account to its role's weight; a value is 1 to 100.
fn share_weight(value: Option<i32>) -> ApiResult<Option<i32>> {
    match value {
        Some(weight) if !(1..=100).contains(&weight) => Err(ApiError::invalid(
            "user.share_weight",
            format!("must be between 1 and 100, or unset for the role's weight; got {weight}"),
        )),
        value => Ok(value),
    }
}

/// An account's own quota as UpdateUser sets it: unset returns the account
/// to the default, a value must not be negative (0 is no limit).
fn quota(field: &str, value: Option<i64>) -> ApiResult<Option<i64>> {
    match value {
        Some(value) if value < 0 => Err(ApiError::invalid(field, "must be 0 (no limit) or more")),
        value => Ok(value),
    }
}

/// ListAuditEvents' filter, where its page token left off, and its page
/// size.
fn audit_query(request: ListAuditEventsRequest) -> ApiResult<(AuditFilter, Option<i64>, i64)> {
    let page_size = page_token::page_size(request.page_size, 50, 500)?;
    let before = match request.page_token.as_str() {
        "" => None,
        token => Some(
            page_token::decode_number(AUDIT_TAG, token)
                .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))?,
        ),
    };
    let filter = AuditFilter {
        actor_id: match request.actor_id.as_str() {
            "" => None,
            id => Some(parse_id("actor_id", id)?),
        },
        rpc: Some(request.rpc).filter(|r| !r.is_empty()),
        outcome: Some(request.outcome.to_uppercase()).filter(|o| !o.is_empty()),
        since: request.since.map(|t| to_time("since", t)).transpose()?,
        until: request.until.map(|t| to_time("until", t)).transpose()?,
    };
    Ok((filter, before, page_size))
}

fn parse_id(field: &str, value: &str) -> ApiResult<Uuid> {
    value.parse().map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

impl Users {
    /// Creates the account.
    async fn create(&self, new: NewUser) -> ApiResult<User> {
        self.accounts.breaches.refuse_breached(&new.password, "password").await?;
        // An admin vouches for the address of an account they create.
        let created = self.accounts.create_user(new, true).await?;
        audit::note(AuditNote {
            event: "user_created".into(),
            target: format!("user:{}", created.id),
            ..Default::default()
        });
        Ok(created)
    }

    /// The account `id`.
    async fn get(&self, id: Uuid) -> ApiResult<User> {
        let mut conn = self.accounts.pool.get().await?;
        let found = user::find(&mut conn, id).await?;
        found.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))
    }

    /// A page of the accounts that pass `filter`, oldest first, after `after`.
    async fn list(&self, filter: &UserFilter, after: Option<Cursor>, page_size: i64) -> ApiResult<Page<User>> {
        let mut conn = self.accounts.pool.get().await?;
        let rows = user::list(&mut conn, filter, page_size + 1, after).await?;
        Ok(Page::cut(rows, page_size, |u| {
            page_token::encode_time_id(USERS_TAG, (u.created_at, u.id))
        }))
    }

    /// Applies `changes` to the account `id`; a deactivation ends its
    /// sessions. The account as it is now.
    async fn update(&self, id: Uuid, changes: &UserChanges) -> ApiResult<User> {
        let mut conn = self.accounts.pool.get().await?;
        let before = user::find(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
        let updated = user::update(&mut conn, id, changes)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
        drop(conn);
        if before.active && !updated.active {
            self.accounts.revoke_all(id, "deactivated").await?;
        }
        let event = match (before.role != updated.role, before.active != updated.active) {
            (true, true) => "role_changed,active_changed",
            (true, false) => "role_changed",
            (false, true) => "active_changed",
            (false, false) => "user_updated",
        };
        audit::note(AuditNote {
            event: event.into(),
            target: format!("user:{id}"),
            ..Default::default()
        });
        Ok(updated)
    }

    /// A page of the audit events that pass `filter`, newest first, before
    /// the event id `before`.
    async fn audit_events(&self, filter: &AuditFilter, before: Option<i64>, page_size: i64) -> ApiResult<Page<AuditEvent>> {
        let mut conn = self.accounts.pool.get().await?;
        let rows = audit_event::list(&mut conn, filter, page_size + 1, before).await?;
        Ok(Page::cut(rows, page_size, |e| page_token::encode_number(AUDIT_TAG, e.id)))
    }
}
