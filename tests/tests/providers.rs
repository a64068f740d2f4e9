//! Run-time providers: an admin tries an embedding provider (TestProvider),
//! chooses it (UpdateSettings), and the index moves to it through the
//! reindex path while search and the worker follow; the API key is never
//! returned or audited; a provider that fails its check changes nothing; the
//! reranker follows at the next search; a reset returns to the environment's.
//! The model server is the OpenAI-compatible fake (`folio_tests::fake_model`)
//! the real client code talks to.

use std::time::Duration;

use folio_proto::v1::{
    DocumentState, GetSettingsRequest, ListServicesRequest, ProviderChoice, SearchRequest, SearchResponse, SettingSource,
    TestProviderRequest, UpdateSettingsRequest, document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient,
    system_service_client::SystemServiceClient,
};
use folio_tests::{
    Authed, TestEnv, create_document, document_events, eventually,
    fake_model::{Fake, Reply, embeddings},
    violated_fields, wait_for_state,
};
use tonic::Code;
use tonic_types::StatusExt as _;

const WAIT: Duration = Duration::from_secs(60);
const KEY: &str = "sk-folio-test-secret";

fn openai(url: &str, key: Option<&str>) -> ProviderChoice {
    ProviderChoice {
        kind: "openai".into(),
        url: url.into(),
        model: "fake-model".into(),
        api_key: key.map(str::to_owned),
    }
}

