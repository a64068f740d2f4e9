//! `folio.v1.SystemService`: version and dependency report, worker pings, the
//! worker list, the run-time settings and the dead letters. Each RPC is a
//! shim: it reads the request into domain terms (here, naming the request's
//! fields in what it refuses), calls an inner function below or in
//! `dead_letters.rs` or `providers.rs`, which takes and returns domain values (`health::Info`,
//! the ping's row, a `Page` of worker rows, `settings::Snapshot`, a
//! `dead_letters::Settlement`), and converts the answer (`convert.rs`).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use folio_core::{
    config::{ApiKey, Provider, ProviderRole},
    queue::EncodedJob,
};
use folio_db::{
    self as db,
    models::{
        dead_letter, outbox,
        ping::{self, Ping},
        user::RankBy,
        worker::{self, Worker},
    },
};
use folio_proto::v1::{
    self as pb, GetInfoRequest, GetInfoResponse, GetSettingsRequest, GetSystemStatsRequest, ListDeadLettersRequest,
    ListDeadLettersResponse, ListServicesRequest, ListServicesResponse, ListTopUsersRequest, ListTopUsersResponse, ListWorkersRequest,
    ListWorkersResponse, PingWorkersRequest, PingWorkersResponse, PurgeDeadLettersRequest, RegisterServiceRequest,
    ReplayDeadLettersRequest, ServiceKind, SettleDeadLettersResponse, TestProviderRequest, TestProviderResponse, TopUsersBy,
    UnregisterServiceRequest, UnregisterServiceResponse, UpdateSettingsRequest, system_service_server::SystemService,
};
use tokio::{sync::Notify, time::Instant};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    audit::{self, AuditNote, AuditStats},
    auth,
    convert::{
        checked_to_proto, dead_letters_to_proto, info_to_proto, ping_to_proto, service_to_proto, services_to_proto, settings_to_proto,
        settlement_to_proto, system_stats_to_proto, to_time, top_users_to_proto, workers_to_proto,
    },
    dead_letters::{DEAD_LETTERS_TAG, DeadLetters, Selection},
    error::{ApiError, ApiResult},
    health::{Dependencies, Info, Readiness},
    page_token::{self, Page},
    providers::{self, Providers},
    search::Search,
    services::{self, Registration},
    settings::{
        self, DEFINITIONS, MAX_UPLOAD_BYTES, MAX_WAITING_PER_OWNER, QUOTA_BYTES, QUOTA_DOCUMENTS, RETENTION_DAYS_MAX,
        RETENTION_DOCUMENT_DAYS, RETENTION_ORIGINAL_DAYS, RuleChange, SHARE_WEIGHT_ADMIN, SHARE_WEIGHT_MEMBER, Settings, Snapshot, Update,
    },
    stats,
    watch::Hub,
};

/// Default and maximum wait of `PingWorkers`.
const DEFAULT_PING_WAIT: Duration = Duration::from_secs(5);
const MAX_PING_WAIT: Duration = Duration::from_secs(60);
/// The page-token tag of ListWorkers.
const WORKERS_TAG: &str = "w1";
/// How often `PingWorkers` looks for the receipt.
const PING_POLL: Duration = Duration::from_millis(20);

/// The SystemService implementation.
pub struct System {
    pub pool: db::Pool,
    pub settings: Settings,
    pub dependencies: Dependencies,
    pub relay_wake: Arc<Notify>,
    pub hub: Hub,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    pub audit: Arc<AuditStats>,
    pub dead_letters: DeadLetters,
    /// A worker seen within this is alive (three heartbeats).
    pub alive_within: Duration,
    /// Checks registered HTTP services.
    pub http: reqwest::Client,
    /// Reindexes when an admin changes the embedder.
    pub search: Search,
}

#[tonic::async_trait]
impl SystemService for System {
    async fn get_info(&self, _request: Request<GetInfoRequest>) -> Result<Response<GetInfoResponse>, Status> {
        Ok(Response::new(info_to_proto(self.info().await)))
    }

    async fn ping_workers(&self, request: Request<PingWorkersRequest>) -> Result<Response<PingWorkersResponse>, Status> {
        let wait = ping_wait(request.into_inner())?;
        Ok(Response::new(ping_to_proto(&self.ping(wait).await?)))
    }

    async fn list_workers(&self, request: Request<ListWorkersRequest>) -> Result<Response<ListWorkersResponse>, Status> {
        let request = request.into_inner();
        let (after, page_size) = workers_page(&request)?;
        Ok(Response::new(workers_to_proto(
            self.workers(after, page_size, request.include_stopped).await?,
        )))
    }

