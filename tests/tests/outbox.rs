//! The outbox's two promises about publishing: a job whose transaction rolled
//! back is never published, and several relays never publish one row twice.
//! No worker runs here, so the broker's queue shows exactly what was sent.

use diesel_async::AsyncConnection as _;
use folio_core::queue::EncodedJob;
use folio_db::models::outbox;
use folio_tests::TestEnv;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_transaction_publishes_nothing() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();

    // A change that fails after enqueueing its job rolls the job back with it.
    let failed: Result<(), diesel::result::Error> = conn
        .transaction(async |conn| {
            outbox::enqueue(conn, &EncodedJob::process_document(Uuid::new_v4(), 1)).await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(failed.is_err());
    // One that commits is published: once it is sent, the relay has looked at
    // the outbox after the rollback, and the queue holds that job alone.
    outbox::enqueue(&mut conn, &EncodedJob::process_document(Uuid::new_v4(), 1))
        .await
        .unwrap();
    drop(conn);
    folio_tests::outbox_drained(&pool).await;
    let queue = env.topology().process_queue();
    assert_eq!(folio_tests::ready_messages(&queue).await, 1);
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_never_publish_one_row() {
    let mut env = TestEnv::new().await;
    let first = env.spawn_api().await;
    let second = env.spawn_api().await;
    let pool = env.pool();
    // Rows neither api-server wrote: both relays find them by polling, at the
    // same moments, and race for them.
    const ROWS: u32 = 300;
    let mut conn = pool.get().await.unwrap();
    conn.transaction(async |conn| {
        for _ in 0..ROWS {
            outbox::enqueue(conn, &EncodedJob::process_document(Uuid::new_v4(), 1)).await?;
        }
        Ok::<_, diesel::result::Error>(())
    })
    .await
    .unwrap();
    drop(conn);
    folio_tests::outbox_drained(&pool).await;
    let queue = env.topology().process_queue();
    assert_eq!(folio_tests::ready_messages(&queue).await, ROWS, "each row published once");
    first.stop().await.unwrap();
    second.stop().await.unwrap();
    env.cleanup().await;
}
