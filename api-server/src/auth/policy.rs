//! The access each RPC requires: one table, read by the middleware. An RPC that
//! is not listed requires the admin role (deny by default).

use folio_auth::Role;

/// What a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token.
    Public,
    /// Any signed-in user (viewer and up).
    Authenticated,
    /// A member or an admin.
    Member,
    /// A member or an admin whose email is verified, when
    /// `FOLIO_REQUIRE_EMAIL_VERIFICATION` is on (uploads).
    VerifiedMember,
    /// An admin.
    Admin,
}

impl Access {
    /// Whether `role` satisfies this access.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::Authenticated => true,
            Access::Member | Access::VerifiedMember => role >= Role::Member,
            Access::Admin => role == Role::Admin,
        }
    }
}

/// Full method names (or a service prefix ending in `/`) and their access.
const TABLE: &[(&str, Access)] = &[
    ("/grpc.health.v1.Health/", Access::Public),
    ("/grpc.reflection.v1.ServerReflection/", Access::Public),
    ("/grpc.reflection.v1alpha.ServerReflection/", Access::Public),
    ("/folio.v1.AuthService/Register", Access::Public),
    ("/folio.v1.AuthService/Login", Access::Public),
    ("/folio.v1.AuthService/Refresh", Access::Public),
    ("/folio.v1.AuthService/VerifyMfa", Access::Public),
    ("/folio.v1.AuthService/StartOidcLogin", Access::Public),
    ("/folio.v1.AuthService/FinishOidcLogin", Access::Public),
    ("/folio.v1.AuthService/VerifyEmail", Access::Public),
    ("/folio.v1.AuthService/RequestPasswordReset", Access::Public),
    ("/folio.v1.AuthService/ResetPassword", Access::Public),
    ("/folio.v1.AuthService/ResendVerification", Access::Authenticated),
    ("/folio.v1.AuthService/BeginTotpEnrollment", Access::Authenticated),
    ("/folio.v1.AuthService/ConfirmTotp", Access::Authenticated),
    ("/folio.v1.AuthService/DisableTotp", Access::Authenticated),
    ("/folio.v1.AuthService/RegenerateBackupCodes", Access::Authenticated),
    ("/folio.v1.AuthService/ListPublicKeys", Access::Public),
    ("/folio.v1.AuthService/Logout", Access::Authenticated),
    ("/folio.v1.AuthService/ListSessions", Access::Authenticated),
    ("/folio.v1.AuthService/RevokeSession", Access::Authenticated),
    ("/folio.v1.AuthService/WhoAmI", Access::Authenticated),
    ("/folio.v1.AuthService/ChangePassword", Access::Authenticated),
    ("/folio.v1.UserService/", Access::Admin),
    ("/folio.v1.SystemService/GetInfo", Access::Authenticated),
    ("/folio.v1.DocumentService/UploadDocument", Access::VerifiedMember),
    ("/folio.v1.DocumentService/CreateDocument", Access::VerifiedMember),
    ("/folio.v1.DocumentService/DeleteDocument", Access::Member),
    ("/folio.v1.DocumentService/CancelDocument", Access::Member),
    ("/folio.v1.DocumentService/RetryDocument", Access::Member),
    ("/folio.v1.DocumentService/GetDocument", Access::Authenticated),
    ("/folio.v1.DocumentService/ListDocuments", Access::Authenticated),
    ("/folio.v1.DocumentService/ListDocumentEvents", Access::Authenticated),
    ("/folio.v1.DocumentService/ListChunks", Access::Authenticated),
    ("/folio.v1.DocumentService/GetDocumentStats", Access::Authenticated),
    ("/folio.v1.DocumentService/DownloadDocument", Access::Authenticated),
    ("/folio.v1.DocumentService/WatchDocument", Access::Authenticated),
    ("/folio.v1.DocumentService/WatchDocuments", Access::Authenticated),
    ("/folio.v1.SearchService/Search", Access::Authenticated),
    ("/folio.v1.ConversationService/", Access::Authenticated),
    ("/folio.v1.SharingService/CreateGroup", Access::Admin),
    ("/folio.v1.SharingService/RenameGroup", Access::Admin),
    ("/folio.v1.SharingService/DeleteGroup", Access::Admin),
    ("/folio.v1.SharingService/AddGroupMembers", Access::Admin),
    ("/folio.v1.SharingService/RemoveGroupMembers", Access::Admin),
    ("/folio.v1.SharingService/ListGroups", Access::Authenticated),
    ("/folio.v1.SharingService/ShareDocument", Access::Member),
    ("/folio.v1.SharingService/ShareLabel", Access::Member),
    ("/folio.v1.SharingService/ListShares", Access::Member),
    ("/folio.v1.SharingService/Unshare", Access::Member),
    ("/folio.v1.SearchService/ReindexDocuments", Access::Admin),
    ("/folio.v1.SystemService/PingWorkers", Access::Admin),
    ("/folio.v1.SystemService/ListWorkers", Access::Admin),
    ("/folio.v1.SystemService/GetSettings", Access::Authenticated),
    ("/folio.v1.SystemService/UpdateSettings", Access::Admin),
    ("/folio.v1.SystemService/TestProvider", Access::Admin),
    ("/folio.v1.SystemService/ListDeadLetters", Access::Admin),
    ("/folio.v1.SystemService/ReplayDeadLetters", Access::Admin),
    ("/folio.v1.SystemService/PurgeDeadLetters", Access::Admin),
    ("/folio.v1.SystemService/GetSystemStats", Access::Admin),
    ("/folio.v1.SystemService/ListTopUsers", Access::Admin),
    ("/folio.v1.SystemService/RegisterService", Access::Admin),
    ("/folio.v1.SystemService/UnregisterService", Access::Admin),
    ("/folio.v1.SystemService/ListServices", Access::Authenticated),
];

/// The access `path` (a gRPC `/package.Service/Method`) requires.
pub fn required(path: &str) -> Access {
    if let Some((_, access)) = TABLE.iter().find(|(name, _)| *name == path) {
        return *access;
    }
    TABLE
        .iter()
        .find(|(name, _)| name.ends_with('/') && path.starts_with(name))
        .map_or(Access::Admin, |(_, access)| *access)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_services_resolve_and_the_unlisted_need_admin() {
        assert_eq!(required("/folio.v1.AuthService/Login"), Access::Public);
        assert_eq!(required("/grpc.health.v1.Health/Watch"), Access::Public);
        assert_eq!(required("/folio.v1.UserService/ListUsers"), Access::Admin);
        assert_eq!(required("/folio.v1.Unknown/Thing"), Access::Admin);
        assert_eq!(required("/folio.v1.SharingService/CreateGroup"), Access::Admin);
        assert_eq!(required("/folio.v1.SharingService/ListGroups"), Access::Authenticated);
        assert!(!Access::Admin.allows(Role::Member));
        assert!(Access::Member.allows(Role::Admin));
        assert!(!Access::Member.allows(Role::Viewer));
    }
}
