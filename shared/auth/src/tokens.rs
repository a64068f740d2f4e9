//! Access tokens: PASETO v4.public (Ed25519) through pasetors.
//!
//! Claims: `sub` (user id), `role`, `sid` (session id), `jti`, `iss`, `aud`,
//! `iat`, `nbf`, `exp`. The footer is exactly `{"kid":"k4.pid.…"}`, the PASERK
//! id of the signing key: any other member, a duplicate, or a footer over
//! [`MAX_FOOTER_BYTES`] is refused before a key is looked up. Every token is
//! signed over the implicit assertion [`ACCESS_TOKEN_ASSERTION`] (never sent),
//! which binds it to its purpose: a token the same key signed for anything
//! else does not verify as an access token. The first configured key signs;
//! every configured key verifies, so a new key can be introduced (second),
//! promoted (first) and the old one retired later without logging anyone out.
//!
//! Two layers: [`seal`] and [`open`] are PASETO v4.public itself (the layer
//! the official test vectors check, see `tests/fixtures/paseto/`), and
//! [`TokenIssuer`] is folio's use of it (footer, key choice, claims).

use std::{fmt::Write as _, path::Path, time::Duration};

use chrono::{DateTime, Utc};
use pasetors::{
    Public,
    claims::{Claims, ClaimsValidationRules},
    keys::{AsymmetricKeyPair, AsymmetricPublicKey, AsymmetricSecretKey, Generate as _},
    paserk::{FormatAsPaserk as _, Id},
    token::UntrustedToken,
    version4::{PublicToken, V4},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;

/// Signed over by every access token and never sent: verifiers outside folio
/// pass it too (`implicit_assertion` in most PASETO libraries).
pub const ACCESS_TOKEN_ASSERTION: &[u8] = b"folio access token v1";

/// The longest footer read: folio's own is 59 bytes.
pub const MAX_FOOTER_BYTES: usize = 128;

/// The longest token read at all (folio's are about 420 bytes).
pub const MAX_TOKEN_BYTES: usize = 2048;

/// The only footer folio writes or reads.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyIdFooter {
    kid: String,
}

/// Signs `payload` as a PASETO v4.public token with `footer` (none when empty)
/// and the implicit assertion `implicit`.
pub fn seal(key: &AsymmetricSecretKey<V4>, payload: &[u8], footer: &[u8], implicit: &[u8]) -> Result<String, TokenError> {
    PublicToken::sign(key, payload, (!footer.is_empty()).then_some(footer), Some(implicit)).map_err(|_| TokenError::Malformed)
}

/// Reads a token's parts without trusting them: a v4.public token of at most
/// [`MAX_TOKEN_BYTES`] whose footer is at most [`MAX_FOOTER_BYTES`].
pub fn untrusted(token: &str) -> Result<UntrustedToken<Public, V4>, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let untrusted = UntrustedToken::<Public, V4>::try_from(token).map_err(|_| TokenError::Malformed)?;
    if untrusted.untrusted_footer().len() > MAX_FOOTER_BYTES {
        return Err(TokenError::Malformed);
    }
    Ok(untrusted)
}

/// Verifies a token's signature with `key` over its payload, its footer and
/// `implicit`, and returns the payload.
pub fn open(key: &AsymmetricPublicKey<V4>, token: &UntrustedToken<Public, V4>, implicit: &[u8]) -> Result<Vec<u8>, TokenError> {
    let trusted = PublicToken::verify(key, token, None, Some(implicit)).map_err(|_| TokenError::Invalid)?;
    Ok(trusted.payload().as_bytes().to_vec())
}

/// A key that verifies tokens, as `ListPublicKeys` reports it.
#[derive(Clone)]
pub struct PublicKeyInfo {
    /// PASERK `k4.pid.…`.
    pub id: String,
    /// PASERK `k4.public.…`.
    pub paserk: String,
    /// Whether this key signs new tokens.
    pub signing: bool,
    key: AsymmetricPublicKey<V4>,
}

