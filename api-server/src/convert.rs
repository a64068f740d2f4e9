//! Conversions between folio's domain types and their protobuf forms:
//! timestamps and durations, documents, their states, stages and events,
//! users and roles, sessions and public keys, the pages of UserService,
//! settings, GetInfo's report, pings, workers and dead letters, search outcomes,
//! conversations and Ask's events, and the
//! pages, statistics and downloads of DocumentService, groups and shares, and
//! request ids. A leaf: it depends on
//! the generated types, the domain types (the model files,
//! [`crate::accounts`], [`crate::sharing`], [`crate::settings`], [`crate::health`]'s `Info`,
//! [`crate::search`], [`crate::conversations`], [`crate::dead_letters`], [`crate::stats`], [`Page`]) and the error type,
//! and on no service module.
//!
//! About 900 lines: one small function per message of the API, kept in
//! one file so that the one edge between domain and protobuf is one place to
//! read; split it by service if it grows much further.

use std::{collections::HashMap, time::Duration};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use folio_auth::{Role, second_factor::Enrollment, tokens::PublicKeyInfo};
use folio_db::{
    documents::state::{EventKind, Stage, State},
    models::{
        audit_event::AuditEvent,
        chunk::Chunk,
        dead_letter::Listed,
        document::{Document, StageTiming, StateCount},
        document_event::DocumentEvent,
        ping::Ping,
        service,
        share::Share,
        user, worker,
    },
};
use folio_proto::v1 as pb;
use futures_util::{Stream, StreamExt as _};

use crate::{
    accounts::{Refused, Session},
    conversations::{Citation, Conversation, Role as ConversationRole, ask},
    dead_letters::Settlement,
    error::{ApiError, ApiResult},
    health::Info,
    oidc::Started,
    page_token::Page,
    providers,
    search::{Hit, Outcome, Reindexed},
    second_factor::SignIn,
    settings::{self, Snapshot, Source},
    sharing::Members,
};

