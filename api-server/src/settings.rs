//! Settings an admin changes at run time (`SystemService.GetSettings` and
//! `UpdateSettings`). A row in `settings` overrides the environment's value;
//! `retention_rules` holds the per-label retention rules and `providers` the
//! embedding and reranking providers an admin chose (applied to this server's
//! `Live` models at each reread). Each api-server keeps a snapshot that a
//! background task rereads every `FOLIO_SETTINGS_REFRESH_MS`, and the server
//! that takes an update rereads at once, so calls read a setting without a
//! query.
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
use folio_core::config::{
    EmbedderKind, MAX_UPLOAD_BYTES_DEFAULT, MAX_UPLOAD_BYTES_MAX, ModelsConfig, Provider, ProviderRole, RerankerKind,
};
use folio_db::{
    self as db,
    models::{
        provider::{self, StoredProvider},
        retention_rule::{self, RetentionRule},
        setting::{self, Setting},
    },
};
use folio_models::live::Live;
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

/// The longest retention period, in days (a hundred years).
pub const RETENTION_DAYS_MAX: i64 = 36_500;

/// Days documents keep their original bytes after their upload; 0: for ever.
pub const RETENTION_ORIGINAL_DAYS: Definition = Definition {
    name: "retention_original_days",
    built_in: 0,
    min: 0,
    max: RETENTION_DAYS_MAX,
};

/// Days documents are kept after their upload; 0: for ever.
pub const RETENTION_DOCUMENT_DAYS: Definition = Definition {
    name: "retention_document_days",
    built_in: 0,
    min: 0,
    max: RETENTION_DAYS_MAX,
};

/// The weight of an admin's fair share of the workers, unless the account
/// has its own (the relay reads it as `share_weight_<role>`).
pub const SHARE_WEIGHT_ADMIN: Definition = Definition {
    name: "share_weight_admin",
    built_in: 1,
    min: 1,
    max: 100,
};

/// The weight of a member's fair share of the workers, as above.
pub const SHARE_WEIGHT_MEMBER: Definition = Definition {
    name: "share_weight_member",
    built_in: 1,
    min: 1,
    max: 100,
};

/// The most documents one owner may have waiting to be released to the
/// workers; past it uploads are refused with a time to retry. 0: no limit.
pub const MAX_WAITING_PER_OWNER: Definition = Definition {
    name: "max_waiting_per_owner",
    built_in: 100_000,
    min: 0,
    max: 100_000_000,
};

/// Every run-time setting.
pub const DEFINITIONS: &[Definition] = &[
    MAX_UPLOAD_BYTES,
    QUOTA_DOCUMENTS,
    QUOTA_BYTES,
    RETENTION_ORIGINAL_DAYS,
    RETENTION_DOCUMENT_DAYS,
    SHARE_WEIGHT_ADMIN,
    SHARE_WEIGHT_MEMBER,
    MAX_WAITING_PER_OWNER,
];

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
    pub retention_original_days: Value,
    pub retention_document_days: Value,
    pub share_weight_admin: Value,
    pub share_weight_member: Value,
    pub max_waiting_per_owner: Value,
    /// The per-label retention rules, by label.
    pub retention_rules: Vec<RetentionRule>,
    pub embedder: ProviderValue,
    pub reranker: ProviderValue,
}

/// A provider in force (never its API key: only whether one is set).
#[derive(Debug, Clone)]
pub struct ProviderValue {
    pub kind: String,
    pub url: String,
    pub model: String,
    pub api_key_set: bool,
    pub source: Source,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
}

/// How long documents keep their originals and themselves: the two
/// settings (days, 0 for ever) and the per-label rules.
#[derive(Debug, Clone)]
pub struct Retention {
    pub original_days: i32,
    pub document_days: i32,
    pub rules: Vec<RetentionRule>,
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
    /// Retention rules to store (label, original days, document days).
    pub set_rules: Vec<RuleChange>,
    /// Labels whose retention rule goes.
    pub remove_rules: Vec<String>,
    /// Providers to choose (Some) or to return to the environment's (None).
    pub providers: Vec<(ProviderRole, Option<Provider>)>,
}

/// A retention rule to store: the label and its periods (None follows the
/// setting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleChange {
    pub label: String,
    pub original_days: Option<i32>,
    pub document_days: Option<i32>,
}

