//! What every command needs: the server it talks to, where its session is
//! kept and how to print.

use crate::{
    client::{self, Client},
    credentials::Store,
    exit::Error,
    output::Output,
};

pub struct Context {
    /// The server's URL, normalized: the key of its saved session.
    pub server: String,
    pub store: Store,
    pub out: Output,
}

impl Context {
    /// A connection signed in with the saved session.
    pub async fn client(&self) -> Result<Client, Error> {
        Client::signed_in(&self.server, self.store.clone()).await
    }

    /// A connection without a session (login).
    pub async fn channel(&self) -> Result<tonic::transport::Channel, Error> {
        client::connect(&self.server).await
    }
}
