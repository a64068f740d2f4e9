//! Identity and access end to end: accounts, tokens, refresh rotation and reuse,
//! roles, revocation, rate limits and the audit log, against real Postgres and
//! Redis.
//!
//! Over 500 lines on purpose: one file for the identity surface, so each
//! test reads beside the others that share its accounts and tokens set-up;
//! the shared helpers are in the harness.

use std::time::Duration;

use folio_auth::{
    Role as DomainRole,
    tokens::{TokenIssuer, TokenKeys},
};
use folio_db::models::user;
use folio_proto::v1::{
    ChangePasswordRequest, CreateUserRequest, ListAuditEventsRequest, ListPublicKeysRequest, ListUsersRequest, ListWorkersRequest,
    LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest, Role, UpdateUserRequest, User, WhoAmIRequest,
};
use folio_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TcpProxy, TestEnv, eventually, violated_fields};
use tonic::Code;
use tonic_types::StatusExt as _;
use uuid::Uuid;

fn retry_after(status: &tonic::Status) -> Duration {
    status
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay)
        .expect("RetryInfo")
}

async fn who_am_i(api: &folio_tests::ApiHandle, token: &str) -> Result<User, tonic::Status> {
    api.auth_as(token).await.who_am_i(WhoAmIRequest {}).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_refresh_and_logout_work_and_logout_revokes_the_session() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut auth = api.auth().await;

    let registered = auth
        .register(RegisterRequest {
            email: "  Ada@Example.ORG ".into(),
            password: "analytical engine notes".into(),
            display_name: "Ada".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let user = registered.user.unwrap();
    assert_eq!(user.email, "ada@example.org");
    assert_eq!(user.role(), Role::Member);

    let session = api.login("ada@example.org", "analytical engine notes").await;
    assert!(session.access_token.starts_with("v4.public."));
    assert_eq!(who_am_i(&api, &session.access_token).await.unwrap().email, "ada@example.org");

    let refreshed = auth
        .refresh(RefreshRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(refreshed.refresh_token, session.refresh_token);
    assert_eq!(who_am_i(&api, &refreshed.access_token).await.unwrap().id, user.id);

    api.auth_as(&refreshed.access_token).await.logout(LogoutRequest {}).await.unwrap();
    for token in [&session.access_token, &refreshed.access_token] {
        assert_eq!(
            who_am_i(&api, token).await.unwrap_err().code(),
            Code::Unauthenticated,
            "access tokens of a logged-out session"
        );
    }
    let status = auth
        .refresh(RefreshRequest {
            refresh_token: refreshed.refresh_token,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // Another session of the same user is untouched.
    let other = api.login("ada@example.org", "analytical engine notes").await;
    assert!(who_am_i(&api, &other.access_token).await.is_ok());

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_invalid_argument_with_field_violations_and_writes_nothing() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut auth = api.auth().await;
    for (email, password, fields) in [
        ("not-an-email", "a perfectly fine passphrase", vec!["email"]),
        ("ok@example.org", "short", vec!["password"]),
        ("ok@example.org", "password123", vec!["password"]),
        ("", "", vec!["email", "password"]),
    ] {
        let status = auth
            .register(RegisterRequest {
                email: email.into(),
                password: password.into(),
                display_name: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{email} {password}");
        assert_eq!(violated_fields(&status), fields);
    }
    let status = auth.login(LoginRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["email", "password"]);

    let mut conn = env.pool().get().await.unwrap();
    assert!(user::find_by_email(&mut conn, "ok@example.org").await.unwrap().is_none());
    drop(conn);

    let mut users = api.admin_users().await;
    let status = users
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: Uuid::new_v4().to_string(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["update_mask"]);
    let status = users
        .list_users(ListUsersRequest {
            page_token: "bogus".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_and_wrong_password_answer_the_same() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut auth = api.auth().await;
    let mut answers = Vec::new();
    for email in [ADMIN_EMAIL, "nobody@folio.test"] {
        let started = std::time::Instant::now();
        let status = auth
            .login(LoginRequest {
                email: email.into(),
                password: "not the password at all".into(),
            })
            .await
            .unwrap_err();
        answers.push((status.code(), status.message().to_owned(), started.elapsed()));
    }
    assert_eq!((answers[0].0, &answers[0].1), (answers[1].0, &answers[1].1));
    assert_eq!(answers[0].0, Code::Unauthenticated);
    // Both ran one argon2 verification; neither is a fast path.
    let (a, b) = (answers[0].2.as_secs_f64(), answers[1].2.as_secs_f64());
    assert!(a.min(b) / a.max(b) > 0.2, "timings differ too much: {a:.3}s vs {b:.3}s");

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_other_audience_and_unknown_key_tokens_are_unauthenticated() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_ACCESS_TOKEN_TTL_SECS", "3");
    let api = env.spawn_api().await;
    let session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin_id: Uuid = session.user.as_ref().unwrap().id.parse().unwrap();
    let session_id = Uuid::new_v4();
    let keys = TokenKeys::from_paserks(&[env.vars["FOLIO_TOKEN_KEYS"].clone()]).unwrap();
    let issuer = |audience: &str, keys: TokenKeys| TokenIssuer {
        keys,
        issuer: "folio".into(),
        audience: audience.into(),
        ttl: Duration::from_secs(60),
    };
    let (other_audience, _) = issuer("another-service", keys.clone()).issue(admin_id, DomainRole::Admin, session_id);
    let (unknown_key, _) =
        issuer("folio", TokenKeys::from_paserks(&[TokenKeys::generate_secret()]).unwrap()).issue(admin_id, DomainRole::Admin, session_id);
    let mut tampered = session.access_token.clone().into_bytes();
    let at = tampered.len() - 60;
    tampered[at] = if tampered[at] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();

    for (what, token) in [
        ("other audience", other_audience.as_str()),
        ("unknown key", unknown_key.as_str()),
        ("tampered", tampered.as_str()),
        ("garbage", "v4.public.bm90IGEgdG9rZW4"),
    ] {
        let status = who_am_i(&api, token).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}");
    }
    let status = api.auth().await.logout(LogoutRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "no token at all");

    let fresh = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
    assert!(who_am_i(&api, &fresh).await.is_ok());
    tokio::time::sleep(Duration::from_millis(4100)).await;
    assert_eq!(who_am_i(&api, &fresh).await.unwrap_err().code(), Code::Unauthenticated, "expired");

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_rotate_without_logging_anyone_out() {
    let mut env = TestEnv::new().await;
    let old = env.vars["FOLIO_TOKEN_KEYS"].clone();
    let new = TokenKeys::generate_secret();

    let api = env.spawn_api().await;
    let before = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
    api.stop().await.unwrap();

    // The new key signs; the old one still verifies.
    env.set("FOLIO_TOKEN_KEYS", format!("{new},{old}"));
    let api = env.spawn_api().await;
    assert!(who_am_i(&api, &before).await.is_ok(), "a token signed by the old key");
    let after = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.access_token;
    let keys = api
        .auth()
        .await
        .list_public_keys(ListPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 2);
    assert!(keys[0].signing && !keys[1].signing);
    api.stop().await.unwrap();

    // Rolled back (or another api-server not yet updated): the old key signs,
    // the new one verifies.
    env.set("FOLIO_TOKEN_KEYS", format!("{old},{new}"));
    let api = env.spawn_api().await;
    assert!(who_am_i(&api, &after).await.is_ok(), "a token signed by the new key");
    api.stop().await.unwrap();

    // The old key retired: its tokens stop working.
    env.set("FOLIO_TOKEN_KEYS", new);
    let api = env.spawn_api().await;
    assert_eq!(who_am_i(&api, &before).await.unwrap_err().code(), Code::Unauthenticated);
    assert!(who_am_i(&api, &after).await.is_ok());
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_rotated_refresh_token_revokes_the_family_and_its_access_tokens() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_REFRESH_REUSE_GRACE_MS", "0");
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut auth = api.auth().await;
    let second = auth
        .refresh(RefreshRequest {
            refresh_token: member.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(who_am_i(&api, &second.access_token).await.is_ok());

    // An attacker replays the first refresh token.
    let status = auth
        .refresh(RefreshRequest {
            refresh_token: member.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = auth
        .refresh(RefreshRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "the legitimate holder's token is revoked too");
    for token in [&member.access_token, &second.access_token] {
        assert_eq!(who_am_i(&api, token).await.unwrap_err().code(), Code::Unauthenticated);
    }

    // The denylist holds the family's access tokens in Redis until they expire.
    let client = redis::Client::open(folio_tests::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let prefix = &env.vars["FOLIO_REDIS_PREFIX"];
    let denied: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}denied:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(denied.len(), 2, "{denied:?}");

    let events = audit_events(&api, "/folio.v1.AuthService/Refresh").await;
    assert!(events.iter().any(|e| e.event == "refresh_reuse_detected"), "{events:?}");
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_concurrent_refreshes_with_one_token_exactly_one_wins() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let channel = api.channel().await;
    let attempts = (0..8).map(|_| {
        let mut auth = folio_proto::v1::auth_service_client::AuthServiceClient::new(channel.clone());
        let refresh_token = member.refresh_token.clone();
        tokio::spawn(async move { auth.refresh(RefreshRequest { refresh_token }).await })
    });
    let results: Vec<_> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(
        results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|s| s.code() == Code::Unauthenticated)
    );
    // The winner's session is intact: losing a race is not reuse.
    let winner = winners[0].get_ref();
    assert!(who_am_i(&api, &winner.access_token).await.is_ok());
    api.auth()
        .await
        .refresh(RefreshRequest {
            refresh_token: winner.refresh_token.clone(),
        })
        .await
        .unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_resource_exhausted_with_retry_info() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_RATE_LIMIT_MEMBER", "5");
    env.set("FOLIO_LOGIN_FAILURES_PER_ACCOUNT_PEER", "3");
    let api = env.spawn_api().await;

    let member = api.register_member().await;
    let mut outcomes = Vec::new();
    for _ in 0..7 {
        outcomes.push(who_am_i(&api, &member.access_token).await);
    }
    let limited: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(!limited.is_empty(), "no call was limited");
    assert!(limited.iter().all(|s| s.code() == Code::ResourceExhausted));
    let delay = retry_after(limited[0]);
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(60), "{delay:?}");
    // The admin has a limit of its own.
    assert!(api.admin_users().await.list_users(ListUsersRequest::default()).await.is_ok());

    let mut auth = api.auth().await;
    let wrong = |email: &str| LoginRequest {
        email: email.into(),
        password: "definitely wrong guess".into(),
    };
    for _ in 0..3 {
        assert_eq!(auth.login(wrong(ADMIN_EMAIL)).await.unwrap_err().code(), Code::Unauthenticated);
    }
    let status = auth
        .login(LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "even the right password waits out the window from this address"
    );
    assert!(retry_after(&status) > Duration::from_secs(60));
    // Another account from the same address is not locked out.
    assert_eq!(
        auth.login(wrong("someone@folio.test")).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_and_members_are_refused_admin_rpcs() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut admin = api.admin_users().await;
    admin
        .create_user(CreateUserRequest {
            email: "viewer@folio.test".into(),
            password: "a viewer's passphrase".into(),
            display_name: String::new(),
            role: Role::Viewer as i32,
        })
        .await
        .unwrap();
    let viewer = api.login("viewer@folio.test", "a viewer's passphrase").await;
    let member = api.register_member().await;
    for token in [&viewer.access_token, &member.access_token] {
        let status = api.users_as(token).await.list_users(ListUsersRequest::default()).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
        let mut system = folio_proto::v1::system_service_client::SystemServiceClient::new(api.authed(token).await);
        assert_eq!(
            system.list_workers(ListWorkersRequest::default()).await.unwrap_err().code(),
            Code::PermissionDenied
        );
        assert!(
            system.get_info(folio_proto::v1::GetInfoRequest {}).await.is_ok(),
            "GetInfo is for any signed-in user"
        );
    }
    assert!(admin.list_users(ListUsersRequest::default()).await.is_ok());
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivation_refuses_at_once_and_a_role_change_applies_at_the_next_call() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut admin = api.admin_users().await;
    let member = api.register_member().await;
    let member_user = member.user.clone().unwrap();

    // Promote: the member's existing token may now do admin things.
    assert_eq!(
        api.users_as(&member.access_token)
            .await
            .list_users(ListUsersRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let promoted = admin
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: member_user.id.clone(),
                role: Role::Admin as i32,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["role".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.role(), Role::Admin);
    assert!(
        api.users_as(&member.access_token)
            .await
            .list_users(ListUsersRequest::default())
            .await
            .is_ok()
    );

    // Deactivate: refused at once, and no new session either.
    let deactivated = admin
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: member_user.id.clone(),
                active: false,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["active".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!deactivated.active);
    assert_eq!(
        who_am_i(&api, &member.access_token).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    let status = api
        .auth()
        .await
        .refresh(RefreshRequest {
            refresh_token: member.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = api
        .auth()
        .await
        .login(LoginRequest {
            email: member_user.email.clone(),
            password: "a member's passphrase".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    let inactive = admin
        .list_users(ListUsersRequest {
            active: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        inactive.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [member_user.id.as_str()]
    );

    let events = audit_events(&api, "/folio.v1.UserService/UpdateUser").await;
    let kinds: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    assert!(kinds.contains(&"role_changed") && kinds.contains(&"active_changed"), "{kinds:?}");
    assert!(
        events
            .iter()
            .all(|e| e.target == format!("user:{}", member_user.id) && e.outcome == "OK")
    );
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_password_revokes_every_session() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let email = member.user.clone().unwrap().email;
    let second = api.login(&email, "a member's passphrase").await;

    let status = api
        .auth_as(&member.access_token)
        .await
        .change_password(ChangePasswordRequest {
            current_password: "not the current one".into(),
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["current_password"]);
    api.auth_as(&member.access_token)
        .await
        .change_password(ChangePasswordRequest {
            current_password: "a member's passphrase".into(),
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap();
    for token in [&member.access_token, &second.access_token] {
        assert_eq!(who_am_i(&api, token).await.unwrap_err().code(), Code::Unauthenticated);
    }
    api.login(&email, "a brand new passphrase").await;
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_is_created_once_and_never_overwritten_and_registration_can_be_closed() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    api.stop().await.unwrap();

    env.set("FOLIO_ADMIN_PASSWORD", "a different admin passphrase");
    env.set("FOLIO_OPEN_REGISTRATION", "false");
    let api = env.spawn_api().await;
    api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let status = api
        .auth()
        .await
        .register(RegisterRequest {
            email: "late@folio.test".into(),
            password: "a late passphrase".into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weaker_stored_hash_is_upgraded_at_the_next_login() {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version, password_hash::SaltString};
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let email = member.user.unwrap().email;
    let weak = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(1024, 1, 1, None).unwrap())
        .hash_password(
            b"a member's passphrase",
            &SaltString::generate(&mut argon2::password_hash::rand_core::OsRng),
        )
        .unwrap()
        .to_string();
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let id = user::find_by_email(&mut conn, &email).await.unwrap().unwrap().id;
    user::set_password_hash(&mut conn, id, &weak).await.unwrap();

    api.login(&email, "a member's passphrase").await;
    let stored = user::find(&mut conn, id).await.unwrap().unwrap().password_hash;
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    drop(conn);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_records_auth_events_and_filters_and_pages() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut auth = api.auth().await;
    let _ = auth
        .login(LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: "wrong wrong wrong".into(),
        })
        .await;
    let session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let refreshed = auth
        .refresh(RefreshRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    api.auth_as(&refreshed.access_token).await.logout(LogoutRequest {}).await.unwrap();

    let mut users = api.admin_users().await;
    let all = eventually(Duration::from_secs(5), "audit rows written", || {
        let mut users = users.clone();
        async move {
            let events = users
                .list_audit_events(ListAuditEventsRequest::default())
                .await
                .ok()?
                .into_inner()
                .events;
            (events.iter().any(|e| e.event == "logout")).then_some(events)
        }
    })
    .await;
    let kinds: Vec<_> = all.iter().map(|e| e.event.as_str()).collect();
    for kind in ["login_failed", "login", "refresh", "logout"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let failed = all.iter().find(|e| e.event == "login_failed").unwrap();
    assert_eq!(
        (failed.outcome.as_str(), failed.actor_email.as_str()),
        ("UNAUTHENTICATED", ADMIN_EMAIL)
    );
    assert_eq!(failed.peer, "127.0.0.1");
    let logout = all.iter().find(|e| e.event == "logout").unwrap();
    assert_eq!(logout.actor_id, session.user.as_ref().unwrap().id);
    assert!(logout.latency_us > 0);

    let only_failures = users
        .list_audit_events(ListAuditEventsRequest {
            outcome: "unauthenticated".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(!only_failures.is_empty() && only_failures.iter().all(|e| e.outcome == "UNAUTHENTICATED"));

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = users
            .list_audit_events(ListAuditEventsRequest {
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.events.into_iter().map(|e| e.id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {seen:?}");
    assert!(seen.len() >= all.len());
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_limits_fail_open_and_revocation_checks_fail_closed() {
    let mut env = TestEnv::new().await;
    let proxy = TcpProxy::start("127.0.0.1:6379").await;
    env.set("REDIS_URL", proxy.url_through(&folio_tests::redis_url()));
    let api = env.spawn_api().await;
    let session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert!(who_am_i(&api, &session.access_token).await.is_ok());

    proxy.cut();
    let status = who_am_i(&api, &session.access_token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "revocation cannot be checked: fail closed");
    // Public calls and their limits fail open.
    api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    proxy.restore();
    eventually(Duration::from_secs(15), "calls allowed again once Redis is back", || {
        let api = &api;
        let token = session.access_token.clone();
        async move { who_am_i(api, &token).await.ok() }
    })
    .await;
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_verifies_with_an_independent_paseto_implementation() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let keys = api
        .auth()
        .await
        .list_public_keys(ListPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let key = keys.iter().find(|k| k.signing).unwrap();

    // pyseto (Python) verifies the token with nothing but ListPublicKeys' output
    // and the implicit assertion the proto documents; without it, it refuses.
    let script = r#"
import json, sys, pyseto
from pyseto import Key
public_paserk, key_id, token = sys.argv[1:4]
key = Key.from_paserk(public_paserk)
assert key.to_paserk_id() == key_id, "key id mismatch"
try:
    pyseto.decode(key, token)
    raise SystemExit("verified without the implicit assertion")
except pyseto.VerifyError:
    pass
decoded = pyseto.decode(key, token, deserializer=json, implicit_assertion=b"folio access token v1")
footer = decoded.footer if isinstance(decoded.footer, dict) else json.loads(decoded.footer)
assert footer["kid"] == key_id, footer
print(json.dumps(decoded.payload))
"#;
    let output = tokio::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&key.public_key)
        .arg(&key.id)
        .arg(&session.access_token)
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "pyseto refused the token: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(claims["sub"], session.user.as_ref().unwrap().id.as_str());
    assert_eq!(claims["role"], "admin");
    assert_eq!(claims["iss"], "folio");
    assert_eq!(claims["aud"], "folio");
    for claim in ["jti", "iat", "nbf", "exp"] {
        assert!(claims[claim].is_string(), "{claim} missing: {claims}");
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_rows_wait_then_spill_while_the_log_is_locked_and_none_is_lost() {
    use diesel::{ExpressionMethods as _, QueryDsl as _, sql_types::BigInt};
    use diesel_async::RunQueryDsl as _;
    use folio_db::schema::audit_events;
    use folio_proto::v1::GetInfoRequest;

    const WHO_AM_I: &str = "/folio.v1.AuthService/WhoAmI";
    let mut env = TestEnv::new().await;
    env.set("FOLIO_AUDIT_BUFFER", "2");
    let api = env.spawn_api().await;
    let session = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let auth = api.auth_as(&session.access_token).await;
    let pool = env.pool();

    // Hold the audit log: the writer's next insert waits on the lock.
    let mut holder = pool.get().await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut holder).await.unwrap();
    diesel::sql_query("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    auth.clone().who_am_i(WhoAmIRequest {}).await.unwrap();
    eventually(Duration::from_secs(10), "the audit writer waiting on the lock", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let waiting: i64 = diesel::select(diesel::dsl::sql::<BigInt>(
                "(SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE '%audit_events%')",
            ))
            .get_result(&mut conn)
            .await
            .ok()?;
            (waiting > 0).then_some(())
        }
    })
    .await;

    // Two rows fill the writer's queue; the calls after them wait for room,
    // then spill their rows. Every call still answers.
    const CALLS: usize = 10;
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let mut auth = auth.clone();
            tokio::spawn(async move { auth.who_am_i(WhoAmIRequest {}).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let mut system = api.system().await;
    let audit = system.get_info(GetInfoRequest {}).await.unwrap().into_inner().audit.unwrap();
    assert!(audit.delayed >= 8 && audit.spilled >= 8 && audit.lost == 0, "{audit:?}");

    let released_at = chrono::Utc::now();
    diesel::sql_query("COMMIT").execute(&mut holder).await.unwrap();
    let times = eventually(Duration::from_secs(20), "every WhoAmI row written", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            let times: Vec<chrono::DateTime<chrono::Utc>> = audit_events::table
                .filter(audit_events::rpc.eq(WHO_AM_I))
                .select(audit_events::at)
                .load(&mut conn)
                .await
                .ok()?;
            (times.len() == CALLS + 1).then_some(times)
        }
    })
    .await;
    assert!(
        times.iter().all(|at| *at < released_at),
        "rows carry their call's time, not their insert's"
    );
    let audit = eventually(Duration::from_secs(5), "the spilled rows counted as restored", || {
        let mut system = system.clone();
        async move {
            let audit = system.get_info(GetInfoRequest {}).await.ok()?.into_inner().audit?;
            (audit.restored >= 8).then_some(audit)
        }
    })
    .await;
    assert_eq!(audit.lost, 0, "{audit:?}");

    drop(holder);
    api.stop().await.unwrap();
    env.cleanup().await;
}

async fn audit_events(api: &folio_tests::ApiHandle, rpc: &str) -> Vec<folio_proto::v1::AuditEvent> {
    let users = api.admin_users().await;
    let rpc = rpc.to_owned();
    eventually(Duration::from_secs(5), "audit rows", || {
        let mut users = users.clone();
        let rpc = rpc.clone();
        async move {
            let events = users
                .list_audit_events(ListAuditEventsRequest { rpc, ..Default::default() })
                .await
                .ok()?
                .into_inner()
                .events;
            (!events.is_empty()).then_some(events)
        }
    })
    .await
}
