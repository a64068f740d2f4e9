//! Opaque refresh tokens: 256 random bits, URL-safe base64 for the client, and
//! only their SHA-256 hash in the database.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};

/// A new refresh token and the hash to store.
pub fn generate() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("operating system randomness");
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    (token, hash)
}

/// The stored form of a presented token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_256_bits_and_hash_stably() {
        let (token, hash) = super::generate();
        assert_eq!(token.len(), 43);
        assert_eq!(super::hash(&token), hash);
        assert_ne!(super::generate().0, token);
    }
}
