//! What tests do between starting servers and asserting: wait for a condition
//! ([`eventually`], [`wait_for`], [`wait_for_state`], [`outbox_drained`]),
//! make documents ([`upload_document`], [`upload_ready`], [`create_document`],
//! [`prose`]), read what happened
//! ([`document_events`], [`ready_messages`], [`health_status`],
//! [`violated_fields`]) and publish jobs by hand ([`publisher`]).

use std::{future::Future, time::Duration};

use folio_db as db;
use folio_proto::v1::{Document, DocumentState, GetDocumentRequest, document_service_client::DocumentServiceClient};
use tonic::transport::Channel;

use crate::{clients::Authed, environment::amqp_url};

/// The lease of a try a test starts by hand, outside any worker: held by no
/// worker (the nil id), so no heartbeat renews it; a minute outlasts any test.
pub const HAND_LEASE: folio_db::documents::lifecycle::Lease = folio_db::documents::lifecycle::Lease {
    worker: uuid::Uuid::nil(),
    ttl: Duration::from_secs(60),
};

/// Polls `probe` until it returns Some, panicking with `what` after
/// `timeout`: every 50 ms for the first 5 s, then every 500 ms, so a long wait
/// through the API (a slow job on a loaded machine) stays well inside a
/// member's rate limit (600 calls a minute) instead of using it up.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(Duration::from_millis(50), Duration::from_millis(500), timeout, what, probe).await
}

/// [`eventually`], polling every `interval`: a benchmark polls rarely so its
/// own calls stay out of the way of the work it measures.
pub async fn eventually_every<T, F, Fut>(interval: Duration, timeout: Duration, what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(interval, interval, timeout, what, probe).await
}

/// Polls every `first` for 5 s, then every `later`.
async fn poll<T, F, Fut>(first: Duration, later: Duration, timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        let interval = if started.elapsed() < Duration::from_secs(5) { first } else { later };
        tokio::time::sleep(interval).await;
    }
}

/// Uploads `bytes` as `name` through the streaming `UploadDocument`, in 1 MiB
/// messages, panicking on failure.
pub async fn upload_document(client: &mut DocumentServiceClient<Authed>, name: &str, bytes: &[u8]) -> Document {
    use folio_proto::v1::{DocumentMetadata, UploadDocumentRequest, upload_document_request::Part};
    let mut requests = vec![UploadDocumentRequest {
        part: Some(Part::Metadata(DocumentMetadata {
            filename: name.into(),
            ..Default::default()
        })),
    }];
    requests.extend(bytes.chunks(1 << 20).map(|c| UploadDocumentRequest {
        part: Some(Part::Chunk(c.to_vec())),
    }));
    client
        .upload_document(tokio_stream::iter(requests))
        .await
        .expect("upload")
        .into_inner()
        .document
        .expect("a document")
}

