//! Fair share: owners take turns at the workers whatever their backlogs, by
//! weight; interactive documents go before the same owner's bulk ones; a
//! waiting document says where it stands; a full backlog refuses uploads
//! with a time to retry; several relays release each job once.
//!
//! Each test queues everything before a worker starts, with one job ready in
//! the queue per consumer (`FOLIO_SCHEDULER_AHEAD=1`) and a worker that runs
//! one job at a time: the order documents become READY is then the order the
//! schedule released them, exactly.

use std::time::Duration;

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_db::{
    models::outbox as outbox_rows,
    schema::{fair_share_clock, outbox},
};
use folio_proto::v1::{
    CreateDocumentRequest, Document, DocumentMetadata, DocumentState, GetDocumentRequest, Priority, UpdateSettingsRequest,
    UpdateUserRequest, User, document_service_client::DocumentServiceClient,
};
use folio_tests::{ApiHandle, Authed, TestEnv, reason};
use tonic::Code;

/// An env whose relays keep one job ready per consumer and whose workers run
/// one job at a time.
async fn one_at_a_time() -> TestEnv {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_SCHEDULER_AHEAD", "1");
    env.set("FOLIO_WORKER_CONCURRENCY", "1");
    env
}

/// A member's document client, and the member's id.
async fn member(api: &ApiHandle) -> (DocumentServiceClient<Authed>, String) {
    let session = api.register_member().await;
    let id = session.user.as_ref().expect("a user").id.clone();
    (DocumentServiceClient::new(api.authed(&session.access_token).await), id)
}

/// Uploads `name` at `priority`.
async fn upload(client: &mut DocumentServiceClient<Authed>, name: &str, priority: Priority) -> Result<Document, tonic::Status> {
    let response = client
        .create_document(CreateDocumentRequest {
            metadata: Some(DocumentMetadata {
                filename: name.into(),
                priority: priority as i32,
                ..Default::default()
            }),
            content: format!("{name}\n\nThe notes of {name}, kept apart from every other document.").into_bytes(),
        })
        .await?;
    Ok(response.into_inner().document.expect("a document"))
}

/// Waits until every one of `documents` is READY, and returns their
/// filenames in the order they became READY.
async fn ready_order(clients: &[(&DocumentServiceClient<Authed>, &[Document])]) -> Vec<String> {
    let mut done = Vec::new();
    for (client, documents) in clients {
        for document in *documents {
            done.push(folio_tests::wait_for_state(client, &document.id, DocumentState::Ready, Duration::from_secs(120)).await);
        }
    }
    done.sort_by_key(|d| {
        let at = d.completed_at.expect("completed");
        (at.seconds, at.nanos)
    });
    done.into_iter().map(|d| d.filename).collect()
}

