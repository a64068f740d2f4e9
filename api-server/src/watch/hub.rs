//! The hub: one per api-server process. It alone listens to Redis and reads new
//! events from Postgres, then hands each event to the streams watching its
//! document, its owner, the documents an account reads, or everyone.
//!
//! Whether a document is shared with an account is decided in Postgres when
//! the hub reads a page of events: one query (`share::readers`) for the
//! page's documents and the accounts whose streams read through shares, so
//! from the read after an unshare on, those streams get none of that
//! document's events. A notice on `<prefix>shares-changed` also wakes the
//! streams that watch one document through a share, which check again and
//! end (see `stream.rs`).
//!
//! Redis notices only wake the hub; what it hands out is always what it read
//! from Postgres after its cursor and up to a settled horizon, in id order
//! (below the horizon no lower id can still commit, see
//! `document_event::settled`). So a lost notice delays an event, never loses it:
//! the hub also reads every `FOLIO_WATCH_BACKSTOP_SECS` while Redis is up, and
//! every `FOLIO_WATCH_POLL_MS` while it is not.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use folio_core::config::WatchConfig;
use folio_db::{
    self as db,
    documents::EVENTS_CHANNEL,
    models::{
        document::DocumentFilter,
        document_event::{self, Scope, WatchedEvent},
        share,
    },
};
use folio_proto::v1::WatchResponse;
use futures_util::StreamExt as _;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{auth::guard::REVOCATIONS_CHANNEL, convert::event_to_proto, error::ApiError, sharing::SHARES_CHANNEL, watch::stats::HubStats};

/// An event as streams receive it: what the filters need, and the message,
/// encoded once for all the streams it goes to.
pub struct Delivery {
    pub watched: WatchedEvent,
    pub response: WatchResponse,
}

impl Delivery {
    pub fn new(watched: WatchedEvent) -> Arc<Self> {
        let response = WatchResponse::pre_encoded_event(&event_to_proto(&watched.event));
        Arc::new(Delivery { watched, response })
    }
}

/// Events read per query.
const PAGE: i64 = 500;
/// How often the Redis subscription is pinged to find a dead connection.
const REDIS_PING: Duration = Duration::from_secs(10);
/// How long a Redis connect or ping may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// The handle streams use; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: WatchConfig,
    registry: Mutex<Registry>,
    /// Wakes the reader: a Redis notice, or a new subscription.
    wake: Notify,
    live_notices: AtomicBool,
    fallbacks: AtomicU64,
    /// Counts the share changes that took access away (notices received).
    shares_changed: watch::Sender<u64>,
}

/// Which documents of a page are shared with which reading accounts.
type Readers = HashMap<Uuid, Vec<Uuid>>;

#[derive(Default)]
struct Registry {
    /// Every event up to here is settled and has been handed out (or, while no
    /// stream was open, skipped). Moved under this lock together with the
    /// hand-out, so a stream that reads it after subscribing gets each later
    /// event from the hub and each earlier one from its replay.
    cursor: i64,
    next_id: u64,
    entries: HashMap<u64, Entry>,
    by_scope: HashMap<Scope, Vec<u64>>,
    streams_per_user: HashMap<Uuid, usize>,
    streams: usize,
}

struct Entry {
    scope: Scope,
    filter: Option<Arc<DocumentFilter>>,
    /// For a one-document scope: only while this account reads the document
    /// (owns it, or it is shared with it); None: always (an admin).
    reader: Option<Uuid>,
    session_id: Uuid,
    sender: mpsc::Sender<Arc<Delivery>>,
    revoked: CancellationToken,
}

/// A stream's place in the hub: live events arrive on `events`. When the stream
/// falls more than `FOLIO_WATCH_BUFFER` events behind, the hub drops it and
/// `events` ends: the stream then catches up from Postgres and subscribes
/// again. Dropping the subscription leaves the hub.
pub struct Subscription {
    id: u64,
    pub events: mpsc::Receiver<Arc<Delivery>>,
    /// Cancelled when the stream's session is revoked.
    pub revoked: CancellationToken,
    inner: Arc<Inner>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.inner.lock().remove(self.id);
    }
}