/// The id in request field `field`.
pub fn to_id(field: &str, text: &str) -> ApiResult<uuid::Uuid> {
    text.trim().parse().map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// A group with its members.
pub fn group_to_proto(members: Members) -> pb::Group {
    let Members { group, members } = members;
    pb::Group {
        id: group.id.to_string(),
        name: group.name,
        member_ids: members.iter().map(ToString::to_string).collect(),
        created_at: Some(timestamp(group.created_at)),
        updated_at: Some(timestamp(group.updated_at)),
    }
}

/// A share ("" for what it does not name).
pub fn share_to_proto(share: Share) -> pb::Share {
    let text = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    pb::Share {
        id: share.id.to_string(),
        owner_id: share.owner_id.to_string(),
        document_id: text(share.document_id),
        label: share.label.unwrap_or_default(),
        user_id: text(share.user_id),
        group_id: text(share.group_id),
        created_by: text(share.created_by),
        created_at: Some(timestamp(share.created_at)),
    }
}

/// The protobuf form of the settings as they are.
pub fn settings_to_proto(snapshot: Snapshot) -> pb::Settings {
    pb::Settings {
        max_upload_bytes: Some(setting_to_proto(snapshot.max_upload_bytes)),
        quota_documents: Some(setting_to_proto(snapshot.quota_documents)),
        quota_bytes: Some(setting_to_proto(snapshot.quota_bytes)),
        retention_original_days: Some(setting_to_proto(snapshot.retention_original_days)),
        retention_document_days: Some(setting_to_proto(snapshot.retention_document_days)),
        share_weight_admin: Some(setting_to_proto(snapshot.share_weight_admin)),
        share_weight_member: Some(setting_to_proto(snapshot.share_weight_member)),
        max_waiting_per_owner: Some(setting_to_proto(snapshot.max_waiting_per_owner)),
        retention_rules: snapshot
            .retention_rules
            .into_iter()
            .map(|rule| pb::RetentionRule {
                label: rule.label,
                original_days: rule.original_days,
                document_days: rule.document_days,
                updated_at: Some(timestamp(rule.updated_at)),
                updated_by: rule.updated_by.map(|id| id.to_string()).unwrap_or_default(),
            })
            .collect(),
        embedder: Some(provider_to_proto(snapshot.embedder)),
        reranker: Some(provider_to_proto(snapshot.reranker)),
    }
}

fn provider_to_proto(provider: settings::ProviderValue) -> pb::Provider {
    pb::Provider {
        kind: provider.kind,
        url: provider.url,
        model: provider.model,
        api_key_set: provider.api_key_set,
        source: source_to_proto(provider.source) as i32,
        updated_at: provider.updated_at.map(timestamp),
        updated_by: provider.updated_by.map(|id| id.to_string()).unwrap_or_default(),
    }
}

/// TestProvider's answer.
pub fn checked_to_proto(checked: providers::Checked) -> pb::TestProviderResponse {
    pb::TestProviderResponse {
        ok: checked.error.is_none(),
        latency: Some(duration(checked.latency)),
        error: checked.error.unwrap_or_default(),
        model: checked.model,
        dimension: checked.dimension as i32,
    }
}

fn source_to_proto(source: Source) -> pb::SettingSource {
    match source {
        Source::BuiltIn => pb::SettingSource::BuiltIn,
        Source::Environment => pb::SettingSource::Environment,
        Source::Admin => pb::SettingSource::Admin,
    }
}

fn setting_to_proto(setting: settings::Value) -> pb::Setting {
    pb::Setting {
        value: setting.value,
        default_value: setting.default_value,
        source: source_to_proto(setting.source) as i32,
        updated_at: setting.updated_at.map(timestamp),
        updated_by: setting.updated_by.map(|id| id.to_string()).unwrap_or_default(),
        min: setting.min,
        max: setting.max,
    }
}

/// ListSessions' answer; `current` is the caller's session.
pub fn sessions_to_proto(sessions: &[folio_db::models::session::Session], current: uuid::Uuid) -> pb::ListSessionsResponse {
    pb::ListSessionsResponse {
        sessions: sessions
            .iter()
            .map(|s| pb::SessionInfo {
                id: s.id.to_string(),
                user_id: s.user_id.to_string(),
                created_at: Some(timestamp(s.created_at)),
                last_used_at: Some(timestamp(s.last_used_at)),
                expires_at: Some(timestamp(s.expires_at)),
                peer: s.peer.clone(),
                user_agent: s.user_agent.clone(),
                current: s.id == current,
            })
            .collect(),
    }
}

/// GetInfo's answer.
pub fn info_to_proto(info: Info) -> pb::GetInfoResponse {
    pb::GetInfoResponse {
        version: info.version.to_owned(),
        started_at: Some(timestamp(info.started_at)),
        uptime: Some(duration(info.uptime)),
        serving: info.readiness.serving,
        degraded: info.readiness.degraded,
        dependencies: info
            .dependencies
            .into_iter()
            .map(|check| pb::Dependency {
                name: check.name.to_owned(),
                up: check.up,
                latency: Some(duration(check.latency)),
                error: check.error.unwrap_or_default(),
            })
            .collect(),
        watch: Some(pb::WatchStats {
            streams: info.watch.streams as i64,
            live_notices: info.watch.live_notices,
            fallbacks: info.watch.fallbacks as i64,
        }),
        audit: Some(pb::AuditStats {
            written: info.audit.written as i64,
            delayed: info.audit.delayed as i64,
            spilled: info.audit.spilled as i64,
            restored: info.audit.restored as i64,
            lost: info.audit.lost as i64,
        }),
        index_backlog_chunks: info.index_backlog,
        search_replica_lag_bytes: info.search_replica_lag,
    }
}

/// PingWorkers' answer: received once a worker's receipt is in the ping,
/// with the round trip from its request to that receipt.
pub fn ping_to_proto(ping: &Ping) -> pb::PingWorkersResponse {
    let mut response = pb::PingWorkersResponse {
        ping_id: ping.id.to_string(),
        ..Default::default()
    };
    if let (Some(received_at), Some(worker_id)) = (ping.received_at, ping.worker_id) {
        response.received = true;
        response.worker_id = worker_id.to_string();
        response.round_trip = Some(duration((received_at - ping.requested_at).to_std().unwrap_or_default()));
    }
    response
}

/// A page of ListWorkers.
pub fn workers_to_proto(page: Page<worker::Worker>) -> pb::ListWorkersResponse {
    pb::ListWorkersResponse {
        workers: page.items.into_iter().map(worker_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

pub fn worker_to_proto(w: worker::Worker) -> pb::Worker {
    pb::Worker {
        id: w.id.to_string(),
        host: w.host,
        pid: w.pid as u32,
        version: w.version,
        started_at: Some(timestamp(w.started_at)),
        last_seen_at: Some(timestamp(w.last_seen_at)),
        current_job: w.current_job.unwrap_or_default(),
        stopped_at: w.stopped_at.map(timestamp),
        jobs_in_flight: w.jobs_in_flight.max(0) as u32,
    }
}

pub fn dead_letters_to_proto(page: Page<Listed>) -> pb::ListDeadLettersResponse {
    pb::ListDeadLettersResponse {
        dead_letters: page.items.into_iter().map(dead_letter_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

fn dead_letter_to_proto(listed: Listed) -> pb::DeadLetter {
    let letter = listed.letter;
    let text = |id: Option<uuid::Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    pb::DeadLetter {
        id: letter.id,
        job_id: text(letter.job_id),
        kind: letter.kind,
        document_id: text(letter.document_id),
        owner_id: text(listed.owner_id),
        filename: listed.filename.unwrap_or_default(),
        error_code: listed.error_code.unwrap_or_default(),
        error_message: listed.error_message.unwrap_or_default(),
        tries: letter.attempt,
        reason: letter.reason,
        dead_at: Some(timestamp(letter.dead_at)),
        replayed_at: letter.replayed_at.map(timestamp),
        purged_at: letter.purged_at.map(timestamp),
        settled_by: text(letter.settled_by),
    }
}

pub fn system_stats_to_proto(stats: crate::stats::SystemStats) -> pb::SystemStats {
    pb::SystemStats {
        users: stats
            .users
            .into_iter()
            .map(|count| pb::RoleCount {
                role: Role::parse(&count.role).map_or(pb::Role::Unspecified, role_to_proto) as i32,
                active: count.active,
                users: count.users,
            })
            .collect(),
        live_sessions: stats.live_sessions,
        documents: Some(stats_to_proto(&stats.states, &stats.stages, None)),
        days: stats
            .days
            .into_iter()
            .map(|day| pb::DayActivity {
                date: day.date,
                uploads: day.uploads,
                failures: day.failures,
            })
            .collect(),
        failures_by_code: stats
            .failures
            .into_iter()
            .map(|count| pb::ErrorCodeCount {
                error_code: count.code,
                documents: count.documents,
            })
            .collect(),
        workers_alive: stats.workers_alive as i32,
    }
}

pub fn top_users_to_proto(users: Vec<user::Ranked>) -> pb::ListTopUsersResponse {
    pb::ListTopUsersResponse {
        users: users
            .into_iter()
            .map(|user| pb::TopUser {
                user_id: user.id.to_string(),
                email: user.email,
                display_name: user.display_name,
                value: user.value,
            })
            .collect(),
    }
}

pub fn services_to_proto(services: Vec<service::Service>) -> pb::ListServicesResponse {
    pb::ListServicesResponse {
        services: services.into_iter().map(service_to_proto).collect(),
    }
}

pub fn service_to_proto(service: service::Service) -> pb::Service {
    pb::Service {
        kind: match service.kind.as_str() {
            "grpc" => pb::ServiceKind::Grpc,
            _ => pb::ServiceKind::Http,
        } as i32,
        status: match service.up {
            None => pb::ServiceStatus::Unspecified,
            Some(true) => pb::ServiceStatus::Up,
            Some(false) => pb::ServiceStatus::Down,
        } as i32,
        latency: service.latency_ms.map(|ms| duration(Duration::from_millis(ms.max(0) as u64))),
        error: service.error.unwrap_or_default(),
        checked_at: service.checked_at.map(timestamp),
        changed_at: service.changed_at.map(timestamp),
        created_at: Some(timestamp(service.created_at)),
        name: service.name,
        target: service.target,
        automatic: service.automatic,
    }
}

pub fn settlement_to_proto(settlement: Settlement) -> pb::SettleDeadLettersResponse {
    pb::SettleDeadLettersResponse {
        settled: settlement.settled,
        skipped: settlement
            .skipped
            .into_iter()
            .map(|(id, reason)| pb::SkippedDeadLetter { id, reason })
            .collect(),
        more: settlement.more,
    }
}

/// A protobuf timestamp from a chrono one.
pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// A chrono timestamp from the protobuf one in request field `field`.
pub fn to_time(field: &str, t: prost_types::Timestamp) -> ApiResult<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32).ok_or_else(|| ApiError::invalid(field, "is out of range"))
}

/// A protobuf duration from a std one.
pub fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// The lifecycle state of a protobuf state (UNSPECIFIED reads as QUEUED).
pub fn state_from_proto(value: pb::DocumentState) -> State {
    match value {
        pb::DocumentState::Queued | pb::DocumentState::Unspecified => State::Queued,
        pb::DocumentState::Processing => State::Processing,
        pb::DocumentState::RetryWait => State::RetryWait,
        pb::DocumentState::Ready => State::Ready,
        pb::DocumentState::Failed => State::Failed,
        pb::DocumentState::Cancelled => State::Cancelled,
    }
}

pub fn state_to_proto(state: State) -> pb::DocumentState {
    match state {
        State::Queued => pb::DocumentState::Queued,
        State::Processing => pb::DocumentState::Processing,
        State::RetryWait => pb::DocumentState::RetryWait,
        State::Ready => pb::DocumentState::Ready,
        State::Failed => pb::DocumentState::Failed,
        State::Cancelled => pb::DocumentState::Cancelled,
    }
}

pub fn stage_to_proto(stage: Option<Stage>) -> pb::Stage {
    match stage {
        Some(Stage::Store) => pb::Stage::Store,
        Some(Stage::Parse) => pb::Stage::Parse,
        Some(Stage::Chunk) => pb::Stage::Chunk,
        Some(Stage::Embed) => pb::Stage::Embed,
        Some(Stage::Index) => pb::Stage::Index,
        None => pb::Stage::Unspecified,
    }
}

fn kind_to_proto(kind: EventKind) -> pb::EventKind {
    match kind {
        EventKind::Started => pb::EventKind::Started,
        EventKind::Progress => pb::EventKind::Progress,
        EventKind::Completed => pb::EventKind::Completed,
        EventKind::Failed => pb::EventKind::EventFailed,
        EventKind::RetryScheduled => pb::EventKind::RetryScheduled,
        EventKind::Cancelled => pb::EventKind::EventCancelled,
    }
}

/// Where a waiting document's job stands, as GetDocument says it.
pub fn standing_to_proto(standing: folio_db::documents::lifecycle::Standing) -> pb::QueuePosition {
    pb::QueuePosition {
        ahead: standing.position.ahead,
        owners: standing.position.owners,
        weight: standing.weight,
        total_weight: standing.total_weight,
    }
}

/// The protobuf form of a document.
pub fn document_to_proto(d: &Document, duplicate: bool) -> pb::Document {
    let stage_millis: HashMap<String, i64> = d
        .stage_ms
        .as_object()
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_i64()?))).collect())
        .unwrap_or_default();
    pb::Document {
        id: d.id.to_string(),
        owner_id: d.owner_id.to_string(),
        filename: d.filename.clone(),
        title: d.title.clone(),
        content_type: d.content_type.clone(),
        format: d.format.clone(),
        labels: d.labels.iter().flatten().cloned().collect(),
        size_bytes: d.size_bytes,
        sha256: d.sha256.iter().map(|b| format!("{b:02x}")).collect(),
        state: state_to_proto(d.state) as i32,
        stage: stage_to_proto(d.stage) as i32,
        attempt: d.attempt,
        try_number: d.try_number,
        max_tries: d.max_tries,
        next_retry_at: d.next_retry_at.map(timestamp),
        error_code: d.error_code.clone().unwrap_or_default(),
        error_message: d.error_message.clone().unwrap_or_default(),
        will_retry: d.will_retry,
        pages: d.pages.unwrap_or(0),
        characters: d.characters.unwrap_or(0),
        chunks: d.chunk_count.unwrap_or(0),
        stage_millis,
        created_at: Some(timestamp(d.created_at)),
        updated_at: Some(timestamp(d.updated_at)),
        completed_at: d.completed_at.map(timestamp),
        duplicate,
        // GetDocument fills it in (`Documents::visible_with_wait`).
        waiting: String::new(),
        queue: None,
        original_deleted: !d.has_original(),
    }
}

/// The protobuf form of an event.
pub fn event_to_proto(e: &DocumentEvent) -> pb::DocumentEvent {
    pb::DocumentEvent {
        id: e.id,
        document_id: e.document_id.to_string(),
        attempt: e.attempt,
        stage: stage_to_proto(Some(e.stage)) as i32,
        kind: kind_to_proto(e.kind) as i32,
        percent: e.percent,
        message: e.message.clone(),
        details: json_to_struct(&e.details),
        created_at: Some(timestamp(e.created_at)),
        state: state_to_proto(e.state) as i32,
        trace_id: e.trace_id.clone().unwrap_or_default(),
    }
}

/// A page of ListDocuments.
pub fn documents_to_proto(page: Page<Document>) -> pb::ListDocumentsResponse {
    pb::ListDocumentsResponse {
        documents: page.items.iter().map(|d| document_to_proto(d, false)).collect(),
        next_page_token: page.next_page_token,
    }
}

/// A page of ListDocumentEvents, read with page size `limit`: a full page
/// names its last event as the next cursor, a shorter one 0 (no more).
pub fn events_to_proto(events: &[DocumentEvent], limit: i64) -> pb::ListDocumentEventsResponse {
    let next_after_event_id = if events.len() as i64 == limit {
        events.last().map_or(0, |e| e.id)
    } else {
        0
    };
    pb::ListDocumentEventsResponse {
        events: events.iter().map(event_to_proto).collect(),
        next_after_event_id,
    }
}

/// A page of ListChunks.
pub fn chunks_to_proto(page: Page<Chunk>) -> pb::ListChunksResponse {
    pb::ListChunksResponse {
        chunks: page
            .items
            .into_iter()
            .map(|c| pb::Chunk {
                id: c.id,
                document_id: c.document_id.to_string(),
                ordinal: c.ordinal,
                text: c.text,
                section_path: c.section_path.into_iter().flatten().collect(),
                page_start: c.page_start.unwrap_or(0),
                page_end: c.page_end.unwrap_or(0),
                token_count: c.token_count,
            })
            .collect(),
        next_page_token: page.next_page_token,
    }
}

/// GetDocumentStats' answer: the counts by state, their totals, and the
/// stages' durations.
pub fn stats_to_proto(states: &[StateCount], stages: &[StageTiming], quota: Option<&crate::quota::Quota>) -> pb::DocumentStats {
    pb::DocumentStats {
        quota: quota.map(|q| pb::DocumentQuota {
            documents_used: q.used.documents,
            documents_limit: q.documents,
            bytes_used: q.used.bytes,
            bytes_limit: q.bytes,
        }),
        total_documents: states.iter().map(|c| c.documents).sum(),
        total_bytes: states.iter().map(|c| c.bytes).sum(),
        total_chunks: states.iter().map(|c| c.chunks).sum(),
        states: states
            .iter()
            .map(|c| pb::StateStats {
                state: state_to_proto(c.state) as i32,
                documents: c.documents,
                bytes: c.bytes,
                chunks: c.chunks,
            })
            .collect(),
        stages: stages
            .iter()
            .map(|t| pb::StageStats {
                stage: stage_to_proto(Some(t.stage)) as i32,
                p50_ms: t.p50,
                p95_ms: t.p95,
                samples: t.samples,
            })
            .collect(),
    }
}

/// DownloadDocument's messages: one per part, the first that carries bytes
/// also carrying the content type; a failed part ends the call with its
/// status.
pub fn download_to_proto(
    content_type: String,
    parts: impl Stream<Item = ApiResult<Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<pb::DownloadDocumentResponse, tonic::Status>> + Send + 'static {
    let mut content_type = Some(content_type);
    parts.map(move |part| match part {
        Ok(data) => Ok(pb::DownloadDocumentResponse {
            content_type: content_type.take().unwrap_or_default(),
            data: data.to_vec(),
        }),
        Err(error) => Err(error.into()),
    })
}

fn json_to_struct(value: &serde_json::Value) -> Option<prost_types::Struct> {
    let object = value.as_object()?;
    Some(prost_types::Struct {
        fields: object.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect(),
    })
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(_) => Kind::StructValue(json_to_struct(value).unwrap_or_default()),
    };
    prost_types::Value { kind: Some(kind) }
}

