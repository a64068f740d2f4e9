//! `folio.v1.SharingService`: groups (admins, by the policy table; ListGroups
//! anyone signed in) and shares (a document's owner or an admin). Each RPC
//! is a shim: it reads the principal and the request into domain terms,
//! naming the request's fields in what it refuses, calls `sharing.rs`, which
//! takes and returns domain values, and converts the answer (`convert.rs`).
//!
//! Why a service of its own rather than more DocumentService methods: groups
//! are accounts' business, not documents', and shares are read access, which
//! every reading service (documents, search, watches) consults through
//! `sharing::readable` and `share::Reach`; one service keeps the policy
//! table's lines and the audit events of access in one place.

use folio_proto::v1::{
    self as pb, CreateGroupRequest, DeleteGroupRequest, DeleteGroupResponse, GroupMembersRequest, ListGroupsRequest, ListGroupsResponse,
    ListSharesRequest, ListSharesResponse, RenameGroupRequest, ShareDocumentRequest, ShareLabelRequest, UnshareRequest, UnshareResponse,
    sharing_service_server::SharingService,
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    auth,
    convert::{group_to_proto, share_to_proto, to_id},
    error::{ApiError, ApiResult},
    sharing::{self, Sharing, What, Whom},
};

/// The most accounts one AddGroupMembers or RemoveGroupMembers names.
const MEMBERS_PER_CALL: usize = 1000;

#[tonic::async_trait]
impl SharingService for Sharing {
    async fn create_group(&self, request: Request<CreateGroupRequest>) -> Result<Response<pb::Group>, Status> {
        let name = group_name(&request.get_ref().name)?;
        Ok(Response::new(group_to_proto(self.create_group(&name).await?)))
    }

    async fn rename_group(&self, request: Request<RenameGroupRequest>) -> Result<Response<pb::Group>, Status> {
        let RenameGroupRequest { group_id, name } = request.into_inner();
        let id = to_id("group_id", &group_id)?;
        let name = group_name(&name)?;
        Ok(Response::new(group_to_proto(self.rename_group(id, &name).await?)))
    }

    async fn delete_group(&self, request: Request<DeleteGroupRequest>) -> Result<Response<DeleteGroupResponse>, Status> {
        self.delete_group(to_id("group_id", &request.get_ref().group_id)?).await?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn add_group_members(&self, request: Request<GroupMembersRequest>) -> Result<Response<pb::Group>, Status> {
        let (id, users) = members(request.into_inner())?;
        Ok(Response::new(group_to_proto(self.add_members(id, &users).await?)))
    }

    async fn remove_group_members(&self, request: Request<GroupMembersRequest>) -> Result<Response<pb::Group>, Status> {
        let (id, users) = members(request.into_inner())?;
        Ok(Response::new(group_to_proto(self.remove_members(id, &users).await?)))
    }

    async fn list_groups(&self, request: Request<ListGroupsRequest>) -> Result<Response<ListGroupsResponse>, Status> {
        let principal = auth::principal(&request)?;
        let groups = self.groups(&principal).await?;
        Ok(Response::new(ListGroupsResponse {
            groups: groups.into_iter().map(group_to_proto).collect(),
        }))
    }

    async fn share_document(&self, request: Request<ShareDocumentRequest>) -> Result<Response<pb::Share>, Status> {
        let principal = auth::principal(&request)?;
        let ShareDocumentRequest {
            document_id,
            user_id,
            group_id,
        } = request.into_inner();
        let document = to_id("document_id", &document_id)?;
        let whom = whom(&user_id, &group_id)?;
        Ok(Response::new(share_to_proto(
            self.share(&principal, What::Document(document), whom).await?,
        )))
    }

    async fn share_label(&self, request: Request<ShareLabelRequest>) -> Result<Response<pb::Share>, Status> {
        let principal = auth::principal(&request)?;
        let ShareLabelRequest {
            label,
            user_id,
            group_id,
            owner_id,
        } = request.into_inner();
        let label = sharing::label(&label).map_err(|why| ApiError::invalid("label", why))?;
        let owner = optional_id("owner_id", &owner_id)?;
        let whom = whom(&user_id, &group_id)?;
        Ok(Response::new(share_to_proto(
            self.share(&principal, What::Label { label, owner }, whom).await?,
        )))
    }

    async fn list_shares(&self, request: Request<ListSharesRequest>) -> Result<Response<ListSharesResponse>, Status> {
        let principal = auth::principal(&request)?;
        let document = optional_id("document_id", &request.get_ref().document_id)?;
        let owner = optional_id("owner_id", &request.get_ref().owner_id)?;
        let shares = self.shares(&principal, document, owner).await?;
        Ok(Response::new(ListSharesResponse {
            shares: shares.into_iter().map(share_to_proto).collect(),
        }))
    }

    async fn unshare(&self, request: Request<UnshareRequest>) -> Result<Response<UnshareResponse>, Status> {
        let principal = auth::principal(&request)?;
        self.unshare(&principal, to_id("share_id", &request.get_ref().share_id)?).await?;
        Ok(Response::new(UnshareResponse {}))
    }
}

fn group_name(name: &str) -> ApiResult<String> {
    sharing::group_name(name).map_err(|why| ApiError::invalid("name", why))
}

/// The group and the accounts a membership change names.
fn members(request: GroupMembersRequest) -> ApiResult<(Uuid, Vec<Uuid>)> {
    let id = to_id("group_id", &request.group_id)?;
    if request.user_ids.is_empty() || request.user_ids.len() > MEMBERS_PER_CALL {
        return Err(ApiError::invalid("user_ids", format!("must name 1 to {MEMBERS_PER_CALL} accounts")));
    }
    let users = request
        .user_ids
        .iter()
        .map(|user| to_id("user_ids", user))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((id, users))
}

/// The one of `user_id` and `group_id` that is set.
fn whom(user_id: &str, group_id: &str) -> ApiResult<Whom> {
    match (optional_id("user_id", user_id)?, optional_id("group_id", group_id)?) {
        (Some(user), None) => Ok(Whom::User(user)),
        (None, Some(group)) => Ok(Whom::Group(group)),
        _ => Err(ApiError::invalid("user_id", "exactly one of user_id and group_id is required")),
    }
}

/// The id in `field`, or None when it is empty.
fn optional_id(field: &str, text: &str) -> ApiResult<Option<Uuid>> {
    match text.trim() {
        "" => Ok(None),
        text => to_id(field, text).map(Some),
    }
}
