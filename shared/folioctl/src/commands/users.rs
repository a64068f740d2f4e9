//! `users` (UserService's account administration) and `audit` (its audit log).

use folio_proto::v1::{
    CreateUserRequest, GetUserRequest, ListAuditEventsRequest, ListUsersRequest, Role, UpdateUserRequest, User,
    user_service_client::UserServiceClient,
};

use crate::{
    cli::{Audit, QuotaArg, RoleArg, Users},
    context::Context,
    exit::Error,
    records,
};

const USER_COLUMNS: &[&str] = &["id", "email", "display_name", "role", "active", "created_at"];
const AUDIT_COLUMNS: &[&str] = &["id", "at", "actor_email", "rpc", "outcome", "event", "target"];

fn role(arg: RoleArg) -> Role {
    match arg {
        RoleArg::Admin => Role::Admin,
        RoleArg::Member => Role::Member,
        RoleArg::Viewer => Role::Viewer,
    }
}

pub async fn users(ctx: &Context, command: Users) -> Result<(), Error> {
    let client = ctx.client().await?;
    match command {
        Users::List {
            role: wanted,
            active,
            email_prefix,
            page,
        } => {
            let request = ListUsersRequest {
                page_size: page.page_size,
                page_token: page.page_token,
                role: wanted.map_or(Role::Unspecified, role) as i32,
                active,
                email_prefix,
            };
            let listed = client
                .call(async |channel| UserServiceClient::new(channel).list_users(request.clone()).await)
                .await?;
            let rows = listed.users.iter().map(records::user).collect();
            ctx.out.list("users", rows, USER_COLUMNS, &listed.next_page_token);
        }
        Users::Get { id } => {
            let user = client
                .call(async |channel| UserServiceClient::new(channel).get_user(GetUserRequest { id: id.clone() }).await)
                .await?;
            ctx.out.one(records::user(&user));
        }
        Users::Create {
            email,
            password,
            display_name,
            role: wanted,
        } => {
            let password = match password {
                Some(password) => password,
                None => rpassword::prompt_password(format!("Password for {email}: "))
                    .map_err(|e| Error::local(format!("cannot read the password: {e}")))?,
            };
            let request = CreateUserRequest {
                email,
                password,
                display_name,
                role: role(wanted) as i32,
            };
            let user = client
                .call(async |channel| UserServiceClient::new(channel).create_user(request.clone()).await)
                .await?;
            ctx.out.one(records::user(&user));
        }
        Users::Update {
            id,
            role: wanted,
            active,
            display_name,
            quota_documents,
            quota_bytes,
            share_weight,
        } => {
            let mut user = User { id, ..Default::default() };
            let mut paths = Vec::new();
            if let Some(wanted) = wanted {
                user.role = role(wanted) as i32;
                paths.push("role".to_owned());
            }
            if let Some(active) = active {
                user.active = active;
                paths.push("active".to_owned());
            }
            if let Some(name) = display_name {
                user.display_name = name;
                paths.push("display_name".to_owned());
            }
            // A quota path with the field unset returns the account to the default.
            if let Some(quota) = quota_documents {
                user.quota_documents = limit(quota);
                paths.push("quota_documents".to_owned());
            }
            if let Some(quota) = quota_bytes {
                user.quota_bytes = limit(quota);
                paths.push("quota_bytes".to_owned());
            }
            if let Some(weight) = share_weight {
                user.share_weight = limit(weight).map(|w| i32::try_from(w).unwrap_or(i32::MAX));
                paths.push("share_weight".to_owned());
            }
            if paths.is_empty() {
                return Err(Error::local(
                    "nothing to change: give --role, --active, --display-name, --quota-documents, --quota-bytes or --share-weight",
                ));
            }
            let request = UpdateUserRequest {
                user: Some(user),
                update_mask: Some(prost_types::FieldMask { paths }),
            };
            let user = client
                .call(async |channel| UserServiceClient::new(channel).update_user(request.clone()).await)
                .await?;
            ctx.out.one(records::user(&user));
        }
    }
    Ok(())
}

fn limit(quota: QuotaArg) -> Option<i64> {
    match quota {
        QuotaArg::Limit(n) => Some(n),
        QuotaArg::Default => None,
    }
}

pub async fn audit(ctx: &Context, args: Audit) -> Result<(), Error> {
    let client = ctx.client().await?;
    let request = ListAuditEventsRequest {
        page_size: args.page.page_size,
        page_token: args.page.page_token,
        actor_id: args.actor,
        rpc: args.rpc,
        outcome: args.outcome,
        since: args.since,
        until: args.until,
    };
    let listed = client
        .call(async |channel| UserServiceClient::new(channel).list_audit_events(request.clone()).await)
        .await?;
    let rows = listed.events.iter().map(records::audit_event).collect();
    ctx.out.list("events", rows, AUDIT_COLUMNS, &listed.next_page_token);
    Ok(())
}
