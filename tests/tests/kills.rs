//! SIGKILL of a worker in the middle of each stage: parse (a large PDF),
//! embed (a model server that answers late) and index (the chunks of a large
//! manual being written). Each time the test reads the evidence that the kill
//! landed in that stage before the next worker starts, and the document then
//! ends READY once, with one set of chunks (ordinals 0..n-1).

use std::time::Duration;

use diesel_async::RunQueryDsl as _;
use folio_proto::v1::{DocumentState, EventKind, Stage, document_service_client::DocumentServiceClient};
use folio_tests::{
    Authed, TestEnv,
    fake_model::{Fake, Reply, embeddings},
    helpers::sigkill,
};

#[derive(diesel::QueryableByName)]
struct ChunkSet {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    count: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    ordinals: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    highest: Option<i32>,
}

/// The document's chunks: how many, how many distinct ordinals, the highest.
async fn chunk_set(env: &TestEnv, id: &str) -> ChunkSet {
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    diesel::sql_query(
        "SELECT count(*) AS count, count(DISTINCT ordinal) AS ordinals, max(ordinal) AS highest FROM chunks WHERE document_id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(id.parse::<uuid::Uuid>().unwrap())
    .get_result(&mut conn)
    .await
    .unwrap()
}

/// Whether the document's events hold `stage` `kind`.
async fn logged(client: &DocumentServiceClient<Authed>, id: &str, stage: Stage, kind: EventKind) -> bool {
    folio_tests::document_events(client, id)
        .await
        .iter()
        .any(|e| e.stage() == stage && e.kind() == kind)
}

/// Uploads `name`, starts a worker, SIGKILLs it as soon as the document's
/// events show `stage` `kind`, and hands the test the client and the id to
/// check where the kill landed; then a new worker finishes the document,
/// which must end READY with one set of chunks.
async fn killed_after(
    mut env: TestEnv,
    name: &str,
    bytes: &[u8],
    stage: Stage,
    kind: EventKind,
    landed: impl AsyncFnOnce(&TestEnv, &DocumentServiceClient<Authed>, &str),
) {
    let api = env.spawn_api().await;
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let worker = env.start_process("folio-worker", &[], "consuming").await;
    let document = folio_tests::upload_document(&mut client, name, bytes).await;
    let mut looks = 0;
    while !logged(&client, &document.id, stage, kind).await {
        looks += 1;
        assert!(looks < 3000, "{stage:?} {kind:?} never logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigkill(&worker);
    let _ = worker.wait_with_output().await;
    landed(&env, &client, &document.id).await;

    env.set("FOLIO_EMBEDDER", "hash");
    let worker = env.spawn_worker();
    let ready = folio_tests::wait_for_state(&client, &document.id, DocumentState::Ready, Duration::from_secs(180)).await;
    let chunks = chunk_set(&env, &document.id).await;
    assert!(chunks.count > 0);
    assert_eq!(
        (chunks.ordinals, chunks.highest, Some(chunks.count as i32)),
        (chunks.count, Some(chunks.count as i32 - 1), Some(ready.chunks)),
        "one set of chunks, ordinals 0..n-1"
    );
    assert_eq!(folio_tests::ready_messages(&env.topology().process_queue()).await, 0);
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

fn document(name: &str) -> Vec<u8> {
    std::fs::read(folio_tests::relevance::documents_dir().join(name)).expect("the test documents (scripts/install-test-documents)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_parse_leaves_one_result() {
    let bytes = document("debian-reference.en.pdf");
    killed_after(
        TestEnv::new().await,
        "debian-reference.en.pdf",
        &bytes,
        Stage::Parse,
        EventKind::Started,
        async |env, client, id| {
            // Killed while parsing: the parse never finished, nothing was written.
            assert!(
                !logged(client, id, Stage::Parse, EventKind::Completed).await,
                "the parse finished before the kill"
            );
            assert_eq!(chunk_set(env, id).await.count, 0);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_embed_leaves_one_result() {
    let fake = Fake::start(|_, body| Reply::Late(Duration::from_secs(30), embeddings(body, 384))).await;
    let mut env = TestEnv::new().await;
    fake.serve(&mut env);
    let bytes = document("handbook-packaging.en.html");
    killed_after(
        env,
        "handbook-packaging.en.html",
        &bytes,
        Stage::Chunk,
        EventKind::Completed,
        async |env, client, id| {
            // Killed while the model server held its request.
            folio_tests::eventually(Duration::from_secs(10), "the embedding request", || async {
                (fake.requests() >= 1).then_some(())
            })
            .await;
            assert!(
                !logged(client, id, Stage::Embed, EventKind::Completed).await,
                "the embedding finished before the kill"
            );
            assert_eq!(chunk_set(env, id).await.count, 0);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_index_leaves_one_result() {
    let bytes = document("bashref.html");
    killed_after(
        TestEnv::new().await,
        "bashref.html",
        &bytes,
        Stage::Embed,
        EventKind::Completed,
        async |env, client, id| {
            // Killed after the vectors were made and before the chunks committed:
            // the index transaction rolled back whole.
            let document = client
                .clone()
                .get_document(folio_proto::v1::GetDocumentRequest { id: id.to_owned() })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(document.state(), DocumentState::Processing, "the index committed before the kill");
            assert_eq!(chunk_set(env, id).await.count, 0, "half an index");
        },
    )
    .await;
}
