//! Conversations and Ask end to end: conversations kept in Redis (bounded,
//! private, expiring), answers streamed from a chat-completions server that
//! speaks the protocol (the real client code talks to it), extractive answers
//! on a real manual, and the conversations' Redis cut mid-answer.

use std::time::Duration;

use folio_proto::v1::DocumentState;
use folio_proto::v1::{
    AskRequest, AskResponse, CreateConversationRequest, DeleteConversationRequest, DeleteDocumentRequest, GetConversationRequest,
    ListConversationsRequest, MessageRole, SearchRequest, ask_response::Event, conversation_service_client::ConversationServiceClient,
    document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient,
};
use folio_tests::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiHandle, Authed, TcpProxy, TestEnv, create_document, eventually,
    fake_model::{Fake, Reply, chat_completion},
    relevance::{DevSet, Half, Kind, documents_dir},
    upload_ready, wait_for_state,
};
use serde_json::Value;
use tonic::{Code, Status, Streaming};
use tonic_types::StatusExt as _;

const READY_WITHIN: Duration = Duration::from_secs(120);

async fn conversations(api: &ApiHandle, token: &str) -> ConversationServiceClient<Authed> {
    ConversationServiceClient::new(api.authed(token).await)
}

async fn create(client: &mut ConversationServiceClient<Authed>, request: CreateConversationRequest) -> Result<String, Status> {
    Ok(client.create_conversation(request).await?.into_inner().id)
}

/// An Ask's events as they arrived, and how the stream ended.
struct Asked {
    events: Vec<Event>,
    ended: Result<(), Status>,
}

impl Asked {
    fn retrieval(&self) -> &folio_proto::v1::Retrieval {
        match self.events.first() {
            Some(Event::Retrieval(retrieval)) => retrieval,
            other => panic!("the first event is no retrieval: {other:?}"),
        }
    }

    fn deltas(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Delta(d) => Some(d.text.as_str()),
                _ => None,
            })
            .collect()
    }

    fn done(&self) -> &folio_proto::v1::AnswerDone {
        match self.events.last() {
            Some(Event::Done(done)) => done,
            other => panic!("the last event is not done ({:?}): {other:?}", self.ended),
        }
    }
}

async fn open_ask(client: &mut ConversationServiceClient<Authed>, id: &str, question: &str) -> Result<Streaming<AskResponse>, Status> {
    Ok(client
        .ask(AskRequest {
            conversation_id: id.into(),
            question: question.into(),
            passages: 0,
        })
        .await?
        .into_inner())
}

async fn ask(client: &mut ConversationServiceClient<Authed>, id: &str, question: &str) -> Asked {
    let mut events = Vec::new();
    let ended = match open_ask(client, id, question).await {
        Ok(mut stream) => loop {
            match stream.message().await {
                Ok(Some(message)) => events.push(message.event.expect("an event")),
                Ok(None) => break Ok(()),
                Err(status) => break Err(status),
            }
        },
        Err(status) => Err(status),
    };
    // Retrieval first, deltas, done last: nothing else in between.
    for (i, event) in events.iter().enumerate() {
        let expected = match event {
            Event::Retrieval(_) => i == 0,
            Event::Delta(_) => i > 0,
            Event::Done(_) => i == events.len() - 1 && ended.is_ok(),
        };
        assert!(expected, "event {i} out of order: {events:?}");
    }
    Asked { events, ended }
}