impl PublicKeyInfo {
    /// A verifying key with its PASERK id and PASERK.
    pub fn new(key: AsymmetricPublicKey<V4>, signing: bool) -> PublicKeyInfo {
        let mut id = String::new();
        Id::from(&key).fmt(&mut id).expect("formatting into a String");
        PublicKeyInfo {
            id,
            paserk: paserk(&key),
            signing,
            key,
        }
    }
}

/// The signing key and every verifying key.
#[derive(Clone)]
pub struct TokenKeys {
    signing_id: Id,
    signing: AsymmetricSecretKey<V4>,
    public: Vec<PublicKeyInfo>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("keys", &self.public.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish()
    }
}

fn paserk(key: &dyn pasetors::paserk::FormatAsPaserk) -> String {
    let mut out = String::new();
    key.fmt(&mut out).expect("formatting into a String");
    out
}

impl TokenKeys {
    /// Keys from PASERK `k4.secret.…` strings; the first signs.
    pub fn from_paserks(secrets: &[String]) -> Result<TokenKeys, String> {
        let mut keys = Vec::new();
        for (index, secret) in secrets.iter().enumerate() {
            if has_zero_seed(secret) {
                return Err(format!("entry {} has an all-zero seed: its secret is public", index + 1));
            }
            let key = AsymmetricSecretKey::<V4>::try_from(secret.as_str())
                .map_err(|_| format!("entry {} is not a k4.secret PASERK", index + 1))?;
            keys.push(key);
        }
        let Some(signing) = keys.first().cloned() else {
            return Err("no key given".into());
        };
        let public = keys
            .iter()
            .enumerate()
            .map(|(index, secret)| {
                let key = AsymmetricPublicKey::<V4>::try_from(secret).expect("public half of a valid secret key");
                PublicKeyInfo::new(key, index == 0)
            })
            .collect();
        let signing_public = AsymmetricPublicKey::<V4>::try_from(&signing).expect("public half");
        Ok(TokenKeys {
            signing_id: Id::from(&signing_public),
            signing,
            public,
        })
    }

    /// A new random key as a PASERK `k4.secret.…` string.
    pub fn generate_secret() -> String {
        let pair = AsymmetricKeyPair::<V4>::generate().expect("key generation");
        paserk(&pair.secret)
    }

    /// The development key saved at `path`, created (mode 0600) if absent.
    pub fn development(path: &Path) -> Result<TokenKeys, String> {
        let secret = read_or_create_private(path, Self::generate_secret)?;
        Self::from_paserks(&[secret])
    }

    /// The verifying keys, signing key first.
    pub fn public_keys(&self) -> &[PublicKeyInfo] {
        &self.public
    }
}

/// Whether a `k4.secret` PASERK holds the all-zero Ed25519 seed (the first
/// official test vector). Such a key signs nothing secret, and pasetors hands
/// it to a key-pair constructor that panics, so it is refused before.
fn has_zero_seed(secret: &str) -> bool {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let Some(encoded) = secret.strip_prefix("k4.secret.") else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(encoded)
        .is_ok_and(|key| key.len() == 64 && key[..32].iter().all(|&b| b == 0))
}

/// The key kept at `path`, or a new one from `generate` written there (mode
/// 0600, its folder created) when there is none yet.
pub(crate) fn read_or_create_private(path: &Path, generate: impl FnOnce() -> String) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = generate();
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            write_private(path, &key).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            Ok(key)
        }
        Err(error) => Err(format!("cannot read {}: {error}", path.display())),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _};
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(file, "{contents}")
}

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub jti: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// Why a token was refused. Clients see only "invalid or expired token".
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed (not v4.public, too long, or a footer other than the key id)")]
    Malformed,
    #[error("token was signed by an unknown key")]
    UnknownKey,
    #[error("token signature or claims are invalid (expired, not yet valid, other issuer or audience)")]
    Invalid,
}

/// Issues and verifies access tokens.
#[derive(Clone, Debug)]
pub struct TokenIssuer {
    pub keys: TokenKeys,
    pub issuer: String,
    pub audience: String,
    pub ttl: Duration,
}

