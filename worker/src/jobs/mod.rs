//! The jobs a worker runs. Each kind has one file and one arm in [`run`], the
//! registration list.

mod ping;

use folio_proto::queue::v1::{Job, job};
use folio_shared::db;
use uuid::Uuid;

/// What a job needs from its worker.
#[derive(Clone)]
pub struct JobContext {
    pub pool: db::Pool,
    pub worker_id: Uuid,
}

/// How a job ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying later: a dependency was unavailable.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Retrying cannot help: the job is malformed or names what does not exist.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<diesel::result::Error> for JobError {
    fn from(error: diesel::result::Error) -> Self {
        JobError::Transient(error.into())
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for JobError {
    fn from(error: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        JobError::Transient(error.into())
    }
}

/// Whether a job's effect was applied now or had been applied before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
}

/// Runs `job`. Every job deduplicates on its id inside the transaction that
/// applies its effect, so a redelivered job is a no-op.
pub async fn run(context: &JobContext, job: &Job) -> Result<Outcome, JobError> {
    let job_id = parse_uuid("job_id", &job.job_id)?;
    match &job.kind {
        Some(job::Kind::Ping(ping)) => ping::run(context, job_id, ping).await,
        Some(job::Kind::ProcessDocument(_)) => Err(JobError::Permanent("this worker does not process documents yet".into())),
        None => Err(JobError::Permanent("job has no kind".into())),
    }
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, JobError> {
    value
        .parse()
        .map_err(|_| JobError::Permanent(format!("{field} {value:?} is not a UUID")))
}
