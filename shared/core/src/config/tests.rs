//! The settings as a whole, read through `Config::from_lookup`.

use std::collections::HashMap;

use super::*;

fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |name| map.get(name).cloned()
}

const REQUIRED: [(&str, &str); 3] = [
    ("DATABASE_URL", "postgres://localhost/folio"),
    ("AMQP_URL", "amqp://localhost:5672/%2f"),
    ("REDIS_URL", "redis://localhost:6379"),
];

#[test]
fn defaults_apply_when_only_the_urls_are_set() {
    let config = Config::from_lookup(lookup(&REQUIRED)).unwrap();
    assert_eq!(config.grpc_addr, "127.0.0.1:50051".parse().unwrap());
    assert_eq!(config.amqp_prefix, "folio");
    assert_eq!(config.redis_prefix, "folio:");
    assert_eq!(config.max_attempts, 5);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.metrics_addr, None, "metrics are off unless an address is set");
    assert_eq!(config.search.ef_search, None, "unset: scaled with the corpus");
    let mut pairs = REQUIRED.to_vec();
    pairs.push(("FOLIO_HNSW_EF_SEARCH", "300"));
    assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap().search.ef_search, Some(300));
}

#[test]
fn blob_urls_are_a_directory_or_an_s3_bucket_and_s3_secrets_stay_out_of_debug() {
    for bad in ["s3://", "s3:///prefix", "gs://bucket", "/var/blobs"] {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("FOLIO_BLOB_URL", bad));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_BLOB_URL", "{bad}");
    }
    let mut pairs = REQUIRED.to_vec();
    pairs.extend([
        ("FOLIO_BLOB_URL", "s3://folio-blobs/prod"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_SECRET_ACCESS_KEY", "very-secret"),
        ("AWS_NOT_A_SETTING", "ignored"),
    ]);
    let config = Config::from_lookup(lookup(&pairs)).unwrap();
    assert_eq!(config.documents.blob_url, "s3://folio-blobs/prod");
    assert_eq!(
        config.documents.blob_options.0,
        [
            ("aws_secret_access_key".to_owned(), "very-secret".to_owned()),
            ("aws_region".to_owned(), "eu-west-1".to_owned()),
        ]
    );
    assert!(!format!("{config:?}").contains("very-secret"));
}

#[test]
fn a_missing_url_names_its_variable() {
    let error = Config::from_lookup(lookup(&REQUIRED[..2])).unwrap_err();
    assert_eq!(error.variable, "REDIS_URL");
    assert_eq!(error.to_string(), "setting REDIS_URL: is not set");
}

#[test]
fn models_default_to_hash_and_lexical_and_each_provider_asks_for_what_it_needs() {
    let config = Config::from_lookup(lookup(&REQUIRED)).unwrap();
    assert_eq!(config.models.embedder, EmbedderKind::Hash);
    assert_eq!(config.models.embed_dimension, 384);
    assert_eq!(config.models.reranker, RerankerKind::Lexical);

    let mut pairs = REQUIRED.to_vec();
    pairs.push(("FOLIO_EMBEDDER", "openai"));
    let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "setting FOLIO_EMBED_URL: is not set but FOLIO_EMBEDDER=openai needs it"
    );
    pairs.push(("FOLIO_EMBED_URL", "http://127.0.0.1:8000/"));
    assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_EMBED_MODEL");
    pairs.push(("FOLIO_EMBED_MODEL", "e5-small"));
    pairs.push(("FOLIO_EMBED_API_KEY", "sk-secret"));
    let models = Config::from_lookup(lookup(&pairs)).unwrap().models;
    assert_eq!(models.embed_url.as_deref(), Some("http://127.0.0.1:8000"));
    assert_eq!(models.embed_api_key.as_ref().map(ApiKey::expose), Some("sk-secret"));
    assert!(!format!("{models:?}").contains("sk-secret"));

    for (kind, missing) in [
        ("local", "FOLIO_EMBED_MODEL_DIR"),
        ("tei", "FOLIO_RERANK_URL"),
        ("cohere", "FOLIO_RERANK_URL"),
    ] {
        let mut pairs = REQUIRED.to_vec();
        let name = if kind == "local" { "FOLIO_EMBEDDER" } else { "FOLIO_RERANKER" };
        pairs.push((name, kind));
        assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, missing, "{kind}");
    }
    let mut pairs = REQUIRED.to_vec();
    pairs.push(("FOLIO_RERANKER", "cohere"));
    pairs.push(("FOLIO_RERANK_URL", "https://rerank.example"));
    assert_eq!(Config::from_lookup(lookup(&pairs)).unwrap_err().variable, "FOLIO_RERANK_MODEL");
}

#[test]
fn malformed_values_name_their_variable() {
    for (name, value) in [
        ("FOLIO_GRPC_ADDR", "not-an-address"),
        ("FOLIO_METRICS_ADDR", "9464"),
        ("FOLIO_WORKER_CONCURRENCY", "0"),
        ("FOLIO_MAX_ATTEMPTS", "many"),
        ("FOLIO_LOG_FORMAT", "xml"),
        ("FOLIO_AMQP_PREFIX", "has space"),
        ("DATABASE_URL", "mysql://x"),
        ("FOLIO_EMBEDDER", "word2vec"),
        ("FOLIO_RERANKER", "random"),
        ("FOLIO_EMBED_URL", "ftp://models"),
        ("FOLIO_EMBED_DIMENSION", "0"),
        ("FOLIO_EMBED_TIMEOUT_MS", "soon"),
        ("FOLIO_EMBED_MAX_BATCH", "100000"),
        ("FOLIO_HNSW_EF_SEARCH", "0"),
    ] {
        let mut pairs = REQUIRED.to_vec();
        pairs.push((name, value));
        let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
        assert_eq!(error.variable, name, "{value}");
        assert!(!error.to_string().contains('\n'));
    }
}

#[test]
fn conversations_answer_extractively_until_a_chat_endpoint_is_named_with_its_model() {
    let config = Config::from_lookup(lookup(&REQUIRED)).unwrap().conversations;
    assert!(config.chat.is_none() && config.redis_url.is_none());
    assert_eq!((config.ttl.as_secs(), config.per_user, config.max_messages), (1800, 50, 100));

    let mut pairs = REQUIRED.to_vec();
    pairs.push(("FOLIO_CHAT_URL", "http://127.0.0.1:8000/"));
    let error = Config::from_lookup(lookup(&pairs)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "setting FOLIO_CHAT_MODEL: is not set but FOLIO_CHAT_URL needs it"
    );
    pairs.push(("FOLIO_CHAT_MODEL", "llama"));
    pairs.push(("FOLIO_CHAT_API_KEY", "sk-chat"));
    let config = Config::from_lookup(lookup(&pairs)).unwrap().conversations;
    let chat = config.chat.as_ref().unwrap();
    assert_eq!((chat.url.as_str(), chat.model.as_str()), ("http://127.0.0.1:8000", "llama"));
    assert!(!format!("{config:?}").contains("sk-chat"));
    pairs.push(("FOLIO_CONVERSATION_REDIS_URL", "http://nope"));
    assert_eq!(
        Config::from_lookup(lookup(&pairs)).unwrap_err().variable,
        "FOLIO_CONVERSATION_REDIS_URL"
    );
}