/// Creates a document from `content` with `CreateDocument`, panicking on
/// failure.
pub async fn create_document(client: &mut DocumentServiceClient<Authed>, name: &str, labels: &[&str], content: &[u8]) -> Document {
    use folio_proto::v1::{CreateDocumentRequest, DocumentMetadata};
    client
        .create_document(CreateDocumentRequest {
            metadata: Some(DocumentMetadata {
                filename: name.into(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                ..Default::default()
            }),
            content: content.to_vec(),
        })
        .await
        .unwrap_or_else(|status| panic!("create {name}: {status:?}"))
        .into_inner()
        .document
        .expect("a document")
}

/// Polls `GetDocument` until document `id` satisfies `predicate`, for up to
/// `timeout`, and returns it; `what` names the wait in the timeout's panic.
pub async fn wait_for(
    client: &DocumentServiceClient<Authed>,
    id: &str,
    timeout: Duration,
    what: &str,
    predicate: impl Fn(&Document) -> bool,
) -> Document {
    eventually(timeout, &format!("document {id} {what}"), || {
        let mut client = client.clone();
        let id = id.to_owned();
        let predicate = &predicate;
        async move {
            let document = client.get_document(GetDocumentRequest { id }).await.ok()?.into_inner();
            predicate(&document).then_some(document)
        }
    })
    .await
}

/// Polls `GetDocument` until document `id` is in `wanted`, for up to
/// `timeout`. Panics at once if it fails while something else is wanted.
pub async fn wait_for_state(client: &DocumentServiceClient<Authed>, id: &str, wanted: DocumentState, timeout: Duration) -> Document {
    wait_for(client, id, timeout, &format!("{wanted:?}"), |document| {
        if wanted != DocumentState::Failed {
            assert_ne!(
                document.state(),
                DocumentState::Failed,
                "{} failed: {}",
                document.filename,
                document.error_message
            );
        }
        document.state() == wanted
    })
    .await
}

/// Uploads `bytes` as `name` (see [`upload_document`]) and waits up to
/// `timeout` for the document to be READY.
pub async fn upload_ready(client: &mut DocumentServiceClient<Authed>, name: &str, bytes: &[u8], timeout: Duration) -> Document {
    let document = upload_document(client, name, bytes).await;
    wait_for_state(client, &document.id, DocumentState::Ready, timeout).await
}

/// Up to 1,000 of a document's events, oldest first.
pub async fn document_events(client: &DocumentServiceClient<Authed>, id: &str) -> Vec<folio_proto::v1::DocumentEvent> {
    client
        .clone()
        .list_document_events(folio_proto::v1::ListDocumentEventsRequest {
            document_id: id.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListDocumentEvents")
        .into_inner()
        .events
}

/// Waits until the relay has marked every outbox row sent. The mark commits
/// just after the broker's confirm, so a worker can record a job a moment
/// before its row reads as sent.
pub async fn outbox_drained(pool: &db::Pool) {
    eventually(Duration::from_secs(10), "the outbox drained", || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.ok()?;
            (db::models::outbox::count_unsent(&mut conn).await.ok()? == 0).then_some(())
        }
    })
    .await;
}

/// About `words` words of varied prose in paragraphs: a document of many
/// chunks.
pub fn prose(words: usize) -> Vec<u8> {
    let vocabulary = [
        "heron", "marsh", "reed", "water", "rail", "tide", "estuary", "mud", "flight", "nest", "wader", "curlew",
    ];
    let mut out = String::with_capacity(words * 8);
    for i in 0..words {
        out.push_str(vocabulary[(i * 7 + i / 13) % vocabulary.len()]);
        out.push_str(if i % 60 == 59 { ".\n\n" } else { " " });
    }
    out.into_bytes()
}

/// Messages ready on `queue` (a passive declare; the queue must exist).
pub async fn ready_messages(queue: &str) -> u32 {
    passive_counts(&amqp_url(), queue).await.0
}

/// The messages `queue` holds ready and its consumers, as a passive declare
/// on the broker at `url` answers them (at once, unlike the broker's
/// statistics).
pub async fn passive_counts(url: &str, queue: &str) -> (u32, u32) {
    let connection = lapin::Connection::connect(url, Default::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let declared = channel
        .queue_declare(queue.into(), passive, Default::default())
        .await
        .expect("the queue exists");
    let _ = connection.close(200, "done".into()).await;
    (declared.message_count(), declared.consumer_count())
}

/// Kills a child process with SIGKILL, as a crash or the OOM killer would.
pub fn sigkill(child: &tokio::process::Child) {
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// A RabbitMQ connection and a channel with publisher confirms, for a test
/// that publishes jobs by hand (keep the connection while using the channel).
pub async fn publisher() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(&amqp_url(), Default::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .expect("publisher confirms");
    (connection, channel)
}

/// The health of `service` ("" for the server), or None if unreachable.
pub async fn health_status(url: &str, service: &str) -> Option<tonic_health::pb::health_check_response::ServingStatus> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let channel = Channel::from_shared(url.to_owned()).ok()?.connect().await.ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service: service.into() })
        .await
        .ok()?;
    Some(response.into_inner().status())
}

/// The fields a status's BadRequest details name, in order (none without
/// details).
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| v.field.clone()).collect())
        .unwrap_or_default()
}

/// The reason of a status's ErrorInfo ("" without one).
pub fn reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt as _;
    status.get_details_error_info().map(|info| info.reason).unwrap_or_default()
}
