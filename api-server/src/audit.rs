//! The audit log writer. Rows go into a bounded channel and a background task
//! writes them in batches, so an RPC does not wait for Postgres to record it.
//! No row is dropped silently:
//!
//! - When the channel is full (Postgres slow or away) the call that records a
//!   row waits for room, up to [`DELAY_BOUND`]: the writer falling behind
//!   slows the calls down a little rather than losing their rows.
//! - A row that still finds no room, or a batch the writer cannot write, is
//!   appended to a spill file (`FOLIO_AUDIT_SPILL_DIR`, one JSON row a line);
//!   the writer imports spilled rows once it writes again, at the latest at the
//!   next start. An import moves the file aside and removes it only once its
//!   rows are written (or spilled again), so a crash mid-import loses nothing;
//!   at worst those rows are written twice.
//! - Only a row that cannot be spilled either (the disk refuses it) is lost,
//!   with an error in the log. [`AuditStats`] counts every path a row took.
//!
//! Each row carries the time of its call, not of its insert.
//!
//! Handlers describe what an auth event was with [`note`]; the auth middleware
//! records one row per call, merging the note in.

use std::{
    cell::RefCell,
    io::{BufRead as _, Write as _},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use folio_db::{self as db, models::audit_event::NewAuditEvent};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Rows written per insert.
const BATCH: usize = 500;
/// How long a call waits for room in a full channel before its row is spilled.
pub const DELAY_BOUND: Duration = Duration::from_secs(1);
/// The spill file's name in the spill directory.
const SPILL_FILE: &str = "audit-spill.jsonl";

/// What a handler adds to its call's audit row.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// The auth event ("login", "login_failed", "refresh", ...).
    pub event: String,
    /// What the call acted on ("user:<id>").
    pub target: String,
    /// The actor when the call had no token (a login names its user).
    pub actor_id: Option<Uuid>,
    /// The email the event concerns.
    pub actor_email: String,
}

tokio::task_local! {
    /// The note of the call being handled on this task.
    pub static NOTE: RefCell<Option<AuditNote>>;
}

/// Sets the audit note of the current call (a no-op outside a call).
pub fn note(note: AuditNote) {
    let _ = NOTE.try_with(|slot| *slot.borrow_mut() = Some(note));
}

/// How many rows took each path since start.
#[derive(Debug, Default)]
pub struct AuditStats {
    /// Inserted into `audit_events` (spilled rows once imported included).
    pub written: AtomicU64,
    /// Rows whose call waited for room in the channel.
    pub delayed: AtomicU64,
    /// Rows appended to the spill file.
    pub spilled: AtomicU64,
    /// Spilled rows written once the database took rows again (this
    /// process's, or an earlier one's found at start).
    pub restored: AtomicU64,
    /// Rows neither written nor spilled.
    pub lost: AtomicU64,
}

/// The counts of [`AuditStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditCounts {
    pub written: u64,
    pub delayed: u64,
    pub spilled: u64,
    pub restored: u64,
    pub lost: u64,
}

