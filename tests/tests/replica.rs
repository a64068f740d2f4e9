//! Search on a streaming replica (`FOLIO_SEARCH_DATABASE_URL`), against a
//! primary and a replica of the test's own (`nodes::PostgresPair`): a search
//! reads the replica once it has replayed what the primary had committed
//! when the search began, and the primary while it has not, so a document
//! that a client saw READY is found at once either way.

use std::time::Duration;

use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use folio_proto::v1::{
    DocumentState, GetInfoRequest, SearchMode, SearchRequest, SearchResponse, document_service_client::DocumentServiceClient,
    search_service_client::SearchServiceClient, system_service_client::SystemServiceClient,
};
use folio_tests::{Authed, TestEnv, create_document, eventually, nodes::PostgresPair, wait_for_state};

#[derive(diesel::QueryableByName)]
struct Scans {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    scans: i64,
}

/// Scans of `chunks` the replica has counted (searches that read it).
async fn replica_chunk_scans(url: &str) -> i64 {
    let mut conn = AsyncPgConnection::establish(url).await.expect("the replica");
    diesel::sql_query(
        "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0)::int8 AS scans FROM pg_stat_user_tables WHERE relname = 'chunks'",
    )
    .get_result::<Scans>(&mut conn)
    .await
    .expect("scan counts")
    .scans
}

/// Runs `search` (a call not yet sent) and waits until the replica has
/// counted scans of `chunks` made after it began: the replica served it.
async fn served_by_replica(
    replica: &str,
    search: impl std::future::Future<Output = Result<tonic::Response<SearchResponse>, tonic::Status>>,
) -> SearchResponse {
    let scans = replica_chunk_scans(replica).await;
    let found = search.await.expect("search").into_inner();
    eventually(Duration::from_secs(20), "the replica to count the search's scans", || async move {
        (replica_chunk_scans(replica).await > scans).then_some(())
    })
    .await;
    found
}

async fn on_replica(url: &str, sql: &str) {
    let mut conn = AsyncPgConnection::establish(url).await.expect("the replica");
    diesel::sql_query(sql).execute(&mut conn).await.expect(sql);
}

/// GetInfo's replica lag.
async fn lag(system: &mut SystemServiceClient<Authed>) -> Option<i64> {
    system
        .get_info(GetInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .search_replica_lag_bytes
}

fn keyword(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.into(),
        mode: SearchMode::Keyword as i32,
        top_k: 3,
        no_rerank: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_read_a_replica_that_has_caught_up_and_the_primary_while_it_lags() {
    let pair = PostgresPair::start().await;
    {
        let mut admin = AsyncPgConnection::establish(&pair.primary_url("postgres"))
            .await
            .expect("the primary");
        diesel::sql_query("CREATE DATABASE folio")
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
    }
    folio_db::migrate(&pair.primary_url("folio")).await.expect("migrations");
    let replica = pair.replica_url("folio");
    let mut env = TestEnv::new().await;
    env.set("DATABASE_URL", pair.primary_url("folio"));
    env.set("FOLIO_SEARCH_DATABASE_URL", replica.clone());
    env.set("FOLIO_SEARCH_REPLICA_WAIT_MS", "300");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let channel = api.authed(&member.access_token).await;
    let mut documents = DocumentServiceClient::new(channel.clone());
    let mut searches = SearchServiceClient::new(channel);
    let mut system = api.system().await;

    // Caught up: READY, then found at once, and the replica served it.
    let quarry = create_document(
        &mut documents,
        "quarry.md",
        &[],
        b"# Quarry\n\nThe quarry ledger lists basalt and slate.\n",
    )
    .await
    .id;
    wait_for_state(&documents, &quarry, DocumentState::Ready, Duration::from_secs(60)).await;
    let found = served_by_replica(&replica, searches.search(keyword("quarry ledger"))).await;
    assert_eq!(found.results[0].document_id, quarry);

    // Replay paused: the replica never sees the next document, yet a search
    // right after READY finds it (from the primary, after the wait), and
    // GetInfo shows the lag.
    on_replica(&replica, "SELECT pg_wal_replay_pause()").await;
    let orchard = create_document(
        &mut documents,
        "orchard.md",
        &[],
        b"# Orchard\n\nThe orchard survey counts pear trees.\n",
    )
    .await
    .id;
    wait_for_state(&documents, &orchard, DocumentState::Ready, Duration::from_secs(60)).await;
    let found = searches.search(keyword("orchard survey")).await.unwrap().into_inner();
    let top: Vec<&str> = found.results.iter().take(1).map(|r| r.document_id.as_str()).collect();
    assert_eq!(top, [orchard.as_str()]);
    assert!(lag(&mut system).await.is_some_and(|bytes| bytes > 0), "GetInfo: the replica lags");

    // Resumed: it catches up and serves searches again.
    on_replica(&replica, "SELECT pg_wal_replay_resume()").await;
    eventually(Duration::from_secs(20), "the replica to catch up", || {
        let mut system = system.clone();
        async move { (lag(&mut system).await == Some(0)).then_some(()) }
    })
    .await;
    let found = served_by_replica(&replica, searches.search(keyword("orchard survey"))).await;
    assert_eq!(found.results[0].document_id, orchard);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