    async fn get_settings(&self, _request: Request<GetSettingsRequest>) -> Result<Response<pb::Settings>, Status> {
        Ok(Response::new(settings_to_proto(self.settings.snapshot())))
    }

    async fn update_settings(&self, request: Request<UpdateSettingsRequest>) -> Result<Response<pb::Settings>, Status> {
        let principal = auth::principal(&request)?;
        let update = settings_update(request.into_inner(), &self.settings)?;
        Ok(Response::new(settings_to_proto(
            self.update_settings(principal.user_id, update).await?,
        )))
    }

    async fn test_provider(&self, request: Request<TestProviderRequest>) -> Result<Response<TestProviderResponse>, Status> {
        let request = request.into_inner();
        let role = ProviderRole::parse(&request.role)
            .ok_or_else(|| ApiError::invalid("role", format!("{:?} is not \"embedder\" or \"reranker\"", request.role)))?;
        let candidate = request
            .candidate
            .map(|choice| provider_choice(choice, role, &self.settings, "candidate"))
            .transpose()?;
        let built = providers::build(&self.settings, role, candidate.as_ref(), false).map_err(|why| ApiError::invalid("candidate", why))?;
        Ok(Response::new(checked_to_proto(providers::check(&built).await)))
    }

    async fn get_system_stats(&self, _request: Request<GetSystemStatsRequest>) -> Result<Response<pb::SystemStats>, Status> {
        Ok(Response::new(system_stats_to_proto(
            stats::system_stats(&self.pool, self.alive_within).await?,
        )))
    }

    async fn list_top_users(&self, request: Request<ListTopUsersRequest>) -> Result<Response<ListTopUsersResponse>, Status> {
        let (by, since, until, limit) = top_users_query(request.into_inner())?;
        Ok(Response::new(top_users_to_proto(
            stats::top_users(&self.pool, by, since, until, limit).await?,
        )))
    }

    async fn register_service(&self, request: Request<RegisterServiceRequest>) -> Result<Response<pb::Service>, Status> {
        let registration = service_registration(request.into_inner())?;
        let registered = services::register(&self.pool, &self.http, &registration).await?;
        audit::note(AuditNote {
            event: "service_registered".into(),
            target: format!("service:{}", registration.name),
            ..Default::default()
        });
        Ok(Response::new(service_to_proto(registered)))
    }

    async fn unregister_service(&self, request: Request<UnregisterServiceRequest>) -> Result<Response<UnregisterServiceResponse>, Status> {
        let name = request.into_inner().name;
        services::unregister(&self.pool, &name).await?;
        audit::note(AuditNote {
            event: "service_unregistered".into(),
            target: format!("service:{name}"),
            ..Default::default()
        });
        Ok(Response::new(UnregisterServiceResponse {}))
    }

    async fn list_services(&self, _request: Request<ListServicesRequest>) -> Result<Response<ListServicesResponse>, Status> {
        Ok(Response::new(services_to_proto(services::list(&self.pool).await?)))
    }

    async fn list_dead_letters(&self, request: Request<ListDeadLettersRequest>) -> Result<Response<ListDeadLettersResponse>, Status> {
        let (filter, before, page_size) = dead_letters_query(request.into_inner())?;
        Ok(Response::new(dead_letters_to_proto(
            self.dead_letters.list(&filter, before, page_size).await?,
        )))
    }

    async fn replay_dead_letters(&self, request: Request<ReplayDeadLettersRequest>) -> Result<Response<SettleDeadLettersResponse>, Status> {
        let principal = auth::principal(&request)?;
        let selection = dead_letter_selection(request.into_inner().selection)?;
        let settlement = self.dead_letters.replay(&selection, principal.user_id).await?;
        note_settled("dead_letters_replayed", &settlement.settled);
        Ok(Response::new(settlement_to_proto(settlement)))
    }

    async fn purge_dead_letters(&self, request: Request<PurgeDeadLettersRequest>) -> Result<Response<SettleDeadLettersResponse>, Status> {
        let principal = auth::principal(&request)?;
        let selection = dead_letter_selection(request.into_inner().selection)?;
        let settlement = self.dead_letters.purge(&selection, principal.user_id).await?;
        note_settled("dead_letters_purged", &settlement.settled);
        Ok(Response::new(settlement_to_proto(settlement)))
    }
}

