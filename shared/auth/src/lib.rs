//! Identity: roles, email and password rules, password hashing, access tokens
//! (PASETO v4.public), opaque refresh tokens, second factors (TOTP and backup
//! codes) and secrets sealed at rest (PASETO v4.local). Transport-free: the api-server
//! maps these types to gRPC. Only the api-server depends on this crate: the
//! worker never authenticates anyone, so it does not compile argon2 or pasetors.
//!
//! [`config`] holds the settings of accounts, tokens and limits; they are read
//! here rather than in `folio_core::config` because checking them needs the
//! rules of this crate.

pub mod breached;
pub mod config;
pub mod email;
pub mod password;
pub mod refresh;
pub mod second_factor;
pub mod secrets;
pub mod tokens;

pub use email::Email;

/// What a user may do. Ordered: a higher role may do what a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read and search only.
    Viewer,
    /// Their own documents.
    Member,
    /// Everything, including user administration.
    Admin,
}

impl Role {
    /// The name stored in the database and carried in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or claimed role name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}
