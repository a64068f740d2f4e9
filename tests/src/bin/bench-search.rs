//! Search benchmark, printed as Markdown (BENCHMARKS.md keeps the figures).
//! Run with `scripts/bench search` (release builds, real servers);
//! `FOLIO_BENCH_HOLD=1` keeps the database until Enter, to look at plans;
//! `FOLIO_BENCH_HNSW_WITH="m = 24, ef_construction = 128"` builds the HNSW
//! graph with other parameters than `segment::GRAPH_WITH`; `FOLIO_HNSW_EF_SEARCH`
//! is passed to the server for the latency pass.
//!
//! The corpus: every test document (the Debian manuals in HTML, PDF and DOCX
//! that `scripts/install-test-documents` fetches) parsed and chunked by the
//! pipeline, then topped up to 10,000 and 100,000 chunks with chunks made of
//! runs of sentences from one region of a real document under its real
//! headings, so every chunk is on one topic and has its own text and vector.
//! Vectors come from the `hash` embedder, as the worker makes them; rows are
//! bulk-inserted with no segment sealed, then all of them are sealed as one
//! segment (its HNSW graph and RUM index built), as a worker's segment
//! builder leaves a corpus that was loaded at once.
//!
//! Latency: Search through a folio-api process (gRPC, HYBRID, the lexical
//! reranker; one caller) for 300 queries, each a real section heading, after a
//! warm-up pass. Recall@10: for the same queries and for 300 sentences of real
//! chunks (longer queries), the vector step as Search
//! runs it (`chunk::nearest` through HNSW, the first 10 of
//! FOLIO_SEARCH_CANDIDATES) at several `hnsw.ef_search`, against the same
//! query with index scans off (an exact scan); a hit counts when its
//! similarity is at least the exact 10th's, so ties between equal vectors do
//! not count as misses. The vector step's own p50 / p95 at each
//! `ef_search` go to stderr.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::RunQueryDsl as _;
use folio_db::{
    documents::lifecycle::NewDocument,
    models::{
        chunk::{self, Embedding, NewChunk},
        document::{self, Document},
        embedding_index, segment,
    },
    schema::users,
};
use folio_models::embed::{Embedder as _, hash::HashEmbedder};
use folio_parse::chunk::with_headings;
use folio_proto::v1::{SearchRequest, search_service_client::SearchServiceClient};
use folio_tests::{
    ADMIN_EMAIL, Bearer, TestEnv,
    bench::{Piece, VectorStep, ms, percentile, real_chunks, vector_recall},
    spawn_api_process,
};
use tonic::service::interceptor::InterceptedService;
use uuid::Uuid;

/// Corpus sizes measured in turn, unless `FOLIO_BENCH_SIZES` lists others
/// (for example `10000,100000,1000000`).
const SIZES: [usize; 2] = [10_000, 100_000];
const QUERIES: usize = 300;
/// Past 100,000 chunks recall is measured on the first this many queries of
/// each kind (each needs an exact scan of the whole corpus).
const RECALL_QUERIES_LARGE: usize = 100;
const CHUNKS_PER_DOCUMENT: usize = 200;
/// `hnsw.ef_search` values whose recall is measured (the server's default
/// scales with the corpus: 100 at 10,000 chunks, 800 at 100,000).
const EF_SEARCH: [u32; 5] = [40, 100, 200, 400, 800];
/// As the server's default (FOLIO_SEARCH_CANDIDATES).
const CANDIDATES: i64 = 50;

