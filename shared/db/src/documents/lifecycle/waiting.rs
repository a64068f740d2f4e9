//! A document that waits says why: once it has waited for a worker longer
//! than a bound, the `waiting` transition appends an event that explains
//! (no worker alive, where it stands in the fair schedule or how many
//! documents are ahead of it, what the workers are doing), and [`why`] gives
//! GetDocument the same words. [`standing`] is where its job stands in the
//! fair schedule, at any time.

use std::time::Duration;

use diesel_async::AsyncConnection as _;

use super::{
    writes::{append, refusal},
    *,
};
use crate::models::{fair_share, worker};

/// When a wait deserves a word.
#[derive(Debug, Clone, Copy)]
pub struct WaitNotice {
    /// How long a document waits before it says why (`FOLIO_WAIT_NOTICE_SECS`).
    pub bound: Duration,
    /// A worker counts as alive if it beat within this (three heartbeats).
    pub alive_within: Duration,
}

/// Since when `document` has waited for a worker (None: it is not waiting).
pub fn waiting_since(document: &Document) -> Option<DateTime<Utc>> {
    match document.state {
        Queued => Some(document.updated_at),
        RetryWait => document.next_retry_at,
        _ => None,
    }
}

/// Why `document` has not started, if it has waited past the bound.
pub async fn why(conn: &mut AsyncPgConnection, document: &Document, notice: &WaitNotice) -> diesel::QueryResult<Option<String>> {
    if waited(document, notice).is_none() {
        return Ok(None);
    }
    let alive = worker::alive(conn, notice.alive_within).await?;
    why_with(conn, document, notice, alive).await
}

/// How long `document` has waited for a worker, if past the bound.
fn waited(document: &Document, notice: &WaitNotice) -> Option<(DateTime<Utc>, Duration)> {
    let since = waiting_since(document)?;
    let waited = (Utc::now() - since).to_std().unwrap_or_default();
    (waited >= notice.bound).then_some((since, waited))
}

/// [`why`], given the workers alive and their jobs (read once for many
/// documents).
async fn why_with(
    conn: &mut AsyncPgConnection,
    document: &Document,
    notice: &WaitNotice,
    (workers, jobs): (i64, i64),
) -> diesel::QueryResult<Option<String>> {
    let Some((since, waited)) = waited(document, notice) else {
        return Ok(None);
    };
    let ahead = match standing(conn, document).await? {
        Some(standing) => format!("{}; ", standing.words()),
        None => match document::waiting_before(conn, since).await? {
            0 => String::new(),
            1 => "1 document ahead of it; ".into(),
            n => format!("{n} documents ahead of it; "),
        },
    };
    Ok(Some(explain(waited, &ahead, workers, jobs)))
}

/// Where a document's job stands while it waits to be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub position: outbox::Position,
    /// Its owner's weight, and every waiting owner's together.
    pub weight: i32,
    pub total_weight: i64,
}

impl Standing {
    /// "waiting: 1240 of your documents ahead; your share: 1 of 3 owners".
    pub fn words(&self) -> String {
        let ahead = match self.position.ahead {
            0 => "waiting: none of your documents ahead".to_owned(),
            1 => "waiting: 1 of your documents ahead".to_owned(),
            n => format!("waiting: {n} of your documents ahead"),
        };
        let owners = self.position.owners;
        let share = if owners <= 1 {
            "your share: all of the workers".to_owned()
        } else if i64::from(self.weight) == 1 && self.total_weight == owners {
            format!("your share: 1 of {owners} owners")
        } else {
            format!(
                "your share: {} of {} (the weights of {owners} owners)",
                self.weight, self.total_weight
            )
        };
        format!("{ahead}; {share}")
    }
}