impl AuditStats {
    pub fn snapshot(&self) -> AuditCounts {
        AuditCounts {
            written: self.written.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
            spilled: self.spilled.load(Ordering::Relaxed),
            restored: self.restored.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

/// The sending side of the audit log.
#[derive(Clone, Debug)]
pub struct Auditor {
    sender: mpsc::Sender<NewAuditEvent>,
    spill: Arc<Spill>,
    pub stats: Arc<AuditStats>,
}

impl Auditor {
    /// Starts the writer with a channel of `capacity` rows; it imports what an
    /// earlier process spilled, drains what is queued at shutdown and stops
    /// after `cancel`.
    pub fn start(pool: db::Pool, capacity: usize, spill_dir: PathBuf, cancel: CancellationToken) -> (Auditor, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity);
        let stats = Arc::new(AuditStats::default());
        let spill = Arc::new(Spill {
            path: spill_dir.join(SPILL_FILE),
            file: Mutex::new(()),
        });
        let writer = Writer {
            pool,
            spill: spill.clone(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(writer.run(receiver, capacity, cancel));
        (Auditor { sender, spill, stats }, task)
    }

    /// Queues `event`. With the channel full it waits for room up to
    /// [`DELAY_BOUND`], then spills the row.
    pub async fn record(&self, event: NewAuditEvent) {
        let event = match self.sender.try_send(event) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(event)) => {
                self.stats.delayed.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(DELAY_BOUND, self.sender.reserve()).await {
                    Ok(Ok(permit)) => return permit.send(event),
                    _ => event,
                }
            }
            Err(mpsc::error::TrySendError::Closed(event)) => event,
        };
        self.spill.append_off_runtime(vec![event], self.stats.clone()).await;
    }
}

/// The spill file, appended to by calls and by the writer.
#[derive(Debug)]
struct Spill {
    path: PathBuf,
    /// Held while the file is appended to or taken for import.
    file: Mutex<()>,
}

impl Spill {
    /// [`append`](Self::append) on a blocking thread: it writes and syncs a
    /// file.
    async fn append_off_runtime(self: &Arc<Self>, rows: Vec<NewAuditEvent>, stats: Arc<AuditStats>) {
        let spill = self.clone();
        let count = rows.len() as u64;
        if tokio::task::spawn_blocking(move || spill.append(&rows, &stats)).await.is_err() {
            tracing::error!(rows = count, "audit spill stopped");
        }
    }

    /// Appends `rows`, counting them as spilled, or as lost if the disk
    /// refuses them.
    fn append(&self, rows: &[NewAuditEvent], stats: &AuditStats) {
        let _held = self.file.lock().expect("spill lock");
        match append_lines(&self.path, rows) {
            Ok(()) => {
                stats.spilled.fetch_add(rows.len() as u64, Ordering::Relaxed);
                tracing::warn!(rows = rows.len(), path = %self.path.display(), "audit rows spilled to disk");
            }
            Err(error) => {
                stats.lost.fetch_add(rows.len() as u64, Ordering::Relaxed);
                tracing::error!(%error, rows = rows.len(), path = %self.path.display(), "audit rows lost: neither written nor spilled");
            }
        }
    }

    /// The file rows being imported are kept in until they are written: a
    /// process that stops mid-import finds them there at its next start.
    fn importing(&self) -> PathBuf {
        self.path.with_extension("importing")
    }

    /// Moves the spill file aside (unless an import left one there) and
    /// returns its rows; None when there is nothing to import. Call
    /// [`imported`](Self::imported) once the rows are written or spilled again.
    fn take(&self) -> std::io::Result<Option<Vec<NewAuditEvent>>> {
        let _held = self.file.lock().expect("spill lock");
        let importing = self.importing();
        if !importing.exists() {
            match std::fs::rename(&self.path, &importing) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            }
        }
        let mut rows = Vec::new();
        for line in std::io::BufReader::new(std::fs::File::open(&importing)?).lines() {
            let line = line?;
            match serde_json::from_str::<NewAuditEvent>(&line) {
                Ok(row) => rows.push(row),
                // A line cut short by a crash mid-append: the rest still counts.
                Err(error) => tracing::error!(%error, "unreadable line in the audit spill file skipped"),
            }
        }
        Ok(Some(rows))
    }

    /// Forgets the rows [`take`](Self::take) handed out.
    fn imported(&self) {
        let _held = self.file.lock().expect("spill lock");
        if let Err(error) = std::fs::remove_file(self.importing()) {
            tracing::error!(%error, "imported audit spill file not removed; its rows may be written twice");
        }
    }
}

fn append_lines(path: &Path, rows: &[NewAuditEvent]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// The background writer.
struct Writer {
    pool: db::Pool,
    spill: Arc<Spill>,
    stats: Arc<AuditStats>,
}

impl Writer {
    async fn run(self, mut receiver: mpsc::Receiver<NewAuditEvent>, capacity: usize, cancel: CancellationToken) {
        self.import_spilled().await;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                received = receiver.recv_many(&mut batch, BATCH) => received,
                () = cancel.cancelled() => {
                    receiver.close();
                    receiver.recv_many(&mut batch, capacity).await
                }
            };
            if received == 0 {
                return;
            }
            if self.write(&batch).await {
                self.import_spilled().await;
            } else {
                self.spill.append_off_runtime(std::mem::take(&mut batch), self.stats.clone()).await;
            }
            batch.clear();
        }
    }

    /// Writes `rows`, retrying for a few seconds; false if it could not.
    async fn write(&self, rows: &[NewAuditEvent]) -> bool {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=5 {
            let written = async {
                let mut conn = self.pool.get().await?;
                for chunk in rows.chunks(BATCH) {
                    db::models::audit_event::insert_many(&mut conn, chunk).await?;
                }
                anyhow::Ok(())
            }
            .await;
            match written {
                Ok(()) => {
                    self.stats.written.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    return true;
                }
                Err(error) if attempt < 5 => {
                    tracing::warn!(error = format!("{error:#}"), "audit write failed, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => tracing::error!(error = format!("{error:#}"), rows = rows.len(), "audit write failed, spilling"),
            }
        }
        false
    }

    /// Writes the rows a call or an earlier process spilled, if any.
    async fn import_spilled(&self) {
        let spill = self.spill.clone();
        let rows = match tokio::task::spawn_blocking(move || spill.take()).await {
            Ok(Ok(Some(rows))) => rows,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::error!(%error, "audit spill file unreadable; left for the next try");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "audit spill import stopped");
                return;
            }
        };
        if self.write(&rows).await {
            self.stats.restored.fetch_add(rows.len() as u64, Ordering::Relaxed);
            tracing::info!(rows = rows.len(), "spilled audit rows written");
        } else {
            self.spill.append_off_runtime(rows, self.stats.clone()).await;
        }
        let spill = self.spill.clone();
        let _ = tokio::task::spawn_blocking(move || spill.imported()).await;
    }
}