/// The protobuf form of a user.
pub fn user_to_proto(user: &user::User) -> pb::User {
    pb::User {
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: role_to_proto(Role::parse(&user.role).unwrap_or(Role::Viewer)) as i32,
        active: user.active,
        created_at: Some(timestamp(user.created_at)),
        updated_at: Some(timestamp(user.updated_at)),
        quota_documents: user.quota_documents,
        quota_bytes: user.quota_bytes,
        share_weight: user.share_weight,
        mfa_enabled: user.mfa_enabled,
        email_verified: user.email_verified_at.is_some(),
    }
}

/// A page of ListUsers.
pub fn users_to_proto(page: Page<user::User>) -> pb::ListUsersResponse {
    pb::ListUsersResponse {
        users: page.items.iter().map(user_to_proto).collect(),
        next_page_token: page.next_page_token,
    }
}

/// A page of ListAuditEvents.
pub fn audit_events_to_proto(page: Page<AuditEvent>) -> pb::ListAuditEventsResponse {
    pb::ListAuditEventsResponse {
        events: page
            .items
            .into_iter()
            .map(|e| pb::AuditEvent {
                id: e.id,
                at: Some(timestamp(e.at)),
                actor_id: e.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                actor_email: e.actor_email,
                rpc: e.rpc,
                target: e.target,
                outcome: e.outcome,
                event: e.event,
                latency_us: e.latency_us,
                peer: e.peer,
            })
            .collect(),
        next_page_token: page.next_page_token,
    }
}

