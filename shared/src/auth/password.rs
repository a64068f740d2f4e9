//! Passwords: the acceptance rule (NIST 800-63B: 8 to 128 characters, no
//! composition rules, not a common password) and argon2id hashing.
//!
//! Hashing is deliberately expensive (19 MiB and two passes per hash), so it runs
//! on blocking threads behind a semaphore ([`Hasher`]): a login flood queues
//! instead of exhausting memory or stalling the async workers.

use std::{collections::HashSet, sync::Arc, sync::LazyLock};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _, PasswordVerifier as _, Version,
    password_hash::{SaltString, rand_core::OsRng},
};
use tokio::sync::Semaphore;

/// Memory cost in KiB, passes and lanes: OWASP's argon2id baseline.
pub const MEMORY_KIB: u32 = 19_456;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

/// Passwords refused as too common: Django's list of 20,000 common passwords
/// (`django/contrib/auth/common-passwords.txt.gz`, BSD licence), keeping the
/// entries of 8 characters or more since shorter ones fail the length rule.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| include_str!("../../data/common-passwords.txt").lines().collect());

/// A password that passed the acceptance rule.
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// Checks `raw` against the rule. Characters are counted as Unicode scalar
    /// values; nothing is trimmed.
    pub fn parse(raw: &str) -> Result<Password, &'static str> {
        let length = raw.chars().count();
        if length < 8 {
            return Err("must be at least 8 characters");
        }
        if length > 128 {
            return Err("must be at most 128 characters");
        }
        if COMMON.contains(raw.to_lowercase().as_str()) {
            return Err("is too common; choose a less guessable one");
        }
        Ok(Password(raw.to_owned()))
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into a PHC string (blocking: call through [`Hasher`]).
pub fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing")
        .to_string()
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub matches: bool,
    /// The stored hash is weaker than today's parameters (or not argon2id) and
    /// should be replaced after a successful login.
    pub needs_rehash: bool,
}

/// Checks `password` against the PHC string `stored` (blocking).
pub fn verify_blocking(stored: &str, password: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verified {
            matches: false,
            needs_rehash: false,
        };
    };
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    let param = |name: &str| parsed.params.get_decimal(name).unwrap_or(0);
    let needs_rehash = parsed.algorithm.as_str() != "argon2id" || param("m") < MEMORY_KIB || param("t") < PASSES || param("p") < LANES;
    Verified { matches, needs_rehash }
}

/// A hash of a password nobody has, checked when the email is unknown so that
/// an unknown email takes as long to refuse as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_blocking("folio: no such account, equal timing"));

/// Runs hashing on blocking threads, at most `permits` at once.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

impl Hasher {
    /// A hasher running at most `concurrency` hashes at once.
    pub fn new(concurrency: usize) -> Self {
        Hasher {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: &Password) -> String {
        let password = password.expose().to_owned();
        self.run(move || hash_blocking(&password)).await
    }

    /// Verifies `password` against `stored`, or against a dummy hash when
    /// `stored` is None (unknown account), which never matches.
    pub async fn verify(&self, stored: Option<String>, password: &str) -> Verified {
        let password = password.to_owned();
        self.run(move || match stored {
            Some(stored) => verify_blocking(&stored, &password),
            None => {
                verify_blocking(&DUMMY_HASH, &password);
                Verified {
                    matches: false,
                    needs_rehash: false,
                }
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self.permits.acquire().await.expect("hasher semaphore is never closed");
        tokio::task::spawn_blocking(work).await.expect("hashing task panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_common_passwords_are_enforced() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert!(Password::parse("password1").is_err(), "common");
        assert!(Password::parse("PASSWORD1").is_err(), "common, any case");
        assert!(Password::parse("correct horse battery staple").is_ok());
        assert!(Password::parse("ünïcødé✓✓").is_ok(), "8 characters, more bytes");
    }

    #[test]
    fn hashes_verify_and_weak_ones_ask_for_a_rehash() {
        let stored = hash_blocking("correct horse battery staple");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_eq!(
            verify_blocking(&stored, "correct horse battery staple"),
            Verified {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!verify_blocking(&stored, "wrong horse battery staple").matches);

        let weak_params = Params::new(8, 1, 1, None).unwrap();
        let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, weak_params)
            .hash_password(b"correct horse battery staple", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert_eq!(
            verify_blocking(&weak, "correct horse battery staple"),
            Verified {
                matches: true,
                needs_rehash: true
            }
        );
    }
}