/// The service a RegisterServiceRequest names, checked.
fn service_registration(request: RegisterServiceRequest) -> ApiResult<Registration> {
    let kind = match ServiceKind::try_from(request.kind) {
        Ok(ServiceKind::Http) => services::Kind::Http,
        Ok(ServiceKind::Grpc) => services::Kind::Grpc,
        _ => return Err(ApiError::invalid("kind", "must be SERVICE_KIND_HTTP or SERVICE_KIND_GRPC")),
    };
    Registration::check(&request.name, kind, &request.target)
}

/// What ListTopUsers ranks by, its window and how many it lists.
fn top_users_query(request: ListTopUsersRequest) -> ApiResult<(RankBy, DateTime<Utc>, DateTime<Utc>, i64)> {
    let by = match TopUsersBy::try_from(request.by) {
        Ok(TopUsersBy::Unspecified | TopUsersBy::Documents) => RankBy::Documents,
        Ok(TopUsersBy::Bytes) => RankBy::Bytes,
        Ok(TopUsersBy::Activity) => RankBy::Activity,
        Err(_) => return Err(ApiError::invalid("by", "is not a known ranking")),
    };
    let until = request.until.map(|t| to_time("until", t)).transpose()?.unwrap_or_else(Utc::now);
    let since = request
        .since
        .map(|t| to_time("since", t))
        .transpose()?
        .unwrap_or(until - chrono::Duration::days(30));
    if since >= until {
        return Err(ApiError::invalid("since", "must be before until"));
    }
    let limit = match request.limit {
        0 => 10,
        n if n < 0 => return Err(ApiError::invalid("limit", "must not be negative")),
        n => i64::from(n).min(100),
    };
    Ok((by, since, until, limit))
}

/// The audit note of a replay or purge: the letters it settled.
fn note_settled(event: &str, settled: &[i64]) {
    let ids: Vec<String> = settled.iter().map(i64::to_string).collect();
    audit::note(AuditNote {
        event: event.into(),
        target: format!("dead_letters:{}", ids.join(",")),
        ..Default::default()
    });
}

/// ListDeadLetters' filter, where its page token left off, and its page size.
fn dead_letters_query(request: ListDeadLettersRequest) -> ApiResult<(dead_letter::Filter, Option<i64>, i64)> {
    let page_size = page_token::page_size(request.page_size, 50, 500)?;
    let before = match request.page_token.as_str() {
        "" => None,
        token => Some(
            page_token::decode_number(DEAD_LETTERS_TAG, token)
                .ok_or_else(|| ApiError::invalid("page_token", "is not a token this list issued"))?,
        ),
    };
    let mut filter = dead_letter_filter("filter", request.filter.unwrap_or_default())?;
    filter.pending_only = !request.include_settled;
    Ok((filter, before, page_size))
}

/// A DeadLetterFilter in domain terms; `field` is where it sits in the
/// request, for the names of refused fields.
fn dead_letter_filter(field: &str, filter: pb::DeadLetterFilter) -> ApiResult<dead_letter::Filter> {
    let text = |value: String| Some(value).filter(|v| !v.is_empty());
    Ok(dead_letter::Filter {
        kind: text(filter.kind),
        reason: text(filter.reason),
        owner_id: match filter.owner_id.as_str() {
            "" => None,
            id => Some(
                id.parse()
                    .map_err(|_| ApiError::invalid(&format!("{field}.owner_id"), "must be a UUID"))?,
            ),
        },
        error_code: text(filter.error_code),
        dead_after: filter.dead_after.map(|t| to_time(&format!("{field}.dead_after"), t)).transpose()?,
        dead_before: filter
            .dead_before
            .map(|t| to_time(&format!("{field}.dead_before"), t))
            .transpose()?,
        ..Default::default()
    })
}

/// Which letters a replay or purge takes: ids, else a filter with at least
/// one part set, else all; nothing at all is refused.
fn dead_letter_selection(selection: Option<pb::DeadLetterSelection>) -> ApiResult<Selection> {
    let selection = selection.unwrap_or_default();
    if !selection.ids.is_empty() {
        if selection.ids.len() > crate::dead_letters::SETTLE_LIMIT {
            return Err(ApiError::invalid(
                "selection.ids",
                format!("at most {} ids a call", crate::dead_letters::SETTLE_LIMIT),
            ));
        }
        return Ok(Selection::Ids(selection.ids));
    }
    if let Some(filter) = selection.filter {
        let filter = dead_letter_filter("selection.filter", filter)?;
        let empty = filter.kind.is_none()
            && filter.reason.is_none()
            && filter.owner_id.is_none()
            && filter.error_code.is_none()
            && filter.dead_after.is_none()
            && filter.dead_before.is_none();
        if !empty {
            return Ok(Selection::Matching(filter));
        }
    }
    if selection.all {
        return Ok(Selection::All);
    }
    Err(ApiError::invalid(
        "selection",
        "select letters by ids, by a filter, or set all to take every pending one",
    ))
}

