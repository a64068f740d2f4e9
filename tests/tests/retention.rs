//! Retention: an admin sets how long originals and documents are kept (and
//! per-label overrides); the sweeper of one api-server deletes what is past
//! it, in batches with an audit row each, while text and chunks of documents
//! whose original went stay searchable. Upload times are moved back in the
//! database, so "ten days old" needs no waiting.

use std::time::Duration;

use folio_proto::v1::{
    Document, DocumentState, DownloadDocumentRequest, DownloadFormat, GetDocumentRequest, GetSettingsRequest, RetentionRule,
    RetryDocumentRequest, SearchRequest, UpdateSettingsRequest, document_service_client::DocumentServiceClient,
    search_service_client::SearchServiceClient,
};
use folio_tests::{Authed, TestEnv, create_document, document_events, eventually, violated_fields, wait_for_state};
use tonic::Code;
use tonic_types::StatusExt as _;

const WAIT: Duration = Duration::from_secs(60);

/// Moves `id`'s upload `days` days into the past.
async fn age(env: &TestEnv, id: &str, days: i32) {
    use diesel_async::RunQueryDsl as _;
    let mut conn = env.pool().get().await.unwrap();
    diesel::sql_query("UPDATE documents SET created_at = now() - make_interval(days => $1) WHERE id = $2::uuid")
        .bind::<diesel::sql_types::Integer, _>(days)
        .bind::<diesel::sql_types::Text, _>(id)
        .execute(&mut conn)
        .await
        .unwrap();
}

async fn get(client: &DocumentServiceClient<Authed>, id: &str) -> Result<Document, tonic::Status> {
    client
        .clone()
        .get_document(GetDocumentRequest { id: id.into() })
        .await
        .map(|r| r.into_inner())
}

async fn download(client: &DocumentServiceClient<Authed>, id: &str, format: DownloadFormat) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = client
        .clone()
        .download_document(DownloadDocumentRequest {
            id: id.into(),
            format: format as i32,
        })
        .await?
        .into_inner();
    let mut data = Vec::new();
    while let Some(part) = futures_util::StreamExt::next(&mut stream).await {
        data.extend(part?.data);
    }
    Ok(data)
}

