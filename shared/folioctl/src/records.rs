//! Every proto message folioctl prints, as a [`Record`]: one function per
//! message, the only place its fields are named for output. Enums are their
//! proto names (`READY`, `ROLE_ADMIN`), timestamps RFC 3339 in UTC, durations
//! seconds as a decimal string with an `s` (proto JSON's form), 64-bit
//! integers numbers.

use chrono::{DateTime, SecondsFormat};
use folio_proto::v1::{
    AuditEvent, DeadLetter, Document, DocumentEvent, DocumentStats, PingWorkersResponse, Provider, RetentionRule, Role, SearchResult,
    Service, ServiceKind, ServiceStatus, Setting, SettingSource, SettleDeadLettersResponse, SystemStats, TestProviderResponse, TopUser,
    User, Worker,
};
use serde_json::{Value, json};

use crate::output::Record;

/// A proto enum's name, or its number when this build does not know it.
macro_rules! enum_name {
    ($enum:ty, $value:expr) => {{
        let value: i32 = $value;
        <$enum>::try_from(value).map_or_else(|_| Value::from(value), |known| Value::from(known.as_str_name()))
    }};
}

/// RFC 3339 in UTC, or null when unset.
pub fn time(timestamp: &Option<prost_types::Timestamp>) -> Value {
    timestamp
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map_or(Value::Null, |t| Value::from(t.to_rfc3339_opts(SecondsFormat::Millis, true)))
}

/// `"1.250s"`, or null when unset.
pub fn duration(duration: &Option<prost_types::Duration>) -> Value {
    duration.as_ref().map_or(Value::Null, |d| {
        Value::from(format!("{:.3}s", d.seconds as f64 + f64::from(d.nanos) / 1e9))
    })
}

fn structure(value: &prost_types::Struct) -> Value {
    Value::Object(value.fields.iter().map(|(k, v)| (k.clone(), struct_value(v))).collect())
}

fn struct_value(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => structure(s),
        Some(Kind::ListValue(list)) => Value::Array(list.values.iter().map(struct_value).collect()),
    }
}

pub fn user(user: &User) -> Record {
    vec![
        ("id", json!(user.id)),
        ("email", json!(user.email)),
        ("display_name", json!(user.display_name)),
        ("role", enum_name!(Role, user.role)),
        ("active", json!(user.active)),
        ("quota_documents", json!(user.quota_documents)),
        ("quota_bytes", json!(user.quota_bytes)),
        ("share_weight", json!(user.share_weight)),
        ("created_at", time(&user.created_at)),
        ("updated_at", time(&user.updated_at)),
    ]
}

pub fn audit_event(event: &AuditEvent) -> Record {
    vec![
        ("id", json!(event.id)),
        ("at", time(&event.at)),
        ("actor_id", json!(event.actor_id)),
        ("actor_email", json!(event.actor_email)),
        ("rpc", json!(event.rpc)),
        ("target", json!(event.target)),
        ("outcome", json!(event.outcome)),
        ("event", json!(event.event)),
        ("latency_us", json!(event.latency_us)),
        ("peer", json!(event.peer)),
    ]
}

pub fn document(document: &Document) -> Record {
    use folio_proto::v1::{DocumentState, Stage};
    vec![
        ("id", json!(document.id)),
        ("filename", json!(document.filename)),
        ("title", json!(document.title)),
        ("state", enum_name!(DocumentState, document.state)),
        ("stage", enum_name!(Stage, document.stage)),
        ("owner_id", json!(document.owner_id)),
        ("content_type", json!(document.content_type)),
        ("format", json!(document.format)),
        ("labels", json!(document.labels)),
        ("size_bytes", json!(document.size_bytes)),
        ("sha256", json!(document.sha256)),
        ("attempt", json!(document.attempt)),
        ("try_number", json!(document.try_number)),
        ("max_tries", json!(document.max_tries)),
        ("next_retry_at", time(&document.next_retry_at)),
        ("error_code", json!(document.error_code)),
        ("error_message", json!(document.error_message)),
        ("will_retry", json!(document.will_retry)),
        ("pages", json!(document.pages)),
        ("characters", json!(document.characters)),
        ("chunks", json!(document.chunks)),
        ("stage_millis", json!(document.stage_millis)),
        ("duplicate", json!(document.duplicate)),
        ("waiting", json!(document.waiting)),
        ("created_at", time(&document.created_at)),
        ("updated_at", time(&document.updated_at)),
        ("completed_at", time(&document.completed_at)),
    ]
}

