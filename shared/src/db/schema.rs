// @generated automatically by Diesel CLI.

diesel::table! {
    audit_events (id) {
        id -> Int8,
        at -> Timestamptz,
        actor_id -> Nullable<Uuid>,
        actor_email -> Text,
        rpc -> Text,
        target -> Text,
        outcome -> Text,
        event -> Text,
        latency_us -> Int8,
        peer -> Text,
    }
}

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
    refresh_tokens (token_hash) {
        token_hash -> Bytea,
        session_id -> Uuid,
        created_at -> Timestamptz,
        idle_expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        access_jti -> Uuid,
        access_expires_at -> Timestamptz,
    }
}

diesel::table! {
    sessions (id) {
        id -> Uuid,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        revoked_at -> Nullable<Timestamptz>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        display_name -> Text,
        role -> Text,
        active -> Bool,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
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

diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    audit_events,
    outbox,
    pings,
    processed_jobs,
    refresh_tokens,
    sessions,
    users,
    workers,
);
