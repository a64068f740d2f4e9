//! Settings an admin changes at run time (`SystemService.GetSettings` and
//! `UpdateSettings`). A row in `settings` overrides the environment's value.
//! Each api-server keeps a snapshot that a background task rereads every
//! `FOLIO_SETTINGS_REFRESH_MS`, and the server that takes an update rereads at
//! once, so calls read a setting without a query.
//!
//! In domain terms, knowing no protobuf: GetSettings' answer is a
//! [`Snapshot`] (`convert.rs` writes it), and `system.rs` reads an
//! UpdateSettingsRequest into an [`Update`] with [`find`] and
//! [`Definition::check`].

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use folio_core::config::{MAX_UPLOAD_BYTES_DEFAULT, MAX_UPLOAD_BYTES_MAX};
use folio_db::{
    self as db,
    models::setting::{self, Setting},
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::ApiResult;

/// One setting: its name (a field of `folio.v1.Settings`), its default and
/// bounds.
#[derive(Debug, Clone, Copy)]
pub struct Definition {
    pub name: &'static str,
    built_in: i64,
    pub min: i64,
    pub max: i64,
}

impl Definition {
    /// Whether `value` is within the bounds; if not, why not.
    pub fn check(&self, value: i64) -> Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(format!("must be between {} and {}; got {value}", self.min, self.max))
        }
    }
}

/// The largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: Definition = Definition {
    name: "max_upload_bytes",
    built_in: MAX_UPLOAD_BYTES_DEFAULT as i64,
    min: 1,
    max: MAX_UPLOAD_BYTES_MAX as i64,
};

/// The most documents an account may keep, unless its own quota says
/// otherwise; 0: no limit.
pub const QUOTA_DOCUMENTS: Definition = Definition {
    name: "quota_documents",
    built_in: 0,
    min: 0,
    max: 1_000_000_000,
};

/// The most bytes of documents an account may keep, unless its own quota
/// says otherwise; 0: no limit.
pub const QUOTA_BYTES: Definition = Definition {
    name: "quota_bytes",
    built_in: 0,
    min: 0,
    max: 1 << 50,
};

/// Every run-time setting.
pub const DEFINITIONS: &[Definition] = &[MAX_UPLOAD_BYTES, QUOTA_DOCUMENTS, QUOTA_BYTES];

/// The setting called `name`.
pub fn find(name: &str) -> Option<Definition> {
    DEFINITIONS.iter().find(|d| d.name == name).copied()
}

/// Every setting as it is now.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub max_upload_bytes: Value,
    pub quota_documents: Value,
    pub quota_bytes: Value,
}

/// One setting as it is now.
#[derive(Debug, Clone)]
pub struct Value {
    /// The value in force.
    pub value: i64,
    /// The value without an admin's override: the environment's, else built
    /// in.
    pub default_value: i64,
    pub source: Source,
    /// When and by whom an admin set it; None while the default applies (and
    /// `updated_by` once that user is deleted).
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
    pub min: i64,
    pub max: i64,
}

/// Where a setting's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    BuiltIn,
    Environment,
    Admin,
}

/// A change of settings: values to set (each within its bounds) and
/// settings to reset to their defaults, no setting in both.
#[derive(Debug, Default)]
pub struct Update {
    pub set: Vec<(Definition, i64)>,
    pub reset: Vec<Definition>,
}

