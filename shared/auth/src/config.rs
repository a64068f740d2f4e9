//! Settings of accounts, tokens and limits.

use std::{path::PathBuf, time::Duration};

use folio_core::config::{ConfigError, Vars};
use ipnet::IpNet;

use crate::{Email, password::Password, secrets::SecretKeys, tokens::TokenKeys};

/// Settings of accounts, tokens and limits.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `FOLIO_TOKEN_KEYS`: comma-separated PASERK `k4.secret` keys; the first
    /// signs, all verify. Empty: a development key from `key_file`.
    pub token_keys: Vec<String>,
    /// `FOLIO_TOKEN_KEY_FILE`: where the development key is kept.
    pub key_file: PathBuf,
    /// `FOLIO_SECRET_KEYS`: comma-separated PASERK `k4.local` keys that seal
    /// secrets kept at rest (TOTP secrets); the first seals, all open. Empty:
    /// a development key from `secret_key_file`.
    pub secret_keys: Vec<String>,
    /// `FOLIO_SECRET_KEY_FILE`: where the development sealing key is kept.
    pub secret_key_file: PathBuf,
    /// `FOLIO_MFA_CHALLENGE_TTL_SECS`: how long a login's second-factor
    /// challenge lives.
    pub mfa_challenge_ttl: Duration,
    /// `FOLIO_MFA_ATTEMPTS`: wrong codes one challenge takes before it is
    /// burnt (the login must start again, and counts as failed).
    pub mfa_attempts: u32,
    /// `FOLIO_BREACHED_PASSWORDS_URL`: where a Pwned Passwords range API
    /// answers `GET <url>/<five hex digits>`; a new password found there is
    /// refused. Unset: only the offline list of common passwords.
    pub breached_passwords_url: Option<String>,
    /// `FOLIO_BREACHED_PASSWORDS_TIMEOUT_MS`: how long that check may take;
    /// past it, or on any failure, the password is accepted (fail open) with
    /// a warning.
    pub breached_passwords_timeout: Duration,
    /// `FOLIO_REQUIRE_EMAIL_VERIFICATION`: whether a new account must verify
    /// its email (the link of the email Register sends) before it uploads;
    /// with it on, Register answers the same whether the email is new or
    /// taken.
    pub require_email_verification: bool,
    /// `FOLIO_SMTP_URL`: where email goes: `smtps://user:pass@host:465`
    /// (TLS), `smtp://user:pass@host:587?tls=required` (STARTTLS) or
    /// `smtp://host:25` (plain, for a local relay). Unset: emails are written
    /// to the log, marked as not sent (a development fallback).
    pub smtp_url: Option<String>,
    /// `FOLIO_EMAIL_FROM`: the sender of folio's emails.
    pub email_from: String,
    /// `FOLIO_PUBLIC_URL`: where the links in emails point
    /// (`<url>/verify-email?token=…`, `<url>/reset-password?token=…`), a page
    /// of your front end that passes the token on. Unset: emails carry the
    /// token alone, with the RPC to pass it to.
    pub public_url: Option<String>,
    /// `FOLIO_OIDC_PROVIDERS`: the OpenID Connect providers users may sign
    /// in with, a JSON array of `{"name", "issuer", "client_id",
    /// "client_secret", "scopes"}`. Empty: none.
    pub oidc_providers: Vec<OidcProvider>,
    /// `FOLIO_SSO_REQUIRED_DOMAINS`: `corp.example=corp, …`: accounts of an
    /// email domain sign in only through that provider (no password).
    pub sso_required_domains: Vec<(String, String)>,
    /// `FOLIO_TOKEN_ISSUER`: the `iss` claim.
    pub issuer: String,
    /// `FOLIO_TOKEN_AUDIENCE`: the `aud` claim.
    pub audience: String,
    /// `FOLIO_ACCESS_TOKEN_TTL_SECS`: access token lifetime.
    pub access_ttl: Duration,
    /// `FOLIO_REFRESH_TTL_SECS`: absolute lifetime of a session.
    pub refresh_ttl: Duration,
    /// `FOLIO_REFRESH_IDLE_SECS`: how long an unused refresh token lives.
    pub refresh_idle: Duration,
    /// `FOLIO_REFRESH_REUSE_GRACE_MS`: a rotated token presented again within
    /// this time is a concurrent retry (refused, nothing revoked); later it is
    /// reuse (the family is revoked).
    pub refresh_reuse_grace: Duration,
    /// `FOLIO_OPEN_REGISTRATION`: whether anyone may `Register`.
    pub open_registration: bool,
    /// `FOLIO_ADMIN_EMAIL` and `FOLIO_ADMIN_PASSWORD`: the first admin, created
    /// at start if absent (never overwritten).
    pub bootstrap_admin: Option<(Email, String)>,
    /// `FOLIO_PASSWORD_HASH_CONCURRENCY`: argon2 hashes run at once.
    pub hash_concurrency: usize,
    /// `FOLIO_RATE_LIMIT_{ADMIN,MEMBER,VIEWER}`: calls per minute per account.
    pub rate_per_minute_admin: u32,
    pub rate_per_minute_member: u32,
    pub rate_per_minute_viewer: u32,
    /// `FOLIO_RATE_LIMIT_PEER`: calls per minute per peer address.
    pub rate_per_minute_peer: u32,
    /// `FOLIO_LOGIN_FAILURES_PER_ACCOUNT_PEER`: failed logins for one account from
    /// one address in 15 minutes before that pair must wait.
    pub login_failures_per_account_peer: u32,
    /// `FOLIO_LOGIN_FAILURES_PER_PEER`: failed logins from one address (any
    /// account) in 15 minutes before it must wait.
    pub login_failures_per_peer: u32,
    /// `FOLIO_LOGIN_FAILURES_PER_ACCOUNT`: failed logins for one account from
    /// all addresses together in 15 minutes before each further login for it
    /// is slowed down (never refused, so its owner is not locked out).
    pub login_failures_per_account: u32,
    /// `FOLIO_TRUSTED_PROXIES`: comma-separated addresses and networks
    /// (`10.0.0.0/8`) of reverse proxies whose `Forwarded` and
    /// `X-Forwarded-For` headers name the client. Empty: none, the headers
    /// are ignored.
    pub trusted_proxies: Vec<IpNet>,
    /// `FOLIO_AUDIT_BUFFER`: audit rows queued for the writer before a call
    /// waits for room (then spills its row).
    pub audit_buffer: usize,
    /// `FOLIO_AUDIT_SPILL_DIR`: where audit rows go that the database could
    /// not take in time; imported once it takes rows again.
    pub audit_spill_dir: PathBuf,
}