/// The protobuf form of a session's tokens.
pub fn session_to_proto(session: Session) -> pb::Session {
    pb::Session {
        access_token: session.access_token,
        access_expires_at: Some(timestamp(session.access_expires_at)),
        refresh_token: session.refresh_token,
        refresh_expires_at: Some(timestamp(session.refresh_expires_at)),
        user: Some(user_to_proto(&session.user)),
        mfa_required: None,
        email_verification_required: false,
    }
}

/// Login's answer: a session, or the challenge of its second factor (no
/// tokens).
pub fn sign_in_to_proto(sign_in: SignIn) -> pb::Session {
    match sign_in {
        SignIn::Session(session) => session_to_proto(*session),
        SignIn::MfaRequired(challenge) => pb::Session {
            mfa_required: Some(pb::MfaChallenge {
                challenge: challenge.token,
                expires_at: Some(timestamp(challenge.expires_at)),
            }),
            ..Default::default()
        },
        SignIn::VerificationSent => pb::Session {
            email_verification_required: true,
            ..Default::default()
        },
    }
}

/// StartOidcLogin's answer.
pub fn oidc_login_to_proto(started: Started) -> pb::OidcLogin {
    pb::OidcLogin {
        authorization_url: started.authorization_url,
        state: started.state,
        expires_at: Some(timestamp(started.expires_at)),
    }
}

