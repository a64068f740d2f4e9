//! Which account a provider identity signs in to, and which email domains
//! must sign in through a provider (`FOLIO_SSO_REQUIRED_DOMAINS`), in domain
//! terms. The OpenID Connect flow itself is `oidc.rs`.

use folio_auth::{Email, Role, password::Password, refresh};
use folio_db::models::{oidc as links, user};

use crate::{
    accounts::{Accounts, NewUser},
    error::{ApiError, ApiResult},
    oidc::Identity,
};

impl Accounts {
    /// The provider `email`'s domain must sign in with, if any.
    pub fn required_provider(&self, email: &str) -> Option<&str> {
        let domain = email.rsplit_once('@').map(|(_, domain)| domain.to_lowercase())?;
        self.config
            .sso_required_domains
            .iter()
            .find(|(required, _)| *required == domain)
            .map(|(_, provider)| provider.as_str())
    }

    /// Refuses a password (a login or a registration) for `email` when its
    /// domain signs in through a provider.
    pub fn refuse_password_for(&self, email: &str) -> ApiResult<()> {
        match self.required_provider(email) {
            Some(provider) => Err(ApiError::PermissionDenied(format!(
                "accounts of this email domain sign in through {provider:?} (StartOidcLogin), not with a password"
            ))
            .because("SSO_REQUIRED")),
            None => Ok(()),
        }
    }

    /// The account `identity` signs in to: the one linked to its subject
    /// before; else the account with its email, which the provider must say
    /// is verified, linked now; else a new member with that email (verified
    /// by the provider, with a password nobody knows).
    pub async fn identity_account(&self, identity: &Identity) -> ApiResult<user::User> {
        let mut conn = self.pool.get().await?;
        let account = match links::linked_user(&mut conn, &identity.provider, &identity.subject).await? {
            Some(user_id) => user::find(&mut conn, user_id).await?,
            None => {
                let email = identity
                    .email
                    .as_deref()
                    .filter(|_| identity.email_verified)
                    .and_then(|email| Email::parse(email).ok())
                    .ok_or_else(|| {
                        ApiError::PermissionDenied("the provider gives no verified email for this identity".into())
                            .because("OIDC_EMAIL_UNVERIFIED")
                    })?;
                self.refuse_other_provider(email.as_str(), &identity.provider)?;
                let account = match user::find_by_email(&mut conn, email.as_str()).await? {
                    Some(account) => account,
                    None => {
                        drop(conn);
                        let (unknowable, _) = refresh::generate();
                        let created = self
                            .create_user(
                                NewUser {
                                    email: email.clone(),
                                    password: Password::parse(&unknowable).expect("43 random characters pass"),
                                    display_name: identity.name.clone().unwrap_or_default(),
                                    role: Role::Member,
                                },
                                true,
                            )
                            .await;
                        conn = self.pool.get().await?;
                        match created {
                            Ok(created) => created,
                            // Created meanwhile by a concurrent sign-in.
                            Err(error) if error.reason() == "EMAIL_TAKEN" => user::find_by_email(&mut conn, email.as_str())
                                .await?
                                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("the account of {email} vanished")))?,
                            Err(error) => return Err(error),
                        }
                    }
                };
                links::link(&mut conn, &identity.provider, &identity.subject, account.id).await?;
                user::set_email_verified(&mut conn, account.id).await?;
                Some(account)
            }
        };
        let account = account
            .filter(|account| account.active)
            .ok_or_else(|| ApiError::Unauthenticated("the account is deactivated".into()).because("LOGIN_FAILED"))?;
        self.refuse_other_provider(&account.email, &identity.provider)?;
        Ok(account)
    }

    /// Refuses `provider` for `email` when its domain must use another.
    fn refuse_other_provider(&self, email: &str, provider: &str) -> ApiResult<()> {
        match self.required_provider(email) {
            Some(required) if required != provider => Err(ApiError::PermissionDenied(format!(
                "accounts of this email domain sign in through {required:?}"
            ))
            .because("SSO_REQUIRED")),
            _ => Ok(()),
        }
    }
}
