//! Redis-backed protection: per-minute rate limits, login-failure limits and
//! the denylist of revoked access tokens.
//!
//! Limits are fixed one-minute windows (`INCR` + `EXPIRE NX` in one pipeline)
//! and fail open when Redis is unreachable (with a warning): losing Redis must
//! not take the API down. The denylist fails closed: when it cannot be read, a
//! token cannot be shown unrevoked, and the call is refused as UNAVAILABLE.

use std::time::Duration;

use chrono::Utc;
use folio_auth::config::AuthConfig;
use folio_core::cache::Cache;
use folio_db::models::session::LiveAccess;
use uuid::Uuid;

/// The Redis channel (after the prefix) that announces revoked sessions.
pub const REVOCATIONS_CHANNEL: &str = "sessions-revoked";

/// Login failures are counted over this window.
pub const LOGIN_FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The slowdown per login failure past the per-account threshold, and its
/// most.
pub const LOGIN_DELAY_STEP: Duration = Duration::from_millis(500);
pub const MAX_LOGIN_DELAY: Duration = Duration::from_secs(5);

/// The Redis-backed checks.
#[derive(Clone, Debug)]
pub struct Guard {
    pub cache: Cache,
    pub config: AuthConfig,
}

/// What a login meets before its password is checked (see
/// [`Guard::login_gate`]).
#[derive(Debug, Clone, Copy)]
pub struct LoginGate {
    /// The pair or the address failed too often: refused until then.
    pub blocked: Option<Limited>,
    /// The account failed too often: the login waits this long first.
    pub delay: Duration,
}

/// Over a limit: how long until the window ends.
#[derive(Debug, Clone, Copy)]
pub struct Limited {
    pub retry_after: Duration,
}

/// Why a token check could not be completed.
#[derive(Debug)]
pub enum TokenCheck {
    Revoked,
    Unavailable,
}

impl Guard {
    /// Checks the denylist for `jti` and counts the call against the peer's and
    /// (when signed in) the account's limits, in one round trip.
    pub async fn admit(&self, peer: &str, account: Option<(Uuid, u32)>, jti: Option<Uuid>) -> Result<Option<Limited>, TokenCheck> {
        let window = Utc::now().timestamp() / 60;
        let retry_after = Duration::from_secs((60 - Utc::now().timestamp() % 60) as u64);
        let mut pipe = redis::pipe();
        if let Some(jti) = jti {
            pipe.exists(self.cache.key(&format!("denied:{jti}")));
        }
        let peer_key = self.cache.key(&format!("rl:peer:{peer}:{window}"));
        pipe.incr(&peer_key, 1).cmd("EXPIRE").arg(&peer_key).arg(120).arg("NX").ignore();
        if let Some((user, _)) = account {
            let key = self.cache.key(&format!("rl:acct:{user}:{window}"));
            pipe.incr(&key, 1).cmd("EXPIRE").arg(&key).arg(120).arg("NX").ignore();
        }
        let mut connection = self.cache.connection();
        let values: Vec<i64> = match pipe.query_async(&mut connection).await {
            Ok(values) => values,
            Err(error) if jti.is_some() => {
                tracing::warn!(%error, "Redis unreachable: cannot check token revocation, refusing the call");
                return Err(TokenCheck::Unavailable);
            }
            Err(error) => {
                tracing::warn!(%error, "Redis unreachable: rate limits not applied");
                return Ok(None);
            }
        };
        let mut values = values.into_iter();
        if jti.is_some() && values.next() == Some(1) {
            return Err(TokenCheck::Revoked);
        }
        let peer_count = values.next().unwrap_or(0);
        let account_count = values.next().unwrap_or(0);
        let over_peer = peer_count > i64::from(self.config.rate_per_minute_peer);
        let over_account = account.is_some_and(|(_, limit)| account_count > i64::from(limit));
        Ok((over_peer || over_account).then_some(Limited { retry_after }))
    }