impl Update {
    /// The audit target that names the change ("max_upload_bytes=1048576",
    /// "max_upload_bytes=default").
    pub fn target(&self) -> String {
        self.set
            .iter()
            .map(|(d, value)| format!("{}={value}", d.name))
            .chain(self.reset.iter().map(|d| format!("{}=default", d.name)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The run-time settings of one api-server; clones share the snapshot.
#[derive(Clone)]
pub struct Settings {
    pool: db::Pool,
    /// The environment's values, by name.
    defaults: Arc<HashMap<&'static str, i64>>,
    stored: Arc<RwLock<Arc<HashMap<String, Setting>>>>,
    /// Held across a reread so an older read never replaces a newer one.
    reload: Arc<tokio::sync::Mutex<()>>,
}

impl Settings {
    /// Reads the settings once, then rereads them every `refresh` until
    /// `cancel`. `max_upload_bytes` is the environment's upload limit.
    pub async fn start(
        pool: db::Pool,
        max_upload_bytes: u64,
        refresh: Duration,
        cancel: CancellationToken,
    ) -> anyhow::Result<(Settings, tokio::task::JoinHandle<()>)> {
        let settings = Settings {
            pool,
            defaults: Arc::new(HashMap::from([(MAX_UPLOAD_BYTES.name, max_upload_bytes as i64)])),
            stored: Arc::default(),
            reload: Arc::default(),
        };
        settings.reload().await?;
        let task = tokio::spawn({
            let settings = settings.clone();
            async move {
                let mut ticks = tokio::time::interval(refresh);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        _ = ticks.tick() => {}
                    }
                    if let Err(error) = settings.reload().await {
                        tracing::warn!(%error, "could not reread the settings; keeping the last ones read");
                    }
                }
            }
        });
        Ok((settings, task))
    }

    /// The largest upload accepted, in bytes.
    pub fn max_upload_bytes(&self) -> u64 {
        self.value(&MAX_UPLOAD_BYTES) as u64
    }

    /// The default quotas (documents, bytes); 0: no limit.
    pub fn default_quotas(&self) -> (i64, i64) {
        (self.value(&QUOTA_DOCUMENTS), self.value(&QUOTA_BYTES))
    }

    /// Every setting as it is now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            max_upload_bytes: self.describe(&MAX_UPLOAD_BYTES),
            quota_documents: self.describe(&QUOTA_DOCUMENTS),
            quota_bytes: self.describe(&QUOTA_BYTES),
        }
    }

    /// Applies `update` for the admin `by` in one transaction and returns the
    /// settings as they are now.
    pub async fn update(&self, update: &Update, by: Uuid) -> ApiResult<Snapshot> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            for (definition, value) in &update.set {
                setting::set(conn, definition.name, *value, by).await?;
            }
            for definition in &update.reset {
                setting::reset(conn, definition.name).await?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
        drop(conn);
        self.reload().await?;
        Ok(self.snapshot())
    }

    async fn reload(&self) -> ApiResult<()> {
        let _order = self.reload.lock().await;
        let mut conn = self.pool.get().await?;
        let rows = setting::all(&mut conn).await?;
        let rows = rows.into_iter().map(|row| (row.name.clone(), row)).collect();
        *self.stored.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
        Ok(())
    }

    fn stored(&self) -> Arc<HashMap<String, Setting>> {
        self.stored.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn default_value(&self, definition: &Definition) -> i64 {
        self.defaults.get(definition.name).copied().unwrap_or(definition.built_in)
    }

    fn value(&self, definition: &Definition) -> i64 {
        // A stored value outside today's bounds (they may have narrowed since
        // it was set) is clamped rather than trusted.
        self.stored().get(definition.name).map_or_else(
            || self.default_value(definition),
            |row| row.value.clamp(definition.min, definition.max),
        )
    }

    fn describe(&self, definition: &Definition) -> Value {
        let default_value = self.default_value(definition);
        let stored = self.stored().get(definition.name).cloned();
        let source = match &stored {
            Some(_) => Source::Admin,
            None if default_value == definition.built_in => Source::BuiltIn,
            None => Source::Environment,
        };
        Value {
            value: self.value(definition),
            default_value,
            source,
            updated_at: stored.as_ref().map(|row| row.updated_at),
            updated_by: stored.and_then(|row| row.updated_by),
            min: definition.min,
            max: definition.max,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_UPLOAD_BYTES, Update, find};

    #[test]
    fn bounds_names_and_the_audit_target() {
        assert_eq!(MAX_UPLOAD_BYTES.check(1), Ok(()));
        assert_eq!(
            MAX_UPLOAD_BYTES.check(0),
            Err(format!("must be between 1 and {}; got 0", MAX_UPLOAD_BYTES.max))
        );
        assert_eq!(find("max_upload_bytes").map(|d| d.name), Some("max_upload_bytes"));
        assert!(find("nothing").is_none());
        let set = Update {
            set: vec![(MAX_UPLOAD_BYTES, 1_048_576)],
            reset: Vec::new(),
        };
        assert_eq!(set.target(), "max_upload_bytes=1048576");
        let reset = Update {
            set: Vec::new(),
            reset: vec![MAX_UPLOAD_BYTES],
        };
        assert_eq!(reset.target(), "max_upload_bytes=default");
    }
}
