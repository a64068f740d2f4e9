//! Groups and sharing end to end, through the real api-server with Postgres,
//! RabbitMQ and Redis (and a worker where documents must be READY): admins'
//! groups, owners' document and label shares, every read path a reader has
//! (documents, chunks, events, downloads, search, watch streams), writes
//! refused to readers, strangers still answered NOT_FOUND, and access taken
//! away at the next call.

use std::{collections::BTreeSet, time::Duration};

use diesel_async::AsyncConnection as _;
use folio_core::cache::Cache;
use folio_db::documents::{
    self,
    lifecycle::{self, LifecycleError, Note, Try},
    state::Stage,
};
use folio_proto::v1::{
    CancelDocumentRequest, CreateGroupRequest, CreateUserRequest, DeleteDocumentRequest, DeleteGroupRequest, DocumentState,
    DownloadDocumentRequest, DownloadFormat, GetDocumentRequest, GroupMembersRequest, ListChunksRequest, ListDocumentEventsRequest,
    ListDocumentsRequest, ListGroupsRequest, ListSharesRequest, RenameGroupRequest, RetryDocumentRequest, Role, SearchMode, SearchRequest,
    ShareDocumentRequest, ShareLabelRequest, UnshareRequest, WatchDocumentRequest, WatchDocumentsRequest, WatchResponse, Whose,
    document_service_client::DocumentServiceClient, search_service_client::SearchServiceClient,
    sharing_service_client::SharingServiceClient, watch_response::Item,
};
use folio_tests::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ApiHandle, Authed, TestEnv, create_document, eventually, helpers::HAND_LEASE, reason, violated_fields,
    wait_for_state,
};
use futures_util::StreamExt as _;
use tonic::{Code, Streaming};
use uuid::Uuid;

const READY_WITHIN: Duration = Duration::from_secs(300);

/// The clients one account uses.
struct Account {
    id: String,
    documents: DocumentServiceClient<Authed>,
    search: SearchServiceClient<Authed>,
    sharing: SharingServiceClient<Authed>,
}

async fn account(api: &ApiHandle, session: folio_proto::v1::Session) -> Account {
    let channel = api.authed(&session.access_token).await;
    Account {
        id: session.user.expect("the session's user").id,
        documents: DocumentServiceClient::new(channel.clone()),
        search: SearchServiceClient::new(channel.clone()),
        sharing: SharingServiceClient::new(channel),
    }
}

async fn member(api: &ApiHandle) -> Account {
    account(api, api.register_member().await).await
}

async fn admin(api: &ApiHandle) -> Account {
    account(api, api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await).await
}

/// A new account with the viewer role, signed in.
async fn viewer(api: &ApiHandle) -> Account {
    let email = format!("viewer-{}@folio.test", Uuid::new_v4().simple());
    api.admin_users()
        .await
        .create_user(CreateUserRequest {
            email: email.clone(),
            password: "a viewer's passphrase".into(),
            display_name: String::new(),
            role: Role::Viewer as i32,
        })
        .await
        .expect("create a viewer");
    account(api, api.login(&email, "a viewer's passphrase").await).await
}

