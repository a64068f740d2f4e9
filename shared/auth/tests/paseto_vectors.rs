//! The official PASETO v4.public and PASERK k4 test vectors (the
//! paseto-standard test-vector set, `tests/fixtures/paseto/`) through folio's
//! own token code: `seal`/`open`, `TokenIssuer::verify`, `TokenKeys` and
//! `PublicKeyInfo`.

use std::{path::PathBuf, time::Duration};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use folio_auth::tokens::{PublicKeyInfo, TokenError, TokenIssuer, TokenKeys, open, seal, untrusted};
use pasetors::{
    keys::{AsymmetricPublicKey, AsymmetricSecretKey},
    version4::V4,
};
use serde_json::Value;

fn vectors(file: &str) -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/paseto")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut set: Value = serde_json::from_str(&text).unwrap();
    let Value::Array(tests) = set["tests"].take() else {
        panic!("{file} has no tests")
    };
    assert!(!tests.is_empty());
    tests
}

fn hex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field].as_str().unwrap_or_else(|| panic!("{}: no {field}", vector["name"]))
}

/// A folio issuer holding a fresh key, to show that no vector token passes
/// folio's access-token check either.
fn folio_issuer() -> TokenIssuer {
    TokenIssuer {
        keys: TokenKeys::from_paserks(&[TokenKeys::generate_secret()]).unwrap(),
        issuer: "folio".into(),
        audience: "folio".into(),
        ttl: Duration::from_secs(60),
    }
}

#[test]
fn every_v4_public_vector_signs_and_verifies_as_the_standard_says() {
    let mut checked = 0;
    for vector in vectors("v4.json").iter().filter(|v| text(v, "name").starts_with("4-S-")) {
        let name = text(vector, "name");
        assert_eq!(vector["expect-fail"], false, "{name}");
        let secret = AsymmetricSecretKey::<V4>::from(&hex(text(vector, "secret-key"))).unwrap();
        let public = AsymmetricPublicKey::<V4>::from(&hex(text(vector, "public-key"))).unwrap();
        let (payload, footer, implicit) = (
            text(vector, "payload").as_bytes(),
            text(vector, "footer").as_bytes(),
            text(vector, "implicit-assertion").as_bytes(),
        );
        let token = text(vector, "token");
        // Ed25519 is deterministic: folio's seal makes the very token.
        assert_eq!(seal(&secret, payload, footer, implicit).unwrap(), token, "{name}");
        let parsed = untrusted(token).unwrap();
        assert_eq!(parsed.untrusted_footer(), footer, "{name}");
        assert_eq!(open(&public, &parsed, implicit).unwrap(), payload, "{name}");
        // The same token under another implicit assertion fails.
        assert!(
            matches!(open(&public, &parsed, b"another purpose"), Err(TokenError::Invalid)),
            "{name}"
        );
        assert!(folio_issuer().verify(token).is_err(), "{name} passed as a folio access token");
        checked += 1;
    }
    assert_eq!(checked, 3, "4-S-1 to 4-S-3");
}

#[test]
fn every_v4_failure_vector_is_refused() {
    let mut checked = 0;
    for vector in vectors("v4.json").iter().filter(|v| text(v, "name").starts_with("4-F-")) {
        let name = text(vector, "name");
        assert_eq!(vector["expect-fail"], true, "{name}");
        let token = text(vector, "token");
        let implicit = text(vector, "implicit-assertion").as_bytes();
        // The key the vector gives (an Ed25519 public key, or a symmetric
        // key, which is 32 bytes too) as a verifying key.
        let key = vector["public-key"].as_str().unwrap_or_else(|| text(vector, "key"));
        let key = AsymmetricPublicKey::<V4>::from(&hex(key)).unwrap();
        let refused = untrusted(token).and_then(|parsed| open(&key, &parsed, implicit));
        assert!(refused.is_err(), "{name} opened");
        assert!(folio_issuer().verify(token).is_err(), "{name} passed as a folio access token");
        checked += 1;
    }
    assert_eq!(checked, 5, "4-F-1 to 4-F-5");
}

#[test]
fn every_k4_secret_vector_loads_as_a_folio_key() {
    for vector in vectors("k4.secret.json") {
        let name = text(&vector, "name");
        let key = hex(text(&vector, "key"));
        if vector["expect-fail"] == true {
            // The vector gives the bad key's bytes: folio must refuse them
            // under the k4 prefix, and under the prefix of their own version.
            for prefix in ["k4.secret.", "k3.secret."] {
                let paserk = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&key));
                assert!(TokenKeys::from_paserks(&[paserk]).is_err(), "{name} loaded as {prefix}");
            }
            continue;
        }
        let paserk = text(&vector, "paserk");
        assert_eq!(URL_SAFE_NO_PAD.encode(&key), paserk.trim_start_matches("k4.secret."), "{name}");
        if key[..32].iter().all(|&b| b == 0) {
            // k4.secret-1: a valid PASERK of the all-zero seed, whose secret
            // everyone knows. folio refuses it on purpose (and pasetors would
            // panic on it).
            let refused = TokenKeys::from_paserks(&[paserk.to_owned()]).unwrap_err();
            assert!(refused.contains("all-zero seed"), "{name}: {refused}");
            continue;
        }
        let keys = TokenKeys::from_paserks(&[paserk.to_owned()]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let public = AsymmetricPublicKey::<V4>::from(&hex(text(&vector, "public-key"))).unwrap();
        assert_eq!(keys.public_keys()[0].paserk, PublicKeyInfo::new(public, true).paserk, "{name}");
    }
}

#[test]
fn every_k4_public_and_pid_vector_matches_folio_key_ids() {
    for (file, field) in [("k4.public.json", "paserk"), ("k4.pid.json", "id")] {
        for vector in vectors(file) {
            let name = text(&vector, "name");
            let key = AsymmetricPublicKey::<V4>::from(&hex(text(&vector, "key")));
            if vector["expect-fail"] == true {
                assert!(key.is_err(), "{name}: a {} byte key was taken", text(&vector, "key").len() / 2);
                continue;
            }
            let info = PublicKeyInfo::new(key.unwrap(), false);
            let made = if field == "id" { &info.id } else { &info.paserk };
            assert_eq!(made, text(&vector, "paserk"), "{name}");
        }
    }
}
