//! Registered services in domain terms (SystemService's Register, Unregister
//! and ListServices are shims over these): external services folio depends
//! on, checked by every api-server every `FOLIO_SERVICES_POLL_SECS` (first at
//! its start) and when registered. An HTTP service is up when it answers GET
//! with a status below 500; a gRPC one when `grpc.health.v1` says SERVING.
//! The configured model servers are registered at start, as "embedder" and
//! "reranker".

use std::time::{Duration, Instant};

use folio_core::config::ModelsConfig;
use folio_db::{
    self as db,
    models::service::{self, NewService, Service},
};
use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::error::{ApiError, ApiResult};

/// How long one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How a service is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Grpc,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Grpc => "grpc",
        }
    }
}

/// A service to register, checked: a valid name and an http(s) URL.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub kind: Kind,
    pub target: String,
}

impl Registration {
    /// Checks `name` and `target`, naming the field at fault.
    pub fn check(name: &str, kind: Kind, target: &str) -> ApiResult<Self> {
        let valid_name =
            (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_name {
            return Err(ApiError::invalid("name", "must be 1 to 64 letters, digits, '-', '_' or '.'"));
        }
        let target = target.trim();
        let url_like = ["http://", "https://"].iter().any(|scheme| target.starts_with(scheme)) && target.len() > 8;
        if !url_like || http::Uri::try_from(target).is_err() {
            return Err(ApiError::invalid("target", "must be an http:// or https:// URL"));
        }
        Ok(Registration {
            name: name.to_owned(),
            kind,
            target: target.to_owned(),
        })
    }
}

/// Registers `registration` (replacing one of that name), checks it once
/// and returns it with that check.
pub async fn register(pool: &db::Pool, http: &reqwest::Client, registration: &Registration) -> ApiResult<Service> {
    let mut conn = pool.get().await?;
    let registered = service::register(
        &mut conn,
        &NewService {
            name: &registration.name,
            kind: registration.kind.as_str(),
            target: &registration.target,
            automatic: false,
        },
    )
    .await?;
    drop(conn);
    check_and_record(pool, http, &registered).await;
    let mut conn = pool.get().await?;
    Ok(service::find(&mut conn, &registration.name).await?.unwrap_or(registered))
}

/// Removes the service called `name`.
pub async fn unregister(pool: &db::Pool, name: &str) -> ApiResult<()> {
    let mut conn = pool.get().await?;
    if service::unregister(&mut conn, name).await? {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no service is registered as {name:?}")))
    }
}

/// Every registered service with its last check.
pub async fn list(pool: &db::Pool) -> ApiResult<Vec<Service>> {
    let mut conn = pool.get().await?;
    Ok(service::list(&mut conn).await?)
}

/// Registers the configured model servers (kept as they are when unchanged).
pub async fn register_model_servers(pool: &db::Pool, models: &ModelsConfig) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    for (name, url) in [("embedder", &models.embed_url), ("reranker", &models.rerank_url)] {
        if let Some(url) = url {
            let model_server = NewService {
                name,
                kind: Kind::Http.as_str(),
                target: url,
                automatic: true,
            };
            service::ensure(&mut conn, &model_server).await?;
        }
    }
    Ok(())
}

/// Checks every registered service now and every `interval`, until `cancel`.
pub async fn poll(pool: db::Pool, http: reqwest::Client, interval: Duration, cancel: CancellationToken) {
    loop {
        match list(&pool).await {
            Ok(services) => {
                join_all(services.iter().map(|s| check_and_record(&pool, &http, s))).await;
            }
            Err(error) => tracing::warn!(?error, "services: cannot list the registered services"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Checks `service` and records what the check found.
async fn check_and_record(pool: &db::Pool, http: &reqwest::Client, service: &Service) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, check(http, service))
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())));
    let latency_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
    let recorded = async {
        let mut conn = pool.get().await?;
        service::record_check(
            &mut conn,
            &service.name,
            outcome.is_ok(),
            latency_ms,
            outcome.as_ref().err().map(String::as_str),
        )
        .await?;
        anyhow::Ok(())
    };
    if let Err(error) = recorded.await {
        tracing::warn!(service = %service.name, error = format!("{error:#}"), "services: cannot record a check");
    }
}

/// Whether `service` answers as its kind says it should; if not, why not.
async fn check(http: &reqwest::Client, service: &Service) -> Result<(), String> {
    if service.kind == Kind::Grpc.as_str() {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
        let channel = tonic::transport::Endpoint::from_shared(service.target.clone())
            .map_err(|error| format!("not a gRPC address: {error}"))?
            .connect_timeout(CHECK_TIMEOUT)
            .connect()
            .await
            .map_err(|error| format!("cannot connect: {error}"))?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|status| format!("health check failed: {}", status.message()))?
            .into_inner()
            .status();
        return match status {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("health says {}", other.as_str_name())),
        };
    }
    let response = http
        .get(&service.target)
        .send()
        .await
        .map_err(|error| format!("no answer: {}", folio_core::startup::one_line(&error.to_string())))?;
    if response.status().is_server_error() {
        Err(format!("answered {}", response.status()))
    } else {
        Ok(())
    }
}