impl AuthConfig {
    /// Reads the settings through `lookup` (see `folio_core::config::Config::from_lookup`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_vars(&Vars(&lookup))
    }

    /// Reads the settings through `vars`.
    pub fn from_vars(vars: &Vars<'_>) -> Result<Self, ConfigError> {
        let token_keys = key_list(vars, "FOLIO_TOKEN_KEYS", TokenKeys::from_paserks)?;
        let secret_keys = key_list(vars, "FOLIO_SECRET_KEYS", SecretKeys::from_paserks)?;
        let oidc_providers = vars.checked("FOLIO_OIDC_PROVIDERS", oidc_providers)?.unwrap_or_default();
        let sso_required_domains = vars
            .checked("FOLIO_SSO_REQUIRED_DOMAINS", |text| {
                let pairs = sso_domains(text)?;
                match pairs.iter().find(|(_, name)| !oidc_providers.iter().any(|p| p.name == *name)) {
                    Some((domain, name)) => Err(format!("{domain} names {name:?}, which FOLIO_OIDC_PROVIDERS does not configure")),
                    None => Ok(pairs),
                }
            })?
            .unwrap_or_default();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(AuthConfig {
            token_keys,
            key_file: PathBuf::from(vars.text("FOLIO_TOKEN_KEY_FILE", "data/token-key.paserk")),
            secret_keys,
            secret_key_file: PathBuf::from(vars.text("FOLIO_SECRET_KEY_FILE", "data/secret-key.paserk")),
            mfa_challenge_ttl: vars.secs("FOLIO_MFA_CHALLENGE_TTL_SECS", 300, 30, 3600)?,
            mfa_attempts: vars.bounded("FOLIO_MFA_ATTEMPTS", 5, 1, 100)?,
            breached_passwords_url: vars.checked("FOLIO_BREACHED_PASSWORDS_URL", http_url)?,
            breached_passwords_timeout: vars.millis("FOLIO_BREACHED_PASSWORDS_TIMEOUT_MS", 2000, 50, 60_000)?,
            require_email_verification: vars.boolean("FOLIO_REQUIRE_EMAIL_VERIFICATION", false)?,
            smtp_url: vars.checked("FOLIO_SMTP_URL", smtp_url)?,
            email_from: vars
                .checked("FOLIO_EMAIL_FROM", email_from)?
                .unwrap_or_else(|| "folio <folio@localhost>".into()),
            public_url: vars.checked("FOLIO_PUBLIC_URL", http_url)?,
            oidc_providers,
            sso_required_domains,
            issuer: vars.text("FOLIO_TOKEN_ISSUER", "folio"),
            audience: vars.text("FOLIO_TOKEN_AUDIENCE", "folio"),
            access_ttl: vars.secs("FOLIO_ACCESS_TOKEN_TTL_SECS", 900, 1, 86_400)?,
            refresh_ttl: vars.secs("FOLIO_REFRESH_TTL_SECS", 30 * 86_400, 60, 365 * 86_400)?,
            refresh_idle: vars.secs("FOLIO_REFRESH_IDLE_SECS", 7 * 86_400, 60, 365 * 86_400)?,
            refresh_reuse_grace: vars.millis("FOLIO_REFRESH_REUSE_GRACE_MS", 2000, 0, 60_000)?,
            open_registration: vars.boolean("FOLIO_OPEN_REGISTRATION", true)?,
            bootstrap_admin: bootstrap_admin(vars)?,
            hash_concurrency: vars.bounded("FOLIO_PASSWORD_HASH_CONCURRENCY", cores, 1, 256)?,
            audit_buffer: vars.bounded("FOLIO_AUDIT_BUFFER", 10_000, 1, 1_000_000)?,
            audit_spill_dir: PathBuf::from(vars.text("FOLIO_AUDIT_SPILL_DIR", "data/audit-spill")),
            rate_per_minute_admin: vars.bounded("FOLIO_RATE_LIMIT_ADMIN", 1200, 1, 1_000_000)?,
            rate_per_minute_member: vars.bounded("FOLIO_RATE_LIMIT_MEMBER", 600, 1, 1_000_000)?,
            rate_per_minute_viewer: vars.bounded("FOLIO_RATE_LIMIT_VIEWER", 600, 1, 1_000_000)?,
            rate_per_minute_peer: vars.bounded("FOLIO_RATE_LIMIT_PEER", 3000, 1, 1_000_000)?,
            login_failures_per_account_peer: vars.bounded("FOLIO_LOGIN_FAILURES_PER_ACCOUNT_PEER", 5, 1, 10_000)?,
            login_failures_per_peer: vars.bounded("FOLIO_LOGIN_FAILURES_PER_PEER", 50, 1, 100_000)?,
            login_failures_per_account: vars.bounded("FOLIO_LOGIN_FAILURES_PER_ACCOUNT", 20, 1, 100_000)?,
            trusted_proxies: vars.checked("FOLIO_TRUSTED_PROXIES", trusted_proxies)?.unwrap_or_default(),
        })
    }
}

