//! The API edge: what every refusal carries (ErrorInfo with a stable reason)
//! and deadlines (the client's, and the server's bound per class of call).

use std::time::{Duration, Instant};

use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, GetDocumentRequest, GetInfoRequest, ListDocumentsRequest, ListUsersRequest, LoginRequest,
    PingWorkersRequest, RefreshRequest, RetryDocumentRequest, document_service_client::DocumentServiceClient,
};
use folio_tests::{ADMIN_EMAIL, TestEnv, violated_fields};
use tonic::Code;
use tonic_types::StatusExt as _;
use uuid::Uuid;

/// ErrorInfo's reason, domain and one metadata entry of a refused call.
fn error_info(status: &tonic::Status, key: &str) -> (String, String, Option<String>) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    (info.reason, info.domain, info.metadata.get(key).cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_carries_error_info_with_a_stable_reason() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);

    let no_token = DocumentServiceClient::new(api.channel().await)
        .list_documents(ListDocumentsRequest::default())
        .await
        .unwrap_err();
    let bad_token = DocumentServiceClient::new(api.authed("v4.public.garbage").await)
        .list_documents(ListDocumentsRequest::default())
        .await
        .unwrap_err();
    let wrong_password = api
        .auth()
        .await
        .login(LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: "not the password".into(),
        })
        .await
        .unwrap_err();
    let unknown_refresh = api
        .auth()
        .await
        .refresh(RefreshRequest {
            refresh_token: "no such token".into(),
        })
        .await
        .unwrap_err();
    let not_admin = api
        .users_as(&member.access_token)
        .await
        .list_users(ListUsersRequest::default())
        .await
        .unwrap_err();
    let bad_id = documents
        .get_document(GetDocumentRequest { id: "not-a-uuid".into() })
        .await
        .unwrap_err();
    let missing = documents
        .get_document(GetDocumentRequest {
            id: Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    // No worker runs, so the document stays QUEUED, which cannot be retried.
    let queued = documents
        .create_document(CreateDocumentRequest {
            metadata: Some(DocumentMetadata {
                filename: "queued.txt".into(),
                ..Default::default()
            }),
            content: b"waiting for a worker".to_vec(),
        })
        .await
        .unwrap()
        .into_inner()
        .document
        .unwrap();
    let not_retryable = documents.retry_document(RetryDocumentRequest { id: queued.id }).await.unwrap_err();
    // BadRequest still comes beside ErrorInfo.
    assert_eq!(violated_fields(&bad_id), ["id"]);

    for (status, code, reason, key, value) in [
        (no_token, Code::Unauthenticated, "TOKEN_MISSING", "", None),
        (bad_token, Code::Unauthenticated, "TOKEN_INVALID", "", None),
        (wrong_password, Code::Unauthenticated, "LOGIN_FAILED", "", None),
        (unknown_refresh, Code::Unauthenticated, "REFRESH_TOKEN_UNKNOWN", "", None),
        (not_admin, Code::PermissionDenied, "ROLE_REQUIRED", "", None),
        (bad_id, Code::InvalidArgument, "INVALID_FIELDS", "fields", Some("id")),
        (missing, Code::NotFound, "NOT_FOUND", "", None),
        (not_retryable, Code::FailedPrecondition, "DOCUMENT_STATE", "", None),
    ] {
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(
            error_info(&status, key),
            (reason.to_owned(), "folio".to_owned(), value.map(str::to_owned)),
            "{status:?}"
        );
    }
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// A ping that no worker answers waits its whole `wait` for a receipt.
fn unanswered_ping() -> PingWorkersRequest {
    PingWorkersRequest {
        wait: Some(prost_types::Duration { seconds: 30, nanos: 0 }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_ends_the_call_with_deadline_exceeded_and_the_server_bounds_calls_without_one() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_RPC_DEADLINE_SECS", "3");
    let api = env.spawn_api().await;
    let mut system = api.system().await;

    // The client's deadline, sooner than the server's bound.
    let mut request = tonic::Request::new(unanswered_ping());
    request.set_timeout(Duration::from_millis(400));
    let asked = Instant::now();
    let status = system.ping_workers(request).await.unwrap_err();
    let took = asked.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(error_info(&status, "").0, "DEADLINE_EXCEEDED");
    assert!(status.message().contains("client's deadline"), "{status:?}");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    // No client deadline: the server's bound for the call (3 s here) ends it.
    let asked = Instant::now();
    let status = system.ping_workers(unanswered_ping()).await.unwrap_err();
    let took = asked.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("server's bound"), "{status:?}");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "answered after {took:?}"
    );

    // A call that finishes within its deadline is answered as usual.
    let mut request = tonic::Request::new(GetInfoRequest {});
    request.set_timeout(Duration::from_secs(5));
    system.get_info(request).await.unwrap();

    api.stop().await.unwrap();
    env.cleanup().await;
}