/// Where `document`'s job stands in the fair schedule; None when it has no
/// job waiting to be released.
pub async fn standing(conn: &mut AsyncPgConnection, document: &Document) -> diesel::QueryResult<Option<Standing>> {
    let Some(ahead) = outbox::ahead_of(conn, document.id).await? else {
        return Ok(None);
    };
    let owners = outbox::waiting_owners(conn).await?;
    let (weight, total_weight) = fair_share::shares(conn, document.owner_id, &owners).await?;
    Ok(Some(Standing {
        position: outbox::Position {
            ahead,
            owners: owners.len() as i64,
        },
        weight,
        total_weight,
    }))
}

/// The words of [`why`].
fn explain(waited: Duration, ahead: &str, workers: i64, jobs: i64) -> String {
    let workers = match workers {
        0 => "no worker is alive".into(),
        1 => format!("1 worker alive, running {jobs} jobs"),
        n => format!("{n} workers alive, running {jobs} jobs"),
    };
    format!("not started after {}: {ahead}{workers}", human(waited))
}

/// "45 s", "2 min", "1 h 5 min".
fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// Appends the `waiting` event to `seen` (as read), if it is still in that
/// state at that version; the row is locked, not changed.
pub async fn waiting(conn: &mut AsyncPgConnection, seen: &Document, message: String) -> Result<Moved, LifecycleError> {
    let unchanged = if Transition::Waiting.leaves(seen.state) {
        document::touch_if_unchanged(conn, seen.id, seen.state, seen.updated_at).await?
    } else {
        None
    };
    let Some(document) = unchanged else {
        return Err(refusal(conn, seen.id, Transition::Waiting).await);
    };
    let (stage, percent) = match document.state {
        Queued => (Stage::Store, 5),
        _ => (document.stage.unwrap_or(Stage::Store), 10),
    };
    let note = Note {
        percent,
        message,
        details: serde_json::json!({ "waiting": true }),
    };
    let event = append(conn, &document, stage, EventKind::Progress, note).await?;
    Ok(Moved {
        document,
        event: Some(event),
    })
}

/// Appends a `waiting` event to up to `limit` documents due one (see
/// `document::waiting_due`), each in a transaction of its own; returns the
/// events, to announce.
pub async fn note_waiting(conn: &mut AsyncPgConnection, notice: &WaitNotice, limit: i64) -> diesel::QueryResult<Vec<DocumentEvent>> {
    let mut events = Vec::new();
    let due = document::waiting_due(conn, notice.bound, limit).await?;
    if due.is_empty() {
        return Ok(events);
    }
    let alive = worker::alive(conn, notice.alive_within).await?;
    for seen in due {
        let Some(message) = why_with(conn, &seen, notice, alive).await? else {
            continue;
        };
        let moved = conn.transaction(async |conn| waiting(conn, &seen, message).await).await;
        match moved {
            Ok(Moved { event: Some(event), .. }) => events.push(event),
            Ok(_) | Err(LifecycleError::Refused { .. } | LifecycleError::NotFound(_)) => {}
            Err(LifecycleError::Database(error)) => return Err(error),
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_words_say_what_is_ahead_and_who_is_alive() {
        assert_eq!(
            explain(Duration::from_secs(125), "", 0, 0),
            "not started after 2 min: no worker is alive"
        );
        assert_eq!(
            explain(Duration::from_secs(3900), "3000 documents ahead of it; ", 2, 8),
            "not started after 1 h 5 min: 3000 documents ahead of it; 2 workers alive, running 8 jobs"
        );
    }

    #[test]
    fn a_standing_says_what_of_the_owners_is_ahead_and_its_share() {
        let standing = |ahead, owners, weight, total_weight| Standing {
            position: outbox::Position { ahead, owners },
            weight,
            total_weight,
        };
        assert_eq!(
            standing(1240, 3, 1, 3).words(),
            "waiting: 1240 of your documents ahead; your share: 1 of 3 owners"
        );
        assert_eq!(
            standing(1, 1, 1, 1).words(),
            "waiting: 1 of your documents ahead; your share: all of the workers"
        );
        assert_eq!(
            standing(0, 3, 2, 4).words(),
            "waiting: none of your documents ahead; your share: 2 of 4 (the weights of 3 owners)"
        );
    }
}
