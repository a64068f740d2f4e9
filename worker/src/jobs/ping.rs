//! The Ping job: record that a worker received the ping. It exercises the whole
//! path documents take (outbox, relay, queue, worker, Postgres, ack).

use diesel_async::AsyncConnection as _;
use folio_db::models::{ping, processed_job};
use folio_proto::queue::v1::Ping;
use uuid::Uuid;

use super::{JobContext, JobError, Outcome, parse_uuid};

pub(super) async fn run(context: &JobContext, job_id: Uuid, body: &Ping) -> Result<Outcome, JobError> {
    let ping_id = parse_uuid("ping_id", &body.ping_id)?;
    let worker_id = context.worker_id;
    let mut conn = context.pool.get().await?;
    conn.transaction(async |conn| {
        if !processed_job::claim(conn, job_id, worker_id).await? {
            return Ok(Outcome::Duplicate);
        }
        if ping::record_receipt(conn, ping_id, worker_id).await? == 0 {
            return Err(JobError::permanent("NOT_FOUND", format!("ping {ping_id} does not exist")));
        }
        Ok(Outcome::Applied)
    })
    .await
}
