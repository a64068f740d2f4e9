//! Admin statistics: GetSystemStats over a deployment with two members'
//! documents (one failed), and ListTopUsers by documents, bytes and calls.

use std::time::Duration;

use folio_proto::v1::{
    DocumentState, GetSystemStatsRequest, ListTopUsersRequest, Role, TopUsersBy, document_service_client::DocumentServiceClient,
    system_service_client::SystemServiceClient,
};
use folio_tests::{TestEnv, create_document, eventually, violated_fields, wait_for_state};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_stats_and_top_users_count_what_the_deployment_holds() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let (ada, bob) = (api.register_member().await, api.register_member().await);
    let mut ada_docs = DocumentServiceClient::new(api.authed(&ada.access_token).await);
    let mut bob_docs = DocumentServiceClient::new(api.authed(&bob.access_token).await);
    let mut ready = Vec::new();
    for n in 0..2 {
        ready.push(create_document(&mut ada_docs, &format!("ada-{n}.txt"), &[], &folio_tests::prose(100 + n)).await);
    }
    let broken = create_document(&mut ada_docs, "broken.pdf", &[], b"%PDF-1.7\nnot a body\n").await;
    ready.push(create_document(&mut bob_docs, "bob.txt", &[], &folio_tests::prose(50)).await);
    for document in &ready {
        let client = if document.filename.starts_with("ada") {
            &ada_docs
        } else {
            &bob_docs
        };
        wait_for_state(client, &document.id, DocumentState::Ready, WAIT).await;
    }
    let broken = wait_for_state(&ada_docs, &broken.id, DocumentState::Failed, WAIT).await;

    let mut system = api.system().await;
    let stats = system.get_system_stats(GetSystemStatsRequest {}).await.unwrap().into_inner();
    let users = |role: Role| {
        stats
            .users
            .iter()
            .filter(|c| c.role == role as i32 && c.active)
            .map(|c| c.users)
            .sum::<i64>()
    };
    assert_eq!(users(Role::Admin), 1, "{stats:?}");
    assert_eq!(users(Role::Member), 2, "{stats:?}");
    assert!(stats.live_sessions >= 3, "the admin's and both members' sessions: {stats:?}");
    let documents = stats.documents.as_ref().unwrap();
    assert_eq!(documents.total_documents, 4);
    let in_state = |state: DocumentState| documents.states.iter().find(|s| s.state == state as i32).map_or(0, |s| s.documents);
    assert_eq!((in_state(DocumentState::Ready), in_state(DocumentState::Failed)), (3, 1));
    assert!(documents.total_chunks > 0 && documents.total_bytes > 0);
    assert_eq!(stats.days.len(), 30);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let last = stats.days.last().unwrap();
    assert_eq!((last.date.as_str(), last.uploads, last.failures), (today.as_str(), 4, 1));
    assert!(stats.days[..29].iter().all(|d| d.uploads == 0 && d.failures == 0));
    assert!(stats.days.windows(2).all(|pair| pair[0].date < pair[1].date));
    assert_eq!(stats.failures_by_code.len(), 1);
    assert_eq!(stats.failures_by_code[0].error_code, broken.error_code);
    assert_eq!(stats.failures_by_code[0].documents, 1);
    assert_eq!(stats.workers_alive, 1);

    // Ranked by documents, then bytes: Ada (three, the larger) before Bob.
    let top = |by: TopUsersBy| {
        let mut system = system.clone();
        async move {
            system
                .list_top_users(ListTopUsersRequest {
                    by: by as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .users
        }
    };
    let ada_id = ada.user.as_ref().unwrap().id.clone();
    let bob_id = bob.user.as_ref().unwrap().id.clone();
    let by_documents = top(TopUsersBy::Documents).await;
    let ranked: Vec<(&str, i64)> = by_documents.iter().map(|u| (u.user_id.as_str(), u.value)).collect();
    assert_eq!(ranked, [(ada_id.as_str(), 3), (bob_id.as_str(), 1)]);
    let by_bytes = top(TopUsersBy::Bytes).await;
    assert_eq!(by_bytes[0].user_id, ada_id);
    assert!(by_bytes[0].value > by_bytes[1].value && by_bytes[1].value > 0, "{by_bytes:?}");
    // Calls come from the audit log, written a moment after each call.
    let by_calls = eventually(WAIT, "both members in the audit ranking", || async {
        let users = top(TopUsersBy::Activity).await;
        let has = |id: &str| users.iter().any(|u| u.user_id == id && u.value > 0);
        (has(&ada_id) && has(&bob_id)).then_some(users)
    })
    .await;
    assert!(by_calls.windows(2).all(|pair| pair[0].value >= pair[1].value), "{by_calls:?}");

    // A window before anything happened is empty; a window that ends before
    // it starts is refused.
    let past = |days: i64| prost_types::Timestamp {
        seconds: (chrono::Utc::now() - chrono::Duration::days(days)).timestamp(),
        nanos: 0,
    };
    let empty = system
        .list_top_users(ListTopUsersRequest {
            since: Some(past(3)),
            until: Some(past(2)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.users.is_empty(), "{empty:?}");
    let refused = system
        .list_top_users(ListTopUsersRequest {
            since: Some(past(1)),
            until: Some(past(2)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["since"]);

    // Admins only.
    let mut as_member = SystemServiceClient::new(api.authed(&ada.access_token).await);
    let denied = as_member.get_system_stats(GetSystemStatsRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
