//! WatchDocument and WatchDocuments: the streams start here and run in
//! `crate::watch`, which yields pre-encoded `WatchResponse`s.

use std::sync::Arc;

use folio_db::models::{
    document::DocumentFilter,
    document_event::{self, Scope},
    share::Reach,
};
use uuid::Uuid;

use super::Documents;
use crate::{
    auth::Principal,
    error::ApiResult,
    watch::stream::{Target, Watch, WatchStream},
};

impl Documents {
    /// A stream of one document's events: replay after the cursor, then live.
    pub(super) async fn watch_one(&self, principal: Principal, id: Uuid, after_event_id: i64, follow: bool) -> ApiResult<WatchStream> {
        let permit = self.hub.admit(principal.user_id)?;
        // Subscribed before the document is read: nothing falls in between.
        // Anyone but an admin gets only the events of a document they read
        // when the hub reads them (theirs, or shared with them then).
        let reader = principal.owner_scope();
        let subscription = self.hub.subscribe(Scope::Document(id), None, principal.session_id, reader);
        let found = self.visible(&principal, id).await?;
        // Read through a share: checked again whenever access is taken away.
        // Its owner's stream needs no share decided per page of events: it
        // moves to an ungated subscription, made before the first is
        // dropped and before anything is replayed, so nothing falls between.
        let shared = !principal.reaches(found.owner_id);
        let (subscription, reader) = if shared || reader.is_none() {
            (subscription, reader)
        } else {
            (self.hub.subscribe(Scope::Document(id), None, principal.session_id, None), None)
        };
        let watch = Watch::new(
            self.hub.clone(),
            self.pool.clone(),
            principal,
            Target::Document {
                id,
                follow,
                reader,
                shared,
            },
            after_event_id,
            permit,
            subscription,
            self.shutdown.clone(),
            found.state.is_terminal(),
            false,
        );
        Ok(watch.into_stream())
    }

    /// A stream of the events of every document that passes `filter` (which
    /// holds whose documents), after `after_event_id` or from now on.
    pub(super) async fn watch_all(
        &self,
        principal: Principal,
        filter: DocumentFilter,
        after_event_id: Option<i64>,
    ) -> ApiResult<WatchStream> {
        let filter = Arc::new(filter);
        let scope = match filter.reach {
            Reach::Everyone => Scope::Everyone,
            Reach::Own(owner) => Scope::Owner(owner),
            Reach::Readable(reader) | Reach::SharedWith(reader) => Scope::Reader(reader),
        };
        let permit = self.hub.admit(principal.user_id)?;
        let subscription = self.hub.subscribe(scope, Some(filter.clone()), principal.session_id, None);
        // From now on: everything up to the settled horizon is skipped; the
        // hub hands every later event to the subscription.
        let cursor = match after_event_id {
            Some(after) => after,
            None => {
                let mut conn = self.pool.get().await?;
                document_event::settled(&mut conn).await?
            }
        };
        let watch = Watch::new(
            self.hub.clone(),
            self.pool.clone(),
            principal,
            Target::Documents { scope, filter },
            cursor,
            permit,
            subscription,
            self.shutdown.clone(),
            false,
            after_event_id.is_none(),
        );
        Ok(watch.into_stream())
    }
}