/// A small deterministic generator (splitmix64): the same corpus every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// `n` more chunks, each made of runs of sentences from one region of a real
/// document (a window of consecutive real chunks) under the headings of one of
/// them: on one topic, as a real chunk is, and with its own text and vector.
fn synthetic(real: &[Piece], n: usize, rng: &mut Rng) -> Vec<Piece> {
    const WINDOW: usize = 8;
    let sentences: Vec<Vec<&str>> = real
        .iter()
        .map(|p| p.text.split_inclusive(". ").filter(|s| s.len() > 20).collect())
        .collect();
    (0..n)
        .map(|_| {
            let home = rng.below(real.len());
            let region = home.saturating_sub(WINDOW / 2)..(home + WINDOW / 2).min(real.len());
            let mut text = String::new();
            let words = 120 + rng.below(120);
            let mut tries = 0;
            while text.split_whitespace().count() < words && tries < 64 {
                tries += 1;
                let from = &sentences[region.start + rng.below(region.len())];
                if from.is_empty() {
                    continue;
                }
                let start = rng.below(from.len());
                for s in &from[start..from.len().min(start + 1 + rng.below(3))] {
                    text.push_str(s);
                }
            }
            if text.is_empty() {
                text = real[home].text.clone();
            }
            Piece {
                section_path: real[home].section_path.clone(),
                page: real[home].page,
                text,
            }
        })
        .collect()
}

