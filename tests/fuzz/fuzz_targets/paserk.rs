#![no_main]
//! PASERK key parsing (`FOLIO_TOKEN_KEYS`) on any string.

use folio_auth::tokens::TokenKeys;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let secrets: Vec<String> = text.split(',').map(str::to_owned).collect();
    if let Ok(keys) = TokenKeys::from_paserks(&secrets) {
        assert_eq!(keys.public_keys().len(), secrets.len());
        assert!(keys.public_keys()[0].signing);
    }
});