async fn message_count(client: &mut ConversationServiceClient<Authed>, id: &str) -> usize {
    let conversation = client
        .get_conversation(GetConversationRequest { id: id.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(conversation.messages.len(), conversation.message_count as usize);
    conversation.messages.len()
}

fn violated_fields(status: &Status) -> Vec<String> {
    let bad_request = status.get_details_bad_request().expect("a BadRequest");
    bad_request.field_violations.into_iter().map(|v| v.field).collect()
}

fn reason(status: &Status) -> String {
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}

/// The Redis key of a conversation, for its time to live.
async fn pttl(env: &TestEnv, id: &str) -> i64 {
    let client = redis::Client::open(folio_tests::redis_url()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL")
        .arg(format!("{}conversation:{id}", env.vars["FOLIO_REDIS_PREFIX"]))
        .query_async(&mut redis)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_are_their_owners_alone_bounded_and_expire() {
    let mut env = TestEnv::new().await;
    env.set("FOLIO_CONVERSATIONS_PER_USER", "3");
    let api = env.spawn_api().await;
    let alice = api.register_member().await;
    let bob = api.register_member().await;
    let admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut as_alice = conversations(&api, &alice.access_token).await;
    let mut as_bob = conversations(&api, &bob.access_token).await;
    let mut as_admin = conversations(&api, &admin.access_token).await;

    let mut ids = Vec::new();
    for title in ["one", "two", "three"] {
        let id = create(
            &mut as_alice,
            CreateConversationRequest {
                title: title.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        ids.push(id);
    }
    // The bound: a fourth is refused, naming the quota.
    let refused = create(&mut as_alice, CreateConversationRequest::default()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(reason(&refused), "CONVERSATION_LIMIT");
    assert!(refused.get_details_quota_failure().is_some());
    // Kept with the TTL (30 minutes by default), in the deployment's prefix.
    let ttl = pttl(&env, &ids[0]).await;
    assert!((1_790_000..=1_800_000).contains(&ttl), "PTTL {ttl}");

    // Newest first, paged, without messages.
    let first = as_alice
        .list_conversations(ListConversationsRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let titles: Vec<&str> = first.conversations.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["three", "two"]);
    assert!(first.conversations.iter().all(|c| c.messages.is_empty() && c.message_count == 0));
    let second = as_alice
        .list_conversations(ListConversationsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let titles: Vec<&str> = second.conversations.iter().map(|c| c.title.as_str()).collect();
    assert_eq!(titles, ["one"]);
    assert!(second.next_page_token.is_empty());
    let bad_token = as_alice
        .list_conversations(ListConversationsRequest {
            page_size: 2,
            page_token: "zz".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);

    // Nobody else's, an admin's neither: not found, whatever the call.
    for client in [&mut as_bob, &mut as_admin] {
        let status = client
            .get_conversation(GetConversationRequest { id: ids[0].clone() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = client
            .delete_conversation(DeleteConversationRequest { id: ids[0].clone() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let asked = ask(client, &ids[0], "What is here?").await;
        assert_eq!(asked.ended.unwrap_err().code(), Code::NotFound);
        let listed = client
            .list_conversations(ListConversationsRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(listed.conversations.is_empty());
    }
    assert_eq!(message_count(&mut as_alice, &ids[0]).await, 0);

    // Deleting one makes room for another.
    as_alice
        .delete_conversation(DeleteConversationRequest { id: ids[1].clone() })
        .await
        .unwrap();
    let status = as_alice
        .get_conversation(GetConversationRequest { id: ids[1].clone() })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    create(&mut as_alice, CreateConversationRequest::default()).await.unwrap();

    // A scope names what the caller may search, or the fields are named.
    let status = create(
        &mut as_bob,
        CreateConversationRequest {
            document_ids: vec!["not-an-id".into(), uuid::Uuid::new_v4().to_string()],
            labels: vec!["never-used".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert_eq!(fields, ["document_ids[0]"]);
    let status = create(
        &mut as_bob,
        CreateConversationRequest {
            document_ids: vec![uuid::Uuid::new_v4().to_string()],
            labels: vec!["never-used".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    let fields = violated_fields(&status);
    assert_eq!(fields, ["document_ids[0]", "labels[0]"]);

    // Expiry, through a second api-server whose conversations live 2 s: a
    // write (an answered question) starts the time again, then it expires.
    env.set("FOLIO_CONVERSATION_TTL_SECS", "2");
    env.set("FOLIO_CONVERSATION_MAX_MESSAGES", "2");
    let short = env.spawn_api().await;
    let mut as_carol = conversations(&short, &short.register_member().await.access_token).await;
    let id = create(&mut as_carol, CreateConversationRequest::default()).await.unwrap();
    let conversation = as_carol
        .get_conversation(GetConversationRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let lives = conversation.expires_at.unwrap().seconds - conversation.updated_at.unwrap().seconds;
    assert!((1..=3).contains(&lives), "expires {lives} s after the last write");
    eventually(Duration::from_secs(5), "the conversation's time running down", || {
        let env = &env;
        let id = id.clone();
        async move { (pttl(env, &id).await < 1200).then_some(()) }
    })
    .await;
    // No document: the answer says so, and the turn is kept.
    let asked = ask(&mut as_carol, &id, "Is anything indexed?").await;
    assert!(asked.done().no_answer);
    assert!(pttl(&env, &id).await > 1500, "a write starts the time again");
    // A question and its answer are two messages, the most this server keeps.
    let full = ask(&mut as_carol, &id, "Anything now?").await.ended.unwrap_err();
    assert_eq!(
        (full.code(), reason(&full).as_str()),
        (Code::FailedPrecondition, "CONVERSATION_FULL")
    );
    eventually(Duration::from_secs(10), "the conversation expired", || {
        let mut client = as_carol.clone();
        let id = id.clone();
        async move {
            let status = client.get_conversation(GetConversationRequest { id }).await.err()?;
            (status.code() == Code::NotFound).then_some(())
        }
    })
    .await;
    let listed = as_carol
        .list_conversations(ListConversationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.conversations.is_empty(), "an expired conversation is not listed");

    short.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// The body of the `n`th request the fake received.
fn body(fake: &Fake, n: usize) -> Value {
    fake.bodies.lock().unwrap()[n].clone()
}

fn last_user_message(body: &Value) -> String {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_endpoint_streams_cited_answers_and_rewrites_follow_ups() {
    let fake = Fake::start(|_, body| {
        if body["stream"] == false {
            return Reply::Json(chat_completion("Where does the grey heron wade in the marsh"));
        }
        let question = last_user_message(body);
        let question = question.rsplit("Question: ").next().unwrap_or_default();
        let pieces = |texts: &[&str]| texts.iter().map(|t| t.to_string()).collect();
        match question {
            "fail" => Reply::Status(500, "the model is down"),
            "slow" => Reply::Stream {
                pieces: pieces(&["This ", "takes ", "too ", "long"]),
                gap: Duration::from_millis(1500),
            },
            "long" => Reply::Stream {
                pieces: (0..200).map(|i| format!("word{i} ")).collect(),
                gap: Duration::from_millis(50),
            },
            _ => Reply::Stream {
                pieces: pieces(&["Grey herons ", "wade in ", "the marsh ", "[1]", ". Rails hide", " [7]", "."]),
                gap: Duration::from_millis(20),
            },
        }
    })
    .await;
    let mut env = TestEnv::new().await;
    fake.serve_chat(&mut env, 2500);
    // Every passage counts as relevant: this is about the protocol, and
    // "fail" or "slow" match nothing.
    env.set("FOLIO_ASK_MIN_SIMILARITY", "-1");
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let herons = create_document(
        &mut documents,
        "herons.md",
        &["birds"],
        b"# Herons\n\nThe grey heron wades in the marsh at dawn.\n",
    )
    .await;
    let rails = create_document(
        &mut documents,
        "rails.md",
        &["birds"],
        b"# Rails\n\nThe water rail hides in the marsh reeds.\n",
    )
    .await;
    for id in [&herons.id, &rails.id] {
        wait_for_state(&documents, id, DocumentState::Ready, READY_WITHIN).await;
    }
    let mut client = conversations(&api, &member.access_token).await;
    let id = create(
        &mut client,
        CreateConversationRequest {
            labels: vec!["birds".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let asked = ask(&mut client, &id, "Where does the grey heron wade?").await;
    let retrieval = asked.retrieval();
    assert_eq!(retrieval.query, "Where does the grey heron wade?");
    let first = &retrieval.passages[0];
    assert_eq!((first.number, first.relevant), (1, true));
    assert_eq!(first.result.as_ref().unwrap().document_id, herons.id);
    // The tokens arrive in order, as the endpoint sent them.
    assert_eq!(
        asked.deltas(),
        ["Grey herons ", "wade in ", "the marsh ", "[1]", ". Rails hide", " [7]", "."]
    );
    let done = asked.done();
    // [7] names no passage: dropped from the answer and its citations.
    assert_eq!(done.answer, "Grey herons wade in the marsh [1]. Rails hide.");
    let cited: Vec<(i32, &str, &[String])> = done
        .citations
        .iter()
        .map(|c| (c.number, c.document_id.as_str(), c.section_path.as_slice()))
        .collect();
    assert_eq!(cited, [(1, herons.id.as_str(), &["Herons".to_owned()][..])]);
    assert_eq!(done.generator, "fake-chat");
    assert_eq!((done.prompt_tokens, done.completion_tokens), (100, 7));
    assert_eq!(done.message_count, 2);
    let timings = done.timings.unwrap();
    assert!(timings.first_delta.is_some() && timings.retrieval.is_some());
    // What the endpoint was asked: the passages, numbered, and the question,
    // with the key, at the protocol's path.
    assert_eq!(fake.paths.lock().unwrap()[0], "/v1/chat/completions");
    assert_eq!(fake.authorizations.lock().unwrap()[0].as_deref(), Some("Bearer chat-key"));
    let asked_body = body(&fake, 0);
    assert_eq!(asked_body["stream"], true);
    assert_eq!(asked_body["model"], "fake-chat");
    assert_eq!(asked_body["messages"][0]["role"], "system");
    let prompt = last_user_message(&asked_body);
    assert!(
        prompt.contains("\n[1] ")
            && prompt.contains("The grey heron wades in the marsh at dawn.")
            && prompt.ends_with("Question: Where does the grey heron wade?"),
        "{prompt}"
    );

    // A follow-up: the endpoint rewrites it from the conversation first.
    let asked = ask(&mut client, &id, "And how do they hunt?").await;
    assert_eq!(asked.retrieval().query, "Where does the grey heron wade in the marsh");
    let rewrite = body(&fake, 1);
    assert_eq!(rewrite["stream"], false);
    let transcript = last_user_message(&rewrite);
    assert!(
        transcript.contains("User: Where does the grey heron wade?")
            && transcript.contains("Assistant: Grey herons wade in the marsh [1]. Rails hide.")
            && transcript.ends_with("Last question: And how do they hunt?"),
        "{transcript}"
    );
    assert_eq!(asked.done().message_count, 4);
    // The answer's request carries the earlier turn.
    let answered = body(&fake, 2);
    let roles: Vec<&str> = answered["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);

    // An endpoint that fails, or is too slow: UNAVAILABLE with RetryInfo,
    // and nothing kept.
    let before = fake.requests();
    let asked = ask(&mut client, &id, "fail").await;
    let status = asked.ended.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.get_details_retry_info().is_some());
    assert!(fake.requests() - before > 2, "the 500 is retried");
    let asked = ask(&mut client, &id, "slow").await;
    let status = asked.ended.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("did not answer within"), "{status:?}");
    assert!(status.get_details_retry_info().is_some());
    assert_eq!(message_count(&mut client, &id).await, 4);
    // Giving up on the slow stream closed it upstream too.
    let cut = || fake.streams_cut.load(std::sync::atomic::Ordering::SeqCst);
    eventually(Duration::from_secs(10), "the slow stream cut", || async {
        (cut() == 1).then_some(())
    })
    .await;

    // Cancelling the stream reaches the endpoint, and keeps nothing.
    let mut stream = open_ask(&mut client, &id, "long").await.unwrap();
    let mut deltas = 0;
    while deltas < 2 {
        if let Some(Event::Delta(_)) = stream.message().await.unwrap().unwrap().event {
            deltas += 1;
        }
    }
    drop(stream);
    eventually(Duration::from_secs(10), "the cancelled stream cut", || async {
        (cut() == 2).then_some(())
    })
    .await;
    // The two answers kept were read to their end.
    assert_eq!(fake.streams_done.load(std::sync::atomic::Ordering::SeqCst), 2);

    // What was kept: two questions, two answers, with their citations.
    let conversation = client
        .get_conversation(GetConversationRequest { id: id.clone() })
        .await
        .unwrap()
        .into_inner();
    let roles: Vec<MessageRole> = conversation.messages.iter().map(|m| m.role()).collect();
    assert_eq!(
        roles,
        [MessageRole::User, MessageRole::Assistant, MessageRole::User, MessageRole::Assistant]
    );
    assert_eq!(conversation.messages[1].citations[0].document_id, herons.id);
    assert_eq!(conversation.messages[2].query, "Where does the grey heron wade in the marsh");
    assert_eq!(conversation.title, "Where does the grey heron wade?");

    // A conversation limited to a document since deleted cannot be answered
    // in: it would search beyond its scope.
    let scoped = create(
        &mut client,
        CreateConversationRequest {
            document_ids: vec![rails.id.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    documents
        .delete_document(DeleteDocumentRequest { id: rails.id.clone() })
        .await
        .unwrap();
    let status = ask(&mut client, &scoped, "Where does the water rail hide?")
        .await
        .ended
        .unwrap_err();
    assert_eq!(
        (status.code(), reason(&status).as_str()),
        (Code::FailedPrecondition, "CONVERSATION_SCOPE")
    );

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// The least share of the manual's known-item sentences whose extractive
/// answer cites their section: a little under what it measures.
const EXTRACTIVE_FLOOR: f64 = 0.85;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractive_answers_cite_the_right_sections_of_a_real_manual() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let bytes = std::fs::read(documents_dir().join("relevance/bashref.html")).expect("the relevance corpus (scripts/test installs it)");
    let manual = upload_ready(&mut documents, "bashref.html", &bytes, READY_WITHIN).await;
    let mut client = conversations(&api, &member.access_token).await;
    let scoped = CreateConversationRequest {
        document_ids: vec![manual.id.clone()],
        ..Default::default()
    };

    // Known items of the manual (the relevance set's checking half): the
    // answer cites the section the sentence comes from.
    let set = DevSet::load();
    let items: Vec<_> = set
        .of(Kind::Sentence, Half::Checking)
        .into_iter()
        .filter(|item| item.file == "bashref.html")
        .take(40)
        .collect();
    assert!(items.len() >= 30, "{} items", items.len());
    let mut right = 0;
    for item in &items {
        // Each in a conversation of its own: they are not follow-ups.
        let id = create(&mut client, scoped.clone()).await.unwrap();
        let asked = ask(&mut client, &id, &item.query).await;
        let done = asked.done();
        assert_eq!(done.generator, "extractive");
        assert!(!done.no_answer && !done.citations.is_empty(), "{}: {done:?}", item.query);
        // Every number cited in the text is a citation, and the reverse.
        let joined: String = asked.deltas().concat();
        assert_eq!(joined, done.answer);
        for citation in &done.citations {
            assert!(done.answer.contains(&format!("[{}]", citation.number)));
        }
        if done.citations.iter().any(|c| c.section_path == item.section_path) {
            right += 1;
        }
        client.delete_conversation(DeleteConversationRequest { id }).await.unwrap();
    }
    let share = right as f64 / items.len() as f64;
    eprintln!(
        "extractive answers citing the right section: {right} of {} ({:.1}%)",
        items.len(),
        share * 100.0
    );
    assert!(share >= EXTRACTIVE_FLOOR, "{share:.3}");

    // A first question and a follow-up that points back at it.
    let id = create(&mut client, CreateConversationRequest::default()).await.unwrap();
    let asked = ask(&mut client, &id, "What is a pipeline?").await;
    assert!(
        asked
            .done()
            .citations
            .iter()
            .any(|c| c.section_path.last().is_some_and(|h| h.contains("Pipelines")))
    );
    let asked = ask(&mut client, &id, "What is its exit status?").await;
    assert_eq!(asked.retrieval().query, "What is its exit status? (pipeline)");
    let done = asked.done();
    assert!(done.answer.to_lowercase().contains("exit status"), "{}", done.answer);
    assert!(
        done.citations
            .iter()
            .any(|c| c.section_path.last().is_some_and(|h| h.contains("Pipelines"))),
        "{done:?}"
    );

    // Nothing relevant: it says so, citing nothing.
    let asked = ask(&mut client, &id, "What is the airspeed velocity of an unladen swallow?").await;
    let done = asked.done();
    assert!(done.no_answer && done.citations.is_empty(), "{done:?}");
    assert!(asked.retrieval().passages.iter().all(|p| !p.relevant));
    assert_eq!(done.message_count, 6);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_conversations_redis_cut_they_are_unavailable_and_nothing_is_half_written() {
    let fake = Fake::start(|_, _| Reply::Stream {
        pieces: (0..20).map(|i| format!("word{i} ")).collect(),
        gap: Duration::from_millis(100),
    })
    .await;
    let mut env = TestEnv::new().await;
    fake.serve_chat(&mut env, 30_000);
    let redis = folio_tests::redis_url();
    let proxy = TcpProxy::start(redis.trim_start_matches("redis://").trim_end_matches('/')).await;
    env.set("FOLIO_CONVERSATION_REDIS_URL", proxy.url_through(&redis));
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let member = api.register_member().await;
    let mut documents = DocumentServiceClient::new(api.authed(&member.access_token).await);
    let note = create_document(&mut documents, "note.md", &[], b"# Note\n\nThe kettle boils at noon.\n").await;
    wait_for_state(&documents, &note.id, DocumentState::Ready, READY_WITHIN).await;
    let mut client = conversations(&api, &member.access_token).await;
    let id = create(&mut client, CreateConversationRequest::default()).await.unwrap();

    // Cut while the answer streams: its write fails, the stream ends
    // UNAVAILABLE, and the conversation keeps nothing of it.
    let mut stream = open_ask(&mut client, &id, "When does the kettle boil?").await.unwrap();
    let mut seen = 0;
    while seen < 2 {
        stream.message().await.unwrap().unwrap();
        seen += 1;
    }
    proxy.cut();
    let ended = loop {
        match stream.message().await {
            Ok(Some(message)) => assert!(!matches!(message.event, Some(Event::Done(_))), "kept without Redis"),
            Ok(None) => panic!("the stream ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
    assert!(ended.get_details_retry_info().is_some());
    for status in [
        create(&mut client, CreateConversationRequest::default()).await.unwrap_err(),
        client.list_conversations(ListConversationsRequest::default()).await.unwrap_err(),
        client
            .get_conversation(GetConversationRequest { id: id.clone() })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    }
    // The rest of folio goes on.
    let mut search = SearchServiceClient::new(api.authed(&member.access_token).await);
    let found = search
        .search(SearchRequest {
            query: "kettle".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(found.results[0].document_id, note.id);

    proxy.restore();
    let listed = eventually(Duration::from_secs(15), "conversations back with Redis", || {
        let mut client = client.clone();
        async move {
            Some(
                client
                    .list_conversations(ListConversationsRequest::default())
                    .await
                    .ok()?
                    .into_inner(),
            )
        }
    })
    .await;
    assert_eq!(listed.conversations.len(), 1, "the create refused while cut wrote nothing");
    assert_eq!(message_count(&mut client, &id).await, 0);
    // And answers are kept again.
    let asked = ask(&mut client, &id, "When does the kettle boil?").await;
    assert_eq!(asked.done().message_count, 2);

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}