async fn get(client: &DocumentServiceClient<Authed>, id: &str) -> Document {
    client
        .clone()
        .get_document(GetDocumentRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_take_turns_one_job_each_whatever_their_backlogs() {
    let mut env = one_at_a_time().await;
    let api = env.spawn_api().await;
    let (mut a, _) = member(&api).await;
    let (mut b, _) = member(&api).await;
    let (mut c, _) = member(&api).await;

    // A's first job goes to the queue at once (no worker yet: room for one);
    // the rest wait in the outbox, in their owners' turns.
    let mut a_docs = Vec::new();
    for n in 1..=6 {
        a_docs.push(upload(&mut a, &format!("a{n}"), Priority::Unspecified).await.unwrap());
    }
    let mut b_docs = Vec::new();
    for n in 1..=3 {
        b_docs.push(upload(&mut b, &format!("b{n}"), Priority::Unspecified).await.unwrap());
    }
    let c_docs = vec![
        upload(&mut c, "c1", Priority::Unspecified).await.unwrap(),
        upload(&mut c, "c2", Priority::Unspecified).await.unwrap(),
    ];

    // Where a waiting document stands: a6 has a1 (released, not started)
    // and a2..a5 ahead of it, among 3 owners of equal weight.
    let a6 = get(&a, &a_docs[5].id).await;
    let queue = a6.queue.expect("a6 waits to be released");
    assert_eq!(
        (queue.ahead, queue.owners, queue.weight, queue.total_weight),
        (5, 3, 1, 3),
        "{queue:?}"
    );

    let worker = env.spawn_worker();
    let order = ready_order(&[(&a, &a_docs), (&b, &b_docs), (&c, &c_docs)]).await;
    assert_eq!(order.join(" "), "a1 b1 c1 a2 b2 c2 a3 b3 a4 a5 a6");
    assert!(get(&a, &a_docs[5].id).await.queue.is_none(), "released: no position");
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_of_two_takes_two_turns_and_interactive_goes_before_the_owners_bulk() {
    let mut env = one_at_a_time().await;
    let api = env.spawn_api().await;
    let (mut a, _) = member(&api).await;
    let (mut c, c_id) = member(&api).await;
    let mut users = api.admin_users().await;
    let updated = users
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: c_id.clone(),
                share_weight: Some(2),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["share_weight".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.share_weight, Some(2));
    let refused = users
        .update_user(UpdateUserRequest {
            user: Some(User {
                id: c_id,
                share_weight: Some(101),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["share_weight".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    let mut a_docs = vec![upload(&mut a, "x1", Priority::Unspecified).await.unwrap()];
    a_docs.push(upload(&mut a, "bulk1", Priority::Bulk).await.unwrap());
    a_docs.push(upload(&mut a, "bulk2", Priority::Bulk).await.unwrap());
    a_docs.push(upload(&mut a, "i1", Priority::Interactive).await.unwrap());
    let mut c_docs = Vec::new();
    for n in 1..=4 {
        c_docs.push(upload(&mut c, &format!("c{n}"), Priority::Unspecified).await.unwrap());
    }
    // bulk2 waits behind x1 (released), A's interactive i1 and bulk1; C's
    // weight is 2 of 3.
    let queue = get(&a, &a_docs[2].id).await.queue.expect("bulk2 waits");
    assert_eq!(
        (queue.ahead, queue.owners, queue.weight, queue.total_weight),
        (3, 2, 1, 3),
        "{queue:?}"
    );
    let queue = get(&c, &c_docs[0].id).await.queue.expect("c1 waits");
    assert_eq!((queue.ahead, queue.weight, queue.total_weight), (0, 2, 3), "{queue:?}");

    let worker = env.spawn_worker();
    let order = ready_order(&[(&a, &a_docs), (&c, &c_docs)]).await;
    assert_eq!(order.join(" "), "x1 c1 c2 i1 c3 c4 bulk1 bulk2");
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_backlog_bound_uploads_are_refused_with_a_time_to_retry_and_nothing_is_stored() {
    let mut env = one_at_a_time().await;
    env.set("FOLIO_WAIT_NOTICE_SECS", "1");
    let api = env.spawn_api().await;
    let mut system = api.system().await;
    let settings = system
        .update_settings(UpdateSettingsRequest {
            max_waiting_per_owner: Some(3),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.max_waiting_per_owner.unwrap().value, 3);
    let (mut a, _) = member(&api).await;
    let (mut b, _) = member(&api).await;

    // One goes to the queue (once it has, the relay holds the rest), three
    // wait: the bound.
    let mut docs = vec![upload(&mut a, "a1", Priority::Unspecified).await.unwrap()];
    folio_tests::outbox_drained(&env.pool()).await;
    for n in 2..=4 {
        docs.push(upload(&mut a, &format!("a{n}"), Priority::Unspecified).await.unwrap());
    }
    let refused = upload(&mut a, "a5", Priority::Unspecified).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert_eq!(reason(&refused), "BACKLOG_FULL");
    let details = tonic_types::StatusExt::get_error_details(&refused);
    let retry = details.retry_info().and_then(|info| info.retry_delay).expect("RetryInfo");
    // One released in the last minute, one over the bound: a minute.
    assert_eq!(retry.as_secs(), 60, "{refused:?}");
    assert!(refused.message().contains("3 of your documents wait"), "{}", refused.message());
    let mut conn = env.pool().get().await.unwrap();
    let rows: i64 = outbox::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(rows, 4, "the refused upload queued nothing");
    drop(conn);
    let listed = a
        .list_documents(folio_proto::v1::ListDocumentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.documents.len(), 4, "the refused upload stored nothing");

    // Another owner is not held back by A's backlog.
    let b1 = upload(&mut b, "b1", Priority::Unspecified).await.unwrap();
    // After the notice bound, a4 says where it stands, in words too.
    let a4 = folio_tests::wait_for(&a, &docs[3].id, Duration::from_secs(10), "a4's waiting notice", |d| {
        !d.waiting.is_empty()
    })
    .await;
    assert!(
        a4.waiting.contains("waiting: 3 of your documents ahead; your share: 1 of 2 owners"),
        "{}",
        a4.waiting
    );

    let worker = env.spawn_worker();
    let order = ready_order(&[(&a, &docs), (&b, std::slice::from_ref(&b1))]).await;
    assert_eq!(order.join(" "), "a1 b1 a2 a3 a4");
    // Drained: uploads are taken again.
    upload(&mut a, "a5", Priority::Unspecified).await.unwrap();
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_relays_release_each_job_once_and_keep_the_queue_short() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_SCHEDULER_AHEAD", "3");
    let first = env.spawn_api().await;
    let second = env.spawn_api().await;
    let third = env.spawn_api().await;
    // One member uploads through two api-servers.
    let session = first.register_member().await;
    let mut a_first = DocumentServiceClient::new(first.authed(&session.access_token).await);
    let mut a_second = DocumentServiceClient::new(second.authed(&session.access_token).await);
    let (mut b, _) = member(&third).await;

    let mut a_docs = Vec::new();
    for n in 0..15 {
        let client = if n % 2 == 0 { &mut a_first } else { &mut a_second };
        a_docs.push(upload(client, &format!("a{n}"), Priority::Unspecified).await.unwrap());
    }
    let mut b_docs = Vec::new();
    for n in 0..5 {
        b_docs.push(upload(&mut b, &format!("b{n}"), Priority::Unspecified).await.unwrap());
    }
    // No worker: three relays race to fill the queue, a window of three, and
    // every other job waits in the outbox.
    let queue = env.topology().process_queue();
    let pool = env.pool();
    let ready = folio_tests::eventually(Duration::from_secs(10), "the window filled", || {
        let (queue, pool) = (queue.clone(), pool.clone());
        async move {
            let ready = folio_tests::ready_messages(&queue).await;
            let mut conn = pool.get().await.ok()?;
            let waiting = outbox_rows::count_unsent(&mut conn).await.ok()?;
            (ready >= 3 && i64::from(ready) + waiting == 20).then_some(ready)
        }
    })
    .await;
    assert!(ready <= 3, "{ready} jobs ready: the window is 3");
    let worker = env.spawn_worker();
    for document in &a_docs {
        folio_tests::wait_for_state(&a_first, &document.id, DocumentState::Ready, Duration::from_secs(120)).await;
    }
    for document in &b_docs {
        folio_tests::wait_for_state(&b, &document.id, DocumentState::Ready, Duration::from_secs(120)).await;
    }
    folio_tests::outbox_drained(&pool).await;
    // Each release is one turn of the schedule's clock, taken under the
    // release lock: as many turns as jobs means no job went twice.
    let mut conn = pool.get().await.unwrap();
    let turns: i64 = fair_share_clock::table
        .select(fair_share_clock::turn)
        .first(&mut conn)
        .await
        .unwrap();
    let owned: i64 = outbox::table
        .filter(outbox::owner_id.is_not_null())
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!((turns, owned), (20, 20));
    drop(conn);
    worker.stop().await.unwrap();
    for api in [first, second, third] {
        api.stop().await.unwrap();
    }
    env.cleanup().await;
}
