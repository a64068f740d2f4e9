//! Sign-in through a real OpenID provider (the npm package oidc-provider,
//! whose login and consent forms the test fills in): the authorization-code
//! flow with PKCE gives a folio session (and, used as a plain OAuth 2
//! provider, its user-info URL does); the identity is linked to an
//! account by its subject, or by a verified email, or makes a new member; a
//! domain that requires the provider refuses passwords; a wrong or replayed
//! state, a replayed code, an ID token for another audience and an expired
//! one are refused; a second factor still applies.

use folio_proto::v1::{FinishOidcLoginRequest, LoginRequest, OidcLogin, RegisterRequest, Session, StartOidcLoginRequest};
use folio_tests::{
    ApiHandle, TestEnv,
    oidc::{Client, OidcProvider},
    reason,
};
use tonic::Code;

const REDIRECT: &str = "http://127.0.0.1:9/folio/callback";

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        secret: format!("{id}-secret"),
        redirect_uri: REDIRECT.into(),
    }
}

async fn start(api: &ApiHandle, provider: &str) -> OidcLogin {
    api.auth()
        .await
        .start_oidc_login(StartOidcLoginRequest {
            provider: provider.into(),
            redirect_uri: REDIRECT.into(),
        })
        .await
        .unwrap_or_else(|status| panic!("StartOidcLogin {provider}: {status:?}"))
        .into_inner()
}