/// Runs `statements` in order on one connection.
async fn execute(pool: &folio_db::Pool, statements: &[&str]) {
    let mut conn = pool.get().await.unwrap();
    for sql in statements {
        diesel::sql_query(*sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Inserts `pieces` as READY documents of `owner`, `CHUNKS_PER_DOCUMENT` each.
async fn load(pool: &folio_db::Pool, owner: Uuid, pieces: &[Piece], embedder: &HashEmbedder, first: usize) {
    let mut conn = pool.get().await.unwrap();
    for (n, group) in pieces.chunks(CHUNKS_PER_DOCUMENT).enumerate() {
        let id = Uuid::now_v7();
        // Seeded READY directly, as if indexed: the benchmark measures search,
        // not the pipeline.
        let new = NewDocument {
            id,
            owner_id: owner,
            filename: format!("bench-{}.html", first / CHUNKS_PER_DOCUMENT + n),
            title: format!("Bench document {}", first / CHUNKS_PER_DOCUMENT + n),
            content_type: "text/html".into(),
            format: "html".into(),
            labels: vec![],
            size_bytes: 0,
            sha256: id.as_bytes().to_vec(),
            blob_key: format!("bench/{id}"),
            idempotency_key: None,
            max_tries: 5,
            priority: Default::default(),
        };
        let row = Document {
            state: folio_db::documents::state::State::Ready,
            stage: None,
            try_number: 1,
            chunk_count: Some(group.len() as i32),
            completed_at: Some(chrono::Utc::now()),
            ..new.into_row()
        };
        document::insert(&mut conn, &row).await.unwrap();
        let texts: Vec<String> = group.iter().map(|p| with_headings(&p.section_path, &p.text)).collect();
        let vectors = embedder.embed(&texts).await.unwrap();
        let rows: Vec<NewChunk> = group
            .iter()
            .zip(vectors)
            .enumerate()
            .map(|(ordinal, (p, v))| NewChunk {
                document_id: id,
                ordinal: ordinal as i32,
                text: p.text.clone(),
                section_path: p.section_path.iter().cloned().map(Some).collect(),
                page_start: p.page.map(|p| p as i32),
                page_end: p.page.map(|p| p as i32),
                token_count: p.text.split_whitespace().count() as i32,
                embedding: Embedding(pgvector::Vector::from(v)),
                embedding_model: embedder.model().to_owned(),
            })
            .collect();
        chunk::replace(&mut conn, id, &rows).await.unwrap();
    }
}

/// Recall@10 and the vector step's latency at each of `EF_SEARCH`.
async fn recall(pool: &folio_db::Pool, embedder: &HashEmbedder, queries: &[String]) -> Vec<VectorStep> {
    let efs: Vec<Option<u32>> = EF_SEARCH.iter().copied().map(Some).collect();
    vector_recall(pool, embedder, queries, &efs, CANDIDATES).await
}

#[tokio::main]
async fn main() {
    let mut env = TestEnv::new().await;
    // The server's ef_search for the latency pass (recall is measured at each of EF_SEARCH).
    if let Ok(ef_search) = std::env::var("FOLIO_HNSW_EF_SEARCH") {
        env.set("FOLIO_HNSW_EF_SEARCH", &ef_search);
    }
    let pool = env.pool();
    let embedder = HashEmbedder::new(384);
    let mut rng = Rng(0x0066_6f6c_696f);

    let started = Instant::now();
    let real = real_chunks();
    let headings: BTreeSet<String> = real.iter().filter_map(|p| p.section_path.last().cloned()).collect();
    let headings: Vec<String> = headings.into_iter().collect();
    let queries: Vec<String> = (0..QUERIES).map(|_| headings[rng.below(headings.len())].clone()).collect();
    // Longer queries for recall too: a sentence of a real chunk.
    let sentences: Vec<&str> = real
        .iter()
        .flat_map(|p| p.text.split_inclusive(". "))
        .filter(|s| (40..200).contains(&s.len()))
        .collect();
    let sentence_queries: Vec<String> = (0..QUERIES).map(|_| sentences[rng.below(sentences.len())].to_owned()).collect();
    eprintln!(
        "{} real chunks, {} headings, parsed in {:.1} s",
        real.len(),
        headings.len(),
        started.elapsed().as_secs_f64()
    );
    let sizes: Vec<usize> = match std::env::var("FOLIO_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("FOLIO_BENCH_SIZES: numbers"))
            .collect(),
        Err(_) => SIZES.to_vec(),
    };
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let mut corpus: Vec<Piece> = real;
    corpus.extend(synthetic(&corpus, largest.saturating_sub(corpus.len()), &mut rng));
    // Keep the real chunks spread over both sizes.
    for i in (1..corpus.len()).rev() {
        let j = rng.below(i + 1);
        corpus.swap(i, j);
    }

    let api = spawn_api_process(&env).await;
    let owner: Uuid = {
        let mut conn = pool.get().await.unwrap();
        users::table
            .filter(users::email.eq(ADMIN_EMAIL))
            .select(users::id)
            .first(&mut conn)
            .await
            .unwrap()
    };
    {
        let mut conn = pool.get().await.unwrap();
        embedding_index::set(&mut conn, embedder.model(), 384).await.unwrap();
    }
    let mut client = SearchServiceClient::new(InterceptedService::new(api.channel.clone(), Bearer::new(&api.admin_token)));

    let efs: Vec<String> = EF_SEARCH.iter().map(|ef| format!("ef_search {ef}")).collect();
    println!(
        "| chunks | search p50 | p95 | p99 | server: embed / vector / keyword / rerank (mean) | recall@10, heading queries, at {} | recall@10, sentence queries | load + index build |",
        efs.join(" / ")
    );
    println!("|---|---|---|---|---|---|---|---|");
    let graph_with = std::env::var("FOLIO_BENCH_HNSW_WITH").unwrap_or_else(|_| segment::GRAPH_WITH.to_owned());
    let mut loaded = 0;
    for size in sizes {
        let started = Instant::now();
        execute(&pool, &["DELETE FROM chunk_segments"]).await;
        {
            let mut conn = pool.get().await.unwrap();
            segment::drop_orphans(&mut conn).await.unwrap();
        }
        load(&pool, owner, &corpus[loaded..size], &embedder, loaded).await;
        loaded = size;
        {
            let mut conn = pool.get().await.unwrap();
            // Enough for a million chunks' graph to be built in memory.
            diesel::sql_query("SET maintenance_work_mem = '8GB'")
                .execute(&mut conn)
                .await
                .unwrap();
            let newest = segment::open(&mut conn, 0, 1).await.unwrap().newest;
            let all = segment::Segment {
                lo: 0,
                hi: newest + 1,
                level: 0,
            };
            let building = Instant::now();
            segment::build_with(&mut conn, &all, &graph_with).await.unwrap();
            segment::record_sealed(&mut conn, &all).await.unwrap();
            #[derive(diesel::QueryableByName)]
            struct Sizes {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                graph: i64,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                keywords: i64,
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                total: i64,
            }
            let sizes: Sizes = diesel::sql_query(format!(
                "SELECT pg_relation_size('{}') AS graph, pg_relation_size('{}') AS keywords, \
                 pg_total_relation_size('chunks') AS total",
                all.graph_index(),
                all.keyword_index()
            ))
            .get_result(&mut conn)
            .await
            .unwrap();
            eprintln!(
                "{size}: one segment's HNSW graph and RUM index built in {:.1} s; graph {} MB, RUM {} MB, \
                 the rest of the table (heap, TOAST, B-trees, GIN) {} MB",
                building.elapsed().as_secs_f64(),
                sizes.graph >> 20,
                sizes.keywords >> 20,
                (sizes.total - sizes.graph - sizes.keywords) >> 20
            );
        }
        execute(&pool, &["VACUUM ANALYZE chunks", "ANALYZE documents"]).await;
        let build = started.elapsed();

        let mut latencies = Vec::new();
        let mut steps = [Duration::ZERO; 4];
        let mut slowest = Vec::new();
        for pass in 0..2 {
            for query in &queries {
                let sent = Instant::now();
                let response = client
                    .search(SearchRequest {
                        query: query.clone(),
                        ..Default::default()
                    })
                    .await
                    .expect("search")
                    .into_inner();
                let took = sent.elapsed();
                assert!(!response.results.is_empty(), "{query}: no results");
                if pass == 1 {
                    latencies.push(took);
                    let t = response.timings.unwrap_or_default();
                    let t: Vec<Duration> = [t.embed, t.vector, t.keyword, t.rerank]
                        .into_iter()
                        .map(|d| d.map_or(Duration::ZERO, |d| Duration::new(d.seconds as u64, d.nanos as u32)))
                        .collect();
                    for (sum, d) in steps.iter_mut().zip(&t) {
                        *sum += *d;
                    }
                    slowest.push((took, query.clone(), t));
                }
            }
        }
        latencies.sort();
        slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (took, query, t) in slowest.iter().take(5) {
            eprintln!("{size}: slow query {query:?}: {} (embed/vector/keyword/rerank {t:?})", ms(*took));
        }
        let means: Vec<String> = steps
            .iter()
            .map(|s| format!("{:.1}", s.as_secs_f64() * 1000.0 / queries.len() as f64))
            .collect();
        let recall_queries = if size > 100_000 { RECALL_QUERIES_LARGE } else { QUERIES };
        let by_heading = recall(&pool, &embedder, &queries[..recall_queries]).await;
        let by_sentence = recall(&pool, &embedder, &sentence_queries[..recall_queries]).await;
        let recalls: Vec<String> = by_heading.iter().map(|r| format!("{:.3}", r.recall)).collect();
        let sentence_recalls: Vec<String> = by_sentence.iter().map(|r| format!("{:.3}", r.recall)).collect();
        for (ef, (heading, sentence)) in EF_SEARCH.iter().zip(by_heading.iter().zip(&by_sentence)) {
            eprintln!(
                "{size}: vector step at ef_search {ef}: p50 / p95 {} / {} (heading queries), {} / {} (sentences)",
                ms(heading.p50),
                ms(heading.p95),
                ms(sentence.p50),
                ms(sentence.p95)
            );
        }
        println!(
            "| {size} | {} | {} | {} | {} ms | {} | {} | {:.0} s |",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.95)),
            ms(percentile(&latencies, 0.99)),
            means.join(" / "),
            recalls.join(" / "),
            sentence_recalls.join(" / "),
            build.as_secs_f64()
        );
    }
    if std::env::var_os("FOLIO_BENCH_HOLD").is_some() {
        eprintln!("holding {} (FOLIO_BENCH_HOLD): press Enter to clean up", env.config().database_url);
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    drop(api);
}