/// BeginTotpEnrollment's answer.
pub fn enrollment_to_proto(enrollment: Enrollment) -> pb::TotpEnrollment {
    pb::TotpEnrollment {
        secret: enrollment.secret,
        otpauth_uri: enrollment.uri,
        qr_png: enrollment.qr_png,
    }
}

/// New backup codes, shown this once.
pub fn backup_codes_to_proto(codes: Vec<String>) -> pb::BackupCodes {
    pb::BackupCodes { codes }
}

/// ListPublicKeys' answer: every key that verifies tokens.
pub fn public_keys_to_proto(keys: &[PublicKeyInfo]) -> pb::ListPublicKeysResponse {
    pb::ListPublicKeysResponse {
        keys: keys
            .iter()
            .map(|key| pb::PublicKey {
                id: key.id.clone(),
                public_key: key.paserk.clone(),
                signing: key.signing,
            })
            .collect(),
    }
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Member => pb::Role::Member,
        Role::Viewer => pb::Role::Viewer,
    }
}

/// The domain role of a protobuf one; None for unspecified or unknown values.
pub fn role_from_proto(value: i32) -> Option<Role> {
    match pb::Role::try_from(value).ok()? {
        pb::Role::Admin => Some(Role::Admin),
        pb::Role::Member => Some(Role::Member),
        pb::Role::Viewer => Some(Role::Viewer),
        pb::Role::Unspecified => None,
    }
}

