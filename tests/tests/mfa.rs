//! A second factor: a member enrols a TOTP secret (URI and QR code), confirms
//! it with a first code and gets backup codes; from then on Login answers a
//! challenge that only VerifyMfa with a valid code turns into a session. Each
//! code works once, wrong codes burn the challenge and count as failed
//! logins, backup codes regenerate, the factor turns off with password and
//! code, an admin can reset it, the secret is sealed at rest, and every step
//! is audited.

use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_proto::v1::{
    BeginTotpEnrollmentRequest, ConfirmTotpRequest, DisableTotpRequest, LoginRequest, RegenerateBackupCodesRequest, ResetMfaRequest,
    Session, VerifyMfaRequest,
};
use folio_tests::{ApiHandle, TestEnv, eventually, reason, totp, violated_fields};
use tonic::Code;

const PASSWORD: &str = "a member's passphrase";

/// Logs in with the password; the answer must be a challenge.
async fn challenge(api: &ApiHandle, email: &str) -> String {
    let answer = api.login(email, PASSWORD).await;
    assert!(
        answer.access_token.is_empty() && answer.refresh_token.is_empty() && answer.user.is_none(),
        "{answer:?}"
    );
    answer.mfa_required.expect("a challenge").challenge
}

/// VerifyMfa's answer.
async fn verify(api: &ApiHandle, challenge: &str, code: &str) -> Result<Session, tonic::Status> {
    api.auth()
        .await
        .verify_mfa(VerifyMfaRequest {
            challenge: challenge.into(),
            code: code.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_guards_logins_and_each_code_works_once() {
    let mut env = TestEnv::new().await;
    // Room for this test's deliberate wrong codes before the pair is
    // throttled, which the last part checks.
    env.set("FOLIO_MFA_ATTEMPTS", "2");
    env.set("FOLIO_LOGIN_FAILURES_PER_ACCOUNT_PEER", "8");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let user = member.user.clone().unwrap();
    let mut mine = api.auth_as(&member.access_token).await;

    // Enrolling: a secret, its otpauth URI and a PNG QR code.
    let enrollment = mine
        .begin_totp_enrollment(BeginTotpEnrollmentRequest {})
        .await
        .unwrap()
        .into_inner();
    let secret = enrollment.secret.clone();
    assert_eq!(secret.len(), 32, "160 bits in base32");
    assert!(
        enrollment.otpauth_uri.starts_with("otpauth://totp/folio:"),
        "{}",
        enrollment.otpauth_uri
    );
    assert!(enrollment.otpauth_uri.contains(&format!("secret={secret}")));
    assert_eq!(&enrollment.qr_png[..8], b"\x89PNG\r\n\x1a\n");

    // At rest the secret is sealed, never in clear.
    let mut conn = env.pool().get().await.unwrap();
    let sealed: String = folio_db::schema::totp_secrets::table
        .select(folio_db::schema::totp_secrets::secret_sealed)
        .filter(folio_db::schema::totp_secrets::user_id.eq(uuid::Uuid::parse_str(&user.id).unwrap()))
        .first(&mut conn)
        .await
        .unwrap();
    assert!(sealed.starts_with("v4.local.") && !sealed.contains(&secret), "{sealed}");
    drop(conn);

    // Until confirmed, nothing guards the login.
    assert!(!api.login(&user.email, PASSWORD).await.access_token.is_empty());
    let wrong = mine.confirm_totp(ConfirmTotpRequest { code: "000000".into() }).await.unwrap_err();
    assert_eq!(
        (wrong.code(), violated_fields(&wrong)),
        (Code::InvalidArgument, vec!["code".to_owned()])
    );
    let backup = mine
        .confirm_totp(ConfirmTotpRequest { code: totp(&secret, 0) })
        .await
        .unwrap()
        .into_inner()
        .codes;
    assert_eq!(backup.len(), 10);
    assert!(backup.iter().all(|c| c.len() == 19 && c.matches('-').count() == 3), "{backup:?}");
    assert!(api.who_am_i(&member.access_token).await.mfa_enabled);
    let again = mine.begin_totp_enrollment(BeginTotpEnrollmentRequest {}).await.unwrap_err();
    assert_eq!(
        (again.code(), reason(&again)),
        (Code::FailedPrecondition, "MFA_ALREADY_ON".to_owned())
    );

    // Login now answers a challenge; a valid code finishes it.
    let first = challenge(&api, &user.email).await;
    let wrong = verify(&api, &first, "123456").await.unwrap_err();
    assert_eq!((wrong.code(), reason(&wrong)), (Code::Unauthenticated, "MFA_CODE_WRONG".to_owned()));
    let next = totp(&secret, 1);
    let session = verify(&api, &first, &next).await.unwrap();
    assert!(session.mfa_required.is_none());
    assert_eq!(api.who_am_i(&session.access_token).await.id, user.id);

    // The challenge is spent, and so is the code.
    let spent = verify(&api, &first, &next).await.unwrap_err();
    assert_eq!(reason(&spent), "MFA_CHALLENGE_UNKNOWN");
    let second = challenge(&api, &user.email).await;
    let replayed = verify(&api, &second, &next).await.unwrap_err();
    assert_eq!(reason(&replayed), "MFA_CODE_WRONG", "a code works once");
    // A backup code, in any case and without dashes, works once too.
    let loose = backup[0].to_uppercase().replace('-', "");
    assert!(verify(&api, &second, &loose).await.unwrap().mfa_required.is_none());
    let third = challenge(&api, &user.email).await;
    assert_eq!(reason(&verify(&api, &third, &backup[0]).await.unwrap_err()), "MFA_CODE_WRONG");
    // A second wrong code burns the challenge (FOLIO_MFA_ATTEMPTS here):
    // even a good code cannot finish it then.
    let last = verify(&api, &third, "000000").await.unwrap_err();
    assert!(last.message().contains("last attempt"), "{last:?}");
    assert_eq!(
        reason(&verify(&api, &third, &backup[1]).await.unwrap_err()),
        "MFA_CHALLENGE_UNKNOWN"
    );

    // New backup codes replace the old.
    let renewed = mine
        .regenerate_backup_codes(RegenerateBackupCodesRequest { code: backup[1].clone() })
        .await
        .unwrap()
        .into_inner()
        .codes;
    assert_eq!(renewed.len(), 10);
    let fourth = challenge(&api, &user.email).await;
    assert_eq!(reason(&verify(&api, &fourth, &backup[2]).await.unwrap_err()), "MFA_CODE_WRONG");
    assert!(verify(&api, &fourth, &renewed[0]).await.is_ok());

    // Turning it off needs the password and a code.
    let refused = mine
        .disable_totp(DisableTotpRequest {
            password: "not the password".into(),
            code: renewed[1].clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["password"]);
    mine.disable_totp(DisableTotpRequest {
        password: PASSWORD.into(),
        code: renewed[1].clone(),
    })
    .await
    .unwrap();
    let direct = api.login(&user.email, PASSWORD).await;
    assert!(direct.mfa_required.is_none() && !direct.access_token.is_empty());
    assert!(!direct.user.unwrap().mfa_enabled);

    // On again (an enrollment left unconfirmed is replaced by the next),
    // then an admin resets it; a member may not.
    let abandoned = mine
        .begin_totp_enrollment(BeginTotpEnrollmentRequest {})
        .await
        .unwrap()
        .into_inner()
        .secret;
    let secret = api.turn_on_mfa(&member.access_token).await;
    assert_ne!(secret, abandoned);
    let pending = challenge(&api, &user.email).await;
    let denied = api
        .users_as(&member.access_token)
        .await
        .reset_mfa(ResetMfaRequest { user_id: user.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let reset = api
        .admin_users()
        .await
        .reset_mfa(ResetMfaRequest { user_id: user.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(!reset.mfa_enabled);
    assert_eq!(
        reason(&verify(&api, &pending, &totp(&secret, 1)).await.unwrap_err()),
        "MFA_CHALLENGE_UNKNOWN",
        "a reset ends the logins waiting for a code"
    );
    assert!(!api.login(&user.email, PASSWORD).await.access_token.is_empty());

    // Wrong codes count as failed logins: past the limit the pair is
    // throttled at Login and VerifyMfa alike.
    api.turn_on_mfa(&member.access_token).await;
    let mut throttled = None;
    for _ in 0..12 {
        let Ok(answer) = api
            .auth()
            .await
            .login(LoginRequest {
                email: user.email.clone(),
                password: PASSWORD.into(),
            })
            .await
        else {
            throttled = Some("Login");
            break;
        };
        let challenge = answer.into_inner().mfa_required.unwrap().challenge;
        let refused = verify(&api, &challenge, "000000").await.unwrap_err();
        if refused.code() == Code::ResourceExhausted {
            throttled = Some("VerifyMfa");
            break;
        }
        assert_eq!(reason(&refused), "MFA_CODE_WRONG");
    }
    assert!(throttled.is_some(), "wrong codes never throttled the login");

    // Audited (the writer is asynchronous: wait for each row).
    for (rpc, event) in [
        ("AuthService/ConfirmTotp", "mfa_enabled"),
        ("AuthService/DisableTotp", "mfa_disabled"),
        ("AuthService/RegenerateBackupCodes", "backup_codes_regenerated"),
        ("UserService/ResetMfa", "mfa_reset"),
        ("AuthService/Login", "mfa_challenged"),
        ("AuthService/VerifyMfa", "login"),
    ] {
        let rpc = format!("/folio.v1.{rpc}");
        eventually(Duration::from_secs(30), &format!("{event} in the audit log"), || {
            let (api, rpc) = (&api, rpc.clone());
            async move { api.audit_of(&rpc).await.iter().any(|row| row.event == event).then_some(()) }
        })
        .await;
    }
    env.cleanup().await;
}