async fn finish(api: &ApiHandle, state: &str, code: &str) -> Result<Session, tonic::Status> {
    api.auth()
        .await
        .finish_oidc_login(FinishOidcLoginRequest {
            state: state.into(),
            code: code.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A whole sign-in as `login` through `provider` (served by `idp`).
async fn sign_in(api: &ApiHandle, idp: &OidcProvider, provider: &str, login: &str) -> Result<Session, tonic::Status> {
    let started = start(api, provider).await;
    let (code, state) = idp.authorize(&started.authorization_url, login, REDIRECT).await;
    assert_eq!(state, started.state, "the provider sends the state back");
    finish(api, &state, &code).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_through_a_real_openid_provider() {
    let idp = OidcProvider::start(&[client("folio"), client("folio-wrong-aud")], None).await;
    // The same provider software with its clock an hour behind: every ID
    // token it issues has expired.
    let late = OidcProvider::start(&[client("folio")], Some("-1h")).await;
    let providers = serde_json::json!([
        {"name": "corp", "issuer": idp.issuer, "client_id": "folio", "client_secret": "folio-secret"},
        {"name": "wrong-aud", "issuer": idp.issuer, "client_id": "folio-wrong-aud", "client_secret": "folio-wrong-aud-secret"},
        {"name": "late", "issuer": late.issuer, "client_id": "folio", "client_secret": "folio-secret"},
        // The same provider used as a plain OAuth 2 one: its endpoints and
        // its user-info URL, as for GitHub's login.
        {"name": "plain", "kind": "oauth2", "client_id": "folio", "client_secret": "folio-secret",
         "authorize_url": format!("{}/auth", idp.issuer), "token_url": format!("{}/token", idp.issuer),
         "userinfo_url": format!("{}/me", idp.issuer), "subject_field": "sub", "scopes": ["openid", "email"]},
    ]);
    let mut env = TestEnv::new().await;
    env.set("FOLIO_OIDC_PROVIDERS", providers.to_string());
    env.set("FOLIO_SSO_REQUIRED_DOMAINS", "corp.test=corp");
    let api = env.spawn_api().await;

    // The authorization URL asks for a code with PKCE (S256), a state and a
    // nonce.
    let started = start(&api, "corp").await;
    for part in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "scope=openid",
    ] {
        assert!(started.authorization_url.contains(part), "{part} in {}", started.authorization_url);
    }
    let (code, state) = idp.authorize(&started.authorization_url, "ann@corp.test", REDIRECT).await;
    let session = finish(&api, &state, &code).await.unwrap();
    let ann = session.user.clone().unwrap();
    assert_eq!((ann.email.as_str(), ann.email_verified), ("ann@corp.test", true));
    assert_eq!(api.who_am_i(&session.access_token).await.id, ann.id);

    // The state works once; a made-up one never; a spent code is refused by
    // the provider even under a fresh state.
    let replayed = finish(&api, &state, &code).await.unwrap_err();
    assert_eq!(
        (replayed.code(), reason(&replayed)),
        (Code::Unauthenticated, "OIDC_STATE_UNKNOWN".to_owned())
    );
    assert_eq!(reason(&finish(&api, "made-up", &code).await.unwrap_err()), "OIDC_STATE_UNKNOWN");
    let fresh = start(&api, "corp").await;
    assert_eq!(reason(&finish(&api, &fresh.state, &code).await.unwrap_err()), "OIDC_CODE_REFUSED");

    // The same identity signs in to the same account; its domain may not
    // use a password.
    let again = sign_in(&api, &idp, "corp", "ann@corp.test").await.unwrap();
    assert_eq!(again.user.unwrap().id, ann.id);
    let password = api
        .auth()
        .await
        .login(LoginRequest {
            email: "ann@corp.test".into(),
            password: "whatever it might be".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (password.code(), reason(&password)),
        (Code::PermissionDenied, "SSO_REQUIRED".to_owned())
    );
    let register = api
        .auth()
        .await
        .register(RegisterRequest {
            email: "zed@corp.test".into(),
            password: "a long enough passphrase".into(),
            display_name: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&register), "SSO_REQUIRED");

    // An account with a password, of another domain, is linked by its
    // verified email; an unverified email links nothing.
    let carol = api
        .auth()
        .await
        .register(RegisterRequest {
            email: "carol@partner.test".into(),
            password: "carol's own passphrase".into(),
            display_name: "Carol".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let linked = sign_in(&api, &idp, "corp", "carol@partner.test").await.unwrap();
    assert_eq!(linked.user.unwrap().id, carol.user.unwrap().id);
    let unverified = sign_in(&api, &idp, "corp", "unverified-dan@partner.test").await.unwrap_err();
    assert_eq!(
        (unverified.code(), reason(&unverified)),
        (Code::PermissionDenied, "OIDC_EMAIL_UNVERIFIED".to_owned())
    );

    // An ID token issued for another audience, and an expired one, are
    // refused.
    let foreign = sign_in(&api, &idp, "wrong-aud", "ann@corp.test").await.unwrap_err();
    assert_eq!(reason(&foreign), "OIDC_ID_TOKEN_INVALID", "{foreign:?}");
    assert!(foreign.message().to_lowercase().contains("audience"), "{}", foreign.message());
    let expired = sign_in(&api, &late, "late", "eve@partner.test").await.unwrap_err();
    assert_eq!(reason(&expired), "OIDC_ID_TOKEN_INVALID", "{expired:?}");
    assert!(expired.message().to_lowercase().contains("expired"), "{}", expired.message());

    // A plain OAuth 2 provider: the user-info URL names the user, who
    // becomes a member and comes back to the same account; a domain bound
    // to another provider is refused.
    let fay = sign_in(&api, &idp, "plain", "fay@partner.test").await.unwrap().user.unwrap();
    assert_eq!((fay.email.as_str(), fay.email_verified), ("fay@partner.test", true));
    assert_eq!(
        sign_in(&api, &idp, "plain", "fay@partner.test").await.unwrap().user.unwrap().id,
        fay.id
    );
    let bound = sign_in(&api, &idp, "plain", "ann@corp.test").await.unwrap_err();
    assert_eq!(reason(&bound), "SSO_REQUIRED");

    // With a second factor on, the provider's sign-in still asks for it.
    api.turn_on_mfa(&session.access_token).await;
    let challenged = sign_in(&api, &idp, "corp", "ann@corp.test").await.unwrap();
    assert!(
        challenged.access_token.is_empty() && challenged.mfa_required.is_some(),
        "{challenged:?}"
    );

    // An unknown provider names its field.
    let unknown = api
        .auth()
        .await
        .start_oidc_login(StartOidcLoginRequest {
            provider: "nobody".into(),
            redirect_uri: REDIRECT.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(folio_tests::violated_fields(&unknown), ["provider"]);
    env.cleanup().await;
}
