//! The document lifecycle against a real Postgres: every transition from every
//! state (allowed ones move the document, refused ones change nothing and say
//! what they found), the guards on attempt, try and holder, and a property
//! test that plays random interleavings of deliveries, duplicates, crashes,
//! failures, cancels, retries and deletes.
//!
//! Over 500 lines on purpose: the transition table's checks, the guards'
//! checks and the property test's model of the broker and workers belong
//! together (the model drives the same transitions the table checks).

use std::{cell::RefCell, collections::HashMap};

use chrono::Utc;
use diesel::{ExpressionMethods as _, QueryDsl as _};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use folio_db::{
    documents::{
        lifecycle::{self, Chunked, Found, Holding, LifecycleError, Moved, NewDocument, Note, RetryScheduled, StageDone, Transition, Try},
        state::{Stage, State},
    },
    models::{document, document_event},
    schema::outbox,
};
use folio_tests::TestEnv;
use folio_tests::helpers::HAND_LEASE;
use proptest::prelude::*;
use uuid::Uuid;

/// A user to own the test's documents.
async fn owner(conn: &mut AsyncPgConnection) -> Uuid {
    let id = Uuid::now_v7();
    diesel::sql_query("INSERT INTO users (id, email, role, password_hash) VALUES ($1, $2, 'member', 'x')")
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Text, _>(format!("{id}@folio.test"))
        .execute(conn)
        .await
        .unwrap();
    id
}

/// A new document of `owner`, as an upload describes it.
fn new_row(owner: Uuid) -> NewDocument {
    let id = Uuid::now_v7();
    NewDocument {
        id,
        owner_id: owner,
        filename: "f.txt".into(),
        title: String::new(),
        content_type: "text/plain".into(),
        format: "text".into(),
        labels: vec![],
        size_bytes: 1,
        sha256: id.as_bytes().to_vec(),
        blob_key: format!("documents/{owner}/{id}"),
        idempotency_key: None,
        max_tries: 3,
        priority: Default::default(),
    }
}

fn note(message: &str) -> Note {
    Note {
        percent: 50,
        message: message.into(),
        details: serde_json::json!({}),
    }
}

fn chunked(count: i32) -> Chunked {
    Chunked {
        count,
        chunking: "words 256/32".into(),
    }
}

fn stage_done(stage: Stage) -> StageDone {
    StageDone {
        stage,
        note: note("done"),
        title: None,
        pages: None,
        characters: None,
        stage_ms: serde_json::json!({}),
    }
}

/// A document put straight into `state` on attempt 1 at try 1, held by
/// `holder` when PROCESSING: the fixture the table is checked from.
async fn document_in(conn: &mut AsyncPgConnection, owner: Uuid, state: State, holder: Uuid, cancel_requested: bool) -> Uuid {
    let mut row = new_row(owner).into_row();
    row.state = state;
    row.try_number = 1;
    row.try_token = (state == State::Processing).then_some(holder);
    // Its worker is gone: the lease ran out a second ago.
    row.lease_expires_at = (state == State::Processing).then(|| Utc::now() - chrono::Duration::seconds(1));
    row.cancel_requested = cancel_requested;
    assert!(document::insert(conn, &row).await.unwrap());
    row.id
}