impl Update {
    /// The audit target that names the change ("max_upload_bytes=1048576",
    /// "max_upload_bytes=default").
    pub fn target(&self) -> String {
        self.set
            .iter()
            .map(|(d, value)| format!("{}={value}", d.name))
            .chain(self.reset.iter().map(|d| format!("{}=default", d.name)))
            .chain(self.set_rules.iter().map(|rule| {
                let days = |days: Option<i32>| days.map_or_else(|| "setting".to_owned(), |d| d.to_string());
                format!(
                    "retention_rule[{}]=original:{}/document:{}",
                    rule.label,
                    days(rule.original_days),
                    days(rule.document_days)
                )
            }))
            .chain(self.remove_rules.iter().map(|label| format!("retention_rule[{label}]=removed")))
            .chain(self.providers.iter().map(|(role, provider)| match provider {
                // Never the key.
                Some(p) => format!("{}={}:{}@{}", role.as_str(), p.kind, p.model, p.url),
                None => format!("{}=default", role.as_str()),
            }))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What the tables hold: the settings by name, the retention rules and the
/// providers an admin chose.
#[derive(Debug, Default)]
struct Stored {
    settings: HashMap<String, Setting>,
    rules: Vec<RetentionRule>,
    providers: Vec<StoredProvider>,
}

/// The run-time settings of one api-server; clones share the snapshot.
#[derive(Clone)]
pub struct Settings {
    pool: db::Pool,
    /// The environment's values, by name.
    defaults: Arc<HashMap<&'static str, i64>>,
    stored: Arc<RwLock<Arc<Stored>>>,
    /// Held across a reread so an older read never replaces a newer one.
    reload: Arc<tokio::sync::Mutex<()>>,
    /// The models this server uses, which follow the stored providers.
    models: Arc<Live>,
}

impl Settings {
    /// Reads the settings once, then rereads them every `refresh` until
    /// `cancel`. `max_upload_bytes` is the environment's upload limit.
    pub async fn start(
        pool: db::Pool,
        max_upload_bytes: u64,
        models: Arc<Live>,
        refresh: Duration,
        cancel: CancellationToken,
    ) -> anyhow::Result<(Settings, tokio::task::JoinHandle<()>)> {
        let settings = Settings {
            pool,
            defaults: Arc::new(HashMap::from([(MAX_UPLOAD_BYTES.name, max_upload_bytes as i64)])),
            stored: Arc::default(),
            reload: Arc::default(),
            models,
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

    /// The most documents one owner may have waiting; 0: no limit.
    pub fn max_waiting_per_owner(&self) -> i64 {
        self.value(&MAX_WAITING_PER_OWNER)
    }

    /// The retention settings and rules in force.
    pub fn retention(&self) -> Retention {
        Retention {
            original_days: self.value(&RETENTION_ORIGINAL_DAYS) as i32,
            document_days: self.value(&RETENTION_DOCUMENT_DAYS) as i32,
            rules: self.stored().rules.clone(),
        }
    }

    /// Every setting as it is now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            max_upload_bytes: self.describe(&MAX_UPLOAD_BYTES),
            quota_documents: self.describe(&QUOTA_DOCUMENTS),
            quota_bytes: self.describe(&QUOTA_BYTES),
            retention_original_days: self.describe(&RETENTION_ORIGINAL_DAYS),
            retention_document_days: self.describe(&RETENTION_DOCUMENT_DAYS),
            share_weight_admin: self.describe(&SHARE_WEIGHT_ADMIN),
            share_weight_member: self.describe(&SHARE_WEIGHT_MEMBER),
            max_waiting_per_owner: self.describe(&MAX_WAITING_PER_OWNER),
            retention_rules: self.stored().rules.clone(),
            embedder: self.describe_provider(ProviderRole::Embedder),
            reranker: self.describe_provider(ProviderRole::Reranker),
        }
    }

    /// The provider an admin stored for `role`, if any (with its key: only
    /// for keeping the key when an update leaves it out).
    pub fn stored_provider(&self, role: ProviderRole) -> Option<Provider> {
        provider::of_role(&self.stored().providers, role).map(StoredProvider::provider)
    }

    /// The environment's model configuration with the providers an admin
    /// chose in place of its own (the environment's alone if a stored choice
    /// no longer reads).
    pub fn effective_models(&self) -> ModelsConfig {
        let base = self.models.base();
        let (embedder, reranker) = provider::choices_in(&self.stored().providers);
        base.with_providers(embedder.as_ref(), reranker.as_ref())
            .unwrap_or_else(|_| base.clone())
    }

    /// The models this server uses now.
    pub fn models(&self) -> &Arc<Live> {
        &self.models
    }

    fn describe_provider(&self, role: ProviderRole) -> ProviderValue {
        if let Some(stored) = provider::of_role(&self.stored().providers, role) {
            return ProviderValue {
                kind: stored.kind.clone(),
                url: stored.url.clone(),
                model: stored.model.clone(),
                api_key_set: stored.api_key.is_some(),
                source: Source::Admin,
                updated_at: Some(stored.updated_at),
                updated_by: stored.updated_by,
            };
        }
        let base = self.models.base();
        let (kind, url, model, key, built_in) = match role {
            ProviderRole::Embedder => {
                let kind = match base.embedder {
                    EmbedderKind::Hash => "hash",
                    EmbedderKind::OpenAi => "openai",
                    EmbedderKind::Local => "local",
                };
                let model = match &base.embed_model_dir {
                    Some(dir) if base.embedder == EmbedderKind::Local => dir.display().to_string(),
                    _ => base.embed_model.clone().unwrap_or_default(),
                };
                (
                    kind,
                    base.embed_url.clone(),
                    model,
                    base.embed_api_key.is_some(),
                    base.embedder == EmbedderKind::Hash,
                )
            }
            ProviderRole::Reranker => {
                let kind = match base.reranker {
                    RerankerKind::Lexical => "lexical",
                    RerankerKind::Tei => "tei",
                    RerankerKind::Cohere => "cohere",
                    RerankerKind::None => "none",
                };
                let model = base.rerank_model.clone().unwrap_or_default();
                (
                    kind,
                    base.rerank_url.clone(),
                    model,
                    base.rerank_api_key.is_some(),
                    base.reranker == RerankerKind::Lexical,
                )
            }
        };
        ProviderValue {
            kind: kind.to_owned(),
            url: url.unwrap_or_default(),
            model,
            api_key_set: key,
            source: if built_in { Source::BuiltIn } else { Source::Environment },
            updated_at: None,
            updated_by: None,
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
            for rule in &update.set_rules {
                retention_rule::set(conn, &rule.label, rule.original_days, rule.document_days, by).await?;
            }
            for label in &update.remove_rules {
                retention_rule::remove(conn, label).await?;
            }
            for (role, chosen) in &update.providers {
                match chosen {
                    Some(chosen) => {
                        provider::set(conn, *role, chosen, by).await?;
                    }
                    None => {
                        provider::reset(conn, *role).await?;
                    }
                }
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
        let settings = setting::all(&mut conn).await?;
        let settings = settings.into_iter().map(|row| (row.name.clone(), row)).collect();
        let rules = retention_rule::all(&mut conn).await?;
        let providers = provider::all(&mut conn).await?;
        let (embedder, reranker) = provider::choices_in(&providers);
        match self.models.apply(embedder, reranker) {
            Ok(true) => tracing::info!(
                embedder = self.models.embedder().model(),
                "an admin changed the providers; using them"
            ),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "an admin's choice of providers cannot be used; keeping the current ones"),
        }
        *self.stored.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Stored {
            settings,
            rules,
            providers,
        });
        Ok(())
    }

    fn stored(&self) -> Arc<Stored> {
        self.stored.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn default_value(&self, definition: &Definition) -> i64 {
        self.defaults.get(definition.name).copied().unwrap_or(definition.built_in)
    }

    fn value(&self, definition: &Definition) -> i64 {
        // A stored value outside today's bounds (they may have narrowed since
        // it was set) is clamped rather than trusted.
        self.stored().settings.get(definition.name).map_or_else(
            || self.default_value(definition),
            |row| row.value.clamp(definition.min, definition.max),
        )
    }

    fn describe(&self, definition: &Definition) -> Value {
        let default_value = self.default_value(definition);
        let stored = self.stored().settings.get(definition.name).cloned();
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
    use super::{MAX_UPLOAD_BYTES, RuleChange, Update, find};

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
            ..Update::default()
        };
        assert_eq!(set.target(), "max_upload_bytes=1048576");
        let reset = Update {
            reset: vec![MAX_UPLOAD_BYTES],
            ..Update::default()
        };
        assert_eq!(reset.target(), "max_upload_bytes=default");
        let rules = Update {
            set_rules: vec![RuleChange {
                label: "legal".into(),
                original_days: Some(0),
                document_days: None,
            }],
            remove_rules: vec!["drafts".into()],
            ..Update::default()
        };
        assert_eq!(
            rules.target(),
            "retention_rule[legal]=original:0/document:setting,retention_rule[drafts]=removed"
        );
    }
}