/// The protobuf form of a search's outcome.
pub fn search_outcome_to_proto(outcome: Outcome) -> pb::SearchResponse {
    let Outcome {
        hits,
        timings,
        model,
        reranker,
    } = outcome;
    pb::SearchResponse {
        results: hits.into_iter().map(hit_to_proto).collect(),
        timings: Some(pb::SearchTimings {
            embed: timings.embed.map(duration),
            vector: timings.vector.map(duration),
            keyword: timings.keyword.map(duration),
            rerank: timings.rerank.map(duration),
            total: Some(duration(timings.total)),
        }),
        model,
        reranker: reranker.unwrap_or_default(),
    }
}

/// One chunk a search found, with its scores.
fn hit_to_proto(hit: Hit) -> pb::SearchResult {
    pb::SearchResult {
        chunk_id: hit.chunk.id,
        document_id: hit.chunk.document_id.to_string(),
        document_title: hit.document_title,
        filename: hit.filename,
        section_path: hit.chunk.section_path.into_iter().flatten().collect(),
        page_start: hit.chunk.page_start.unwrap_or(0),
        page_end: hit.chunk.page_end.unwrap_or(0),
        text: hit.chunk.text,
        scores: Some(pb::SearchScores {
            vector: hit.scores.vector,
            keyword: hit.scores.keyword,
            fused: hit.scores.fused,
            rerank: hit.scores.rerank,
            heading: hit.scores.heading,
            vector_rank: hit.scores.vector_rank,
            keyword_rank: hit.scores.keyword_rank,
        }),
    }
}