/// The comma-separated PASERK keys of variable `name`, each checked by
/// `load`; none when it is unset or empty.
fn key_list<T>(vars: &Vars<'_>, name: &'static str, load: fn(&[String]) -> Result<T, String>) -> Result<Vec<String>, ConfigError> {
    let keys = vars.checked(name, |keys| {
        let keys: Vec<String> = keys.split(',').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
        if !keys.is_empty() {
            load(&keys)?;
        }
        Ok::<_, String>(keys)
    })?;
    Ok(keys.unwrap_or_default())
}

/// An OpenID Connect provider users may sign in with.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProvider {
    /// What StartOidcLogin names it by.
    pub name: String,
    /// `oidc` (the default) or `oauth2`: a provider that is not OpenID
    /// Connect (GitHub's login), known by its endpoints and a user-info URL.
    #[serde(default)]
    pub kind: ProviderKind,
    /// Its issuer URL (OpenID Connect); `<issuer>/.well-known/
    /// openid-configuration` describes it.
    #[serde(default)]
    pub issuer: String,
    /// `oauth2`: its authorization and token endpoints, and the user-info
    /// URL whose JSON names the user.
    #[serde(default)]
    pub authorize_url: String,
    #[serde(default)]
    pub token_url: String,
    #[serde(default)]
    pub userinfo_url: String,
    /// `oauth2`: the user-info fields of the stable id (default `id`) and
    /// of the email (default `email`).
    #[serde(default = "default_subject_field")]
    pub subject_field: String,
    #[serde(default = "default_email_field")]
    pub email_field: String,
    /// `oauth2`: whether the user-info email is verified when it carries no
    /// `email_verified` (true for a provider that only shows verified
    /// emails); default false.
    #[serde(default)]
    pub trust_email: bool,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: String,
    /// Asked for beside `openid` (default: `email`, `profile`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("issuer", &self.issuer)
            .field("userinfo_url", &self.userinfo_url)
            .field("client_id", &self.client_id)
            .field("client_secret_set", &!self.client_secret.is_empty())
            .finish()
    }
}