/// The code of `id`'s GetDocument as `reader` sees it (Ok when found).
async fn get_code(reader: &mut Account, id: &str) -> Code {
    match reader.documents.get_document(GetDocumentRequest { id: id.into() }).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The ids ListDocuments shows `reader` with `whose`.
async fn listed(reader: &mut Account, whose: Whose) -> BTreeSet<String> {
    reader
        .documents
        .list_documents(ListDocumentsRequest {
            whose: whose as i32,
            ..Default::default()
        })
        .await
        .expect("list documents")
        .into_inner()
        .documents
        .into_iter()
        .map(|d| d.id)
        .collect()
}

/// The documents a search for `query` finds for `reader`, in `mode`.
async fn found(reader: &mut Account, query: &str, mode: SearchMode) -> BTreeSet<String> {
    reader
        .search
        .search(SearchRequest {
            query: query.into(),
            mode: mode as i32,
            top_k: 20,
            ..Default::default()
        })
        .await
        .expect("search")
        .into_inner()
        .results
        .into_iter()
        .map(|r| r.document_id)
        .collect()
}

/// Creates documents (filename, one label, Markdown) as `owner` and waits
/// until each is READY; their ids.
async fn ready<const N: usize>(owner: &mut Account, documents: [(&str, &str, &str); N]) -> [String; N] {
    let mut ids = Vec::new();
    for (name, label, text) in documents {
        ids.push(create_document(&mut owner.documents, name, &[label], text.as_bytes()).await.id);
    }
    for id in &ids {
        wait_for_state(&owner.documents, id, DocumentState::Ready, READY_WITHIN).await;
    }
    ids.try_into().expect("one id per document")
}

/// The ids of the shares reaching `document`, as its owner lists them.
async fn shares_of(owner: &mut Account, document: &str) -> Vec<String> {
    owner
        .sharing
        .list_shares(ListSharesRequest {
            document_id: document.into(),
            ..Default::default()
        })
        .await
        .expect("list shares")
        .into_inner()
        .shares
        .into_iter()
        .map(|s| s.id)
        .collect()
}

async fn share_with_user(owner: &mut Account, document: &str, user: &str) -> folio_proto::v1::Share {
    owner
        .sharing
        .share_document(ShareDocumentRequest {
            document_id: document.into(),
            user_id: user.into(),
            ..Default::default()
        })
        .await
        .expect("share a document")
        .into_inner()
}

async fn create_group(admin: &mut Account, name: &str, members: &[&str]) -> String {
    let group = admin
        .sharing
        .create_group(CreateGroupRequest { name: name.into() })
        .await
        .expect("create a group")
        .into_inner();
    if !members.is_empty() {
        admin
            .sharing
            .add_group_members(GroupMembersRequest {
                group_id: group.id.clone(),
                user_ids: members.iter().map(|m| m.to_string()).collect(),
            })
            .await
            .expect("add members");
    }
    group.id
}

/// Whether the audit log has a row of `rpc` with `event` and `target`.
async fn audited(api: &ApiHandle, rpc: &str, event: &str, target: &str) -> bool {
    api.audit_of(&format!("/folio.v1.SharingService/{rpc}"))
        .await
        .iter()
        .any(|row| row.event == event && row.target == target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_managed_by_admins_listed_by_their_members_and_audited() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let mut admin = admin(&api).await;
    let mut bob = member(&api).await;
    let mut carol = member(&api).await;
    let mut dave = member(&api).await;

    let refused = bob
        .sharing
        .create_group(CreateGroupRequest { name: "Mine".into() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = admin
        .sharing
        .create_group(CreateGroupRequest { name: "  ".into() })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["name"]);

    let id = create_group(&mut admin, "Research", &[]).await;
    let taken = admin
        .sharing
        .create_group(CreateGroupRequest { name: "research".into() })
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "names are unique case-insensitively");
    let renamed = admin
        .sharing
        .rename_group(RenameGroupRequest {
            group_id: id.clone(),
            name: "Field research".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "Field research");
    let unknown = admin
        .sharing
        .add_group_members(GroupMembersRequest {
            group_id: id.clone(),
            user_ids: vec![Uuid::new_v4().to_string()],
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let group = admin
        .sharing
        .add_group_members(GroupMembersRequest {
            group_id: id.clone(),
            user_ids: vec![bob.id.clone(), carol.id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        group.member_ids.iter().collect::<BTreeSet<_>>(),
        BTreeSet::from([&bob.id, &carol.id])
    );

    // Members list their own groups; others none; an admin every group.
    let other = create_group(&mut admin, "Other", &[&dave.id]).await;
    let bobs = bob.sharing.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups;
    assert_eq!(bobs.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["Field research"]);
    let daves = dave.sharing.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups;
    assert_eq!(daves.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(), [other.as_str()]);
    let all = admin.sharing.list_groups(ListGroupsRequest {}).await.unwrap().into_inner().groups;
    assert_eq!(all.len(), 2);

    // Only admins change groups.
    let members = GroupMembersRequest {
        group_id: id.clone(),
        user_ids: vec![carol.id.clone()],
    };
    for status in [
        bob.sharing
            .rename_group(RenameGroupRequest {
                group_id: id.clone(),
                name: "Ours".into(),
            })
            .await
            .unwrap_err(),
        bob.sharing.add_group_members(members.clone()).await.unwrap_err(),
        bob.sharing.remove_group_members(members.clone()).await.unwrap_err(),
        bob.sharing
            .delete_group(DeleteGroupRequest { group_id: id.clone() })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(reason(&status), "ROLE_REQUIRED");
    }

    let group = admin.sharing.remove_group_members(members).await.unwrap().into_inner();
    assert_eq!(group.member_ids, [bob.id.clone()]);
    assert!(
        carol
            .sharing
            .list_groups(ListGroupsRequest {})
            .await
            .unwrap()
            .into_inner()
            .groups
            .is_empty()
    );
    admin
        .sharing
        .delete_group(DeleteGroupRequest { group_id: id.clone() })
        .await
        .unwrap();
    assert!(
        bob.sharing
            .list_groups(ListGroupsRequest {})
            .await
            .unwrap()
            .into_inner()
            .groups
            .is_empty()
    );

    let target = format!("group:{id}");
    for (rpc, event) in [
        ("CreateGroup", "group_created"),
        ("RenameGroup", "group_renamed"),
        ("AddGroupMembers", "group_members_added"),
        ("RemoveGroupMembers", "group_members_removed"),
        ("DeleteGroup", "group_deleted"),
    ] {
        eventually(Duration::from_secs(10), &format!("the audit row of {rpc}"), || async {
            audited(&api, rpc, event, &target).await.then_some(())
        })
        .await;
    }

    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_document_is_read_everywhere_by_its_readers_changed_only_by_its_owner_and_gone_at_the_next_call_after_unsharing() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let mut alice = member(&api).await;
    let mut bob = member(&api).await;
    let mut carol = member(&api).await;
    let mut vera = viewer(&api).await;
    let [herons, private] = ready(
        &mut alice,
        [
            ("herons.md", "birds", "# Herons\n\nThe grey heron wades in the marsh at dawn.\n"),
            (
                "private.md",
                "birds",
                "# Diary\n\nA heron again in the marsh today, and my own thoughts.\n",
            ),
        ],
    )
    .await;

    // Before any share: strangers, and a viewer, see nothing of it.
    for reader in [&mut bob, &mut carol, &mut vera] {
        assert_eq!(get_code(reader, &herons).await, Code::NotFound);
        assert!(listed(reader, Whose::Unspecified).await.is_empty());
        assert!(found(reader, "heron marsh", SearchMode::Hybrid).await.is_empty());
    }

    let share = share_with_user(&mut alice, &herons, &bob.id).await;
    assert_eq!((share.owner_id.as_str(), share.label.as_str()), (alice.id.as_str(), ""));
    let again = share_with_user(&mut alice, &herons, &bob.id).await;
    assert_eq!(again.id, share.id, "sharing again finds the share");

    // Bob reads it everywhere a reader reads.
    assert_eq!(get_code(&mut bob, &herons).await, Code::Ok);
    assert_eq!(get_code(&mut bob, &private).await, Code::NotFound);
    assert_eq!(listed(&mut bob, Whose::All).await, BTreeSet::from([herons.clone()]));
    assert_eq!(listed(&mut bob, Whose::Shared).await, BTreeSet::from([herons.clone()]));
    assert!(listed(&mut bob, Whose::Mine).await.is_empty());
    assert!(listed(&mut alice, Whose::Shared).await.is_empty());
    assert_eq!(listed(&mut alice, Whose::Mine).await.len(), 2);
    let mut download = bob
        .documents
        .download_document(DownloadDocumentRequest {
            id: herons.clone(),
            format: DownloadFormat::Markdown as i32,
        })
        .await
        .expect("download")
        .into_inner();
    let mut markdown = Vec::new();
    while let Some(part) = download.next().await {
        markdown.extend(part.expect("a part").data);
    }
    assert!(String::from_utf8_lossy(&markdown).contains("grey heron"));
    let chunks = bob
        .documents
        .list_chunks(ListChunksRequest {
            document_id: herons.clone(),
            ..Default::default()
        })
        .await
        .expect("chunks")
        .into_inner()
        .chunks;
    assert!(!chunks.is_empty());
    let events = bob
        .documents
        .list_document_events(ListDocumentEventsRequest {
            document_id: herons.clone(),
            ..Default::default()
        })
        .await
        .expect("events")
        .into_inner()
        .events;
    assert!(events.iter().any(|e| e.state() == DocumentState::Ready));
    for mode in [SearchMode::Hybrid, SearchMode::Vector, SearchMode::Keyword] {
        assert_eq!(
            found(&mut bob, "heron marsh", mode).await,
            BTreeSet::from([herons.clone()]),
            "{mode:?}"
        );
    }
    let narrowed = bob
        .search
        .search(SearchRequest {
            query: "heron".into(),
            document_ids: vec![private.clone()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&narrowed), ["document_ids[0]"], "not shared, so not searchable");

    // Only the owner (or an admin) changes or shares it: a reader is told
    // why, a stranger still finds nothing.
    let id = || herons.clone();
    for status in [
        bob.documents.delete_document(DeleteDocumentRequest { id: id() }).await.unwrap_err(),
        bob.documents.cancel_document(CancelDocumentRequest { id: id() }).await.unwrap_err(),
        bob.documents.retry_document(RetryDocumentRequest { id: id() }).await.unwrap_err(),
        bob.sharing
            .share_document(ShareDocumentRequest {
                document_id: id(),
                user_id: carol.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert_eq!(reason(&status), "SHARED_FOR_READING");
    }
    for status in [
        carol
            .documents
            .delete_document(DeleteDocumentRequest { id: id() })
            .await
            .unwrap_err(),
        carol
            .sharing
            .share_document(ShareDocumentRequest {
                document_id: id(),
                user_id: carol.id.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        bob.sharing
            .unshare(UnshareRequest {
                share_id: share.id.clone(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    assert_eq!(shares_of(&mut alice, &herons).await, [share.id.as_str()]);
    assert!(
        bob.sharing
            .list_shares(ListSharesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .shares
            .is_empty()
    );

    // A viewer reads only what is shared with them, and shares nothing.
    share_with_user(&mut alice, &herons, &vera.id).await;
    assert_eq!(listed(&mut vera, Whose::Unspecified).await, BTreeSet::from([herons.clone()]));
    assert_eq!(
        found(&mut vera, "heron marsh", SearchMode::Hybrid).await,
        BTreeSet::from([herons.clone()])
    );
    let refused = vera
        .sharing
        .share_label(ShareLabelRequest {
            label: "birds".into(),
            user_id: bob.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Unshared: gone from Bob's next call, searches included.
    alice
        .sharing
        .unshare(UnshareRequest {
            share_id: share.id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(get_code(&mut bob, &herons).await, Code::NotFound);
    assert!(listed(&mut bob, Whose::All).await.is_empty());
    for mode in [SearchMode::Hybrid, SearchMode::Vector, SearchMode::Keyword] {
        assert!(found(&mut bob, "heron marsh", mode).await.is_empty(), "{mode:?}");
    }
    assert_eq!(get_code(&mut vera, &herons).await, Code::Ok, "Vera's own share stays");

    let target = format!("share:{}", share.id);
    eventually(Duration::from_secs(10), "the share's audit rows", || async {
        (audited(&api, "ShareDocument", "shared", &target).await && audited(&api, "Unshare", "unshared", &target).await).then_some(())
    })
    .await;

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_share_covers_documents_labelled_later_and_leaving_the_group_applies_at_the_next_call() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let worker = env.spawn_worker();
    let mut admin = admin(&api).await;
    let mut alice = member(&api).await;
    let mut bob = member(&api).await;
    let team = create_group(&mut admin, "Team", &[&bob.id]).await;

    // Shared before any document carries the label.
    let share = alice
        .sharing
        .share_label(ShareLabelRequest {
            label: "field".into(),
            group_id: team.clone(),
            ..Default::default()
        })
        .await
        .expect("share a label")
        .into_inner();
    assert_eq!((share.label.as_str(), share.group_id.as_str()), ("field", team.as_str()));
    let [labelled, unlabelled] = ready(
        &mut alice,
        [
            (
                "plovers.md",
                "field",
                "# Plovers\n\nThe ringed plover runs along the shingle beach.\n",
            ),
            ("terns.md", "notes", "# Terns\n\nThe little tern dives over the shingle beach.\n"),
        ],
    )
    .await;

    assert_eq!(get_code(&mut bob, &labelled).await, Code::Ok);
    assert_eq!(get_code(&mut bob, &unlabelled).await, Code::NotFound);
    assert_eq!(listed(&mut bob, Whose::Shared).await, BTreeSet::from([labelled.clone()]));
    assert_eq!(
        found(&mut bob, "shingle beach", SearchMode::Hybrid).await,
        BTreeSet::from([labelled.clone()])
    );
    let by_label = bob
        .search
        .search(SearchRequest {
            query: "shingle".into(),
            labels: vec!["field".into()],
            ..Default::default()
        })
        .await
        .expect("a label Bob reads")
        .into_inner();
    assert!(by_label.results.iter().all(|r| r.document_id == labelled) && !by_label.results.is_empty());
    assert_eq!(shares_of(&mut alice, &labelled).await, [share.id.as_str()]);

    // Only an admin names another owner.
    let refused = bob
        .sharing
        .share_label(ShareLabelRequest {
            label: "notes".into(),
            user_id: bob.id.clone(),
            owner_id: alice.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let by_admin = admin
        .sharing
        .share_label(ShareLabelRequest {
            label: "notes".into(),
            user_id: bob.id.clone(),
            owner_id: alice.id.clone(),
            ..Default::default()
        })
        .await
        .expect("an admin shares another owner's label")
        .into_inner();
    assert_eq!(get_code(&mut bob, &unlabelled).await, Code::Ok);
    admin
        .sharing
        .unshare(UnshareRequest { share_id: by_admin.id })
        .await
        .expect("an admin unshares");
    assert_eq!(get_code(&mut bob, &unlabelled).await, Code::NotFound);

    // Out of the group: nothing shared with it is Bob's to read, from his
    // next call on.
    admin
        .sharing
        .remove_group_members(GroupMembersRequest {
            group_id: team,
            user_ids: vec![bob.id.clone()],
        })
        .await
        .unwrap();
    assert_eq!(get_code(&mut bob, &labelled).await, Code::NotFound);
    assert!(listed(&mut bob, Whose::All).await.is_empty());
    assert!(found(&mut bob, "shingle beach", SearchMode::Hybrid).await.is_empty());

    worker.stop().await.unwrap();
    api.stop().await.unwrap();
    env.cleanup().await;
}

/// The events (ids) a stream gives until `wanted` arrives, or how it ended,
/// within 30 s (heartbeats do not extend the wait).
async fn events_until(stream: &mut Streaming<WatchResponse>, wanted: i64) -> Result<Vec<i64>, tonic::Status> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => panic!("no event {wanted} within 30 s; saw {seen:?}"),
            Ok(None) => panic!("the stream ended without event {wanted}; saw {seen:?}"),
            Ok(Some(Err(status))) => return Err(status),
            Ok(Some(Ok(WatchResponse {
                item: Some(Item::Event(event)),
                ..
            }))) => {
                seen.push(event.id);
                if event.id == wanted {
                    return Ok(seen);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Starts a try at `id`, as a worker does; the try and its event's id.
async fn start_try(env: &TestEnv, cache: &Cache, id: &str) -> (Try, i64) {
    let at = Try {
        attempt: 1,
        number: 1,
        max: 3,
        token: Uuid::new_v4(),
    };
    let mut conn = env.pool().get().await.unwrap();
    let started = lifecycle::start_try(&mut conn, id.parse().unwrap(), &at, &HAND_LEASE)
        .await
        .unwrap();
    let event = started.event.unwrap();
    documents::announce(cache, &event).await;
    (at, event.id)
}

/// A progress event of try `at` on `id`, as a worker writes one; its id.
async fn progress(env: &TestEnv, cache: &Cache, id: &str, at: &Try) -> i64 {
    let mut conn = env.pool().get().await.unwrap();
    let note = Note {
        percent: 10,
        message: "parsing".into(),
        details: serde_json::json!({}),
    };
    let moved = conn
        .transaction(async |conn| Ok::<_, LifecycleError>(lifecycle::progress(conn, id.parse().unwrap(), at, Stage::Parse, note).await))
        .await
        .unwrap()
        .expect("a progress event");
    let event = moved.event.unwrap();
    documents::announce(cache, &event).await;
    event.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_stop_delivering_a_document_once_its_reader_lost_access() {
    let mut env = TestEnv::new().await;
    let api = env.spawn_api().await;
    let config = env.config();
    let cache = Cache::connect(&config.redis_url, &config.redis_prefix).await.unwrap();
    let mut admin = admin(&api).await;
    let mut alice = member(&api).await;
    let mut bob = member(&api).await;
    let mut carol = member(&api).await;
    let team = create_group(&mut admin, "Team", &[&bob.id]).await;
    // No worker: the test writes each event as a worker would.
    let through_group = create_document(&mut alice.documents, "group.md", &[], b"# Shared with the team\n")
        .await
        .id;
    let direct = create_document(&mut alice.documents, "direct.md", &[], b"# Shared with Bob\n")
        .await
        .id;
    alice
        .sharing
        .share_document(ShareDocumentRequest {
            document_id: through_group.clone(),
            group_id: team.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    share_with_user(&mut alice, &direct, &bob.id).await;

    // A stranger cannot watch it.
    let refused = carol
        .documents
        .watch_document(WatchDocumentRequest {
            document_id: through_group.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    let mut one = bob
        .documents
        .watch_document(WatchDocumentRequest {
            document_id: through_group.clone(),
            after_event_id: 0,
            follow: true,
        })
        .await
        .expect("watch the shared document")
        .into_inner();
    let mut all = bob
        .documents
        .watch_documents(WatchDocumentsRequest {
            after_event_id: Some(0),
            whose: Whose::Shared as i32,
            ..Default::default()
        })
        .await
        .expect("watch what is shared with Bob")
        .into_inner();
    let (at, started) = start_try(&env, &cache, &through_group).await;
    events_until(&mut one, started).await.expect("the shared document's event");
    events_until(&mut all, started).await.expect("the shared document's event");

    // Out of the group: the one-document stream ends, and the other leaves
    // that document out while it still gets what is shared with Bob himself.
    admin
        .sharing
        .remove_group_members(GroupMembersRequest {
            group_id: team,
            user_ids: vec![bob.id.clone()],
        })
        .await
        .unwrap();
    let ended = events_until(&mut one, i64::MAX).await.expect_err("the stream ends");
    assert_eq!(ended.code(), Code::NotFound, "{ended:?}");
    assert!(ended.message().contains("no longer shared"), "{}", ended.message());
    let hidden = progress(&env, &cache, &through_group, &at).await;
    let (_, still_shared) = start_try(&env, &cache, &direct).await;
    let seen = events_until(&mut all, still_shared).await.expect("the direct share's event");
    assert!(
        !seen.contains(&hidden),
        "event {hidden} of a document no longer shared arrived: {seen:?}"
    );

    api.stop().await.unwrap();
    env.cleanup().await;
}
