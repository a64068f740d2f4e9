//! `processed_jobs`: the consumer's deduplication record.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::processed_jobs;

/// Records that `job_id`'s effect is being committed. Returns false when the job
/// was processed before, in which case the caller must not apply it again. Call
/// it in the transaction that applies the effect.
pub async fn claim(conn: &mut AsyncPgConnection, job_id: Uuid, worker_id: Uuid) -> QueryResult<bool> {
    let inserted = diesel::insert_into(processed_jobs::table)
        .values((processed_jobs::job_id.eq(job_id), processed_jobs::worker_id.eq(worker_id)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}
