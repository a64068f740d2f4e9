//! Dead letters through the API: documents whose jobs the real broker
//! dead-lettered (a transient failure on the last try, a permanent one) are
//! listed with their owner and error, replayed (the first comes back READY
//! once its model server answers again) and purged, each once, audited.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use folio_proto::v1::{
    DeadLetterFilter, DeadLetterSelection, DocumentState, ListAuditEventsRequest, ListDeadLettersRequest, PurgeDeadLettersRequest,
    ReplayDeadLettersRequest, document_service_client::DocumentServiceClient, system_service_client::SystemServiceClient,
};
use folio_tests::{
    TestEnv,
    fake_model::{Fake, Reply, embeddings},
    helpers::{create_document, document_events, eventually, wait_for_state},
};

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_once_and_purged_through_the_api() {
    // A model server that is down until the test says otherwise.
    let healthy = Arc::new(AtomicBool::new(false));
    let fake = {
        let healthy = healthy.clone();
        Fake::start(move |_, body| {
            if healthy.load(Ordering::SeqCst) {
                Reply::Json(embeddings(body, 384))
            } else {
                Reply::Status(503, "the model server is down")
            }
        })
        .await
    };
    let mut env = TestEnv::new().await;
    fake.serve(&mut env);
    // One try: a transient failure goes straight to the dead-letter queue.
    env.set("FOLIO_MAX_ATTEMPTS", "1");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let admin_token = api.login(folio_tests::ADMIN_EMAIL, folio_tests::ADMIN_PASSWORD).await.access_token;
    let mut system = SystemServiceClient::new(api.authed(&admin_token).await);

    let unavailable = create_document(&mut documents, "heron.txt", &[], &folio_tests::prose(200)).await;
    let unavailable = wait_for_state(&documents, &unavailable.id, DocumentState::Failed, WAIT).await;
    assert_eq!(unavailable.error_code, "UNAVAILABLE", "{unavailable:?}");
    let corrupt = create_document(&mut documents, "broken.pdf", &[], b"%PDF-1.7\nthis is not a PDF body at all\n").await;
    let corrupt = wait_for_state(&documents, &corrupt.id, DocumentState::Failed, WAIT).await;

    // Both are listed once a worker has read them off the dead-letter queue.
    let listed = eventually(WAIT, "two dead letters", || {
        let mut system = system.clone();
        async move {
            let letters = system
                .list_dead_letters(ListDeadLettersRequest::default())
                .await
                .ok()?
                .into_inner()
                .dead_letters;
            (letters.len() == 2).then_some(letters)
        }
    })
    .await;
    // Newest first.
    assert_eq!(listed[0].document_id, corrupt.id);
    assert_eq!(listed[1].document_id, unavailable.id);
    for (letter, document) in listed.iter().zip([&corrupt, &unavailable]) {
        assert_eq!(letter.kind, "process_document");
        assert_eq!(letter.reason, "rejected", "a worker rejected it: {letter:?}");
        assert_eq!(letter.owner_id, member.user.as_ref().unwrap().id);
        assert_eq!(letter.filename, document.filename);
        assert_eq!(letter.error_code, document.error_code);
        assert!(!letter.error_message.is_empty());
        assert_eq!(letter.tries, 1);
        assert!(letter.dead_at.is_some() && letter.replayed_at.is_none() && letter.purged_at.is_none());
    }
    let (unavailable_letter, corrupt_letter) = (listed[1].id, listed[0].id);

    // Admins only; and a replay must say what it takes.
    let mut as_member = SystemServiceClient::new(api.authed(&member.access_token).await);
    let refused = as_member.list_dead_letters(ListDeadLettersRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let refused = system.replay_dead_letters(ReplayDeadLettersRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(folio_tests::violated_fields(&refused), ["selection"]);

    // The model server is back: replaying by error code brings that document
    // to READY, as a new attempt with an event that says why.
    healthy.store(true, Ordering::SeqCst);
    let replayed = system
        .replay_dead_letters(ReplayDeadLettersRequest {
            selection: Some(DeadLetterSelection {
                filter: Some(DeadLetterFilter {
                    error_code: "UNAVAILABLE".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replayed.settled, [unavailable_letter]);
    assert!(replayed.skipped.is_empty() && !replayed.more, "{replayed:?}");
    let ready = wait_for_state(&documents, &unavailable.id, DocumentState::Ready, WAIT).await;
    assert_eq!(ready.attempt, unavailable.attempt + 1);
    let events = document_events(&documents, &unavailable.id).await;
    assert!(
        events.iter().any(|e| e.message.starts_with("replayed from the dead letters")),
        "{events:?}"
    );

    // Once only: the same letter again is skipped, and stays replayed.
    let again = system
        .replay_dead_letters(ReplayDeadLettersRequest {
            selection: Some(DeadLetterSelection {
                ids: vec![unavailable_letter],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.settled.is_empty(), "{again:?}");
    assert_eq!(again.skipped.len(), 1);
    assert_eq!(again.skipped[0].id, unavailable_letter);

    // Purging everything pending takes the corrupt one; its document stays FAILED.
    let purged = system
        .purge_dead_letters(PurgeDeadLettersRequest {
            selection: Some(DeadLetterSelection {
                all: true,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(purged.settled, [corrupt_letter]);
    let still = wait_for_state(&documents, &corrupt.id, DocumentState::Failed, WAIT).await;
    assert_eq!(still.error_code, corrupt.error_code);
    let pending = system
        .list_dead_letters(ListDeadLettersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(pending.dead_letters.is_empty(), "{pending:?}");
    let everything = system
        .list_dead_letters(ListDeadLettersRequest {
            include_settled: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    let admin_id = api
        .login(folio_tests::ADMIN_EMAIL, folio_tests::ADMIN_PASSWORD)
        .await
        .user
        .unwrap()
        .id;
    assert_eq!(everything.len(), 2);
    assert!(everything[0].purged_at.is_some() && everything[0].replayed_at.is_none());
    assert!(everything[1].replayed_at.is_some() && everything[1].purged_at.is_none());
    assert!(everything.iter().all(|letter| letter.settled_by == admin_id));

    // Both settlements are in the audit log with the letters they took.
    let users = api.admin_users().await;
    for (rpc, event, id) in [
        (
            "/folio.v1.SystemService/ReplayDeadLetters",
            "dead_letters_replayed",
            unavailable_letter,
        ),
        ("/folio.v1.SystemService/PurgeDeadLetters", "dead_letters_purged", corrupt_letter),
    ] {
        let target = format!("dead_letters:{id}");
        eventually(WAIT, &format!("the audit row of {rpc}"), || {
            let mut users = users.clone();
            let target = target.clone();
            async move {
                let rows = users
                    .list_audit_events(ListAuditEventsRequest {
                        rpc: rpc.into(),
                        ..Default::default()
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .events;
                rows.iter().any(|row| row.event == event && row.target == target).then_some(())
            }
        })
        .await;
    }

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
