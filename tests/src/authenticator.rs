//! What an authenticator app does, for the second-factor tests: the TOTP
//! code of a secret at a time.

/// The TOTP code an authenticator app shows for `secret` (base32) `steps`
/// 30-second steps from now (1: the next code, which a server that took this
/// one still accepts).
pub fn totp(secret: &str, steps: i64) -> String {
    let at = u64::try_from(chrono::Utc::now().timestamp() + steps * 30).expect("after 1970");
    folio_auth::second_factor::totp_code(secret, at).expect("a base32 secret")
}