/// A conversation expiring at `expires_at`; `message_count` where its
/// messages were left out (a list), else their number.
pub fn conversation_to_proto(conversation: Conversation, expires_at: DateTime<Utc>, message_count: Option<usize>) -> pb::Conversation {
    let message_count = message_count.unwrap_or(conversation.messages.len());
    pb::Conversation {
        id: conversation.id.to_string(),
        title: conversation.title,
        document_ids: conversation.scope.document_ids.iter().map(ToString::to_string).collect(),
        labels: conversation.scope.labels,
        created_at: Some(timestamp(conversation.created_at)),
        updated_at: Some(timestamp(conversation.updated_at)),
        expires_at: Some(timestamp(expires_at)),
        messages: conversation
            .messages
            .into_iter()
            .map(|message| pb::ConversationMessage {
                role: match message.role {
                    ConversationRole::User => pb::MessageRole::User,
                    ConversationRole::Assistant => pb::MessageRole::Assistant,
                } as i32,
                text: message.text,
                citations: message.citations.into_iter().map(citation_to_proto).collect(),
                created_at: Some(timestamp(message.created_at)),
                query: message.query,
            })
            .collect(),
        message_count: message_count as i32,
    }
}

/// A page of conversations (without their messages, with their counts),
/// each expiring when `expires_at` says.
pub fn conversations_page_to_proto(
    page: Page<(Conversation, usize)>,
    expires_at: impl Fn(DateTime<Utc>) -> DateTime<Utc>,
) -> pb::ListConversationsResponse {
    pb::ListConversationsResponse {
        conversations: page
            .items
            .into_iter()
            .map(|(conversation, count)| {
                let expires = expires_at(conversation.updated_at);
                conversation_to_proto(conversation, expires, Some(count))
            })
            .collect(),
        next_page_token: page.next_page_token,
    }
}

