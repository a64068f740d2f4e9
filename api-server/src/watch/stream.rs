//! One watch stream, as a `Stream` of responses that tonic polls: nothing runs
//! while the client is not reading (HTTP/2 flow control holds the stream), and
//! dropping it (the client went away) leaves the hub.

use std::{collections::VecDeque, pin::Pin, sync::Arc};

use chrono::Utc;
use folio_db::{
    self as db,
    models::{
        document::{self, DocumentFilter},
        document_event::{self, Scope, WatchedEvent},
        share,
    },
};
use folio_proto::v1 as pb;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use uuid::Uuid;

use super::hub::{Delivery, Hub, StreamPermit, Subscription};
use crate::{
    auth::{self, Principal},
    convert::timestamp,
    error::ApiError,
};

/// Events read from Postgres per query while catching up.
const PAGE: i64 = 200;

/// The stream type both watch RPCs return.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, tonic::Status>> + Send>>;

/// What a stream watches.
#[derive(Debug, Clone)]
pub enum Target {
    /// One document; the stream ends after its terminal event unless `follow`.
    /// With a `reader`, the hub hands over its events only while that
    /// account reads it; `shared`: it reads it through a share, so the stream
    /// checks again whenever a share change is announced, and ends with
    /// NOT_FOUND once it is no longer shared.
    Document {
        id: Uuid,
        follow: bool,
        reader: Option<Uuid>,
        shared: bool,
    },
    /// The documents in `scope` that pass `filter`; never ends by itself.
    Documents { scope: Scope, filter: Arc<DocumentFilter> },
}

impl Target {
    fn scope(&self) -> Scope {
        match self {
            Target::Document { id, .. } => Scope::Document(*id),
            Target::Documents { scope, .. } => *scope,
        }
    }

    fn filter(&self) -> Option<Arc<DocumentFilter>> {
        match self {
            Target::Document { .. } => None,
            Target::Documents { filter, .. } => Some(filter.clone()),
        }
    }

    fn reader(&self) -> Option<Uuid> {
        match self {
            Target::Document { reader, .. } => *reader,
            Target::Documents { .. } => None,
        }
    }

    /// Whether access comes from a share, to check again when shares change.
    fn shared(&self) -> bool {
        matches!(self, Target::Document { shared: true, .. })
    }
}

/// A stream's state between two messages.
pub struct Watch {
    hub: Hub,
    pool: db::Pool,
    principal: Principal,
    target: Target,
    /// The last event id passed (sent, or filtered out).
    cursor: i64,
    subscription: Subscription,
    _permit: StreamPermit,
    /// Counts the stream in `folio_watch_streams_open` while it lives.
    _open: folio_core::metrics::Held,
    /// Ready once the server shuts down / the session is revoked. Kept
    /// between messages, as is `timer`, so a message costs no registration.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    revoked: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Changes when a share change that took access away is announced.
    shares_changed: tokio::sync::watch::Receiver<u64>,
    /// Fires at or before the earliest of expiry, recheck and heartbeat;
    /// re-armed only when it fires (sending a message moves the heartbeat
    /// later, which at worst makes the timer fire early once).
    timer: Pin<Box<Sleep>>,
    /// Events read from Postgres (or handed over live) not yet passed.
    pending: VecDeque<Arc<Delivery>>,
    /// Whether Postgres may hold events after the cursor that are not pending.
    replaying: bool,
    /// Whether the watched document's state after the last event passed is
    /// terminal (WatchDocument only).
    terminal: bool,
    /// Send a heartbeat before anything else (a WatchDocuments from now on
    /// tells the client where it starts).
    greet: bool,
    last_sent: Instant,
    next_recheck: Instant,
    expires_at: Instant,
    done: bool,
}

/// What waiting for live events produced.
enum Live {
    Event(Arc<Delivery>),
    Behind,
    Heartbeat,
    Recheck,
    End(tonic::Status),
}