/// A provider as an admin chose it for `role` in the request's `field`; an
/// unset key keeps the key stored for the role.
fn provider_choice(choice: pb::ProviderChoice, role: ProviderRole, settings: &Settings, field: &str) -> ApiResult<Provider> {
    let api_key = match choice.api_key {
        Some(key) if key.is_empty() => None,
        Some(key) => Some(ApiKey::new(key)),
        None => settings.stored_provider(role).and_then(|stored| stored.api_key),
    };
    let provider = Provider {
        kind: choice.kind.trim().to_owned(),
        url: choice.url.trim().to_owned(),
        model: choice.model.trim().to_owned(),
        api_key,
    };
    let checked = match role {
        ProviderRole::Embedder => settings.models().base().with_providers(Some(&provider), None),
        ProviderRole::Reranker => settings.models().base().with_providers(None, Some(&provider)),
    };
    checked.map_err(|why| ApiError::invalid(field, why))?;
    Ok(provider)
}

/// What an UpdateSettingsRequest changes; every refusal names its field.
fn settings_update(request: UpdateSettingsRequest, settings: &Settings) -> ApiResult<Update> {
    let mut update = Update::default();
    if let Some(value) = request.max_upload_bytes {
        MAX_UPLOAD_BYTES
            .check(value)
            .map_err(|why| ApiError::invalid("max_upload_bytes", why))?;
        update.set.push((MAX_UPLOAD_BYTES, value));
    }
    for (definition, value) in [
        (QUOTA_DOCUMENTS, request.quota_documents),
        (QUOTA_BYTES, request.quota_bytes),
        (RETENTION_ORIGINAL_DAYS, request.retention_original_days),
        (RETENTION_DOCUMENT_DAYS, request.retention_document_days),
        (SHARE_WEIGHT_ADMIN, request.share_weight_admin),
        (SHARE_WEIGHT_MEMBER, request.share_weight_member),
        (MAX_WAITING_PER_OWNER, request.max_waiting_per_owner),
    ] {
        if let Some(value) = value {
            definition.check(value).map_err(|why| ApiError::invalid(definition.name, why))?;
            update.set.push((definition, value));
        }
    }
    for name in request.reset.iter().filter(|name| ProviderRole::parse(name).is_none()) {
        let definition = settings::find(name).ok_or_else(|| {
            let known: Vec<_> = DEFINITIONS.iter().map(|d| d.name).chain(["embedder", "reranker"]).collect();
            ApiError::invalid("reset", format!("{name:?} is not a setting; settings: {}", known.join(", ")))
        })?;
        if update.set.iter().any(|(d, _)| d.name == definition.name) {
            return Err(ApiError::invalid(
                "reset",
                format!("{name:?} is both set and reset; do one or the other"),
            ));
        }
        update.reset.push(definition);
    }
    for rule in request.set_retention_rules {
        let label = rule.label.trim().to_owned();
        if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "set_retention_rules.label",
                "a label is 1 to 64 characters without control characters",
            ));
        }
        for days in [rule.original_days, rule.document_days].into_iter().flatten() {
            if !(0..=RETENTION_DAYS_MAX).contains(&i64::from(days)) {
                return Err(ApiError::invalid(
                    "set_retention_rules",
                    format!("days must be between 0 and {RETENTION_DAYS_MAX}; got {days}"),
                ));
            }
        }
        if update.set_rules.iter().any(|r| r.label == label) {
            return Err(ApiError::invalid(
                "set_retention_rules.label",
                format!("{label:?} has two rules; give one"),
            ));
        }
        update.set_rules.push(RuleChange {
            label,
            original_days: rule.original_days,
            document_days: rule.document_days,
        });
    }
    for label in request.remove_retention_rules {
        let label = label.trim().to_owned();
        if update.set_rules.iter().any(|r| r.label == label) {
            return Err(ApiError::invalid(
                "remove_retention_rules",
                format!("{label:?} is both set and removed; do one or the other"),
            ));
        }
        update.remove_rules.push(label);
    }
    for (role, choice) in [
        (ProviderRole::Embedder, request.embedder),
        (ProviderRole::Reranker, request.reranker),
    ] {
        if let Some(choice) = choice {
            let chosen = provider_choice(choice, role, settings, role.as_str())?;
            update.providers.push((role, Some(chosen)));
        }
    }
    for name in &request.reset {
        let Some(role) = ProviderRole::parse(name) else { continue };
        if update.providers.iter().any(|(r, _)| *r == role) {
            return Err(ApiError::invalid(
                "reset",
                format!("{name:?} is both set and reset; do one or the other"),
            ));
        }
        update.providers.push((role, None));
    }
    if update.set.is_empty()
        && update.reset.is_empty()
        && update.set_rules.is_empty()
        && update.remove_rules.is_empty()
        && update.providers.is_empty()
    {
        return Err(ApiError::invalid(
            "max_upload_bytes",
            "name a setting to set, or one to reset in \"reset\"",
        ));
    }
    Ok(update)
}

