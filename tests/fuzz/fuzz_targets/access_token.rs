#![no_main]
//! Access-token decoding and verification through folio's own
//! `TokenIssuer::verify` (footer, key choice, signature, claims). The first
//! byte picks the shape: even, the rest is the token; odd, a freshly signed
//! token gets the rest as its footer, which is read before the signature is
//! checked and so is what a stranger controls.

use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use folio_auth::Role;
use folio_auth::tokens::{TokenIssuer, TokenKeys};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

static ISSUER: LazyLock<TokenIssuer> = LazyLock::new(|| TokenIssuer {
    keys: TokenKeys::from_paserks(&[TokenKeys::generate_secret()]).expect("a fresh key"),
    issuer: "folio".into(),
    audience: "folio".into(),
    ttl: Duration::from_secs(3600),
});

fuzz_target!(|data: &[u8]| {
    let [shape, rest @ ..] = data else { return };
    if shape % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else { return };
        assert!(ISSUER.verify(token).is_err(), "a token the fuzzer made verified");
        return;
    }
    let (token, _) = ISSUER.issue(Uuid::nil(), Role::Member, Uuid::nil());
    let signed = token.rsplit_once('.').map(|(body, _)| body).expect("a footer");
    let original = URL_SAFE_NO_PAD.decode(&token[signed.len() + 1..]).expect("base64 footer");
    let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(rest));
    match ISSUER.verify(&forged) {
        Ok(_) => assert_eq!(rest, original.as_slice(), "a changed footer verified"),
        Err(_) => assert_ne!(rest, original.as_slice(), "the untouched token was refused"),
    }
});
