//! Email: the letters folio sends (email verification, password reset and
//! security alerts), queued in `email_outbox` in the transaction of what they
//! announce, and the [`Sender`] every api-server runs, which claims due rows
//! (`FOR UPDATE SKIP LOCKED`, so several servers never send one twice),
//! sends them through SMTP (lettre: `smtps://` TLS, `smtp://…?tls=required`
//! STARTTLS) and deletes them. A failed send is retried with backoff, up to
//! [`MAX_ATTEMPTS`]. With no `FOLIO_SMTP_URL`, a letter is written to the log
//! instead, marked as not sent: a development fallback.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use folio_db::{self as db, models::email as outbox};
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor, message::Mailbox};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Attempts before a letter is given up (its tokens expire anyway).
pub const MAX_ATTEMPTS: i32 = 8;

/// Letters a sender claims at a time.
const BATCH: i64 = 20;

/// An email to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl Letter {
    /// Queues the letter; run it in the transaction of what it announces,
    /// then [`Wake::now`] after the commit.
    pub async fn queue(&self, conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
        outbox::enqueue(conn, &self.to, &self.subject, &self.body).await
    }

    /// The link (or, without `FOLIO_PUBLIC_URL`, the instruction) that
    /// passes `token` to `page` of the front end, or to RPC `rpc`.
    fn token_line(public_url: Option<&str>, page: &str, rpc: &str, token: &str) -> String {
        match public_url {
            Some(url) => format!("{url}/{page}?token={token}\n\n(or pass the token {token} to {rpc})"),
            None => format!("pass this token to {rpc}:\n\n{token}"),
        }
    }

    /// Asks a new account to prove its address.
    pub fn verify_email(to: &str, token: &str, public_url: Option<&str>) -> Letter {
        Letter {
            to: to.into(),
            subject: "Verify your email for folio".into(),
            body: format!(
                "Someone (we hope you) registered a folio account with this address.\n\
                 To verify it, follow this link within 48 hours:\n\n{}\n\n\
                 If it was not you, ignore this email.\n",
                Self::token_line(public_url, "verify-email", "AuthService/VerifyEmail", token)
            ),
        }
    }

    /// Tells an account's owner someone tried to register their address.
    pub fn already_registered(to: &str) -> Letter {
        Letter {
            to: to.into(),
            subject: "Someone tried to register your email at folio".into(),
            body: "Someone tried to register a folio account with this address, which already has one.\n\
                   If it was you, sign in, or reset your password if you forgot it.\n\
                   If it was not you, nothing changed and you need do nothing.\n"
                .into(),
        }
    }

    /// Carries a password-reset token.
    pub fn reset_password(to: &str, token: &str, public_url: Option<&str>) -> Letter {
        Letter {
            to: to.into(),
            subject: "Reset your folio password".into(),
            body: format!(
                "Someone (we hope you) asked to reset the password of your folio account.\n\
                 To choose a new one, follow this link within 30 minutes:\n\n{}\n\n\
                 Resetting signs you out everywhere. If it was not you, ignore this email:\n\
                 your password stays as it is.\n",
                Self::token_line(public_url, "reset-password", "AuthService/ResetPassword", token)
            ),
        }
    }

    /// A security alert: `what` happened to the account.
    pub fn alert(to: &str, what: &Alert) -> Letter {
        let (subject, detail) = match what {
            Alert::PasswordChanged => (
                "Your folio password was changed",
                "The password of your folio account was changed, and every session was signed out.".to_owned(),
            ),
            Alert::MfaOn => (
                "A second factor was turned on for your folio account",
                "Signing in to your folio account now needs a code from your authenticator app.".to_owned(),
            ),
            Alert::MfaOff => (
                "The second factor of your folio account was turned off",
                "Signing in to your folio account no longer needs a code from your authenticator app.".to_owned(),
            ),
            Alert::RefreshReuse => (
                "A stolen folio session was stopped",
                "A refresh token of your folio account was used twice, which means someone copied it.\n\
                 That session was revoked; sign in again, and change your password if in doubt."
                    .to_owned(),
            ),
            Alert::NewAddress { peer, user_agent } => (
                "New sign-in to your folio account",
                format!("Your folio account was signed in to from an address it had not used before: {peer} ({user_agent})."),
            ),
        };
        Letter {
            to: to.into(),
            subject: subject.into(),
            body: format!("{detail}\n\nIf this was not you, reset your password and tell your administrator.\n"),
        }
    }
}

