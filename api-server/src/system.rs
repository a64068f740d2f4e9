//! `folio.v1.SystemService`: version and dependency report, worker pings and the
//! worker list. Each RPC is a shim over an inner function returning [`ApiResult`].

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;
use folio_core::queue::EncodedJob;
use folio_db::{
    self as db,
    models::{outbox, ping, worker},
};
use folio_proto::v1::{
    self as pb, GetInfoRequest, GetInfoResponse, GetSettingsRequest, ListWorkersRequest, ListWorkersResponse, PingWorkersRequest,
    PingWorkersResponse, UpdateSettingsRequest, system_service_server::SystemService,
};
use tokio::{sync::Notify, time::Instant};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    audit::{self, AuditNote},
    auth,
    convert::{duration, timestamp, worker_to_proto},
    error::{ApiError, ApiResult},
    health::{Dependencies, Readiness},
    page_token,
    settings::Settings,
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
}

#[tonic::async_trait]
impl SystemService for System {
    async fn get_info(&self, _request: Request<GetInfoRequest>) -> Result<Response<GetInfoResponse>, Status> {
        Ok(Response::new(self.info().await))
    }

    async fn ping_workers(&self, request: Request<PingWorkersRequest>) -> Result<Response<PingWorkersResponse>, Status> {
        Ok(Response::new(self.ping(request.into_inner()).await?))
    }

    async fn list_workers(&self, request: Request<ListWorkersRequest>) -> Result<Response<ListWorkersResponse>, Status> {
        Ok(Response::new(self.workers(request.into_inner()).await?))
    }

    async fn get_settings(&self, _request: Request<GetSettingsRequest>) -> Result<Response<pb::Settings>, Status> {
        Ok(Response::new(self.settings.to_proto()))
    }

    async fn update_settings(&self, request: Request<UpdateSettingsRequest>) -> Result<Response<pb::Settings>, Status> {
        let principal = auth::principal(&request)?;
        let (settings, target) = self.settings.update(request.into_inner(), principal.user_id).await?;
        audit::note(AuditNote {
            event: "settings_updated".into(),
            target: format!("settings:{target}"),
            ..Default::default()
        });
        Ok(Response::new(settings))
    }
}

impl System {
    async fn info(&self) -> GetInfoResponse {
        let checks = self.dependencies.check_all().await;
        let readiness = Readiness::of(&checks);
        GetInfoResponse {
            serving: readiness.serving,
            degraded: readiness.degraded,
            version: folio_core::VERSION.to_owned(),
            started_at: Some(timestamp(self.started_at)),
            uptime: Some(duration(self.started.elapsed())),
            dependencies: checks
                .into_iter()
                .map(|check| pb::Dependency {
                    name: check.name.to_owned(),
                    up: check.up,
                    latency: Some(duration(check.latency)),
                    error: check.error.unwrap_or_default(),
                })
                .collect(),
            watch: Some({
                let stats = self.hub.stats();
                pb::WatchStats {
                    streams: stats.streams as i64,
                    live_notices: stats.live_notices,
                    fallbacks: stats.fallbacks as i64,
                }
            }),
        }
    }

    async fn ping(&self, request: PingWorkersRequest) -> ApiResult<PingWorkersResponse> {
        let wait = match request.wait {
            None => DEFAULT_PING_WAIT,
            Some(wait) => Duration::try_from(wait)
                .ok()
                .filter(|w| *w <= MAX_PING_WAIT)
                .ok_or_else(|| ApiError::invalid("wait", format!("must be between 0s and {}s", MAX_PING_WAIT.as_secs())))?,
        };
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
        let mut response = PingWorkersResponse {
            ping_id: ping_id.to_string(),
            ..Default::default()
        };
        loop {
            if let Some(found) = ping::find(&mut conn, ping_id).await?
                && let (Some(received_at), Some(worker_id)) = (found.received_at, found.worker_id)
            {
                response.received = true;
                response.worker_id = worker_id.to_string();
                response.round_trip = Some(duration((received_at - created.requested_at).to_std().unwrap_or_default()));
                return Ok(response);
            }
            if Instant::now() + PING_POLL > deadline {
                return Ok(response);
            }
            tokio::time::sleep(PING_POLL).await;
        }
    }

    async fn workers(&self, request: ListWorkersRequest) -> ApiResult<ListWorkersResponse> {
        let page_size = page_token::page_size(request.page_size, 100, 1000)?;
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(
                page_token::decode_time_id(WORKERS_TAG, token)
                    .ok_or_else(|| ApiError::invalid("page_token", "is not a token this server issued"))?,
            ),
        };
        let mut conn = self.pool.get().await?;
        let mut rows = worker::list(&mut conn, page_size + 1, after, request.include_stopped).await?;
        let next_page_token = page_token::next_token(&mut rows, page_size, |w| {
            page_token::encode_time_id(WORKERS_TAG, (w.last_seen_at, w.id))
        });
        Ok(ListWorkersResponse {
            workers: rows.into_iter().map(worker_to_proto).collect(),
            next_page_token,
        })
    }
}