impl TokenIssuer {
    /// Signs an access token for `user_id` in `session_id`.
    pub fn issue(&self, user_id: Uuid, role: Role, session_id: Uuid) -> (String, AccessClaims) {
        let jti = Uuid::new_v4();
        let mut claims = Claims::new_expires_in(&self.ttl).expect("claims");
        claims.subject(&user_id.to_string()).expect("sub");
        claims.issuer(&self.issuer).expect("iss");
        claims.audience(&self.audience).expect("aud");
        claims.token_identifier(&jti.to_string()).expect("jti");
        claims.add_additional("role", role.as_str()).expect("role");
        claims.add_additional("sid", session_id.to_string()).expect("sid");
        let mut kid = String::new();
        self.keys.signing_id.fmt(&mut kid).expect("formatting into a String");
        let footer = serde_json::to_vec(&KeyIdFooter { kid }).expect("a footer");
        let payload = claims.to_string().expect("claims");
        let token = seal(&self.keys.signing, payload.as_bytes(), &footer, ACCESS_TOKEN_ASSERTION).expect("signing");
        let expires_at = Utc::now() + chrono::Duration::from_std(self.ttl).unwrap_or_default();
        (
            token,
            AccessClaims {
                user_id,
                role,
                session_id,
                jti,
                expires_at,
            },
        )
    }

    /// Verifies the footer (`kid` alone), the signature (with the key the
    /// footer names, over [`ACCESS_TOKEN_ASSERTION`]), `iss`, `aud`, `exp`,
    /// `nbf` and `iat`, and reads folio's claims.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let untrusted = untrusted(token)?;
        let footer: KeyIdFooter = serde_json::from_slice(untrusted.untrusted_footer()).map_err(|_| TokenError::Malformed)?;
        let key = self.keys.public.iter().find(|k| k.id == footer.kid).ok_or(TokenError::UnknownKey)?;
        let payload = open(&key.key, &untrusted, ACCESS_TOKEN_ASSERTION)?;
        let claims = Claims::from_bytes(&payload).map_err(|_| TokenError::Invalid)?;
        let mut rules = ClaimsValidationRules::new();
        rules.validate_issuer_with(&self.issuer);
        rules.validate_audience_with(&self.audience);
        rules.validate_claims(&claims).map_err(|_| TokenError::Invalid)?;
        let text = |name: &str| claims.get_claim(name).and_then(|v| v.as_str()).ok_or(TokenError::Invalid);
        let uuid = |name: &str| text(name)?.parse::<Uuid>().map_err(|_| TokenError::Invalid);
        Ok(AccessClaims {
            user_id: uuid("sub")?,
            role: Role::parse(text("role")?).ok_or(TokenError::Invalid)?,
            session_id: uuid("sid")?,
            jti: uuid("jti")?,
            expires_at: DateTime::parse_from_rfc3339(text("exp")?)
                .map_err(|_| TokenError::Invalid)?
                .with_timezone(&Utc),
        })
    }
}