/// One open stream of one account; dropping it frees the place.
pub struct StreamPermit {
    user_id: Uuid,
    inner: Arc<Inner>,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut registry = self.inner.lock();
        registry.streams -= 1;
        if let Some(count) = registry.streams_per_user.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                registry.streams_per_user.remove(&self.user_id);
            }
        }
    }
}

impl Registry {
    /// The accounts whose streams read documents through shares.
    fn readers(&self) -> Vec<Uuid> {
        let mut readers: Vec<Uuid> = self
            .entries
            .values()
            .filter_map(|entry| match entry.scope {
                Scope::Reader(user) => Some(user),
                _ => entry.reader,
            })
            .collect();
        readers.sort_unstable();
        readers.dedup();
        readers
    }

    fn remove(&mut self, id: u64) -> bool {
        let Some(entry) = self.entries.remove(&id) else {
            return false;
        };
        if let Some(ids) = self.by_scope.get_mut(&entry.scope) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.by_scope.remove(&entry.scope);
            }
        }
        true
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands each of `page` to every stream whose scope and filter take it,
    /// `readers` saying which documents are shared with which accounts, as
    /// read for the accounts `among`. Refused (nothing handed out) when a
    /// stream reading through shares opened since `among` was taken: the
    /// page's shares are read again for it. A stream whose buffer is full is
    /// dropped (it catches up from Postgres).
    fn dispatch(&self, page: &[Arc<Delivery>], readers: &Readers, among: &[Uuid]) -> bool {
        let mut registry = self.lock();
        if registry.readers().iter().any(|user| !among.contains(user)) {
            return false;
        }
        let mut behind = Vec::new();
        for delivery in page {
            let watched = &delivery.watched;
            let event = &watched.event;
            registry.cursor = event.id;
            let shared_with = readers.get(&event.document_id).map_or(&[][..], Vec::as_slice);
            let scopes = [
                Scope::Document(event.document_id),
                Scope::Owner(event.owner_id),
                Scope::Everyone,
                Scope::Reader(event.owner_id),
            ]
            .into_iter()
            .chain(shared_with.iter().map(|user| Scope::Reader(*user)));
            for scope in scopes {
                let Some(ids) = registry.by_scope.get(&scope) else {
                    continue;
                };
                for id in ids {
                    if behind.contains(id) {
                        // It misses this one too, and catches up in order.
                        continue;
                    }
                    let entry = &registry.entries[id];
                    let reads = entry
                        .reader
                        .is_none_or(|user| user == event.owner_id || shared_with.contains(&user));
                    let admitted = reads
                        && entry.filter.as_ref().is_none_or(|filter| {
                            filter.admits(
                                event.owner_id,
                                event.state,
                                &watched.labels,
                                &watched.filename,
                                watched.document_created_at,
                            )
                        });
                    if admitted && let Err(mpsc::error::TrySendError::Full(_)) = entry.sender.try_send(delivery.clone()) {
                        behind.push(*id);
                    }
                }
            }
        }
        for id in behind {
            if registry.remove(id) {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }

    /// Ends the streams of the revoked sessions.
    fn revoke(&self, sessions: &[Uuid]) {
        let registry = self.lock();
        for entry in registry.entries.values() {
            if sessions.contains(&entry.session_id) {
                entry.revoked.cancel();
            }
        }
    }

    /// Reads every event after the cursor up to a settled horizon and hands it
    /// out. With no stream open and `skip_when_idle`, the cursor jumps to the
    /// horizon without reading (nobody would receive the events; a stream that
    /// opens later replays up to the cursor).
    async fn catch_up(&self, pool: &db::Pool, skip_when_idle: bool) -> anyhow::Result<()> {
        let mut conn = pool.get().await?;
        let horizon = document_event::settled(&mut conn).await?;
        {
            let mut registry = self.lock();
            if skip_when_idle && registry.entries.is_empty() {
                registry.cursor = registry.cursor.max(horizon);
                return Ok(());
            }
        }
        loop {
            let cursor = self.lock().cursor;
            let page = document_event::list_watched(&mut conn, Scope::Everyone, cursor, horizon, PAGE).await?;
            let full = page.len() as i64 == PAGE;
            let page: Vec<Arc<Delivery>> = page.into_iter().map(Delivery::new).collect();
            let mut documents: Vec<Uuid> = page.iter().map(|d| d.watched.event.document_id).collect();
            documents.sort_unstable();
            documents.dedup();
            loop {
                let among = self.lock().readers();
                let mut readers = Readers::new();
                for pair in share::readers(&mut conn, &documents, &among).await? {
                    readers.entry(pair.document_id).or_default().push(pair.user_id);
                }
                if self.dispatch(&page, &readers, &among) {
                    break;
                }
            }
            if !full {
                // Ids up to the horizon that no event holds were rolled back.
                let mut registry = self.lock();
                registry.cursor = registry.cursor.max(horizon);
                return Ok(());
            }
        }
    }
}

impl Hub {
    /// Starts the hub: its cursor is the settled horizon now; the returned task
    /// runs until `cancel`.
    pub async fn start(
        config: WatchConfig,
        pool: db::Pool,
        redis: redis::Client,
        prefix: &str,
        cancel: CancellationToken,
    ) -> anyhow::Result<(Hub, tokio::task::JoinHandle<()>)> {
        let cursor = document_event::settled(&mut *pool.get().await?).await?;
        let inner = Arc::new(Inner {
            config,
            registry: Mutex::new(Registry {
                cursor,
                ..Registry::default()
            }),
            wake: Notify::new(),
            live_notices: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
            shares_changed: watch::Sender::new(0),
        });
        let channels = Channels {
            events: format!("{prefix}{EVENTS_CHANNEL}"),
            revocations: format!("{prefix}{REVOCATIONS_CHANNEL}"),
            shares: format!("{prefix}{SHARES_CHANNEL}"),
        };
        let listener = tokio::spawn(listen(inner.clone(), redis, channels, cancel.clone()));
        let reader = tokio::spawn(read(inner.clone(), pool, cancel));
        let task = tokio::spawn(async move {
            let _ = listener.await;
            let _ = reader.await;
        });
        Ok((Hub { inner }, task))
    }

    /// Takes a stream place for `user_id`: RESOURCE_EXHAUSTED past
    /// `FOLIO_WATCH_MAX_PER_USER`.
    pub fn admit(&self, user_id: Uuid) -> Result<StreamPermit, ApiError> {
        let mut registry = self.inner.lock();
        let count = registry.streams_per_user.entry(user_id).or_default();
        if *count >= self.inner.config.max_per_user {
            return Err(ApiError::ResourceExhausted {
                message: format!("{count} watch streams are open for this account on this server, the most allowed; close one first"),
                retry_after: Duration::from_secs(5),
            }
            .because("WATCH_LIMIT"));
        }
        *count += 1;
        registry.streams += 1;
        Ok(StreamPermit {
            user_id,
            inner: self.inner.clone(),
        })
    }

    /// Subscribes to the live events in `scope` that pass `filter` (and, for
    /// one document with a `reader`, only while that account reads it).
    pub fn subscribe(&self, scope: Scope, filter: Option<Arc<DocumentFilter>>, session_id: Uuid, reader: Option<Uuid>) -> Subscription {
        let (sender, events) = mpsc::channel(self.inner.config.buffer);
        let revoked = CancellationToken::new();
        let mut registry = self.inner.lock();
        registry.next_id += 1;
        let id = registry.next_id;
        registry.entries.insert(
            id,
            Entry {
                scope,
                filter,
                reader,
                session_id,
                sender,
                revoked: revoked.clone(),
            },
        );
        registry.by_scope.entry(scope).or_default().push(id);
        drop(registry);
        // The hub skips reading while no stream is open: catch up now.
        self.inner.wake.notify_one();
        Subscription {
            id,
            events,
            revoked,
            inner: self.inner.clone(),
        }
    }

    /// The hub's cursor: every event up to it is settled and was handed out
    /// before; every later one will be handed to the streams subscribed now.
    /// A stream replays from Postgres up to here.
    pub fn cursor(&self) -> i64 {
        self.inner.lock().cursor
    }

    /// Changes each time a share change that took access away is announced.
    pub fn shares_changed(&self) -> watch::Receiver<u64> {
        self.inner.shares_changed.subscribe()
    }

    pub fn stats(&self) -> HubStats {
        HubStats {
            streams: self.inner.lock().streams,
            live_notices: self.inner.live_notices.load(Ordering::Relaxed),
            fallbacks: self.inner.fallbacks.load(Ordering::Relaxed),
        }
    }

    pub fn config(&self) -> &WatchConfig {
        &self.inner.config
    }
}

struct Channels {
    events: String,
    revocations: String,
    shares: String,
}

/// Reads new events whenever woken, and on a timer: the backstop while Redis
/// notices arrive, `FOLIO_WATCH_POLL_MS` while they do not. While no stream is
/// open, notices are ignored and the timer only moves the cursor, so a busy
/// log with nobody watching costs one settled horizon per interval.
async fn read(inner: Arc<Inner>, pool: db::Pool, cancel: CancellationToken) {
    let mut failing = false;
    loop {
        let interval = if inner.live_notices.load(Ordering::Relaxed) {
            inner.config.backstop
        } else {
            inner.config.poll
        };
        let woken = tokio::select! {
            () = cancel.cancelled() => return,
            () = inner.wake.notified() => true,
            () = tokio::time::sleep(interval) => false,
        };
        if woken && inner.lock().entries.is_empty() {
            continue;
        }
        match inner.catch_up(&pool, !woken).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!(cursor = inner.lock().cursor, "watch: reading events again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(error = format!("{error:#}"), "watch: cannot read new events; retrying");
            }
            Err(_) => {}
        }
    }
}

/// Keeps one Redis subscription to the event, revocation and share channels,
/// reconnecting with backoff; while it is down the reader polls.
async fn listen(inner: Arc<Inner>, client: redis::Client, channels: Channels, cancel: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut subscriptions = 0_u64;
    metrics::counter!(folio_core::metrics::REDIS_RECONNECTS).increment(0);
    metrics::gauge!(folio_core::metrics::WATCH_STREAMS).increment(0.0);
    loop {
        let lost = tokio::select! {
            () = cancel.cancelled() => return,
            lost = subscribed(&inner, &client, &channels, &mut backoff, &mut subscriptions) => lost,
        };
        if inner.live_notices.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %lost, poll = ?inner.config.poll, "watch: Redis notices lost; polling Postgres until they return");
            // The reader switches to its polling interval now.
            inner.wake.notify_one();
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Subscribes and forwards notices until the connection fails. Counts the
/// subscriptions made in `subscriptions` (all but the first are reconnects).
async fn subscribed(
    inner: &Inner,
    client: &redis::Client,
    channels: &Channels,
    backoff: &mut Duration,
    subscriptions: &mut u64,
) -> redis::RedisError {
    let connected = async {
        let pubsub = tokio::time::timeout(REDIS_TIMEOUT, client.get_async_pubsub())
            .await
            .map_err(|_| timed_out("connect"))??;
        let (mut sink, stream) = pubsub.split();
        tokio::time::timeout(
            REDIS_TIMEOUT,
            sink.subscribe(&[&channels.events, &channels.revocations, &channels.shares]),
        )
        .await
        .map_err(|_| timed_out("subscribe"))??;
        redis::RedisResult::Ok((sink, stream))
    };
    let (mut sink, mut stream) = match connected.await {
        Ok(connected) => connected,
        Err(error) => return error,
    };
    *backoff = Duration::from_millis(100);
    if *subscriptions > 0 {
        metrics::counter!(folio_core::metrics::REDIS_RECONNECTS).increment(1);
    }
    *subscriptions += 1;
    inner.live_notices.store(true, Ordering::Relaxed);
    tracing::info!("watch: live notices from Redis");
    // Events committed while the subscription was down are read now.
    inner.wake.notify_one();
    let mut ping = tokio::time::interval(REDIS_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return timed_out("the subscription ended");
                };
                if message.get_channel_name() == channels.revocations {
                    let sessions: Vec<Uuid> = serde_json::from_slice(message.get_payload_bytes()).unwrap_or_default();
                    inner.revoke(&sessions);
                } else if message.get_channel_name() == channels.shares {
                    inner.shares_changed.send_modify(|changes| *changes += 1);
                } else {
                    inner.wake.notify_one();
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(REDIS_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return error,
                    Err(_) => return timed_out("ping"),
                }
            }
        }
    }
}

fn timed_out(what: &'static str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Io, "Redis subscription", what.to_owned()))
}
