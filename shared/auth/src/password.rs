//! Passwords: the acceptance rule (NIST 800-63B: 8 to 128 characters, no
//! composition rules, not a common password) and argon2id hashing.
//!
//! Hashing is deliberately expensive (19 MiB and two passes per hash), so it runs
//! on a few dedicated threads ([`Hasher`]): a login flood queues instead of
//! exhausting memory or stalling the async workers.

use std::{
    collections::HashSet,
    sync::{Arc, LazyLock},
};

use std::cell::RefCell;

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::{Output, SaltString, rand_core::OsRng},
};

/// Memory cost in KiB, passes and lanes: OWASP's argon2id baseline.
pub const MEMORY_KIB: u32 = 19_456;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;

/// Passwords refused as too common: Django's list of 20,000 common passwords
/// (`django/contrib/auth/common-passwords.txt.gz`, BSD licence), keeping the
/// entries of 8 characters or more since shorter ones fail the length rule.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| include_str!("../data/common-passwords.txt").lines().collect());

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

thread_local! {
    /// Each hashing thread's argon2 working memory, allocated once and reused.
    /// Allocating 19 MiB of 64-byte-aligned blocks per hash (what argon2's own
    /// `hash_password` does) fragments glibc's heap: RSS climbed by about
    /// 150 MiB over a few dozen sequential logins before this.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `argon` into `out` with this thread's reusable memory.
fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = argon.params().block_count();
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
    })
}

/// Hashes `password` into a PHC string (blocking: call through [`Hasher`]).
pub fn hash_blocking(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buffer = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buffer).expect("a generated salt decodes");
    let argon = argon2();
    let mut out = [0u8; 32];
    compute(&argon, password.as_bytes(), salt_bytes, &mut out).expect("argon2 hashing");
    PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: argon.params().try_into().expect("parameters as a PHC string"),
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).expect("a 32-byte output")),
    }
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

/// Checks `password` against the PHC string `stored` (blocking). The computed
/// hash is compared in constant time.
pub fn verify_blocking(stored: &str, password: &str) -> Verified {
    let refused = Verified {
        matches: false,
        needs_rehash: false,
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return refused;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return refused;
    };
    let version = parsed.version.and_then(|v| Version::try_from(v).ok()).unwrap_or_default();
    let mut salt_buffer = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buffer) else {
        return refused;
    };
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    if compute(&argon, password.as_bytes(), salt_bytes, &mut out).is_err() {
        return refused;
    }
    let matches = Output::new(&out).is_ok_and(|computed| computed == expected);
    let needs_rehash =
        algorithm != Algorithm::Argon2id || params.m_cost() < MEMORY_KIB || params.t_cost() < PASSES || params.p_cost() < LANES;
    Verified { matches, needs_rehash }
}

/// A hash of a password nobody has, checked when the email is unknown so that
/// an unknown email takes as long to refuse as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_blocking("folio: no such account, equal timing"));

type Job = Box<dyn FnOnce() + Send>;

/// Runs hashing on a fixed set of dedicated threads. Requests queue until a
/// thread is free, so at most `threads` hashes (19 MiB each) are in memory at
/// once, and memory stays flat: the same few threads (and so the same malloc
/// arenas) do every hash, where a growing blocking pool would keep a 19 MiB
/// block cached in each of many arenas.
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher").finish_non_exhaustive()
    }
}

impl Hasher {
    /// A hasher with `threads` hashing threads. They end when the last clone of
    /// the hasher is dropped.
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for index in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("folio-argon2-{index}"))
                .spawn(move || {
                    loop {
                        let job = queue.lock().expect("hasher queue").recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawn a hashing thread");
        }
        Hasher { jobs }
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
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.send(job).expect("hashing threads run while a hasher exists");
        result.await.expect("a hashing job panicked")
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
        // The PHC string is standard: argon2's own verifier accepts it.
        use argon2::PasswordVerifier as _;
        Argon2::default()
            .verify_password(b"correct horse battery staple", &PasswordHash::new(&stored).unwrap())
            .unwrap();

        use argon2::PasswordHasher as _;
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