/// Formats a key id for logs.
pub fn describe(keys: &TokenKeys) -> String {
    let mut out = String::new();
    for key in keys.public_keys() {
        let _ = write!(out, "{}{} ", key.id, if key.signing { " (signing)" } else { "" });
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secrets: &[String], audience: &str) -> TokenIssuer {
        TokenIssuer {
            keys: TokenKeys::from_paserks(secrets).unwrap(),
            issuer: "folio".into(),
            audience: audience.into(),
            ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_token_verifies_and_carries_its_claims() {
        let tokens = issuer(&[TokenKeys::generate_secret()], "folio");
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let (token, issued) = tokens.issue(user, Role::Member, session);
        assert!(token.starts_with("v4.public."));
        let verified = tokens.verify(&token).unwrap();
        assert_eq!(
            (verified.user_id, verified.role, verified.session_id, verified.jti),
            (user, Role::Member, session, issued.jti)
        );
    }

    #[test]
    fn other_audience_tampered_and_unknown_key_tokens_fail() {
        let secret = TokenKeys::generate_secret();
        let ours = issuer(std::slice::from_ref(&secret), "folio");
        let (token, _) = issuer(std::slice::from_ref(&secret), "elsewhere").issue(Uuid::new_v4(), Role::Admin, Uuid::new_v4());
        assert!(matches!(ours.verify(&token), Err(TokenError::Invalid)));

        let (token, _) = ours.issue(Uuid::new_v4(), Role::Viewer, Uuid::new_v4());
        let mut tampered = token.into_bytes();
        let middle = tampered.len() / 2;
        tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
        assert!(ours.verify(&String::from_utf8(tampered).unwrap()).is_err());

        let (token, _) = issuer(&[TokenKeys::generate_secret()], "folio").issue(Uuid::new_v4(), Role::Admin, Uuid::new_v4());
        assert!(matches!(ours.verify(&token), Err(TokenError::UnknownKey)));
        assert!(matches!(ours.verify("v4.public.garbage"), Err(TokenError::Malformed)));
    }

    #[test]
    fn another_issuer_is_refused() {
        let secret = TokenKeys::generate_secret();
        let ours = issuer(std::slice::from_ref(&secret), "folio");
        let mut theirs = issuer(std::slice::from_ref(&secret), "folio");
        theirs.issuer = "elsewhere".into();
        let (token, _) = theirs.issue(Uuid::new_v4(), Role::Admin, Uuid::new_v4());
        assert!(matches!(ours.verify(&token), Err(TokenError::Invalid)));
    }

    /// A token signed by folio's own key over folio's claims, with `footer`
    /// and `implicit` chosen by the test.
    fn forged(tokens: &TokenIssuer, footer: &[u8], implicit: &[u8]) -> String {
        let (token, _) = tokens.issue(Uuid::new_v4(), Role::Member, Uuid::new_v4());
        let untrusted = untrusted(&token).unwrap();
        let payload = untrusted.untrusted_payload().to_vec();
        seal(&tokens.keys.signing, &payload, footer, implicit).unwrap()
    }

    #[test]
    fn only_a_footer_of_the_key_id_alone_is_read() {
        let tokens = issuer(&[TokenKeys::generate_secret()], "folio");
        let kid = &tokens.keys.public_keys()[0].id;
        let exact = format!(r#"{{"kid":"{kid}"}}"#);
        assert!(tokens.verify(&forged(&tokens, exact.as_bytes(), ACCESS_TOKEN_ASSERTION)).is_ok());
        let refused = [
            format!(r#"{{"kid":"{kid}","role":"admin"}}"#),
            format!(r#"{{"kid":"{kid}","kid":"{kid}"}}"#),
            format!(r#"{{"kid":"{kid}","wpk":"k4.local-wrap.pie.x"}}"#),
            format!(r#"{{"kid":"{kid}"{}}}"#, " ".repeat(MAX_FOOTER_BYTES)),
            kid.clone(),
            String::new(),
        ];
        for footer in refused {
            let token = forged(&tokens, footer.as_bytes(), ACCESS_TOKEN_ASSERTION);
            assert!(
                matches!(tokens.verify(&token), Err(TokenError::Malformed)),
                "footer {footer:?} was read"
            );
        }
    }

    #[test]
    fn a_token_signed_for_another_purpose_is_refused() {
        let tokens = issuer(&[TokenKeys::generate_secret()], "folio");
        let kid = &tokens.keys.public_keys()[0].id;
        let footer = format!(r#"{{"kid":"{kid}"}}"#);
        for implicit in [&b""[..], b"folio refresh token v1", b"folio access token v2"] {
            let token = forged(&tokens, footer.as_bytes(), implicit);
            assert!(matches!(tokens.verify(&token), Err(TokenError::Invalid)), "{implicit:?} verified");
        }
    }

    #[test]
    fn keys_rotate_both_ways() {
        let (old, new) = (TokenKeys::generate_secret(), TokenKeys::generate_secret());
        let before = issuer(std::slice::from_ref(&old), "folio");
        let during = issuer(&[new.clone(), old.clone()], "folio");
        let (old_token, _) = before.issue(Uuid::new_v4(), Role::Member, Uuid::new_v4());
        let (new_token, _) = during.issue(Uuid::new_v4(), Role::Member, Uuid::new_v4());
        assert!(during.verify(&old_token).is_ok(), "old tokens keep working after the new key signs");
        assert!(
            issuer(&[old, new], "folio").verify(&new_token).is_ok(),
            "new tokens work where the new key is second"
        );
    }
}
