//! Dead letters in domain terms (SystemService's List/Replay/PurgeDeadLetters
//! are shims over these): the jobs the broker dead-lettered, as the workers
//! recorded them, and what an operator does with them. Replaying a document
//! job is the lifecycle's `replayed` (FAILED to QUEUED as a new attempt, with
//! its job in the outbox and an event), in one transaction with marking the
//! letter; each letter is settled once, under its row lock, however many
//! calls race for it.

use std::sync::Arc;

use diesel_async::AsyncConnection as _;
use folio_core::{cache::Cache, queue::EncodedJob};
use folio_db::{
    self as db,
    documents::{self, lifecycle},
    models::{
        dead_letter::{self, Filter, Listed, Settled},
        document_event::DocumentEvent,
        outbox,
    },
};
use folio_proto::queue::v1::job;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    page_token::{self, Page},
};

/// The page-token tag of ListDeadLetters.
pub const DEAD_LETTERS_TAG: &str = "d1";
/// The most letters one Replay/PurgeDeadLetters call takes.
pub const SETTLE_LIMIT: usize = 500;

/// Which pending letters a replay or purge takes.
#[derive(Debug, Clone)]
pub enum Selection {
    Ids(Vec<i64>),
    Matching(Filter),
    All,
}

/// What a replay or purge did.
#[derive(Debug, Default)]
pub struct Settlement {
    pub settled: Vec<i64>,
    /// Letters selected but left pending, with why.
    pub skipped: Vec<(i64, String)>,
    /// More pending letters match than this call took.
    pub more: bool,
}

/// The dead letters and what settling them needs.
#[derive(Clone)]
pub struct DeadLetters {
    pub pool: db::Pool,
    pub cache: Cache,
    pub relay_wake: Arc<Notify>,
}

impl DeadLetters {
    /// A page of the letters that pass `filter`, newest first, before the
    /// letter id `before`.
    pub async fn list(&self, filter: &Filter, before: Option<i64>, page_size: i64) -> ApiResult<Page<Listed>> {
        let mut conn = self.pool.get().await?;
        let rows = dead_letter::list(&mut conn, filter, page_size + 1, before).await?;
        Ok(Page::cut(rows, page_size, |l| {
            page_token::encode_number(DEAD_LETTERS_TAG, l.letter.id)
        }))
    }

    /// Replays the selected letters for the admin `by`.
    pub async fn replay(&self, selection: &Selection, by: Uuid) -> ApiResult<Settlement> {
        self.settle(selection, by, Settled::Replayed).await
    }

    /// Purges the selected letters for the admin `by`.
    pub async fn purge(&self, selection: &Selection, by: Uuid) -> ApiResult<Settlement> {
        self.settle(selection, by, Settled::Purged).await
    }

    async fn settle(&self, selection: &Selection, by: Uuid, how: Settled) -> ApiResult<Settlement> {
        let mut conn = self.pool.get().await?;
        let filter = match selection {
            Selection::Ids(ids) => Filter {
                ids: Some(ids.clone()),
                ..Default::default()
            },
            Selection::Matching(filter) => filter.clone(),
            Selection::All => Filter::default(),
        };
        let mut ids = dead_letter::pending_ids(&mut conn, &filter, SETTLE_LIMIT as i64 + 1).await?;
        let mut settlement = Settlement {
            more: ids.len() > SETTLE_LIMIT,
            ..Default::default()
        };
        ids.truncate(SETTLE_LIMIT);
        if let Selection::Ids(wanted) = selection {
            for id in wanted.iter().filter(|id| !ids.contains(id)) {
                settlement.skipped.push((*id, "no pending dead letter has this id".into()));
            }
        }
        let mut events = Vec::new();
        for id in ids {
            let outcome = conn
                .transaction(async |conn| -> ApiResult<Result<Option<DocumentEvent>, String>> {
                    let Some(letter) = dead_letter::claim_pending(conn, id).await? else {
                        return Ok(Err("settled meanwhile by another call".into()));
                    };
                    let done = match how {
                        Settled::Replayed => replay_one(conn, &letter).await?,
                        Settled::Purged => Ok(None),
                    };
                    if done.is_ok() {
                        dead_letter::settle(conn, id, how, by).await?;
                    }
                    Ok(done)
                })
                .await?;
            match outcome {
                Ok(event) => {
                    settlement.settled.push(id);
                    events.extend(event);
                }
                Err(why) => settlement.skipped.push((id, why)),
            }
        }
        if how == Settled::Replayed && !settlement.settled.is_empty() {
            self.relay_wake.notify_one();
        }
        for event in &events {
            documents::announce(&self.cache, event).await;
        }
        Ok(settlement)
    }
}

/// Queues `letter`'s work again, inside the caller's transaction: Ok with the
/// document's event (if any), or Err with why it cannot be replayed.
async fn replay_one(
    conn: &mut diesel_async::AsyncPgConnection,
    letter: &dead_letter::DeadLetter,
) -> ApiResult<Result<Option<DocumentEvent>, String>> {
    let job = folio_core::queue::decode(&letter.payload).ok();
    match (job.and_then(|job| job.kind), letter.document_id) {
        (Some(job::Kind::ProcessDocument(_)), Some(document)) => match lifecycle::replayed(conn, document).await {
            Ok(moved) => Ok(Ok(moved.event)),
            Err(lifecycle::LifecycleError::Database(error)) => Err(ApiError::from(error)),
            Err(refused) => Ok(Err(format!("its document cannot be queued again: {refused}"))),
        },
        (Some(job::Kind::ReindexDocument(body)), Some(document)) => {
            let Some(found) = folio_db::models::document::find(conn, document).await? else {
                return Ok(Err("its document was deleted; purge it".into()));
            };
            let owned = outbox::Owned {
                owner_id: found.owner_id,
                document_id: document,
                priority: Some(outbox::Priority::Bulk),
            };
            outbox::enqueue_owned(conn, &EncodedJob::reindex_document(document, &body.model), owned, 1).await?;
            Ok(Ok(None))
        }
        _ => Ok(Err(format!("a {} job is not replayed; purge it", letter.kind))),
    }
}
