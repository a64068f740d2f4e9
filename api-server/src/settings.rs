//! Settings an admin changes at run time (`SystemService.GetSettings` and
//! `UpdateSettings`). A row in `settings` overrides the environment's value.
//! Each api-server keeps a snapshot that a background task rereads every
//! `FOLIO_SETTINGS_REFRESH_MS`, and the server that takes an update rereads at
//! once, so calls read a setting without a query.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use diesel_async::AsyncConnection as _;
use folio_core::config::{MAX_UPLOAD_BYTES_DEFAULT, MAX_UPLOAD_BYTES_MAX};
use folio_db::{
    self as db,
    models::setting::{self, Setting},
};
use folio_proto::v1::{self as pb, SettingSource};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// One setting: its name (a field of `folio.v1.Settings`), its default and
/// bounds.
#[derive(Debug, Clone, Copy)]
struct Definition {
    name: &'static str,
    built_in: i64,
    min: i64,
    max: i64,
}

const MAX_UPLOAD_BYTES: Definition = Definition {
    name: "max_upload_bytes",
    built_in: MAX_UPLOAD_BYTES_DEFAULT as i64,
    min: 1,
    max: MAX_UPLOAD_BYTES_MAX as i64,
};

/// Every run-time setting.
const DEFINITIONS: &[Definition] = &[MAX_UPLOAD_BYTES];

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

    /// Every setting as `folio.v1.Settings`.
    pub fn to_proto(&self) -> pb::Settings {
        pb::Settings {
            max_upload_bytes: Some(self.describe(&MAX_UPLOAD_BYTES)),
        }
    }

    /// Applies `request` for the admin `by` in one transaction and returns the
    /// settings as they are now. Returns the audit target that names the
    /// change ("max_upload_bytes=1048576", "max_upload_bytes=default").
    pub async fn update(&self, request: pb::UpdateSettingsRequest, by: Uuid) -> ApiResult<(pb::Settings, String)> {
        let mut sets = Vec::new();
        if let Some(value) = request.max_upload_bytes {
            sets.push((check(&MAX_UPLOAD_BYTES, value)?, value));
        }
        let mut resets = Vec::new();
        for name in &request.reset {
            let definition = DEFINITIONS.iter().find(|d| d.name == name).ok_or_else(|| {
                let known: Vec<_> = DEFINITIONS.iter().map(|d| d.name).collect();
                ApiError::invalid("reset", format!("{name:?} is not a setting; settings: {}", known.join(", ")))
            })?;
            if sets.iter().any(|(d, _)| d.name == definition.name) {
                return Err(ApiError::invalid(
                    "reset",
                    format!("{name:?} is both set and reset; do one or the other"),
                ));
            }
            resets.push(*definition);
        }
        if sets.is_empty() && resets.is_empty() {
            return Err(ApiError::invalid(
                "max_upload_bytes",
                "name a setting to set, or one to reset in \"reset\"",
            ));
        }

        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| {
            for (definition, value) in &sets {
                setting::set(conn, definition.name, *value, by).await?;
            }
            for definition in &resets {
                setting::reset(conn, definition.name).await?;
            }
            Ok::<_, diesel::result::Error>(())
        })
        .await?;
        drop(conn);
        self.reload().await?;

        let target = sets
            .iter()
            .map(|(d, value)| format!("{}={value}", d.name))
            .chain(resets.iter().map(|d| format!("{}=default", d.name)))
            .collect::<Vec<_>>()
            .join(",");
        Ok((self.to_proto(), target))
    }

    async fn reload(&self) -> ApiResult<()> {
        let _order = self.reload.lock().await;
        let mut conn = self.pool.get().await?;
        let rows = setting::all(&mut conn).await?;
        let rows = rows.into_iter().map(|row| (row.name.clone(), row)).collect();
        *self.stored.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rows);
        Ok(())
    }

    fn snapshot(&self) -> Arc<HashMap<String, Setting>> {
        self.stored.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn default_value(&self, definition: &Definition) -> i64 {
        self.defaults.get(definition.name).copied().unwrap_or(definition.built_in)
    }

    fn value(&self, definition: &Definition) -> i64 {
        // A stored value outside today's bounds (they may have narrowed since
        // it was set) is clamped rather than trusted.
        self.snapshot().get(definition.name).map_or_else(
            || self.default_value(definition),
            |row| row.value.clamp(definition.min, definition.max),
        )
    }

    fn describe(&self, definition: &Definition) -> pb::Setting {
        let default_value = self.default_value(definition);
        let stored = self.snapshot().get(definition.name).cloned();
        let source = match &stored {
            Some(_) => SettingSource::Admin,
            None if default_value == definition.built_in => SettingSource::BuiltIn,
            None => SettingSource::Environment,
        };
        pb::Setting {
            value: self.value(definition),
            default_value,
            source: source.into(),
            updated_at: stored.as_ref().map(|row| crate::convert::timestamp(row.updated_at)),
            updated_by: stored.and_then(|row| row.updated_by).map(|id| id.to_string()).unwrap_or_default(),
            min: definition.min,
            max: definition.max,
        }
    }
}

/// `value` if it is within the bounds of `definition`.
fn check(definition: &Definition, value: i64) -> ApiResult<&Definition> {
    if (definition.min..=definition.max).contains(&value) {
        Ok(definition)
    } else {
        Err(ApiError::invalid(
            definition.name,
            format!("must be between {} and {}; got {value}", definition.min, definition.max),
        ))
    }
}