fn words(topic: &str) -> Vec<u8> {
    format!("# {topic}\n\nThe {topic} ledger records every {topic} shipment by weight and harbour.\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_deletes_originals_and_documents_past_their_retention_by_label() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_RETENTION_SWEEP_SECS", "1");
    // Two a batch, so the three originals due take two batches (two audit
    // rows).
    env.set("FOLIO_RETENTION_BATCH", "2");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let docs = DocumentServiceClient::new(api.authed(&member.access_token).await);

    let mut made = Vec::new();
    for (name, labels, topic) in [
        ("plain.md", vec![], "cinnamon"),
        ("other.md", vec!["misc"], "saffron"),
        ("legal.md", vec!["legal", "misc"], "vanilla"),
        ("draft.md", vec!["drafts"], "nutmeg"),
        ("fresh.md", vec![], "cardamom"),
    ] {
        made.push(create_document(&mut docs.clone(), name, &labels, &words(topic)).await);
    }
    let broken = create_document(&mut docs.clone(), "broken.pdf", &[], b"%PDF-1.7\nnot a body\n").await;
    for document in &made {
        wait_for_state(&docs, &document.id, DocumentState::Ready, WAIT).await;
    }
    wait_for_state(&docs, &broken.id, DocumentState::Failed, WAIT).await;
    let [plain, other, legal, draft, fresh] = &made[..] else {
        unreachable!()
    };
    for document in [plain, other, legal, draft, &broken] {
        age(&env, &document.id, 10).await;
    }
    age(&env, &fresh.id, 1).await;

    // Bad rules are refused, naming the field.
    let mut system = api.system().await;
    let refused = system
        .update_settings(UpdateSettingsRequest {
            set_retention_rules: vec![RetentionRule {
                label: "legal".into(),
                original_days: Some(-1),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["set_retention_rules"]);
    let refused = system
        .update_settings(UpdateSettingsRequest {
            set_retention_rules: vec![RetentionRule {
                label: "legal".into(),
                original_days: Some(0),
                ..Default::default()
            }],
            remove_retention_rules: vec!["legal".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["remove_retention_rules"]);

    // Originals go after a week; "legal" keeps its originals for ever (it
    // wins over "misc"'s 3 days), "drafts" are deleted whole after 5 days.
    let settings = system
        .update_settings(UpdateSettingsRequest {
            retention_original_days: Some(7),
            set_retention_rules: vec![
                RetentionRule {
                    label: "legal".into(),
                    original_days: Some(0),
                    ..Default::default()
                },
                RetentionRule {
                    label: "misc".into(),
                    original_days: Some(3),
                    ..Default::default()
                },
                RetentionRule {
                    label: "drafts".into(),
                    document_days: Some(5),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.retention_original_days.unwrap().value, 7);
    assert_eq!(settings.retention_document_days.unwrap().value, 0);
    let labels: Vec<_> = settings.retention_rules.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels, ["drafts", "legal", "misc"]);

    eventually(WAIT, "the draft is deleted", || async {
        (get(&docs, &draft.id).await.err()?.code() == Code::NotFound).then_some(())
    })
    .await;
    for document in [plain, other, &broken] {
        eventually(WAIT, "its original is deleted", || async {
            get(&docs, &document.id).await.ok()?.original_deleted.then_some(())
        })
        .await;
    }
    // That sweep found the legal and fresh documents too, and kept them.
    for document in [legal, fresh] {
        let now = get(&docs, &document.id).await.unwrap();
        assert!(!now.original_deleted, "{} keeps its original", now.filename);
        assert_eq!(
            download(&docs, &document.id, DownloadFormat::Original).await.unwrap(),
            words_of(&made, &now.id)
        );
    }

    // The original is gone with a reason; its text, events and search stay.
    let refused = download(&docs, &plain.id, DownloadFormat::Original).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("retention policy deleted this document's original on "),
        "{refused:?}"
    );
    assert!(refused.message().contains("(originals were kept 7 days)"), "{refused:?}");
    assert_eq!(refused.get_details_error_info().unwrap().reason, "ORIGINAL_DELETED");
    let text = String::from_utf8(download(&docs, &plain.id, DownloadFormat::Text).await.unwrap()).unwrap();
    assert!(text.contains("cinnamon ledger"), "{text}");
    let events = document_events(&docs, &other.id).await;
    let last = events.last().unwrap();
    assert!(
        last.message
            .starts_with("original deleted by the retention policy (originals kept 3 days)"),
        "{last:?}"
    );
    let mut search = SearchServiceClient::new(api.authed(&member.access_token).await);
    let found = search
        .search(SearchRequest {
            query: "cinnamon shipment".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.results.first().map(|r| r.document_id.as_str()), Some(plain.id.as_str()));
    let blob_dir = env.vars["FOLIO_BLOB_URL"].strip_prefix("file://").unwrap().to_owned();
    assert!(
        !std::path::Path::new(&blob_dir)
            .join(format!("documents/{}/{}", member.user.as_ref().unwrap().id, plain.id))
            .exists(),
        "the original's blob is deleted"
    );

    // A retry would parse the original again: refused, saying why.
    let refused = docs
        .clone()
        .retry_document(RetryDocumentRequest { id: broken.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_details_error_info().unwrap().reason, "ORIGINAL_DELETED");

    // One audit row per batch: the draft alone, then originals two by two.
    let audit = api.audit_of("retention").await;
    let of = |event: &str| {
        audit
            .iter()
            .filter(|e| e.event == event)
            .map(|e| e.target.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(of("retention_documents_deleted"), [format!("documents:{}(5d)", draft.id)]);
    let originals = of("retention_originals_deleted");
    assert_eq!(originals.len(), 2, "{originals:?}");
    let named = originals.join(",");
    for (document, days) in [(plain, 7), (other, 3), (&broken, 7)] {
        assert!(named.contains(&format!("{}({days}d)", document.id)), "{named}");
    }
    assert!(!named.contains(&legal.id) && !named.contains(&fresh.id));

    // Lifting the rule lets the next sweep take the legal original too.
    system
        .update_settings(UpdateSettingsRequest {
            remove_retention_rules: vec!["legal".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let settings = system.get_settings(GetSettingsRequest {}).await.unwrap().into_inner();
    assert!(settings.retention_rules.iter().all(|r| r.label != "legal"));
    eventually(WAIT, "the legal original is deleted (misc: 3 days)", || async {
        get(&docs, &legal.id).await.ok()?.original_deleted.then_some(())
    })
    .await;
    assert!(!get(&docs, &fresh.id).await.unwrap().original_deleted);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// The bytes `made`'s document `id` was uploaded with.
fn words_of(made: &[Document], id: &str) -> Vec<u8> {
    let document = made.iter().find(|d| d.id == id).unwrap();
    let topic = match document.filename.as_str() {
        "legal.md" => "vanilla",
        "fresh.md" => "cardamom",
        other => panic!("{other}"),
    };
    words(topic)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_api_server_sweeps_at_a_time() {
    let mut env = TestEnv::new().await;
    let pool = env.pool();
    let config = env.api_config();
    let cancel = tokio_util::sync::CancellationToken::new();
    let models = &config.core.models;
    let models =
        std::sync::Arc::new(folio_models::live::Live::new(models.clone(), folio_models::embed::from_config(models).unwrap()).unwrap());
    let (settings, _task) = folio_api::settings::Settings::start(pool.clone(), 1 << 20, models, Duration::from_secs(60), cancel.clone())
        .await
        .unwrap();
    let sweeper = folio_api::retention::Sweeper {
        pool: pool.clone(),
        blobs: folio_core::blobs::Blobs::open(&config.core.documents.blob_url, &config.core.documents.blob_options).unwrap(),
        cache: folio_core::cache::Cache::connect(&config.core.redis_url, &config.core.redis_prefix)
            .await
            .unwrap(),
        settings,
        batch: 10,
    };
    // Another server's sweeper holds the lock: this one skips its round.
    let mut other = pool.get().await.unwrap();
    assert!(folio_db::models::retention_rule::try_lead_sweep(&mut other).await.unwrap());
    assert_eq!(sweeper.sweep_if_leader(chrono::Utc::now(), &cancel).await.unwrap(), None);
    folio_db::models::retention_rule::end_sweep(&mut other).await.unwrap();
    // Once it is done, this one sweeps (nothing is due) and lets go again.
    assert_eq!(
        sweeper.sweep_if_leader(chrono::Utc::now(), &cancel).await.unwrap(),
        Some(folio_api::retention::Swept::default())
    );
    assert!(folio_db::models::retention_rule::try_lead_sweep(&mut other).await.unwrap());
    folio_db::models::retention_rule::end_sweep(&mut other).await.unwrap();
    cancel.cancel();
    drop(other);
    env.cleanup().await;
}
