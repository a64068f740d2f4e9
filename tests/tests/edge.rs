//! The API edge: what every refusal carries (ErrorInfo with a stable reason),
//! deadlines (the client's, and the server's bound per class of call),
//! requests over the size limits or compressed, and client addresses behind
//! trusted proxies with the per-account login slowdown.

use std::time::{Duration, Instant};

use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, GetDocumentRequest, GetInfoRequest, ListDocumentsRequest, ListPublicKeysRequest,
    ListUsersRequest, LoginRequest, PingWorkersRequest, RefreshRequest, RetryDocumentRequest,
    document_service_client::DocumentServiceClient,
};
use folio_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TestEnv, violated_fields};
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

fn inline(name: &str, content: Vec<u8>) -> CreateDocumentRequest {
    CreateDocumentRequest {
        metadata: Some(DocumentMetadata {
            filename: name.into(),
            ..Default::default()
        }),
        content,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_a_size_limit_are_refused_with_a_pointer_to_upload_document() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    // The client may send more than the server takes.
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await).max_encoding_message_size(16 << 20);

    // Over the 4 MiB message limit: tonic refuses it before the handler.
    let status = documents.create_document(inline("big.txt", vec![b'a'; 5 << 20])).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_info(&status, "").0, "MESSAGE_TOO_LARGE");
    assert!(status.message().contains("UploadDocument"), "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // Under the message limit but over the inline limit (3 MiB): the field.
    let status = documents
        .create_document(inline("inline.txt", vec![b'a'; (3 << 20) + 1]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["content"]);
    assert!(status.message().contains("UploadDocument"), "{status:?}");

    // A compressed request: folio takes none, and says so.
    let mut request = tonic::Request::new(inline("zipped.txt", b"some words".to_vec()));
    request.metadata_mut().insert("grpc-encoding", "gzip".parse().unwrap());
    let status = documents.create_document(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert_eq!(error_info(&status, "").0, "COMPRESSION_UNSUPPORTED");
    assert!(status.message().contains("uncompressed"), "{status:?}");

    // At the inline limit it is taken.
    documents
        .create_document(inline("fits.txt", b"word ".repeat((3 << 20) / 5)))
        .await
        .unwrap();

    api.stop().await.unwrap();
    env.cleanup().await;
}

/// ListPublicKeys (public, so only the per-address limit counts) as relayed
/// by a proxy for `client`.
async fn public_call_for(api: &folio_tests::ApiHandle, client: &str) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(ListPublicKeysRequest {});
    request.metadata_mut().insert("x-forwarded-for", client.parse().unwrap());
    api.auth().await.list_public_keys(request).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit_and_logins_slow_down_per_account() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_RATE_LIMIT_PEER", "3");
    env.set("FOLIO_LOGIN_FAILURES_PER_ACCOUNT", "2");
    // The test connects from 127.0.0.1: it is the proxy.
    env.set("FOLIO_TRUSTED_PROXIES", "127.0.0.1");
    let api = env.spawn_api().await;

    for _ in 0..3 {
        public_call_for(&api, "203.0.113.1").await.unwrap();
    }
    let status = public_call_for(&api, "203.0.113.1").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_info(&status, "").0, "RATE_LIMITED");
    // Another client behind the same proxy has a limit of its own, and a
    // client cannot pick its address by writing the header itself.
    public_call_for(&api, "203.0.113.2").await.unwrap();
    let status = public_call_for(&api, "198.51.100.1, 203.0.113.1").await.unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "a spoofed first entry counts as 203.0.113.1"
    );

    // Two failed logins for one account from two addresses: the account's
    // next login, from a third, is slowed down, and still succeeds.
    let login = |client: &'static str, password: &'static str| {
        let api = &api;
        async move {
            let mut request = tonic::Request::new(LoginRequest {
                email: ADMIN_EMAIL.into(),
                password: password.into(),
            });
            request.metadata_mut().insert("x-forwarded-for", client.parse().unwrap());
            let asked = Instant::now();
            let answer = api.auth().await.login(request).await;
            (answer, asked.elapsed())
        }
    };
    for client in ["192.0.2.10", "192.0.2.11"] {
        let (answer, _) = login(client, "a wrong password").await;
        assert_eq!(answer.unwrap_err().code(), Code::Unauthenticated);
    }
    let (answer, took) = login("192.0.2.12", ADMIN_PASSWORD).await;
    answer.unwrap();
    assert!(took >= Duration::from_millis(500), "the third login took {took:?}");
    api.stop().await.unwrap();

    env.cleanup().await;

    // Without trusted proxies the header is ignored: every call is the
    // connection's, so four calls "for" four clients share one limit of 3.
    let mut env = TestEnv::new().await;
    env.set("FOLIO_RATE_LIMIT_PEER", "3");
    let api = env.spawn_api().await;
    let mut refused = 0;
    for client in ["203.0.113.3", "203.0.113.4", "203.0.113.5", "203.0.113.6"] {
        if let Err(status) = public_call_for(&api, client).await {
            assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
            refused += 1;
        }
    }
    assert!(refused >= 1, "the header was believed from an untrusted peer");
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_still_running_at_the_servers_bound_is_cancelled_in_postgres() {
    statement_cancelled_when_the_call_ends("2", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_still_running_at_the_clients_deadline_is_cancelled_in_postgres() {
    // The server's bound (120 s) is far off: only the client's deadline can
    // end the statement within the test's 10 s.
    statement_cancelled_when_the_call_ends("120", Some(Duration::from_secs(1))).await;
}

/// GetDocument's statement waits behind a table lock; the call ends at the
/// client's deadline or at the server's bound (`bound_secs`), and Postgres
/// must cancel the statement then, not leave it waiting for the lock.
async fn statement_cancelled_when_the_call_ends(bound_secs: &str, client_deadline: Option<Duration>) {
    use diesel::{QueryableByName, sql_types::BigInt};
    use diesel_async::RunQueryDsl as _;
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }

    let mut env = TestEnv::new().await;
    env.set("FOLIO_RPC_DEADLINE_SECS", bound_secs);
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = folio_tests::create_document(&mut documents, "locked.txt", &[], b"behind a lock").await;

    // Another session holds the documents table, so GetDocument's query waits.
    let pool = env.pool();
    let mut locker = pool.get().await.unwrap();
    diesel::sql_query("BEGIN").execute(&mut locker).await.unwrap();
    diesel::sql_query("LOCK TABLE documents IN ACCESS EXCLUSIVE MODE")
        .execute(&mut locker)
        .await
        .unwrap();
    let waiting = || async {
        let mut conn = pool.get().await.unwrap();
        diesel::sql_query(
            "SELECT count(*) AS count FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE '%documents%'",
        )
        .get_result::<Count>(&mut conn)
        .await
        .unwrap()
        .count
    };

    let call = tokio::spawn({
        let mut documents = documents.clone();
        let id = document.id.clone();
        async move {
            let mut request = tonic::Request::new(GetDocumentRequest { id });
            if let Some(deadline) = client_deadline {
                request.set_timeout(deadline);
            }
            documents.get_document(request).await
        }
    });
    folio_tests::eventually(Duration::from_secs(10), "GetDocument's statement waiting for the lock", || async {
        (waiting().await == 1).then_some(())
    })
    .await;
    let status = call.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The statement does not wait on after the call ended: Postgres cancelled
    // it at the same deadline (without the statement timeout it would wait
    // for the lock as long as it is held; with the server's bound alone, for
    // that bound).
    folio_tests::eventually(Duration::from_secs(10), "no statement left waiting for the lock", || async {
        (waiting().await == 0).then_some(())
    })
    .await;
    diesel::sql_query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);
    documents.get_document(GetDocumentRequest { id: document.id }).await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_by_filename_go_on_past_a_long_multibyte_filename() {
    // A page that ends on a document whose name is long in bytes (250
    // two-byte characters) must hand out a token the next call accepts.
    // Found by the page_token fuzz target.
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let long = format!("a{}.txt", "é".repeat(250));
    let first = folio_tests::create_document(&mut documents, &long, &[], b"the first").await;
    let second = folio_tests::create_document(&mut documents, "b.txt", &[], b"the second").await;
    assert_eq!(first.filename.chars().count(), 255, "the name is kept whole");

    let page = |token: String| {
        let mut documents = documents.clone();
        async move {
            documents
                .list_documents(ListDocumentsRequest {
                    page_size: 1,
                    page_token: token,
                    order_by: "filename asc".into(),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner())
        }
    };
    let one = page(String::new()).await.unwrap();
    assert_eq!(one.documents[0].id, first.id);
    let two = page(one.next_page_token).await.expect("the token the server made");
    assert_eq!(two.documents[0].id, second.id);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_a_quota_are_refused_with_quota_failure_and_stats_show_the_use() {
    use folio_proto::v1::{GetDocumentStatsRequest, UpdateSettingsRequest, UpdateUserRequest, User};
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let member_id = member.user.as_ref().unwrap().id.clone();
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let mut users = api.admin_users().await;
    let set_own_quota = |documents: Option<i64>, bytes: Option<i64>, paths: &[&str]| UpdateUserRequest {
        user: Some(User {
            id: member_id.clone(),
            quota_documents: documents,
            quota_bytes: bytes,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    let quota = |documents: &DocumentServiceClient<folio_tests::Authed>| {
        let mut documents = documents.clone();
        async move {
            documents
                .get_document_stats(GetDocumentStatsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .quota
                .expect("a member's own statistics carry its quota")
        }
    };

    // An admin sets the default: two documents an account.
    api.system()
        .await
        .update_settings(UpdateSettingsRequest {
            quota_documents: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    documents
        .create_document(inline("one.txt", b"the first one".to_vec()))
        .await
        .unwrap();
    documents
        .create_document(inline("two.txt", b"the second one".to_vec()))
        .await
        .unwrap();
    let status = documents
        .create_document(inline("three.txt", b"the third one".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_info(&status, "").0, "QUOTA_EXCEEDED");
    let failure = status.get_details_quota_failure().expect("QuotaFailure");
    let subjects: Vec<&str> = failure.violations.iter().map(|v| v.subject.as_str()).collect();
    assert_eq!(subjects, ["documents"], "{status:?}");
    // The same bytes again are the same document, not a new one: answered.
    documents
        .create_document(inline("one again.txt", b"the first one".to_vec()))
        .await
        .unwrap();
    let used = quota(&documents).await;
    assert_eq!(
        (used.documents_used, used.documents_limit, used.bytes_used, used.bytes_limit),
        (2, 2, 27, 0),
        "the refused upload left nothing behind"
    );

    // The account's own quota overrides the default; one in bytes binds too.
    users
        .update_user(set_own_quota(Some(5), Some(40), &["quota_documents", "quota_bytes"]))
        .await
        .unwrap();
    documents
        .create_document(inline("three.txt", b"the third one".to_vec()))
        .await
        .unwrap();
    let status = documents
        .create_document(inline("four.txt", b"a fourth, too long for the bytes left".to_vec()))
        .await
        .unwrap_err();
    let failure = status.get_details_quota_failure().expect("QuotaFailure");
    assert_eq!(failure.violations[0].subject, "bytes", "{status:?}");
    let used = quota(&documents).await;
    assert_eq!((used.documents_used, used.documents_limit, used.bytes_limit), (3, 5, 40));

    // Unset, the account is back on the default.
    let back = users
        .update_user(set_own_quota(None, None, &["quota_documents", "quota_bytes"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((back.quota_documents, back.quota_bytes), (None, None));
    let used = quota(&documents).await;
    assert_eq!((used.documents_used, used.documents_limit, used.bytes_limit), (3, 2, 0));
    api.stop().await.unwrap();
    env.cleanup().await;
}
