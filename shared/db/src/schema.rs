// @generated automatically by Diesel CLI.

pub mod sql_types {
    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "tsvector", schema = "pg_catalog"))]
    pub struct Tsvector;

    #[derive(diesel::query_builder::QueryId, Clone, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "vector"))]
    pub struct Vector;
}

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
    chunk_segments (lo) {
        lo -> Int8,
        hi -> Int8,
        level -> Int4,
        built_at -> Timestamptz,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::Vector;
    use super::sql_types::Tsvector;

    chunks (id) {
        id -> Int8,
        document_id -> Uuid,
        ordinal -> Int4,
        text -> Text,
        section_path -> Array<Nullable<Text>>,
        page_start -> Nullable<Int4>,
        page_end -> Nullable<Int4>,
        token_count -> Int4,
        embedding -> Vector,
        embedding_model -> Text,
        tsv -> Nullable<Tsvector>,
    }
}

diesel::table! {
    dead_letters (id) {
        id -> Int8,
        job_id -> Nullable<Uuid>,
        kind -> Text,
        document_id -> Nullable<Uuid>,
        attempt -> Int4,
        reason -> Text,
        payload -> Bytea,
        dead_at -> Timestamptz,
        replayed_at -> Nullable<Timestamptz>,
        purged_at -> Nullable<Timestamptz>,
        settled_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    document_events (id) {
        id -> Int8,
        document_id -> Uuid,
        owner_id -> Uuid,
        attempt -> Int4,
        stage -> Text,
        kind -> Text,
        percent -> Int4,
        message -> Text,
        details -> Jsonb,
        state -> Text,
        created_at -> Timestamptz,
        trace_id -> Nullable<Text>,
    }
}

diesel::table! {
    documents (id) {
        id -> Uuid,
        owner_id -> Uuid,
        filename -> Text,
        title -> Text,
        content_type -> Text,
        format -> Text,
        labels -> Array<Nullable<Text>>,
        size_bytes -> Int8,
        sha256 -> Bytea,
        blob_key -> Text,
        idempotency_key -> Nullable<Text>,
        state -> Text,
        stage -> Nullable<Text>,
        attempt -> Int4,
        try_number -> Int4,
        max_tries -> Int4,
        next_retry_at -> Nullable<Timestamptz>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        will_retry -> Bool,
        cancel_requested -> Bool,
        pages -> Nullable<Int4>,
        characters -> Nullable<Int8>,
        chunk_count -> Nullable<Int4>,
        stage_ms -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        try_token -> Nullable<Uuid>,
        lease_worker -> Nullable<Uuid>,
        lease_expires_at -> Nullable<Timestamptz>,
        chunking -> Nullable<Text>,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> Int8,
        recipient -> Text,
        subject -> Text,
        body -> Text,
        created_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    email_tokens (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        purpose -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    embedding_index (singleton) {
        singleton -> Bool,
        model -> Text,
        dimension -> Int4,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    oidc_logins (state_hash) {
        state_hash -> Bytea,
        provider -> Text,
        nonce -> Text,
        pkce_verifier -> Text,
        redirect_uri -> Text,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    fair_share_clock (only_row) {
        only_row -> Bool,
        virtual_time -> Float8,
        turn -> Int8,
    }
}

diesel::table! {
    fair_share_owners (owner_id) {
        owner_id -> Uuid,
        finish -> Float8,
        turn -> Int8,
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
        try_number -> Int4,
        owner_id -> Nullable<Uuid>,
        document_id -> Nullable<Uuid>,
        priority -> Int2,
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
    providers (role) {
        role -> Text,
        kind -> Text,
        url -> Text,
        model -> Text,
        api_key -> Nullable<Text>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
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
    services (name) {
        name -> Text,
        kind -> Text,
        target -> Text,
        automatic -> Bool,
        created_at -> Timestamptz,
        up -> Nullable<Bool>,
        latency_ms -> Nullable<Int4>,
        error -> Nullable<Text>,
        checked_at -> Nullable<Timestamptz>,
        changed_at -> Nullable<Timestamptz>,
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
        last_used_at -> Timestamptz,
        peer -> Text,
        user_agent -> Text,
    }
}

diesel::table! {
    retention_rules (label) {
        label -> Text,
        original_days -> Nullable<Int4>,
        document_days -> Nullable<Int4>,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    settings (name) {
        name -> Text,
        value -> Int8,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    user_identities (provider, subject) {
        provider -> Text,
        subject -> Text,
        user_id -> Uuid,
        created_at -> Timestamptz,
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
        quota_documents -> Nullable<Int8>,
        quota_bytes -> Nullable<Int8>,
        mfa_enabled -> Bool,
        email_verified_at -> Nullable<Timestamptz>,
        share_weight -> Nullable<Int4>,
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

diesel::table! {
    backup_codes (user_id, code_hash) {
        user_id -> Uuid,
        code_hash -> Bytea,
        created_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Bytea,
        user_id -> Uuid,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        attempts -> Int4,
    }
}

diesel::table! {
    totp_secrets (user_id) {
        user_id -> Uuid,
        secret_sealed -> Text,
        created_at -> Timestamptz,
        confirmed_at -> Nullable<Timestamptz>,
        last_step -> Int8,
    }
}

diesel::table! {
    groups (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> Uuid,
        user_id -> Uuid,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    shares (id) {
        id -> Uuid,
        owner_id -> Uuid,
        document_id -> Nullable<Uuid>,
        label -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        group_id -> Nullable<Uuid>,
        created_by -> Nullable<Uuid>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(chunks -> documents (document_id));
diesel::joinable!(document_events -> documents (document_id));
diesel::joinable!(documents -> users (owner_id));
diesel::joinable!(providers -> users (updated_by));
diesel::joinable!(refresh_tokens -> sessions (session_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(retention_rules -> users (updated_by));
diesel::joinable!(settings -> users (updated_by));
diesel::joinable!(backup_codes -> users (user_id));
diesel::joinable!(email_tokens -> users (user_id));
diesel::joinable!(user_identities -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(totp_secrets -> users (user_id));
diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::joinable!(shares -> documents (document_id));
diesel::joinable!(shares -> groups (group_id));

diesel::allow_tables_to_appear_in_same_query!(
    services,
    audit_events,
    backup_codes,
    chunk_segments,
    chunks,
    dead_letters,
    document_events,
    documents,
    email_outbox,
    email_tokens,
    fair_share_clock,
    fair_share_owners,
    embedding_index,
    group_members,
    groups,
    mfa_challenges,
    oidc_logins,
    outbox,
    pings,
    processed_jobs,
    providers,
    refresh_tokens,
    retention_rules,
    sessions,
    settings,
    shares,
    totp_secrets,
    user_identities,
    users,
    workers,
);
