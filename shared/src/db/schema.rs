// @generated automatically by Diesel CLI.

diesel::table! {
    outbox (id) {
        id -> Int8,
        job_id -> Uuid,
        kind -> Text,
        payload -> Bytea,
        created_at -> Timestamptz,
        publish_attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    pings (id) {
        id -> Uuid,
        requested_at -> Timestamptz,
        received_at -> Nullable<Timestamptz>,
        worker_id -> Nullable<Uuid>,
        receipts -> Int4,
    }
}

diesel::table! {
    processed_jobs (job_id) {
        job_id -> Uuid,
        worker_id -> Uuid,
        processed_at -> Timestamptz,
    }
}

diesel::table! {
    workers (id) {
        id -> Uuid,
        host -> Text,
        pid -> Int4,
        version -> Text,
        started_at -> Timestamptz,
        last_seen_at -> Timestamptz,
        current_job -> Nullable<Text>,
        jobs_in_flight -> Int4,
        stopped_at -> Nullable<Timestamptz>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(outbox, pings, processed_jobs, workers,);