/// What protocol a provider speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[default]
    Oidc,
    Oauth2,
}

fn default_subject_field() -> String {
    "id".into()
}

fn default_email_field() -> String {
    "email".into()
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

/// The JSON array of providers, each with a distinct name and an http(s)
/// issuer.
fn oidc_providers(text: &str) -> Result<Vec<OidcProvider>, String> {
    let providers: Vec<OidcProvider> = serde_json::from_str(text).map_err(|e| format!("is not a JSON array of providers: {e}"))?;
    for (index, provider) in providers.iter().enumerate() {
        if provider.name.trim().is_empty() || providers[..index].iter().any(|p| p.name == provider.name) {
            return Err(format!("provider {index}: names must be given and distinct"));
        }
        let urls: &[(&str, &str)] = match provider.kind {
            ProviderKind::Oidc => &[("issuer", &provider.issuer)],
            ProviderKind::Oauth2 => &[
                ("authorize_url", &provider.authorize_url),
                ("token_url", &provider.token_url),
                ("userinfo_url", &provider.userinfo_url),
            ],
        };
        for (field, url) in urls {
            http_url(url).map_err(|e| format!("provider {:?}: {field} {e}", provider.name))?;
        }
    }
    Ok(providers)
}

/// `domain=provider` pairs, comma-separated.
fn sso_domains(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (domain, provider) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not domain=provider"))?;
            Ok((domain.trim().to_lowercase(), provider.trim().to_owned()))
        })
        .collect()
}

/// An SMTP URL: `smtp://` or `smtps://`.
fn smtp_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    if url.starts_with("smtp://") || url.starts_with("smtps://") {
        Ok(url.to_owned())
    } else {
        Err("must be an smtp:// or smtps:// URL".into())
    }
}

