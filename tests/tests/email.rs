//! Email flows through a real SMTP server (aiosmtpd): verification on
//! registration (an unverified account signs in but cannot upload; Register
//! answers the same for a taken email, whose owner is told by email),
//! password reset (the same answer for an unknown email; a single-use token
//! that expires; every session revoked), and security alerts (password
//! changed, second factor on, a sign-in from a new address, refresh-token
//! reuse). The test follows the tokens of the delivered messages, as a user
//! follows their links.

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_proto::v1::{
    CreateDocumentRequest, CreateUserRequest, DocumentMetadata, LoginRequest, RefreshRequest, RegisterRequest, RequestPasswordResetRequest,
    ResendVerificationRequest, ResetPasswordRequest, VerifyEmailRequest, WhoAmIRequest, document_service_client::DocumentServiceClient,
};
use folio_tests::{TestEnv, reason, smtp::SmtpServer, violated_fields};
use tonic::{Code, Request};

const EMAIL: &str = "ada@folio.test";
const PASSWORD: &str = "ada's long passphrase";
const NEW_PASSWORD: &str = "ada's newer passphrase";

fn register(email: &str, password: &str) -> RegisterRequest {
    RegisterRequest {
        email: email.into(),
        password: password.into(),
        display_name: "Ada".into(),
    }
}