/// Calls `transition` the way its caller does, as try `at`.
async fn call(conn: &mut AsyncPgConnection, transition: Transition, id: Uuid, at: &Try) -> Result<Moved, LifecycleError> {
    conn.transaction(async |conn| match transition {
        Transition::Store => unreachable!("store creates; it is checked on its own"),
        Transition::StartTry => lifecycle::start_try(conn, id, at, &HAND_LEASE).await,
        Transition::StageDone => lifecycle::stage_done(conn, id, at, stage_done(Stage::Chunk)).await,
        Transition::Progress => lifecycle::progress(conn, id, at, Stage::Embed, note("half")).await,
        Transition::Ready => lifecycle::ready(conn, id, at, &chunked(3), serde_json::json!({}), note("ready")).await,
        Transition::ScheduleRetry => {
            let retry = RetryScheduled {
                next_at: Utc::now(),
                message: "busy".into(),
            };
            lifecycle::schedule_retry(conn, id, at, Holding::Token, retry).await
        }
        Transition::Fail => lifecycle::fail(conn, id, at, Holding::Token, "CORRUPT", "bad bytes").await,
        Transition::TakeBack => lifecycle::take_back(conn, id)
            .await
            .map(|moved| moved.expect("no worker holds the fixture's lock")),
        Transition::Waiting => {
            let seen = document::find(conn, id).await?.expect("the fixture");
            lifecycle::waiting(conn, &seen, "not started after 2 min: no worker is alive".into()).await
        }
        Transition::CancelRequested => lifecycle::cancel(conn, id).await,
        Transition::Cancelled => lifecycle::cancelled(conn, id, at.attempt).await,
        Transition::RetryRequested => lifecycle::retry_requested(conn, id).await,
        Transition::ReindexQueued => lifecycle::reindex_queued(conn, id, "hash").await,
        Transition::Reindexed => lifecycle::reindexed(conn, id, &chunked(3), note("re-embedded")).await,
        Transition::OriginalDeleted => lifecycle::original_deleted(conn, id, 30).await,
        Transition::Delete => lifecycle::delete(conn, id).await.map(|document| Moved { document, event: None }),
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_moves_exactly_the_states_its_table_row_names_and_refuses_the_rest() {
    let mut env = TestEnv::new().await;
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let owner = owner(&mut conn).await;
    let holder = Uuid::new_v4();
    for transition in Transition::ALL.iter().copied().filter(|t| *t != Transition::Store) {
        for state in State::ALL.iter().copied() {
            // The worker's `cancelled` needs the owner's request to exist.
            let id = document_in(&mut conn, owner, state, holder, transition == Transition::Cancelled).await;
            // Try 2 of attempt 1, holding the document: past try 1 of the
            // fixture, so only the state decides.
            let at = Try {
                attempt: 1,
                number: 2,
                max: 3,
                token: holder,
            };
            let before = document::find(&mut conn, id).await.unwrap().unwrap();
            let events_before = document_event::list(&mut conn, id, 0, 100).await.unwrap().len();
            let result = call(&mut conn, transition, id, &at).await;
            let after = document::find(&mut conn, id).await.unwrap();
            let (allowed, expected) = match (transition, state) {
                // The owner's cancel (`lifecycle::cancel`) sets the flag on a
                // PROCESSING document, and is the `cancelled` transition on a
                // document no try runs; a CANCELLED one it returns as it is.
                (Transition::CancelRequested, State::Queued | State::RetryWait | State::Cancelled) => (true, Some(State::Cancelled)),
                _ => (transition.leaves(state), transition.to(state)),
            };
            match (&result, allowed) {
                (Ok(moved), true) => {
                    assert_eq!(after.as_ref().map(|d| d.state), expected, "{transition} from {state}");
                    if let Some(event) = &moved.event {
                        assert_eq!(
                            Some(event.state),
                            expected,
                            "{transition} from {state}: the event names the new state"
                        );
                    }
                }
                (Err(LifecycleError::Refused { found, .. }), false) => {
                    assert_eq!(found, &Found::from(&before), "{transition} from {state} says what it found");
                    let after = after.unwrap();
                    assert_eq!(
                        (after.state, after.attempt, after.try_number),
                        (before.state, before.attempt, before.try_number)
                    );
                    assert_eq!(after.updated_at, before.updated_at, "{transition} from {state} wrote nothing");
                    let events_after = document_event::list(&mut conn, id, 0, 100).await.unwrap().len();
                    assert_eq!(events_after, events_before, "{transition} from {state} appended an event");
                }
                (other, allowed) => panic!("{transition} from {state}: {other:?}, allowed by the table: {allowed}"),
            }
        }
    }
    drop(conn);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tries_writes_are_refused_for_another_holder_attempt_or_an_earlier_try() {
    let mut env = TestEnv::new().await;
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let owner = owner(&mut conn).await;
    let holder = Uuid::new_v4();
    let mine = Try {
        attempt: 1,
        number: 1,
        max: 3,
        token: holder,
    };
    let refused = |result: Result<Moved, LifecycleError>, what: &str| match result {
        Err(LifecycleError::Refused { .. }) => {}
        other => panic!("{what} must be refused: {other:?}"),
    };

    // Another delivery of the same try (another token) on a PROCESSING
    // document: every write of a running try, and its failure, is refused.
    let id = document_in(&mut conn, owner, State::Processing, holder, false).await;
    let duplicate = Try {
        token: Uuid::new_v4(),
        ..mine
    };
    for transition in [
        Transition::StageDone,
        Transition::Progress,
        Transition::Ready,
        Transition::ScheduleRetry,
        Transition::Fail,
    ] {
        refused(
            call(&mut conn, transition, id, &duplicate).await,
            &format!("{transition} by a duplicate"),
        );
    }
    // The holder's are not.
    call(&mut conn, Transition::StageDone, id, &mine).await.unwrap();

    // Another attempt (a stale job from before a user's retry).
    let stale = Try { attempt: 0, ..mine };
    for transition in [Transition::StartTry, Transition::StageDone, Transition::Ready, Transition::Fail] {
        refused(
            call(&mut conn, transition, id, &stale).await,
            &format!("{transition} of another attempt"),
        );
    }

    // An earlier try than the one recorded: try numbers never go down.
    let started = Try {
        number: 3,
        token: Uuid::new_v4(),
        ..mine
    };
    call(&mut conn, Transition::StartTry, id, &started).await.unwrap();
    refused(
        call(&mut conn, Transition::StartTry, id, &mine).await,
        "start_try of an earlier try",
    );

    // A try that failed before it started is recorded only while no try holds
    // the document and none reached its number.
    let waiting = document_in(&mut conn, owner, State::RetryWait, holder, false).await;
    refused(
        call(&mut conn, Transition::Fail, waiting, &Try { number: 1, ..duplicate }).await,
        "fail of try 1 once try 1 reported",
    );
    let moved = call(&mut conn, Transition::Fail, waiting, &Try { number: 2, ..duplicate })
        .await
        .unwrap();
    assert_eq!(moved.document.state, State::Failed);

    // Holding the document's lock, a delivery that failed before it could
    // take over settles a document a crashed try left PROCESSING; it still
    // cannot go back to an earlier try.
    let orphaned = document_in(&mut conn, owner, State::Processing, Uuid::new_v4(), false).await;
    let earlier = Try { number: 0, ..duplicate };
    let pool = &pool;
    let lock = |at: Try| async move {
        let mut conn = pool.get().await.unwrap();
        conn.transaction(async |conn| lifecycle::fail(conn, orphaned, &at, Holding::Lock, "UNAVAILABLE", "down").await)
            .await
    };
    refused(lock(earlier).await, "fail of an earlier try, holding the lock");
    assert_eq!(lock(duplicate).await.unwrap().document.state, State::Failed);

    // A requested cancel: no new try starts and the running one cannot end
    // READY; the worker's `cancelled` ends it.
    let cancelling = document_in(&mut conn, owner, State::Processing, holder, false).await;
    let flagged = call(&mut conn, Transition::CancelRequested, cancelling, &mine).await.unwrap();
    assert_eq!(
        (flagged.document.state, flagged.document.cancel_requested),
        (State::Processing, true)
    );
    assert!(flagged.event.is_none());
    match call(&mut conn, Transition::StartTry, cancelling, &Try { number: 2, ..mine }).await {
        Err(LifecycleError::Refused { found, .. }) => assert!(found.cancel_requested),
        other => panic!("start_try after a cancel request: {other:?}"),
    }
    refused(
        call(&mut conn, Transition::Ready, cancelling, &mine).await,
        "ready after a cancel request",
    );
    let cancelled = call(&mut conn, Transition::Cancelled, cancelling, &mine).await.unwrap();
    assert_eq!(cancelled.document.state, State::Cancelled);
    assert_eq!(cancelled.document.try_token, None);

    drop(conn);
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_queues_a_job_once_and_a_users_retry_starts_the_next_attempt_with_its_own_job() {
    let mut env = TestEnv::new().await;
    let pool = env.pool();
    let mut conn = pool.get().await.unwrap();
    let owner = owner(&mut conn).await;
    let row = new_row(owner);
    let stored = lifecycle::store(&mut conn, row.clone(), note("stored")).await.unwrap().unwrap();
    assert_eq!(stored.document.state, State::Queued);
    let same_bytes = NewDocument {
        id: Uuid::now_v7(),
        ..row.clone()
    };
    assert!(
        lifecycle::store(&mut conn, same_bytes, note("stored")).await.unwrap().is_none(),
        "the owner has these bytes"
    );
    let jobs = || outbox::table.filter(outbox::kind.eq("process_document")).count();
    assert_eq!(jobs().get_result::<i64>(&mut conn).await.unwrap(), 1);

    let at = Try {
        attempt: 1,
        number: 1,
        max: 3,
        token: Uuid::new_v4(),
    };
    call(&mut conn, Transition::StartTry, row.id, &at).await.unwrap();
    call(&mut conn, Transition::Fail, row.id, &at).await.unwrap();
    let retried = call(&mut conn, Transition::RetryRequested, row.id, &at).await.unwrap();
    assert_eq!(
        (retried.document.state, retried.document.attempt, retried.document.try_number),
        (State::Queued, 2, 0)
    );
    assert_eq!(jobs().get_result::<i64>(&mut conn).await.unwrap(), 2, "the new attempt has its job");
    // The old attempt's job, delivered late, changes nothing.
    match call(&mut conn, Transition::StartTry, row.id, &at).await {
        Err(LifecycleError::Refused { found, .. }) => assert_eq!(found.attempt, 2),
        other => panic!("a stale attempt started: {other:?}"),
    }
    drop(conn);
    env.cleanup().await;
}

/// One message on the broker: a job for `attempt` at try `number`.
#[derive(Debug, Clone, Copy)]
struct Message {
    attempt: i32,
    number: i32,
}

/// A delivery being worked on: its try, and how far its pipeline got.
#[derive(Debug, Clone, Copy)]
struct Run {
    at: Try,
    /// None while waiting for the document's lock; then the step to run next.
    step: Option<usize>,
}

/// What a random schedule does next. Indices pick among what exists.
#[derive(Debug, Clone)]
enum Op {
    /// The broker delivers a waiting message.
    Deliver(usize),
    /// A message is delivered once more (a relay's double publish, a
    /// redelivery while the first delivery goes on).
    Duplicate(usize),
    /// A delivery takes its next step.
    Step(usize),
    /// A delivery's worker dies: the broker redelivers its message.
    Crash(usize),
    /// A delivery fails transiently (retried while tries remain).
    FailTransient(usize),
    /// A delivery fails permanently.
    FailPermanent(usize),
    Cancel,
    Retry,
    Delete,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..8usize).prop_map(Op::Deliver),
        4 => (0..8usize).prop_map(Op::Duplicate),
        20 => (0..8usize).prop_map(Op::Step),
        2 => (0..8usize).prop_map(Op::Crash),
        3 => (0..8usize).prop_map(Op::FailTransient),
        3 => (0..8usize).prop_map(Op::FailPermanent),
        2 => Just(Op::Cancel),
        1 => Just(Op::Retry),
        1 => Just(Op::Delete),
    ]
}

/// The simulated broker and workers of one document; the document itself is
/// real and moved only by the lifecycle.
struct Sim {
    id: Uuid,
    max: i32,
    queue: Vec<Message>,
    runs: Vec<Run>,
    /// The run index holding the document's lock.
    lock: Option<Uuid>,
    deleted: bool,
    /// The highest attempt and try numbers seen, which must never go down.
    seen: (i32, i32),
}

/// The pipeline a holding run walks after `start_try`.
const STEPS: usize = 5;

impl Sim {
    fn pick<T>(items: &[T], index: usize) -> Option<usize> {
        (!items.is_empty()).then(|| index % items.len())
    }

    fn deliver(&mut self, message: Message) {
        self.runs.push(Run {
            at: Try {
                attempt: message.attempt,
                number: message.number,
                max: self.max,
                token: Uuid::new_v4(),
            },
            step: None,
        });
    }

    /// A run is done: it lets go of the lock if it held it.
    fn finish(&mut self, run: usize) -> Run {
        let run = self.runs.remove(run);
        if self.lock == Some(run.at.token) {
            self.lock = None;
        }
        run
    }

    async fn apply(&mut self, conn: &mut AsyncPgConnection, op: &Op) {
        match *op {
            Op::Deliver(i) => {
                if let Some(i) = Self::pick(&self.queue, i) {
                    let message = self.queue.remove(i);
                    self.deliver(message);
                }
            }
            Op::Duplicate(i) => {
                let messages: Vec<Message> = self
                    .queue
                    .iter()
                    .copied()
                    .chain(self.runs.iter().map(|r| Message {
                        attempt: r.at.attempt,
                        number: r.at.number,
                    }))
                    .collect();
                if let Some(i) = Self::pick(&messages, i) {
                    self.queue.push(messages[i]);
                }
            }
            Op::Step(i) => {
                if let Some(i) = Self::pick(&self.runs, i) {
                    self.step(conn, i).await;
                }
            }
            Op::Crash(i) => {
                if let Some(i) = Self::pick(&self.runs, i) {
                    let run = self.finish(i);
                    self.queue.push(Message {
                        attempt: run.at.attempt,
                        number: run.at.number,
                    });
                }
            }
            Op::FailTransient(i) => {
                if let Some(i) = Self::pick(&self.runs, i) {
                    let run = self.runs[i];
                    // Holding the lock, the job records its failure itself;
                    // without it (it failed before taking it), the consumer
                    // does, taking the lock for it if it is free.
                    let holding = if run.step.is_some() || self.lock.is_none() {
                        Holding::Lock
                    } else {
                        Holding::Token
                    };
                    let held_by_other = holding == Holding::Token && self.held_by_another(conn, &run.at).await;
                    let result = if run.at.number < run.at.max {
                        let retry = RetryScheduled {
                            next_at: Utc::now(),
                            message: "busy".into(),
                        };
                        let result = conn
                            .transaction(async |conn| lifecycle::schedule_retry(conn, self.id, &run.at, holding, retry).await)
                            .await;
                        // The consumer publishes the next try whatever the record did.
                        self.queue.push(Message {
                            attempt: run.at.attempt,
                            number: run.at.number + 1,
                        });
                        result
                    } else {
                        conn.transaction(async |conn| lifecycle::fail(conn, self.id, &run.at, holding, "UNAVAILABLE", "out of tries").await)
                            .await
                    };
                    if held_by_other {
                        assert!(result.is_err(), "a failure was recorded on a document another delivery holds");
                    }
                    self.finish(i);
                }
            }
            Op::FailPermanent(i) => {
                if let Some(i) = Self::pick(&self.runs, i)
                    && self.runs[i].step.is_some()
                {
                    let at = self.runs[i].at;
                    let _ = conn
                        .transaction(async |conn| lifecycle::fail(conn, self.id, &at, Holding::Lock, "CORRUPT", "bad bytes").await)
                        .await;
                    self.finish(i);
                }
            }
            Op::Cancel => {
                let _ = conn.transaction(async |conn| lifecycle::cancel(conn, self.id).await).await;
            }
            Op::Retry => {
                if let Ok(moved) = conn.transaction(async |conn| lifecycle::retry_requested(conn, self.id).await).await {
                    self.queue.push(Message {
                        attempt: moved.document.attempt,
                        number: 1,
                    });
                }
            }
            Op::Delete => {
                if lifecycle::delete(conn, self.id).await.is_ok() {
                    self.deleted = true;
                }
            }
        }
    }

    async fn held_by_another(&self, conn: &mut AsyncPgConnection, at: &Try) -> bool {
        matches!(document::find(conn, self.id).await.unwrap(), Some(d) if d.state == State::Processing && d.try_token != Some(at.token))
    }

    /// One step of run `i`, as `process_document` takes it.
    async fn step(&mut self, conn: &mut AsyncPgConnection, i: usize) {
        let run = self.runs[i];
        let Some(step) = run.step else {
            // Waiting for the lock: take it if free, else look at the document.
            let current = document::find(conn, self.id).await.unwrap();
            match current {
                Some(d) if d.attempt == run.at.attempt && !d.state.is_terminal() => {
                    if self.lock.is_none() {
                        self.lock = Some(run.at.token);
                        self.runs[i].step = Some(0);
                    }
                }
                // Nothing left for this delivery: acked as a duplicate.
                _ => {
                    self.finish(i);
                }
            }
            return;
        };
        let id = self.id;
        let at = run.at;
        let result = conn
            .transaction(async |conn| match step {
                0 => lifecycle::start_try(conn, id, &at, &HAND_LEASE).await,
                1 => lifecycle::stage_done(conn, id, &at, stage_done(Stage::Parse)).await,
                2 => lifecycle::stage_done(conn, id, &at, stage_done(Stage::Chunk)).await,
                3 => lifecycle::progress(conn, id, &at, Stage::Embed, note("half")).await,
                4 => lifecycle::stage_done(conn, id, &at, stage_done(Stage::Embed)).await,
                _ => lifecycle::ready(conn, id, &at, &chunked(1), serde_json::json!({}), note("ready")).await,
            })
            .await;
        match result {
            Ok(_) if step < STEPS => self.runs[i].step = Some(step + 1),
            Ok(_) => {
                self.finish(i);
            }
            Err(LifecycleError::Refused {
                found:
                    Found {
                        cancel_requested: true,
                        attempt,
                        state,
                        ..
                    },
                ..
            }) if attempt == at.attempt && !state.is_terminal() => {
                let _ = conn.transaction(async |conn| lifecycle::cancelled(conn, id, attempt).await).await;
                self.finish(i);
            }
            Err(LifecycleError::Database(error)) => panic!("database error: {error}"),
            Err(_) => {
                self.finish(i);
            }
        }
    }

    /// The document's row and log obey the table: consecutive logged states
    /// are allowed pairs, attempts and tries never go down.
    async fn check(&mut self, conn: &mut AsyncPgConnection) {
        let Some(d) = document::find(conn, self.id).await.unwrap() else {
            assert!(self.deleted, "the document vanished without a delete");
            return;
        };
        let events = document_event::list(conn, self.id, 0, 10_000).await.unwrap();
        // The first event is the store's, QUEUED.
        let mut previous = events.as_slice().first().map(|e| e.state);
        assert_eq!(previous, Some(State::Queued));
        let mut attempt = 1;
        for event in &events[1..] {
            let from = previous.unwrap();
            assert!(
                lifecycle::allowed(from, event.state),
                "{from} -> {} ({})",
                event.state,
                event.message
            );
            assert!(event.attempt >= attempt, "attempt went down in the log");
            previous = Some(event.state);
            attempt = event.attempt;
        }
        assert_eq!(previous, Some(d.state), "the last event names the document's state");
        let now = (d.attempt, d.try_number);
        assert!(
            now.0 > self.seen.0 || (now.0 == self.seen.0 && now.1 >= self.seen.1),
            "attempt/try went down: {:?} -> {now:?}",
            self.seen
        );
        self.seen = now;
    }

    /// With no more crashes, failures or users: run every message and
    /// delivery to its end. Returns the document's final state (None: deleted).
    async fn drain(&mut self, conn: &mut AsyncPgConnection) -> Option<State> {
        for _ in 0..10_000 {
            if let Some(message) = self.queue.pop() {
                self.deliver(message);
            } else if self.runs.is_empty() {
                return document::find(conn, self.id).await.unwrap().map(|d| d.state);
            }
            // The holder first, so waiting deliveries see it finish.
            let next = self.runs.iter().position(|r| Some(r.at.token) == self.lock).unwrap_or(0);
            self.step(conn, next).await;
            self.check(conn).await;
        }
        panic!("deliveries did not settle: {:?} {:?}", self.queue, self.runs);
    }
}

#[test]
fn random_interleavings_never_make_a_forbidden_transition_and_always_settle_terminal() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut env, pool, owner) = runtime.block_on(async {
        let env = TestEnv::new().await;
        let pool = env.pool();
        let mut conn = pool.get().await.unwrap();
        let owner = owner(&mut conn).await;
        (env, pool, owner)
    });
    let outcomes: RefCell<HashMap<Option<State>, usize>> = RefCell::default();
    let config = ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..60))| {
        let outcome = runtime.block_on(async {
            let mut conn = pool.get().await.unwrap();
            let row = new_row(owner);
            lifecycle::store(&mut conn, row.clone(), note("stored")).await.unwrap().unwrap();
            let mut sim = Sim {
                id: row.id,
                max: 3,
                queue: vec![Message { attempt: 1, number: 1 }],
                runs: Vec::new(),
                lock: None,
                deleted: false,
                seen: (1, 0),
            };
            for op in &ops {
                sim.apply(&mut conn, op).await;
                sim.check(&mut conn).await;
            }
            let settled = sim.drain(&mut conn).await;
            if let Some(state) = settled {
                assert!(state.is_terminal(), "left {state} with nothing to deliver after {ops:?}");
            }
            settled
        });
        *outcomes.borrow_mut().entry(outcome).or_default() += 1;
    });
    // The schedules reached every end, so the property was tried on each.
    let outcomes = outcomes.into_inner();
    println!("how the schedules ended (None: deleted): {outcomes:?}");
    for end in [Some(State::Ready), Some(State::Failed), Some(State::Cancelled), None] {
        assert!(outcomes.contains_key(&end), "no schedule ended {end:?}: {outcomes:?}");
    }
    runtime.block_on(env.cleanup());
}