/// What a security alert reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    PasswordChanged,
    MfaOn,
    MfaOff,
    RefreshReuse,
    NewAddress { peer: String, user_agent: String },
}

/// Wakes the sender after a commit that queued letters.
#[derive(Clone, Debug, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn now(&self) {
        self.0.notify_one();
    }
}

/// Where letters go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Log,
}

/// Sends what `email_outbox` holds.
pub struct Sender {
    pool: db::Pool,
    transport: Transport,
    from: Mailbox,
    wake: Wake,
    poll: Duration,
}

impl Sender {
    /// A sender through `smtp_url` (None: the log), from `from`.
    pub fn new(pool: db::Pool, smtp_url: Option<&str>, from: &str, wake: Wake, poll: Duration) -> anyhow::Result<Sender> {
        folio_core::startup::install_tls_provider();
        let transport = match smtp_url {
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .context("setting FOLIO_SMTP_URL")?
                    .timeout(Some(Duration::from_secs(15)))
                    .build(),
            ),
            None => Transport::Log,
        };
        let from = from.parse().context("setting FOLIO_EMAIL_FROM")?;
        Ok(Sender {
            pool,
            transport,
            from,
            wake,
            poll,
        })
    }

    /// Sends due letters until `cancel`, waking when one is queued here and
    /// every `poll` for those queued by other servers or due again.
    pub async fn run(self, cancel: CancellationToken) {
        if matches!(self.transport, Transport::Log) {
            tracing::warn!("FOLIO_SMTP_URL is not set: emails are written to the log, not sent");
        }
        while !cancel.is_cancelled() {
            let sent = match self.send_due().await {
                Ok(sent) => sent,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "the email sender cannot read its outbox");
                    0
                }
            };
            if sent < BATCH as usize {
                tokio::select! {
                    () = cancel.cancelled() => {}
                    () = self.wake.0.notified() => {}
                    () = tokio::time::sleep(self.poll) => {}
                }
            }
        }
    }

    /// Claims a batch of due letters and settles each: sent (deleted), or
    /// failed (retried later, or given up). How many were claimed.
    async fn send_due(&self) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| -> anyhow::Result<usize> {
            let due = outbox::claim_due(conn, BATCH).await?;
            for letter in &due {
                match self.deliver(letter).await {
                    Ok(()) => outbox::remove(conn, letter.id).await?,
                    Err(error) if letter.attempts + 1 >= MAX_ATTEMPTS => {
                        tracing::error!(id = letter.id, to = %letter.recipient, error = format!("{error:#}"), "giving up on an email");
                        outbox::remove(conn, letter.id).await?;
                    }
                    Err(error) => {
                        let backoff = Duration::from_secs(2u64.pow(u32::try_from(letter.attempts).unwrap_or(0).min(8)));
                        tracing::warn!(
                            id = letter.id,
                            error = format!("{error:#}"),
                            "an email was not sent, retrying in {backoff:?}"
                        );
                        let next = Utc::now() + chrono::Duration::from_std(backoff).unwrap_or_default();
                        outbox::failed(conn, letter.id, next, &format!("{error:#}")).await?;
                    }
                }
            }
            Ok(due.len())
        })
        .await
    }

    async fn deliver(&self, letter: &outbox::Outgoing) -> anyhow::Result<()> {
        match &self.transport {
            Transport::Log => {
                tracing::warn!(
                    to = %letter.recipient,
                    subject = %letter.subject,
                    body = %letter.body,
                    "EMAIL NOT SENT (no FOLIO_SMTP_URL; development fallback): its content follows"
                );
                Ok(())
            }
            Transport::Smtp(smtp) => {
                let message = Message::builder()
                    .from(self.from.clone())
                    .to(letter.recipient.parse().context("the recipient")?)
                    .subject(&letter.subject)
                    .header(lettre::message::header::ContentType::TEXT_PLAIN)
                    .body(letter.body.clone())
                    .context("writing the email")?;
                smtp.send(message).await.context("sending through SMTP")?;
                Ok(())
            }
        }
    }
}