/// A sender: `Name <address>` or a bare address.
fn email_from(text: &str) -> Result<String, String> {
    let text = text.trim();
    let address = text.rsplit_once('<').map_or(text, |(_, rest)| rest.trim_end_matches('>'));
    Email::parse(address).map_err(|e| format!("the address {e}"))?;
    Ok(text.to_owned())
}

/// An http(s) URL, without its trailing slash.
fn http_url(text: &str) -> Result<String, String> {
    let url = text.trim().trim_end_matches('/');
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.to_owned())
    } else {
        Err(format!("{url:?} is not an http:// or https:// URL"))
    }
}

/// `10.0.0.0/8, 127.0.0.1, ::1`: networks, or addresses standing for
/// themselves alone.
fn trusted_proxies(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is neither an address nor a network such as 10.0.0.0/8"))
        })
        .collect()
}

/// The first admin: both variables or neither, with a valid address and
/// password. The password is taken as set, spaces included.
fn bootstrap_admin(vars: &Vars<'_>) -> Result<Option<(Email, String)>, ConfigError> {
    let email = vars.checked("FOLIO_ADMIN_EMAIL", Email::parse)?;
    match (email, vars.untrimmed("FOLIO_ADMIN_PASSWORD")) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => {
            Password::parse(&password).map_err(|problem| ConfigError::new("FOLIO_ADMIN_PASSWORD", problem))?;
            Ok(Some((email, password)))
        }
        (Some(_), None) => Err(ConfigError::new("FOLIO_ADMIN_PASSWORD", "is not set but FOLIO_ADMIN_EMAIL is")),
        (None, Some(_)) => Err(ConfigError::new("FOLIO_ADMIN_EMAIL", "is not set but FOLIO_ADMIN_PASSWORD is")),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = AuthConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.access_ttl, Duration::from_secs(900));
        assert!(config.open_registration);
        assert!(config.bootstrap_admin.is_none());
        assert!(config.trusted_proxies.is_empty());
    }

    #[test]
    fn trusted_proxies_are_networks_or_single_addresses() {
        let config = AuthConfig::from_lookup(lookup(&[("FOLIO_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")])).unwrap();
        let nets: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]);
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (name, value) in [
            ("FOLIO_TOKEN_KEYS", "k4.secret.nonsense"),
            ("FOLIO_SECRET_KEYS", "k4.local.nonsense"),
            ("FOLIO_BREACHED_PASSWORDS_URL", "ftp://passwords.internal/range"),
            ("FOLIO_SMTP_URL", "mail.internal:25"),
            ("FOLIO_EMAIL_FROM", "folio <not an address>"),
            ("FOLIO_OIDC_PROVIDERS", r#"[{"name": "corp"}]"#),
            ("FOLIO_SSO_REQUIRED_DOMAINS", "corp.example=corp"),
            ("FOLIO_OPEN_REGISTRATION", "maybe"),
            ("FOLIO_ADMIN_EMAIL", "not-an-email"),
            ("FOLIO_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
        ] {
            let error = AuthConfig::from_lookup(lookup(&[(name, value)])).unwrap_err();
            assert_eq!(error.variable, name, "{value}");
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_bootstrap_admin_needs_both_settings_and_a_valid_password() {
        let mut pairs = vec![("FOLIO_ADMIN_EMAIL", "admin@example.org")];
        assert_eq!(
            AuthConfig::from_lookup(lookup(&pairs)).unwrap_err().variable,
            "FOLIO_ADMIN_PASSWORD"
        );
        pairs.push(("FOLIO_ADMIN_PASSWORD", "password"));
        let error = AuthConfig::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(error.variable, "FOLIO_ADMIN_PASSWORD");
        pairs.push(("FOLIO_ADMIN_PASSWORD", "a sturdy admin passphrase"));
        let config = AuthConfig::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.bootstrap_admin.unwrap().0.as_str(), "admin@example.org");
    }
}