impl Watch {
    /// A stream that must already be subscribed (`subscription`) before the
    /// caller read anything it decides on (the document's state), so that no
    /// event falls between that read and the live ones.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        hub: Hub,
        pool: db::Pool,
        principal: Principal,
        target: Target,
        cursor: i64,
        permit: StreamPermit,
        subscription: Subscription,
        shutdown: CancellationToken,
        terminal: bool,
        greet: bool,
    ) -> Self {
        let now = Instant::now();
        let left = (principal.token_expires_at - Utc::now()).to_std().unwrap_or_default();
        let revoked = Box::pin(subscription.revoked.clone().cancelled_owned());
        Watch {
            shares_changed: hub.shares_changed(),
            next_recheck: now + hub.config().recheck,
            expires_at: now + left,
            timer: Box::pin(tokio::time::sleep_until(now)),
            revoked,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            hub,
            pool,
            principal,
            target,
            cursor,
            subscription,
            _permit: permit,
            _open: folio_core::metrics::Held::new(folio_core::metrics::WATCH_STREAMS),
            pending: VecDeque::new(),
            replaying: true,
            terminal,
            greet,
            last_sent: now,
            done: false,
        }
    }

    /// The stream tonic sends.
    pub fn into_stream(self) -> WatchStream {
        // Boxed: the state moves in and out of each step's future.
        Box::pin(futures_util::stream::unfold(Box::new(self), |mut watch| async move {
            let item = watch.next().await?;
            Some((item, watch))
        }))
    }

    /// The next message, or None when the stream is over.
    async fn next(&mut self) -> Option<Result<pb::WatchResponse, tonic::Status>> {
        if self.done {
            return None;
        }
        if std::mem::take(&mut self.greet) {
            return Some(Ok(self.heartbeat()));
        }
        loop {
            if Instant::now() >= self.expires_at {
                return self.end(self.expired());
            }
            if let Some(delivery) = self.pending.pop_front() {
                if self.pass(&delivery) {
                    self.last_sent = Instant::now();
                    return Some(Ok(delivery.response.clone()));
                }
                continue;
            }
            if self.replaying {
                match self.read_page().await {
                    Ok(page) => {
                        self.replaying = page.len() as i64 == PAGE;
                        self.pending.extend(page.into_iter().map(Delivery::new));
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "watch: cannot read events");
                        return self.end(tonic::Status::from(ApiError::Unavailable(format!(
                            "cannot read events right now; reconnect with after_event_id {}",
                            self.cursor
                        ))));
                    }
                }
            }
            if self.terminal && matches!(self.target, Target::Document { follow: false, .. }) {
                self.done = true;
                return None;
            }
            match self.wait_live().await {
                Live::Event(delivery) => self.pending.push_back(delivery),
                Live::Behind => {
                    // The hub dropped this stream for falling behind: subscribe
                    // again, then read what was missed from Postgres.
                    self.subscription = self.hub.subscribe(
                        self.target.scope(),
                        self.target.filter(),
                        self.principal.session_id,
                        self.target.reader(),
                    );
                    self.revoked = Box::pin(self.subscription.revoked.clone().cancelled_owned());
                    self.replaying = true;
                }
                Live::Heartbeat => {
                    self.last_sent = Instant::now();
                    return Some(Ok(self.heartbeat()));
                }
                Live::Recheck => {
                    self.next_recheck = Instant::now() + self.hub.config().recheck;
                    if let Some(status) = self.recheck().await {
                        return self.end(status);
                    }
                }
                Live::End(status) => return self.end(status),
            }
        }
    }

    /// Whether to send `delivery`: not when the cursor is already past it or
    /// the filter refuses it.
    fn pass(&mut self, delivery: &Delivery) -> bool {
        let watched = &delivery.watched;
        let event = &watched.event;
        if event.id <= self.cursor {
            return false;
        }
        self.cursor = event.id;
        match &self.target {
            Target::Document { .. } => self.terminal = event.state.is_terminal(),
            Target::Documents { filter, .. } => {
                let admitted = filter.admits(
                    event.owner_id,
                    event.state,
                    &watched.labels,
                    &watched.filename,
                    watched.document_created_at,
                );
                if !admitted {
                    return false;
                }
            }
        }
        true
    }

    async fn read_page(&self) -> anyhow::Result<Vec<WatchedEvent>> {
        let mut conn = self.pool.get().await?;
        // Up to the hub's cursor: below it every event is settled, above it the
        // hub hands each one over (this stream subscribed before reading).
        let up_to = self.hub.cursor();
        Ok(document_event::list_watched(&mut conn, self.target.scope(), self.cursor, up_to, PAGE).await?)
    }

    async fn wait_live(&mut self) -> Live {
        loop {
            let heartbeat_at = self.last_sent + self.hub.config().heartbeat;
            let timer = &mut self.timer;
            let shared = self.target.shared();
            tokio::select! {
                biased;
                Ok(()) = self.shares_changed.changed(), if shared => return Live::Recheck,
                () = &mut self.shutdown => return Live::End(tonic::Status::from(ApiError::Unavailable(format!(
                    "the server is shutting down; reconnect with after_event_id {}", self.cursor
                )))),
                () = &mut self.revoked => return Live::End(tonic::Status::from(ApiError::Unauthenticated("the session was revoked".into()).because("SESSION_REVOKED"))),
                event = self.subscription.events.recv() => return event.map_or(Live::Behind, Live::Event),
                () = timer.as_mut() => {
                    let now = Instant::now();
                    if now >= self.expires_at {
                        return Live::End(self.expired());
                    }
                    if now >= self.next_recheck {
                        return Live::Recheck;
                    }
                    if now >= heartbeat_at {
                        return Live::Heartbeat;
                    }
                    timer.as_mut().reset(heartbeat_at.min(self.next_recheck).min(self.expires_at));
                }
            }
        }
    }

    /// The periodic check (and, for a document read through a share, the
    /// check at a share change): the session is still live (a lost
    /// revocation notice), the watched document still exists and is still
    /// shared with the caller.
    async fn recheck(&self) -> Option<tonic::Status> {
        let principal = &self.principal;
        match auth::live_account(&self.pool, principal.user_id, principal.session_id).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Some(tonic::Status::from(
                    ApiError::Unauthenticated("the session was revoked or the account deactivated".into()).because("SESSION_REVOKED"),
                ));
            }
            Err(error) => tracing::warn!(error = format!("{error:#}"), "watch: cannot re-check the session; trying later"),
        }
        if let Target::Document { id, shared, .. } = self.target {
            let found = async {
                let mut conn = self.pool.get().await?;
                let exists = document::find(&mut conn, id).await?.is_some();
                let still_shared = !shared || share::is_shared_with(&mut conn, id, principal.user_id).await?;
                anyhow::Ok((exists, still_shared))
            }
            .await;
            match found {
                Ok((false, _)) => return Some(tonic::Status::from(ApiError::NotFound(format!("document {id} was deleted")))),
                Ok((true, false)) => {
                    return Some(tonic::Status::from(ApiError::NotFound(format!(
                        "document {id} is no longer shared with you"
                    ))));
                }
                Ok((true, true)) => {}
                Err(error) => tracing::warn!(error = format!("{error:#}"), "watch: cannot re-check the document; trying later"),
            }
        }
        None
    }

    fn expired(&self) -> tonic::Status {
        tonic::Status::from(
            ApiError::Unauthenticated(format!(
                "the access token expired; refresh it and reconnect with after_event_id {}",
                self.cursor
            ))
            .because("TOKEN_EXPIRED"),
        )
    }

    fn heartbeat(&self) -> pb::WatchResponse {
        pb::WatchResponse::heartbeat(pb::Heartbeat {
            time: Some(timestamp(Utc::now())),
            last_event_id: self.cursor,
        })
    }

    fn end(&mut self, status: tonic::Status) -> Option<Result<pb::WatchResponse, tonic::Status>> {
        self.done = true;
        Some(Err(status))
    }
}
