//! Sessions: a user lists their live sessions (when each began and was last
//! used, from where, with which client) and revokes one, whose tokens stop
//! working at once; an admin lists and revokes anyone's; another member's
//! session is NOT_FOUND and their list PERMISSION_DENIED.

use folio_proto::v1::{
    ListSessionsRequest, LoginRequest, RefreshRequest, RevokeSessionRequest, SessionInfo, WhoAmIRequest,
    auth_service_client::AuthServiceClient,
};
use folio_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, Authed, TestEnv, violated_fields};
use tonic::{Code, Request};

const PASSWORD: &str = "a member's passphrase";

/// The live sessions of `user_id` (empty: the caller's), listed by `client`.
async fn sessions(client: &AuthServiceClient<Authed>, user_id: &str) -> Vec<SessionInfo> {
    client
        .clone()
        .list_sessions(ListSessionsRequest { user_id: user_id.into() })
        .await
        .expect("ListSessions")
        .into_inner()
        .sessions
}

/// A timestamp as (seconds, nanos), which orders.
fn at(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.expect("a timestamp");
    (t.seconds, t.nanos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_list_and_revoke_their_sessions_and_admins_anyones() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let first = api.register_member().await;
    let email = first.user.as_ref().unwrap().email.clone();
    let user_id = first.user.as_ref().unwrap().id.clone();
    // A second sign-in from a client naming itself.
    let mut login = Request::new(LoginRequest {
        email: email.clone(),
        password: PASSWORD.into(),
    });
    login.metadata_mut().insert("user-agent", "folio-test-phone/2.0".parse().unwrap());
    let second = api.auth().await.login(login).await.unwrap().into_inner();

    let mine = api.auth_as(&first.access_token).await;
    let listed = sessions(&mine, "").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|s| s.user_id == user_id && s.peer == "127.0.0.1" && at(&s.expires_at) > at(&s.created_at))
    );
    let current: Vec<_> = listed.iter().filter(|s| s.current).collect();
    assert_eq!(current.len(), 1, "exactly the caller's own session is current: {listed:?}");
    let phone = listed
        .iter()
        .find(|s| s.user_agent.starts_with("folio-test-phone/2.0"))
        .expect("the second client's user agent");
    assert!(!phone.current);
    assert!(current[0].user_agent.contains("tonic"), "{:?}", current[0]);

    // A refresh moves the session's last use and records its client.
    let first_before = current[0].clone();
    let mut refresh = Request::new(RefreshRequest {
        refresh_token: first.refresh_token.clone(),
    });
    refresh
        .metadata_mut()
        .insert("user-agent", "folio-test-laptop/1.0".parse().unwrap());
    let refreshed = api.auth().await.refresh(refresh).await.unwrap().into_inner();
    let mut mine = api.auth_as(&refreshed.access_token).await;
    let listed = sessions(&mine, "").await;
    let after = listed.iter().find(|s| s.id == first_before.id).unwrap();
    assert!(
        at(&after.last_used_at) > at(&first_before.last_used_at),
        "{after:?} against {first_before:?}"
    );
    assert!(after.user_agent.starts_with("folio-test-laptop/1.0"), "{after:?}");
    assert_eq!(listed[0].id, first_before.id, "last used first");

    // Revoking the other session: its access token and refresh token stop
    // working; this one goes on.
    mine.revoke_session(RevokeSessionRequest {
        session_id: phone.id.clone(),
    })
    .await
    .unwrap();
    let refused = api
        .auth_as(&second.access_token)
        .await
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = api
        .auth()
        .await
        .refresh(RefreshRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    mine.who_am_i(WhoAmIRequest {}).await.unwrap();
    let listed = sessions(&mine, "").await;
    assert_eq!(listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), [first_before.id.as_str()]);

    // Another member: NOT_FOUND for the session, PERMISSION_DENIED for the list.
    let stranger = api.register_member().await;
    let mut theirs = api.auth_as(&stranger.access_token).await;
    let hidden = theirs
        .revoke_session(RevokeSessionRequest {
            session_id: first_before.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let denied = theirs
        .list_sessions(ListSessionsRequest { user_id: user_id.clone() })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = theirs
        .revoke_session(RevokeSessionRequest {
            session_id: "not an id".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["session_id"]);
    mine.who_am_i(WhoAmIRequest {}).await.unwrap();

    // An admin lists the member's sessions and revokes the last one.
    let admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut admin_auth = api.auth_as(&admin.access_token).await;
    let listed = sessions(&admin_auth, &user_id).await;
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].current, "the admin's own session is another");
    admin_auth
        .revoke_session(RevokeSessionRequest {
            session_id: listed[0].id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(mine.who_am_i(WhoAmIRequest {}).await.unwrap_err().code(), Code::Unauthenticated);

    // Both revocations are in the audit log.
    let audit = api.audit_of("/folio.v1.AuthService/RevokeSession").await;
    let targets: Vec<_> = audit.iter().map(|e| (e.event.as_str(), e.target.clone())).collect();
    assert!(
        targets.contains(&("session_revoked", format!("session:{}", phone.id))),
        "{targets:?}"
    );
    assert!(
        targets.contains(&("session_revoked", format!("session:{}", listed[0].id))),
        "{targets:?}"
    );

    api.stop().await.unwrap();
    env.cleanup().await;
}
