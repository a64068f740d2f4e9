//! Second factors: TOTP codes (RFC 6238: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way, through `totp-rs`) and backup
//! codes (80 random bits each, shown once, only their SHA-256 kept, like
//! refresh tokens).
//!
//! A TOTP check returns the time step the code belongs to; the caller keeps
//! the last accepted step and refuses any code at or before it, so a code
//! works once (RFC 6238 §5.2), which `totp-rs` leaves to its caller.

use base32::Alphabet;
use sha2::{Digest as _, Sha256};
use totp_rs::{Builder, Totp};

/// Backup codes made at a time.
pub const BACKUP_CODES: usize = 10;

/// A new TOTP secret: 160 random bits (RFC 4226 §4), as base32 without
/// padding, the form authenticator apps take.
pub fn new_totp_secret() -> String {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("operating system randomness");
    base32::encode(Alphabet::Rfc4648 { padding: false }, &bytes)
}

/// What an authenticator app needs to enrol a secret.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The secret in base32, for typing in.
    pub secret: String,
    /// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…`.
    pub uri: String,
    /// The URI as a QR code, a PNG image.
    pub qr_png: Vec<u8>,
}

/// The enrollment of `secret` (base32) for `account` at `issuer`.
pub fn enrollment(secret: &str, issuer: &str, account: &str) -> Result<Enrollment, String> {
    // The otpauth label is `issuer:account`, so neither may hold a colon.
    let totp = totp(secret, Some(&issuer.replace(':', " ")), &account.replace(':', " "))?;
    let uri = totp.to_url().map_err(|e| format!("cannot write the otpauth URI: {e}"))?;
    let qr_png = qr_png(&uri)?;
    Ok(Enrollment {
        secret: secret.to_owned(),
        uri,
        qr_png,
    })
}

/// The time step `code` is valid for under `secret` at `unix_secs`, within
/// one step of skew; None when it matches none.
pub fn check_totp(secret: &str, code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, None, "").ok()?.check(code, unix_secs)
}

/// The code `secret` gives at `unix_secs` (what an authenticator shows).
pub fn totp_code(secret: &str, unix_secs: u64) -> Result<String, String> {
    Ok(totp(secret, None, "")?.generate(unix_secs).to_string())
}

fn totp(secret: &str, issuer: Option<&str>, account: &str) -> Result<Totp, String> {
    let bytes = base32::decode(Alphabet::Rfc4648 { padding: false }, secret).ok_or("the TOTP secret is not base32")?;
    Builder::new()
        .with_secret(bytes)
        .with_skew(1)
        .with_issuer(issuer)
        .with_account_name(account)
        .build()
        .map_err(|e| format!("cannot use the TOTP secret: {e}"))
}

/// A QR code of `text` as a grayscale PNG: 4 pixels a module, with the
/// 4-module quiet zone scanners need.
fn qr_png(text: &str) -> Result<Vec<u8>, String> {
    const SCALE: usize = 4;
    const QUIET: usize = 4;
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| format!("cannot make a QR code: {e}"))?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (x, y) = ((index % modules + QUIET) * SCALE, (index / modules + QUIET) * SCALE);
            for row in y..y + SCALE {
                pixels[row * side + x..row * side + x + SCALE].fill(0);
            }
        }
    }
    let mut png = Vec::new();
    let side = u32::try_from(side).map_err(|_| "the QR code is too large")?;
    let mut encoder = png::Encoder::new(&mut png, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(&pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(png)
}

/// New backup codes, `xxxx-xxxx-xxxx-xxxx` in lower-case base32, each with
/// the hash to store.
pub fn new_backup_codes() -> Vec<(String, Vec<u8>)> {
    (0..BACKUP_CODES)
        .map(|_| {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes).expect("operating system randomness");
            let plain = base32::encode(Alphabet::Rfc4648Lower { padding: false }, &bytes);
            let code = plain
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
                .collect::<Vec<_>>()
                .join("-");
            let hash = backup_code_hash(&code).expect("a code just made");
            (code, hash)
        })
        .collect()
}

/// The stored hash of a presented backup code, read loosely (any case,
/// with or without dashes and spaces); None when it cannot be one.
pub fn backup_code_hash(presented: &str) -> Option<Vec<u8>> {
    let plain: String = presented
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = plain.len() == 16 && plain.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
    valid.then(|| Sha256::digest(plain.as_bytes()).to_vec())
}

/// What a presented second factor is: a 6-digit TOTP code or a backup code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Totp(String),
    Backup(Vec<u8>),
}

impl Presented {
    /// Reads a presented code; None when it is neither kind.
    pub fn parse(code: &str) -> Option<Presented> {
        let code = code.trim();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Presented::Totp(code.to_owned()));
        }
        backup_code_hash(code).map(Presented::Backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_hold_for_six_digits() {
        // RFC 6238 appendix B: the ASCII secret "12345678901234567890";
        // its 8-digit codes end in these 6 digits.
        let secret = base32::encode(Alphabet::Rfc4648 { padding: false }, b"12345678901234567890");
        for (time, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(totp_code(&secret, time).unwrap(), code, "at {time}");
            assert_eq!(check_totp(&secret, code, time), Some(time / 30));
        }
    }

    #[test]
    fn codes_hold_one_step_either_way_and_no_further() {
        let secret = new_totp_secret();
        let now = 1_800_000_000;
        let code = totp_code(&secret, now).unwrap();
        assert_eq!(check_totp(&secret, &code, now + 30), Some(now / 30));
        assert_eq!(check_totp(&secret, &code, now - 30), Some(now / 30));
        assert_eq!(check_totp(&secret, &code, now + 61), None);
        assert_eq!(check_totp(&secret, "12345", now), None);
    }

    #[test]
    fn enrollment_writes_an_otpauth_uri_and_a_png() {
        let secret = new_totp_secret();
        let enrolled = enrollment(&secret, "folio", "ann@example.com").unwrap();
        assert!(
            enrolled.uri.starts_with("otpauth://totp/folio:ann%40example.com?"),
            "{}",
            enrolled.uri
        );
        assert!(enrolled.uri.contains(&format!("secret={secret}")));
        assert_eq!(&enrolled.qr_png[..8], b"\x89PNG\r\n\x1a\n");
    }

    #[test]
    fn backup_codes_are_distinct_and_read_loosely() {
        let codes = new_backup_codes();
        assert_eq!(codes.len(), BACKUP_CODES);
        let (code, hash) = &codes[0];
        assert_eq!(code.len(), 19);
        assert_eq!(backup_code_hash(&code.to_uppercase().replace('-', " ")).as_ref(), Some(hash));
        assert_eq!(Presented::parse(code), Some(Presented::Backup(hash.clone())));
        assert_eq!(Presented::parse(" 123456 "), Some(Presented::Totp("123456".into())));
        assert_eq!(Presented::parse("not a code"), None);
        assert!(codes.iter().skip(1).all(|(other, _)| other != code));
    }
}