/// How long a PingWorkersRequest waits for the receipt.
fn ping_wait(request: PingWorkersRequest) -> ApiResult<Duration> {
    match request.wait {
        None => Ok(DEFAULT_PING_WAIT),
        Some(wait) => Duration::try_from(wait)
            .ok()
            .filter(|w| *w <= MAX_PING_WAIT)
            .ok_or_else(|| ApiError::invalid("wait", format!("must be between 0s and {}s", MAX_PING_WAIT.as_secs()))),
    }
}

/// Where a ListWorkersRequest's page token left off, and its page size.
fn workers_page(request: &ListWorkersRequest) -> ApiResult<(Option<worker::Cursor>, i64)> {
    let page_size = page_token::page_size(request.page_size, 100, 1000)?;
    let after = match request.page_token.as_str() {
        "" => None,
        token => Some(
            page_token::decode_time_id(WORKERS_TAG, token)
                .ok_or_else(|| ApiError::invalid("page_token", "is not a token this server issued"))?,
        ),
    };
    Ok((after, page_size))
}

impl System {
    /// This server's version, start and uptime, its dependencies' checks,
    /// its watch hub's counters and the search indexes' backlog.
    async fn info(&self) -> Info {
        let (dependencies, index_backlog, search_replica_lag) = tokio::join!(
            self.dependencies.check_all(),
            self.dependencies.index_backlog(),
            self.dependencies.search_replica_lag()
        );
        Info {
            version: folio_core::VERSION,
            started_at: self.started_at,
            uptime: self.started.elapsed(),
            readiness: Readiness::of(&dependencies),
            dependencies,
            watch: self.hub.stats(),
            audit: self.audit.snapshot(),
            index_backlog,
            search_replica_lag,
        }
    }

    /// Sends a ping through the outbox, the queue and a worker, and waits up
    /// to `wait` for its receipt. The ping as last read: with the receipt if
    /// a worker answered in time.
    async fn ping(&self, wait: Duration) -> ApiResult<Ping> {
        let ping_id = Uuid::now_v7();
        let job = EncodedJob::ping(ping_id);
        let mut conn = self.pool.get().await?;
        let created = conn
            .transaction(async |conn| {
                let created = ping::create(conn, ping_id).await?;
                outbox::enqueue(conn, &job).await?;
                Ok::<_, diesel::result::Error>(created)
            })
            .await?;
        self.relay_wake.notify_one();

        let deadline = Instant::now() + wait;
        loop {
            if let Some(found) = ping::find(&mut conn, ping_id).await?
                && found.received_at.is_some()
                && found.worker_id.is_some()
            {
                return Ok(found);
            }
            if Instant::now() + PING_POLL > deadline {
                return Ok(created);
            }
            tokio::time::sleep(PING_POLL).await;
        }
    }

    /// A page of the workers, most recently seen first, after `after`;
    /// stopped ones only if `include_stopped`.
    async fn workers(&self, after: Option<worker::Cursor>, page_size: i64, include_stopped: bool) -> ApiResult<Page<Worker>> {
        let mut conn = self.pool.get().await?;
        let rows = worker::list(&mut conn, page_size + 1, after, include_stopped).await?;
        Ok(Page::cut(rows, page_size, |w| {
            page_token::encode_time_id(WORKERS_TAG, (w.last_seen_at, w.id))
        }))
    }

    /// Applies `update` for the admin `by`; the settings as they are now.
    async fn update_settings(&self, by: Uuid, update: Update) -> ApiResult<Snapshot> {
        let snapshot = Providers {
            pool: &self.pool,
            settings: &self.settings,
            search: &self.search,
        }
        .choose(&update, by)
        .await?;
        audit::note(AuditNote {
            event: "settings_updated".into(),
            target: format!("settings:{}", update.target()),
            ..Default::default()
        });
        Ok(snapshot)
    }
}