pub fn document_event(event: &DocumentEvent) -> Record {
    use folio_proto::v1::{DocumentState, EventKind, Stage};
    vec![
        ("id", json!(event.id)),
        ("document_id", json!(event.document_id)),
        ("attempt", json!(event.attempt)),
        ("stage", enum_name!(Stage, event.stage)),
        ("kind", enum_name!(EventKind, event.kind)),
        ("percent", json!(event.percent)),
        ("state", enum_name!(DocumentState, event.state)),
        ("message", json!(event.message)),
        ("details", event.details.as_ref().map_or(Value::Null, structure)),
        ("created_at", time(&event.created_at)),
        ("trace_id", json!(event.trace_id)),
    ]
}

pub fn search_result(rank: usize, result: &SearchResult) -> Record {
    let scores = result.scores.unwrap_or_default();
    vec![
        ("rank", json!(rank)),
        ("score", json!((scores.rerank * 1000.0).round() / 1000.0)),
        ("document_id", json!(result.document_id)),
        ("filename", json!(result.filename)),
        ("document_title", json!(result.document_title)),
        ("chunk_id", json!(result.chunk_id)),
        ("section_path", json!(result.section_path.join(" › "))),
        ("page_start", json!(result.page_start)),
        ("page_end", json!(result.page_end)),
        ("text", json!(result.text)),
        (
            "scores",
            json!({
                "vector": scores.vector,
                "keyword": scores.keyword,
                "fused": scores.fused,
                "rerank": scores.rerank,
                "vector_rank": scores.vector_rank,
                "keyword_rank": scores.keyword_rank,
                "heading": scores.heading,
            }),
        ),
    ]
}

pub fn dead_letter(letter: &DeadLetter) -> Record {
    vec![
        ("id", json!(letter.id)),
        ("kind", json!(letter.kind)),
        ("document_id", json!(letter.document_id)),
        ("filename", json!(letter.filename)),
        ("owner_id", json!(letter.owner_id)),
        ("error_code", json!(letter.error_code)),
        ("error_message", json!(letter.error_message)),
        ("tries", json!(letter.tries)),
        ("reason", json!(letter.reason)),
        ("dead_at", time(&letter.dead_at)),
        ("replayed_at", time(&letter.replayed_at)),
        ("purged_at", time(&letter.purged_at)),
        ("settled_by", json!(letter.settled_by)),
        ("job_id", json!(letter.job_id)),
    ]
}

pub fn settlement(settled: &SettleDeadLettersResponse) -> Record {
    vec![
        ("settled", json!(settled.settled)),
        (
            "skipped",
            Value::Array(settled.skipped.iter().map(|s| json!({ "id": s.id, "reason": s.reason })).collect()),
        ),
        ("more", json!(settled.more)),
    ]
}

fn document_stats(stats: &DocumentStats) -> Value {
    use folio_proto::v1::{DocumentState, Stage};
    json!({
        "total_documents": stats.total_documents,
        "total_bytes": stats.total_bytes,
        "total_chunks": stats.total_chunks,
        "states": stats.states.iter().map(|s| json!({
            "state": enum_name!(DocumentState, s.state),
            "documents": s.documents,
            "bytes": s.bytes,
            "chunks": s.chunks,
        })).collect::<Vec<_>>(),
        "stages": stats.stages.iter().map(|s| json!({
            "stage": enum_name!(Stage, s.stage),
            "p50_ms": s.p50_ms,
            "p95_ms": s.p95_ms,
            "samples": s.samples,
        })).collect::<Vec<_>>(),
    })
}