fn note(name: &str) -> CreateDocumentRequest {
    CreateDocumentRequest {
        metadata: Some(DocumentMetadata {
            filename: name.into(),
            ..Default::default()
        }),
        content: b"# Notes\n\nA short note.\n".to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_reset_and_alerts_go_through_a_real_smtp_server() {
    let smtp = SmtpServer::start().await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_SMTP_URL", smtp.url());
    env.set("FOLIO_EMAIL_FROM", "folio <folio@folio.test>");
    env.set("FOLIO_PUBLIC_URL", "https://folio.test");
    env.set("FOLIO_REQUIRE_EMAIL_VERIFICATION", "true");
    // The test's own calls may name their client in X-Forwarded-For.
    env.set("FOLIO_TRUSTED_PROXIES", "127.0.0.1");
    let api = env.spawn_api().await;
    let mut auth = api.auth().await;

    // Registering signs nobody in; the email carries the link.
    let registered = auth.register(register(EMAIL, PASSWORD)).await.unwrap().into_inner();
    assert!(registered.email_verification_required && registered.access_token.is_empty() && registered.user.is_none());
    let verification = smtp.wait_for(EMAIL, "Verify your email").await;
    assert!(verification.from.contains("folio@folio.test"), "{verification:?}");
    assert!(
        verification.body.contains("https://folio.test/verify-email?token="),
        "{verification:?}"
    );

    // Unverified: signs in, cannot upload, may ask again only after a minute.
    let session = api.login(EMAIL, PASSWORD).await;
    let mut mine = api.auth_as(&session.access_token).await;
    assert!(!mine.who_am_i(WhoAmIRequest {}).await.unwrap().into_inner().email_verified);
    let mut documents = DocumentServiceClient::new(api.authed(&session.access_token).await);
    let refused = documents.create_document(note("early.md")).await.unwrap_err();
    assert_eq!(
        (refused.code(), reason(&refused)),
        (Code::FailedPrecondition, "EMAIL_NOT_VERIFIED".to_owned())
    );
    let soon = mine.resend_verification(ResendVerificationRequest {}).await.unwrap_err();
    assert_eq!(soon.code(), Code::ResourceExhausted);

    // The same email registered again: the same answer, and its owner told.
    let again = auth
        .register(register(EMAIL, "a stranger's passphrase"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, registered, "Register tells nobody whether the email was taken");
    smtp.wait_for(EMAIL, "tried to register").await;

    // Following the link verifies the email; the token works once.
    let verified = auth
        .verify_email(VerifyEmailRequest {
            token: verification.token(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(verified.user.unwrap().email_verified);
    let reused = auth
        .verify_email(VerifyEmailRequest {
            token: verification.token(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (violated_fields(&reused), reason(&reused)),
        (vec!["token".to_owned()], "EMAIL_TOKEN_INVALID".to_owned())
    );
    documents.create_document(note("verified.md")).await.unwrap();

    // Password reset: an unknown email gets the same answer and no email.
    let unknown = auth
        .request_password_reset(RequestPasswordResetRequest {
            email: "nobody@folio.test".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let known = auth
        .request_password_reset(RequestPasswordResetRequest { email: EMAIL.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unknown, known);
    let reset = smtp.wait_for(EMAIL, "Reset your folio password").await;
    // Letters go out in the order they were queued: had the unknown email
    // had one, it would be here already.
    assert!(smtp.messages().iter().all(|mail| !mail.to.contains("nobody@")));
    let bad = auth
        .reset_password(ResetPasswordRequest {
            token: "not-a-token".into(),
            new_password: NEW_PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad), "EMAIL_TOKEN_INVALID");
    auth.reset_password(ResetPasswordRequest {
        token: reset.token(),
        new_password: NEW_PASSWORD.into(),
    })
    .await
    .unwrap();
    let revoked = mine.who_am_i(WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(revoked.code(), Code::Unauthenticated, "a reset ends every session");
    let reused = auth
        .reset_password(ResetPasswordRequest {
            token: reset.token(),
            new_password: "yet another passphrase".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&reused), "EMAIL_TOKEN_INVALID");
    smtp.wait_for(EMAIL, "password was changed").await;
    let session = api.login(EMAIL, NEW_PASSWORD).await;

    // A reset token past its 30 minutes no longer works.
    auth.request_password_reset(RequestPasswordResetRequest { email: EMAIL.into() })
        .await
        .unwrap();
    let late = eventually_second_reset(&smtp).await;
    let mut conn = env.pool().get().await.unwrap();
    diesel::update(folio_db::schema::email_tokens::table.filter(folio_db::schema::email_tokens::used_at.is_null()))
        .set(folio_db::schema::email_tokens::expires_at.eq(chrono::Utc::now() - chrono::Duration::minutes(1)))
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let expired = auth
        .reset_password(ResetPasswordRequest {
            token: late.token(),
            new_password: "yet another passphrase".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&expired), "EMAIL_TOKEN_INVALID");

    // A sign-in from an address the account never used is reported.
    let mut login = Request::new(LoginRequest {
        email: EMAIL.into(),
        password: NEW_PASSWORD.into(),
    });
    login.metadata_mut().insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    login.metadata_mut().insert("user-agent", "folio-test-tablet/3.1".parse().unwrap());
    auth.login(login).await.unwrap();
    let alert = smtp.wait_for(EMAIL, "New sign-in").await;
    assert!(
        alert.body.contains("203.0.113.7") && alert.body.contains("folio-test-tablet/3.1"),
        "{alert:?}"
    );

    // Turning a second factor on is reported.
    api.turn_on_mfa(&session.access_token).await;
    smtp.wait_for(EMAIL, "second factor was turned on").await;

    // A refresh token used twice (after the race grace) revokes its session
    // and is reported.
    // (An account an admin creates has its email verified: the admin vouches.)
    let other_email = "grace@folio.test";
    let created = api
        .admin_users()
        .await
        .create_user(CreateUserRequest {
            email: other_email.into(),
            password: PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.email_verified);
    let other = api.login(other_email, PASSWORD).await;
    auth.refresh(RefreshRequest {
        refresh_token: other.refresh_token.clone(),
    })
    .await
    .unwrap();
    let reuse = folio_tests::eventually(std::time::Duration::from_secs(30), "the reuse to be detected", || {
        let mut auth = auth.clone();
        let token = other.refresh_token.clone();
        async move {
            let refused = auth.refresh(RefreshRequest { refresh_token: token }).await.unwrap_err();
            (reason(&refused) == "REFRESH_TOKEN_REUSED").then_some(refused)
        }
    })
    .await;
    assert_eq!(reuse.code(), Code::Unauthenticated);
    smtp.wait_for(other_email, "stolen").await;

    api.stop().await.unwrap();
    env.cleanup().await;
}

/// The second reset email (the first was used above).
async fn eventually_second_reset(smtp: &SmtpServer) -> folio_tests::smtp::Mail {
    folio_tests::eventually(std::time::Duration::from_secs(30), "a second reset email", || async move {
        let resets: Vec<_> = smtp
            .messages()
            .into_iter()
            .filter(|mail| mail.to.contains(EMAIL) && mail.subject.contains("Reset your folio password"))
            .collect();
        (resets.len() == 2).then(|| resets[1].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_smtp_letters_go_to_the_log_marked_as_not_sent() {
    let mut env = TestEnv::new().await;
    let (_api, logs, addr) = env.start_api_logged().await;
    let mut auth = folio_proto::v1::auth_service_client::AuthServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    auth.request_password_reset(RequestPasswordResetRequest {
        email: folio_tests::ADMIN_EMAIL.into(),
    })
    .await
    .unwrap();
    // The letter is in the log, marked, with its token (no FOLIO_PUBLIC_URL:
    // the token alone), which works.
    let line = folio_tests::eventually(std::time::Duration::from_secs(30), "the letter in the log", || {
        let logs = &logs;
        async move {
            logs.containing("EMAIL NOT SENT")
                .into_iter()
                .find(|line| line.contains("Reset your folio password"))
        }
    })
    .await;
    let logged: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(logged["to"], folio_tests::ADMIN_EMAIL, "{logged}");
    let body = logged["body"].as_str().expect("the letter's body");
    let token = body
        .lines()
        .skip_while(|line| !line.contains("pass this token"))
        .skip(1)
        .find(|line| !line.trim().is_empty())
        .expect("the token")
        .trim()
        .to_owned();
    auth.reset_password(ResetPasswordRequest {
        token,
        new_password: "the admin's brand-new passphrase".into(),
    })
    .await
    .unwrap();
    // The alert of that reset goes the same way; nothing sent is kept.
    folio_tests::eventually(std::time::Duration::from_secs(30), "the alert in the log", || {
        let logs = &logs;
        async move {
            logs.containing("EMAIL NOT SENT")
                .into_iter()
                .find(|line| line.contains("password was changed"))
        }
    })
    .await;
    let pool = env.pool();
    folio_tests::eventually(std::time::Duration::from_secs(30), "the outbox to be empty", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            (folio_db::models::email::pending(&mut conn).await.ok()? == 0).then_some(())
        }
    })
    .await;
    env.cleanup().await;
}
