//! New passwords against a Pwned Passwords range API
//! (`FOLIO_BREACHED_PASSWORDS_URL`), beside the offline list of common
//! passwords: `GET <url>/<first five hex digits of the SHA-1>`, with
//! `Add-Padding: true` so the answer's size says nothing either. The check
//! fails open: a timeout, an error status or an unreachable server lets the
//! password through with a warning, as the original design decided, since a
//! third party's outage must not stop sign-ups or password changes.

use std::time::Duration;

use anyhow::Context as _;
use folio_auth::{breached::RangeQuery, password::Password};

use crate::error::{ApiError, ApiResult};

/// The range API client; without a URL it checks nothing.
#[derive(Clone, Debug)]
pub struct Breaches {
    http: reqwest::Client,
    url: Option<String>,
}

/// What the range API said of a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No range API is configured.
    Unchecked,
    /// Not among the breached.
    Clean,
    /// Seen this many times in breaches.
    Breached(u64),
    /// The API did not answer usefully (why): the password passes.
    Failed(String),
}

impl Breaches {
    /// A client for the API at `url` (None: none), giving up after `timeout`.
    pub fn new(url: Option<String>, timeout: Duration) -> anyhow::Result<Breaches> {
        folio_core::startup::install_tls_provider();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("folio/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("the breached-password client")?;
        Ok(Breaches { http, url })
    }

    /// What the API says of `password`.
    pub async fn verdict(&self, password: &Password) -> Verdict {
        let Some(url) = &self.url else {
            return Verdict::Unchecked;
        };
        let query = RangeQuery::of(password);
        let answer = self
            .http
            .get(format!("{url}/{}", query.prefix))
            .header("Add-Padding", "true")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        let body = match answer {
            Ok(response) => response.text().await,
            Err(error) => Err(error),
        };
        match body {
            Ok(body) => match query.count_in(&body) {
                0 => Verdict::Clean,
                seen => Verdict::Breached(seen),
            },
            Err(error) => Verdict::Failed(error.to_string()),
        }
    }

    /// Refuses `password`, naming the request's `field`, when the API counts
    /// it among breached passwords; lets it through otherwise, warning when
    /// the API could not say.
    pub async fn refuse_breached(&self, password: &Password, field: &str) -> ApiResult<()> {
        match self.verdict(password).await {
            Verdict::Breached(seen) => Err(ApiError::invalid(
                field,
                format!("appears in known data breaches ({seen} times); choose another"),
            )
            .because("PASSWORD_BREACHED")),
            Verdict::Failed(why) => {
                tracing::warn!(%why, "the breached-password check failed; the password is accepted unchecked");
                Ok(())
            }
            Verdict::Clean | Verdict::Unchecked => Ok(()),
        }
    }
}
