//! `folio.v1.UserService` (admin only, by the policy table): accounts and the
//! audit log.

use folio_auth::Role;
use folio_db::models::{
    audit_event::{self, AuditFilter},
    user::{self, UserChanges, UserFilter},
};
use folio_proto::v1::{
    self as pb, CreateUserRequest, GetUserRequest, ListAuditEventsRequest, ListAuditEventsResponse, ListUsersRequest, ListUsersResponse,
    UpdateUserRequest, user_service_server::UserService,
};
use tonic::{Request, Response, Status};
use tonic_types::FieldViolation;
use uuid::Uuid;

use crate::{
    accounts::{Accounts, NewUser, Refused},
    audit::{self, AuditNote},
    convert::{role_from_proto, user_to_proto},
    convert::{timestamp, to_time},
    error::{ApiError, ApiResult},
    page_token,
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
        Ok(Response::new(self.create(request.into_inner()).await?))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<pb::User>, Status> {
        let id = parse_id("id", &request.get_ref().id)?;
        let mut conn = self.accounts.pool.get().await.map_err(ApiError::from)?;
        let found = user::find(&mut conn, id).await.map_err(ApiError::from)?;
        let found = found.ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
        Ok(Response::new(user_to_proto(&found)))
    }

    async fn list_users(&self, request: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        Ok(Response::new(self.list(request.into_inner()).await?))
    }

    async fn update_user(&self, request: Request<UpdateUserRequest>) -> Result<Response<pb::User>, Status> {
        Ok(Response::new(self.update(request.into_inner()).await?))
    }

    async fn list_audit_events(&self, request: Request<ListAuditEventsRequest>) -> Result<Response<ListAuditEventsResponse>, Status> {
        Ok(Response::new(self.audit_events(request.into_inner()).await?))
    }
}

impl Users {
    async fn create(&self, request: CreateUserRequest) -> ApiResult<pb::User> {
        let role = match request.role {
            0 => Role::Member,
            value => role_from_proto(value).ok_or_else(|| ApiError::invalid("role", "is not a known role"))?,
        };
        let new = NewUser::check(&request.email, &request.password, &request.display_name, role).map_err(refused)?;
        let created = self.accounts.create_user(new).await?;
        audit::note(AuditNote {
            event: "user_created".into(),
            target: format!("user:{}", created.id),
            ..Default::default()
        });
        Ok(user_to_proto(&created))
    }

    async fn list(&self, request: ListUsersRequest) -> ApiResult<ListUsersResponse> {
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
        let mut conn = self.accounts.pool.get().await?;
        let mut rows = user::list(&mut conn, &filter, page_size + 1, after).await?;
        let next_page_token = page_token::next_token(&mut rows, page_size, |u| {
            page_token::encode_time_id(USERS_TAG, (u.created_at, u.id))
        });
        Ok(ListUsersResponse {
            users: rows.iter().map(user_to_proto).collect(),
            next_page_token,
        })
    }

    async fn update(&self, request: UpdateUserRequest) -> ApiResult<pb::User> {
        let changes_in = request.user.ok_or_else(|| ApiError::invalid("user", "is required"))?;
        let id = parse_id("user.id", &changes_in.id)?;
        let paths = request.update_mask.map(|mask| mask.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ApiError::invalid(
                "update_mask",
                "must name at least one of role, active, display_name",
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
                    let name = changes_in.display_name.trim();
                    if name.chars().count() > 200 || name.chars().any(char::is_control) {
                        return Err(ApiError::invalid(
                            "user.display_name",
                            "must be at most 200 characters, without control characters",
                        ));
                    }
                    changes.display_name = Some(name.to_owned());
                }
                other => {
                    return Err(ApiError::invalid(
                        "update_mask",
                        format!("{other:?} cannot be updated (role, active, display_name can)"),
                    ));
                }
            }
        }
        let mut conn = self.accounts.pool.get().await?;
        let before = user::find(&mut conn, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user {id}")))?;
        let updated = user::update(&mut conn, id, &changes)
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
        Ok(user_to_proto(&updated))
    }

    async fn audit_events(&self, request: ListAuditEventsRequest) -> ApiResult<ListAuditEventsResponse> {
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
        let mut conn = self.accounts.pool.get().await?;
        let mut rows = audit_event::list(&mut conn, &filter, page_size + 1, before).await?;
        let next_page_token = page_token::next_token(&mut rows, page_size, |e| page_token::encode_number(AUDIT_TAG, e.id));
        Ok(ListAuditEventsResponse {
            events: rows
                .into_iter()
                .map(|e| pb::AuditEvent {
                    id: e.id,
                    at: Some(timestamp(e.at)),
                    actor_id: e.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                    actor_email: e.actor_email,
                    rpc: e.rpc,
                    target: e.target,
                    outcome: e.outcome,
                    event: e.event,
                    latency_us: e.latency_us,
                    peer: e.peer,
                })
                .collect(),
            next_page_token,
        })
    }
}

/// A new account's refused details as CreateUserRequest's fields.
fn refused(refused: Refused) -> ApiError {
    let fields = [
        ("email", refused.email),
        ("password", refused.password),
        ("display_name", refused.display_name),
    ];
    ApiError::InvalidArgument(
        fields
            .into_iter()
            .filter_map(|(field, why)| Some(FieldViolation::new(field, why?)))
            .collect(),
    )
}

fn parse_id(field: &str, value: &str) -> ApiResult<Uuid> {
    value.parse().map_err(|_| ApiError::invalid(field, "must be a UUID"))
}
