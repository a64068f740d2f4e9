//! Secrets kept encrypted at rest (TOTP secrets): sealed as PASETO v4.local
//! (XChaCha20 and BLAKE2b-MAC, through pasetors, which folio already uses for
//! access tokens) under a configured symmetric key.
//!
//! A sealed value is the token text. Its footer names the key that sealed it
//! (`{"kid":"<k4.lid>"}`), so keys rotate the way token keys do: the first
//! key seals, every key opens. Each seal binds a context as the implicit
//! assertion (for a TOTP secret, its purpose and the user's id), so a value
//! copied into another user's row, or another column, no longer opens.

use std::path::Path;

use pasetors::{
    Local, keys::Generate as _, keys::SymmetricKey, paserk::FormatAsPaserk, paserk::Id, token::UntrustedToken, version4::LocalToken,
    version4::V4,
};

/// The keys that seal and open secrets; the first seals.
#[derive(Clone)]
pub struct SecretKeys {
    keys: Vec<(String, SymmetricKey<V4>)>,
}

impl std::fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("SecretKeys").field("ids", &ids).finish()
    }
}

/// Why a sealed value did not open. Either way the secret is unusable; the
/// error says which, for the log.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no configured key opens it (its key {0:?} is not in FOLIO_SECRET_KEYS)")]
    UnknownKey(String),
    #[error("it is not a sealed value, or was altered, or belongs to another context")]
    Invalid,
}

impl SecretKeys {
    /// Keys from PASERK `k4.local.…` strings; the first seals.
    pub fn from_paserks(keys: &[String]) -> Result<SecretKeys, String> {
        let keys = keys
            .iter()
            .map(|paserk| {
                let key = SymmetricKey::<V4>::try_from(paserk.as_str()).map_err(|_| "must hold PASERK `k4.local.…` keys".to_owned())?;
                Ok((paserk_of(&Id::from(&key)), key))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if keys.is_empty() {
            return Err("must hold at least one key".into());
        }
        Ok(SecretKeys { keys })
    }

    /// A new random key as a PASERK `k4.local.…` string.
    pub fn generate() -> String {
        paserk_of(&SymmetricKey::<V4>::generate().expect("operating system randomness"))
    }

    /// The development key saved at `path`, created (mode 0600) if absent.
    pub fn development(path: &Path) -> Result<SecretKeys, String> {
        let key = crate::tokens::read_or_create_private(path, Self::generate)?;
        Self::from_paserks(&[key])
    }

    /// `plaintext` sealed under the first key, bound to `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let (id, key) = &self.keys[0];
        let footer = footer(id);
        LocalToken::encrypt(key, plaintext.as_bytes(), Some(footer.as_bytes()), Some(context.as_bytes()))
            .expect("sealing a non-empty secret")
    }

    /// The plaintext of `sealed`, if a configured key sealed it for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, OpenError> {
        let token = UntrustedToken::<Local, V4>::try_from(sealed).map_err(|_| OpenError::Invalid)?;
        let named = serde_json::from_slice::<serde_json::Value>(token.untrusted_footer())
            .ok()
            .and_then(|footer| footer.get("kid").and_then(|kid| kid.as_str()).map(str::to_owned))
            .ok_or(OpenError::Invalid)?;
        let (id, key) = self
            .keys
            .iter()
            .find(|(id, _)| *id == named)
            .ok_or_else(|| OpenError::UnknownKey(named.clone()))?;
        let opened =
            LocalToken::decrypt(key, &token, Some(footer(id).as_bytes()), Some(context.as_bytes())).map_err(|_| OpenError::Invalid)?;
        Ok(opened.payload().to_owned())
    }
}

fn footer(id: &str) -> String {
    serde_json::json!({ "kid": id }).to_string()
}

fn paserk_of(value: &dyn FormatAsPaserk) -> String {
    let mut out = String::new();
    value.fmt(&mut out).expect("formatting into a String");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_context_and_a_key_that_sealed_it() {
        let old = SecretKeys::generate();
        let new = SecretKeys::generate();
        let before = SecretKeys::from_paserks(std::slice::from_ref(&old)).unwrap();
        let sealed = before.seal("JBSWY3DPEHPK3PXP", "totp:user-1");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(before.open(&sealed, "totp:user-1").unwrap(), "JBSWY3DPEHPK3PXP");
        assert!(matches!(before.open(&sealed, "totp:user-2"), Err(OpenError::Invalid)));

        // Rotated: the new key seals, the old one still opens what it sealed.
        let rotated = SecretKeys::from_paserks(&[new.clone(), old]).unwrap();
        assert_eq!(rotated.open(&sealed, "totp:user-1").unwrap(), "JBSWY3DPEHPK3PXP");
        let resealed = rotated.seal("JBSWY3DPEHPK3PXP", "totp:user-1");
        assert!(matches!(before.open(&resealed, "totp:user-1"), Err(OpenError::UnknownKey(_))));

        let mut altered = sealed.into_bytes();
        altered[20] ^= 1;
        assert!(before.open(&String::from_utf8(altered).unwrap(), "totp:user-1").is_err());
        assert!(SecretKeys::from_paserks(&["k4.local.nonsense".into()]).is_err());
    }
}