    /// What a login for `email` from `peer` meets, read in one pipeline:
    /// whether that pair or address must wait, and for how long
    /// (`blocked`); and how long the login is slowed down before its password
    /// is checked (`delay`): nothing until the account has had
    /// `FOLIO_LOGIN_FAILURES_PER_ACCOUNT` failures from all addresses in the
    /// window, then [`LOGIN_DELAY_STEP`] more for each further one, at most
    /// [`MAX_LOGIN_DELAY`]. A guesser spread over many addresses is slowed;
    /// the owner still gets in.
    pub async fn login_gate(&self, email: &str, peer: &str) -> LoginGate {
        let pair = self.cache.key(&format!("lf:ap:{email}:{peer}"));
        let peer_key = self.cache.key(&format!("lf:p:{peer}"));
        let account = self.cache.key(&format!("lf:a:{email}"));
        let mut connection = self.cache.connection();
        // Failures of the pair and of the address, their windows' ends, and
        // the account's failures from all addresses.
        type Counts = (Option<u32>, Option<u32>, i64, i64, Option<u32>);
        let result: redis::RedisResult<Counts> = redis::pipe()
            .get(&pair)
            .get(&peer_key)
            .ttl(&pair)
            .ttl(&peer_key)
            .get(&account)
            .query_async(&mut connection)
            .await;
        match result {
            Ok((pair_count, peer_count, pair_ttl, peer_ttl, account_count)) => {
                let over_pair = pair_count.unwrap_or(0) >= self.config.login_failures_per_account_peer;
                let over_peer = peer_count.unwrap_or(0) >= self.config.login_failures_per_peer;
                let ttl = match (over_pair, over_peer) {
                    (true, true) => Some(pair_ttl.max(peer_ttl)),
                    (true, false) => Some(pair_ttl),
                    (false, true) => Some(peer_ttl),
                    (false, false) => None,
                };
                let over_account = (account_count.unwrap_or(0) + 1).saturating_sub(self.config.login_failures_per_account);
                LoginGate {
                    blocked: ttl.map(|ttl| Limited {
                        retry_after: Duration::from_secs(ttl.max(1) as u64),
                    }),
                    delay: (LOGIN_DELAY_STEP * over_account).min(MAX_LOGIN_DELAY),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "Redis unreachable: login-failure limits not applied");
                LoginGate {
                    blocked: None,
                    delay: Duration::ZERO,
                }
            }
        }
    }

    /// Counts a failed login for `email` from `peer`.
    pub async fn login_failed(&self, email: &str, peer: &str) {
        let window = LOGIN_FAILURE_WINDOW.as_secs();
        let mut pipe = redis::pipe();
        for key in [
            self.cache.key(&format!("lf:ap:{email}:{peer}")),
            self.cache.key(&format!("lf:p:{peer}")),
            self.cache.key(&format!("lf:a:{email}")),
        ] {
            pipe.incr(&key, 1).ignore().cmd("EXPIRE").arg(&key).arg(window).arg("NX").ignore();
        }
        let mut connection = self.cache.connection();
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            tracing::warn!(%error, "Redis unreachable: login failure not counted");
        }
    }

    /// Forgets the failures of `email` from `peer` after a successful login.
    pub async fn login_succeeded(&self, email: &str, peer: &str) {
        let mut connection = self.cache.connection();
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(self.cache.key(&format!("lf:ap:{email}:{peer}")))
            .query_async(&mut connection)
            .await;
    }

    /// Tells every api-server that `sessions` were revoked, so their open
    /// watch streams end at once (each stream also re-checks its session on a
    /// timer, in case this notice is lost).
    pub async fn announce_revoked(&self, sessions: &[Uuid]) {
        let mut connection = self.cache.connection();
        let published: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(self.cache.key(REVOCATIONS_CHANNEL))
            .arg(serde_json::to_string(sessions).unwrap_or_default())
            .query_async(&mut connection)
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "revoked sessions not announced; their watch streams end at their next check");
        }
    }

    /// Denies the given access tokens until they expire.
    pub async fn deny(&self, tokens: &[LiveAccess]) {
        if tokens.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut pipe = redis::pipe();
        for token in tokens {
            let ttl = (token.expires_at - now).num_seconds().max(1) + 1;
            pipe.set_ex(self.cache.key(&format!("denied:{}", token.jti)), 1, ttl as u64)
                .ignore();
        }
        let mut connection = self.cache.connection();
        if let Err(error) = pipe.query_async::<()>(&mut connection).await {
            // The sessions are revoked in Postgres, which the middleware also
            // checks, so the tokens are refused all the same.
            tracing::warn!(%error, denied = tokens.len(), "Redis unreachable: revoked tokens not added to the denylist");
        }
    }
}