pub fn system_stats(stats: &SystemStats) -> Record {
    vec![
        (
            "users",
            Value::Array(
                stats
                    .users
                    .iter()
                    .map(|c| json!({ "role": enum_name!(Role, c.role), "active": c.active, "users": c.users }))
                    .collect(),
            ),
        ),
        ("live_sessions", json!(stats.live_sessions)),
        ("workers_alive", json!(stats.workers_alive)),
        ("documents", stats.documents.as_ref().map_or(Value::Null, document_stats)),
        (
            "days",
            Value::Array(
                stats
                    .days
                    .iter()
                    .map(|d| json!({ "date": d.date, "uploads": d.uploads, "failures": d.failures }))
                    .collect(),
            ),
        ),
        (
            "failures_by_code",
            Value::Array(
                stats
                    .failures_by_code
                    .iter()
                    .map(|f| json!({ "error_code": f.error_code, "documents": f.documents }))
                    .collect(),
            ),
        ),
    ]
}

pub fn top_user(rank: usize, user: &TopUser) -> Record {
    vec![
        ("rank", json!(rank)),
        ("user_id", json!(user.user_id)),
        ("email", json!(user.email)),
        ("display_name", json!(user.display_name)),
        ("value", json!(user.value)),
    ]
}

pub fn setting(name: &str, setting: &Setting) -> Record {
    vec![
        ("name", json!(name)),
        ("value", json!(setting.value)),
        ("default_value", json!(setting.default_value)),
        ("source", enum_name!(SettingSource, setting.source)),
        ("min", json!(setting.min)),
        ("max", json!(setting.max)),
        ("updated_at", time(&setting.updated_at)),
        ("updated_by", json!(setting.updated_by)),
    ]
}

pub fn retention_rule(rule: &RetentionRule) -> Record {
    vec![
        ("label", json!(rule.label)),
        ("original_days", json!(rule.original_days)),
        ("document_days", json!(rule.document_days)),
        ("updated_at", time(&rule.updated_at)),
        ("updated_by", json!(rule.updated_by)),
    ]
}

pub fn provider(role: &str, provider: &Provider) -> Record {
    vec![
        ("role", json!(role)),
        ("kind", json!(provider.kind)),
        ("url", json!(provider.url)),
        ("model", json!(provider.model)),
        ("api_key_set", json!(provider.api_key_set)),
        ("source", enum_name!(SettingSource, provider.source)),
        ("updated_at", time(&provider.updated_at)),
        ("updated_by", json!(provider.updated_by)),
    ]
}

pub fn provider_test(test: &TestProviderResponse) -> Record {
    vec![
        ("ok", json!(test.ok)),
        ("model", json!(test.model)),
        ("dimension", json!(test.dimension)),
        ("latency", duration(&test.latency)),
        ("error", json!(test.error)),
    ]
}

pub fn service(service: &Service) -> Record {
    vec![
        ("name", json!(service.name)),
        ("kind", enum_name!(ServiceKind, service.kind)),
        ("target", json!(service.target)),
        ("status", enum_name!(ServiceStatus, service.status)),
        ("latency", duration(&service.latency)),
        ("error", json!(service.error)),
        ("automatic", json!(service.automatic)),
        ("checked_at", time(&service.checked_at)),
        ("changed_at", time(&service.changed_at)),
        ("created_at", time(&service.created_at)),
    ]
}

pub fn worker(worker: &Worker) -> Record {
    vec![
        ("id", json!(worker.id)),
        ("host", json!(worker.host)),
        ("pid", json!(worker.pid)),
        ("version", json!(worker.version)),
        ("jobs_in_flight", json!(worker.jobs_in_flight)),
        ("current_job", json!(worker.current_job)),
        ("started_at", time(&worker.started_at)),
        ("last_seen_at", time(&worker.last_seen_at)),
        ("stopped_at", time(&worker.stopped_at)),
    ]
}

pub fn ping(ping: &PingWorkersResponse) -> Record {
    vec![
        ("ping_id", json!(ping.ping_id)),
        ("received", json!(ping.received)),
        ("worker_id", json!(ping.worker_id)),
        ("round_trip", duration(&ping.round_trip)),
    ]
}