fn citation_to_proto(citation: Citation) -> pb::Citation {
    pb::Citation {
        number: citation.number as i32,
        chunk_id: citation.chunk_id,
        document_id: citation.document_id.to_string(),
        document_title: citation.document_title,
        filename: citation.filename,
        section_path: citation.section_path,
        page_start: citation.page_start,
        page_end: citation.page_end,
    }
}

/// One event of an Ask stream.
pub fn ask_event_to_proto(event: ask::Event) -> pb::AskResponse {
    use pb::ask_response::Event as E;
    let event = match event {
        ask::Event::Retrieval(retrieval) => E::Retrieval(pb::Retrieval {
            query: retrieval.query,
            passages: retrieval
                .passages
                .into_iter()
                .map(|passage| pb::Passage {
                    number: passage.number as i32,
                    result: Some(hit_to_proto(passage.hit)),
                    relevant: passage.relevant,
                })
                .collect(),
            model: retrieval.model,
            reranker: retrieval.reranker.unwrap_or_default(),
        }),
        ask::Event::Delta(text) => E::Delta(pb::AnswerDelta { text }),
        ask::Event::Done(done) => E::Done(pb::AnswerDone {
            answer: done.answer,
            citations: done.citations.into_iter().map(citation_to_proto).collect(),
            no_answer: done.no_answer,
            generator: done.generator,
            prompt_tokens: done.usage.prompt_tokens as i32,
            completion_tokens: done.usage.completion_tokens as i32,
            timings: Some(pb::AskTimings {
                rewrite: Some(duration(done.timings.rewrite)),
                retrieval: Some(duration(done.timings.retrieval)),
                first_delta: done.timings.first_delta.map(duration),
                generation: Some(duration(done.timings.generation)),
                total: Some(duration(done.timings.total)),
            }),
            message_count: done.message_count as i32,
        }),
    };
    pb::AskResponse { event: Some(event) }
}

/// The protobuf form of what ReindexDocuments did.
pub fn reindexed_to_proto(reindexed: Reindexed) -> pb::ReindexDocumentsResponse {
    pb::ReindexDocumentsResponse {
        model: reindexed.model,
        dimension: reindexed.dimension,
        documents: reindexed.documents,
    }
}

/// A new account's refused details as the fields RegisterRequest and
/// CreateUserRequest share (`email`, `password`, `display_name`).
pub fn refused_to_violations(refused: Refused) -> ApiError {
    let fields = [
        ("email", refused.email),
        ("password", refused.password),
        ("display_name", refused.display_name),
    ];
    ApiError::InvalidArgument(
        fields
            .into_iter()
            .filter_map(|(field, why)| Some(tonic_types::FieldViolation::new(field, why?)))
            .collect(),
    )
}
