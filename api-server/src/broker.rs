//! The api-server's link to RabbitMQ: one connection, opened and reopened by the
//! outbox relay, and shared with the dependency checks.

use std::sync::{Arc, Mutex};

use lapin::{Connection, ConnectionProperties};

/// The current RabbitMQ connection, if any, and why the last one failed.
#[derive(Default)]
pub struct BrokerLink {
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    connection: Option<Arc<Connection>>,
    last_error: Option<String>,
}

impl BrokerLink {
    /// Opens a connection to `url`.
    pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        Connection::connect(url, properties).await
    }

    /// The live connection, if there is one.
    pub fn current(&self) -> Option<Arc<Connection>> {
        let state = self.state.lock().expect("broker link lock");
        state.connection.clone().filter(|c| c.status().connected())
    }

    /// The last connection error, for dependency reports.
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().expect("broker link lock").last_error.clone()
    }

    /// Makes `connection` the current one.
    pub fn set(&self, connection: Arc<Connection>) {
        let mut state = self.state.lock().expect("broker link lock");
        state.connection = Some(connection);
        state.last_error = None;
    }

    /// Drops the current connection after `error`.
    pub fn lost(&self, error: String) {
        let mut state = self.state.lock().expect("broker link lock");
        state.connection = None;
        state.last_error = Some(error);
    }
}