async fn search(client: &SearchServiceClient<Authed>, query: &str) -> SearchResponse {
    client
        .clone()
        .search(SearchRequest {
            query: query.into(),
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
}

/// Waits until `id`'s events say it was embedded (again) with `model`.
async fn embedded_with(docs: &DocumentServiceClient<Authed>, id: &str, model: &str) {
    eventually(WAIT, &format!("{id} embedded with {model}"), || async {
        document_events(docs, id)
            .await
            .iter()
            .any(|e| e.message.contains(&format!("embedded them with {model}")))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_tries_and_chooses_providers_at_run_time_and_the_index_follows_through_a_reindex() {
    let fake = Fake::start(|_, body| Reply::Json(embeddings(body, 384))).await;
    let wrong = Fake::start(|_, body| Reply::Json(embeddings(body, 768))).await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_SETTINGS_REFRESH_MS", "200");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let docs = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let finder = SearchServiceClient::new(api.authed(&member.access_token).await);
    let tides = create_document(
        &mut docs.clone(),
        "tides.md",
        &[],
        b"# Tides\n\nThe spring tide floods the salt marsh twice a month.\n",
    )
    .await;
    wait_for_state(&docs, &tides.id, DocumentState::Ready, WAIT).await;
    assert_eq!(search(&finder, "spring tide").await.model, "folio-hash-v1-384");

    let mut system = api.system().await;
    let settings = system.get_settings(GetSettingsRequest {}).await.unwrap().into_inner();
    let embedder = settings.embedder.unwrap();
    assert_eq!((embedder.kind.as_str(), embedder.source), ("hash", SettingSource::BuiltIn as i32));
    assert_eq!(settings.reranker.unwrap().kind, "lexical");

    // Trying: the one in force, a candidate (its key sent, not returned), and
    // one answering vectors of the wrong dimension.
    let test = |role: &str, candidate: Option<ProviderChoice>| {
        let mut system = system.clone();
        let role = role.to_owned();
        async move { system.test_provider(TestProviderRequest { role, candidate }).await }
    };
    let now = test("embedder", None).await.unwrap().into_inner();
    assert!(now.ok, "{now:?}");
    assert_eq!((now.model.as_str(), now.dimension), ("folio-hash-v1-384", 384));
    let tried = test("embedder", Some(openai(&fake.url, Some(KEY)))).await.unwrap().into_inner();
    assert!(tried.ok, "{tried:?}");
    assert_eq!(tried.model, "openai:fake-model");
    assert!(tried.latency.is_some());
    assert_eq!(
        fake.authorizations.lock().unwrap().last().cloned().flatten(),
        Some(format!("Bearer {KEY}"))
    );
    let failed = test("embedder", Some(openai(&wrong.url, None))).await.unwrap().into_inner();
    assert!(!failed.ok && failed.error.contains("768"), "{failed:?}");
    let refused = test(
        "embedder",
        Some(ProviderChoice {
            kind: "local".into(),
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (refused.code(), violated_fields(&refused)),
        (Code::InvalidArgument, vec!["candidate".to_owned()])
    );
    let reranker = test("reranker", None).await.unwrap().into_inner();
    assert!(reranker.ok && reranker.model == "lexical-bm25", "{reranker:?}");
    let mut as_member = SystemServiceClient::new(api.authed(&member.access_token).await);
    let denied = as_member
        .test_provider(TestProviderRequest {
            role: "embedder".into(),
            candidate: None,
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    // Choosing one that fails its check changes nothing.
    let refused = system
        .update_settings(UpdateSettingsRequest {
            embedder: Some(openai(&wrong.url, None)),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_details_error_info().unwrap().reason, "PROVIDER_FAILED");
    let unchanged = system.get_settings(GetSettingsRequest {}).await.unwrap().into_inner();
    assert_eq!(unchanged.embedder.unwrap().kind, "hash");

    // Choosing the fake: stored without showing the key, and the index is
    // re-embedded with it (the worker follows the choice).
    let chosen = system
        .update_settings(UpdateSettingsRequest {
            embedder: Some(openai(&fake.url, Some(KEY))),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!format!("{chosen:?}").contains(KEY), "the key is never returned");
    let embedder = chosen.embedder.unwrap();
    assert_eq!(
        (
            embedder.kind.as_str(),
            embedder.url.as_str(),
            embedder.model.as_str(),
            embedder.api_key_set
        ),
        ("openai", fake.url.as_str(), "fake-model", true)
    );
    assert_eq!(embedder.source, SettingSource::Admin as i32);
    embedded_with(&docs, &tides.id, "openai:fake-model").await;
    let services = system.list_services(ListServicesRequest {}).await.unwrap().into_inner().services;
    let registered = services
        .iter()
        .find(|s| s.name == "embedder")
        .expect("the chosen model server is registered");
    assert_eq!(registered.target, fake.url);
    let found = search(&finder, "spring tide").await;
    assert_eq!(found.model, "openai:fake-model");
    assert_eq!(found.results.first().map(|r| r.document_id.as_str()), Some(tides.id.as_str()));
    // A new document is embedded by the worker with the chosen provider.
    let before = fake.requests();
    let marsh = create_document(
        &mut docs.clone(),
        "marsh.md",
        &[],
        b"# Marsh\n\nHerons nest where the reeds are thickest.\n",
    )
    .await;
    wait_for_state(&docs, &marsh.id, DocumentState::Ready, WAIT).await;
    assert!(fake.requests() > before);
    let events = document_events(&docs, &marsh.id).await;
    assert!(events.iter().any(|e| e.message.contains("with openai:fake-model")), "{events:?}");
    assert!(
        fake.authorizations
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() == Some(&format!("Bearer {KEY}")))
    );

    // The audit row names the choice, never the key.
    let audit = api.audit_of("/folio.v1.SystemService/UpdateSettings").await;
    let targets: Vec<_> = audit.iter().map(|e| e.target.as_str()).collect();
    assert!(
        targets
            .iter()
            .any(|t| t.contains(&format!("embedder=openai:fake-model@{}", fake.url))),
        "{targets:?}"
    );
    assert!(targets.iter().all(|t| !t.contains(KEY)));

    // The reranker follows from the next search on.
    system
        .update_settings(UpdateSettingsRequest {
            reranker: Some(ProviderChoice {
                kind: "none".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(search(&finder, "spring tide").await.reranker, "");

    // A reset returns to the environment's, through the reindex path again.
    let reset = system
        .update_settings(UpdateSettingsRequest {
            reset: vec!["embedder".into(), "reranker".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reset.embedder.unwrap().kind, "hash");
    embedded_with(&docs, &tides.id, "folio-hash-v1-384").await;
    embedded_with(&docs, &marsh.id, "folio-hash-v1-384").await;
    let found = search(&finder, "spring tide").await;
    assert_eq!(
        (found.model.as_str(), found.reranker.as_str()),
        ("folio-hash-v1-384", "lexical-bm25")
    );

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
