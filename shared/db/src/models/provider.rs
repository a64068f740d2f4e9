//! `providers`: the embedding and reranking providers an admin chose at run
//! time, overriding the environment's.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, upsert::excluded};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use folio_core::config::{ApiKey, Provider, ProviderRole};
use uuid::Uuid;

use crate::schema::providers;

/// A provider as stored.
#[derive(Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = providers)]
pub struct StoredProvider {
    /// `embedder` or `reranker`.
    pub role: String,
    pub kind: String,
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The admin who set it; None once that user is deleted.
    pub updated_by: Option<Uuid>,
}

impl std::fmt::Debug for StoredProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredProvider")
            .field("role", &self.role)
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key_set", &self.api_key.is_some())
            .finish()
    }
}

impl StoredProvider {
    /// The choice it records.
    pub fn provider(&self) -> Provider {
        Provider {
            kind: self.kind.clone(),
            url: self.url.clone(),
            model: self.model.clone(),
            api_key: self.api_key.clone().map(ApiKey::new),
        }
    }
}

/// Every stored provider.
pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<StoredProvider>> {
    providers::table
        .select(StoredProvider::as_select())
        .order(providers::role)
        .load(conn)
        .await
}

/// Stores `provider` for `role`, replacing what was there.
pub async fn set(conn: &mut AsyncPgConnection, role: ProviderRole, provider: &Provider, by: Uuid) -> QueryResult<StoredProvider> {
    diesel::insert_into(providers::table)
        .values((
            providers::role.eq(role.as_str()),
            providers::kind.eq(&provider.kind),
            providers::url.eq(&provider.url),
            providers::model.eq(&provider.model),
            providers::api_key.eq(provider.api_key.as_ref().map(ApiKey::expose)),
            providers::updated_by.eq(by),
        ))
        .on_conflict(providers::role)
        .do_update()
        .set((
            providers::kind.eq(excluded(providers::kind)),
            providers::url.eq(excluded(providers::url)),
            providers::model.eq(excluded(providers::model)),
            providers::api_key.eq(excluded(providers::api_key)),
            providers::updated_by.eq(excluded(providers::updated_by)),
            providers::updated_at.eq(diesel::dsl::now),
        ))
        .returning(StoredProvider::as_returning())
        .get_result(conn)
        .await
}

/// Removes the provider of `role`, so the environment's applies again.
pub async fn reset(conn: &mut AsyncPgConnection, role: ProviderRole) -> QueryResult<usize> {
    diesel::delete(providers::table.find(role.as_str())).execute(conn).await
}

/// The provider stored for `role` among `stored`.
pub fn of_role(stored: &[StoredProvider], role: ProviderRole) -> Option<&StoredProvider> {
    stored.iter().find(|p| p.role == role.as_str())
}

/// The choices `stored` records, embedder's and reranker's (None: the
/// environment's).
pub fn choices_in(stored: &[StoredProvider]) -> (Option<Provider>, Option<Provider>) {
    let of = |role| of_role(stored, role).map(StoredProvider::provider);
    (of(ProviderRole::Embedder), of(ProviderRole::Reranker))
}

/// The stored choices, embedder's and reranker's (None: the environment's).
pub async fn choices(conn: &mut AsyncPgConnection) -> QueryResult<(Option<Provider>, Option<Provider>)> {
    Ok(choices_in(&all(conn).await?))
}
