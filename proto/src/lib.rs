//! Generated code for folio's protobuf contracts.
//!
//! `folio.queue.v1` is the body of the messages workers consume: plain prost
//! messages, always compiled. `folio.v1` is the public gRPC API, compiled only
//! with the `server` feature (the api-server: the service traits and the
//! encoded file descriptor set that answers gRPC reflection, so grpcurl works
//! without `.proto` files) or the `client` feature (tests and other clients:
//! the generated clients). A crate that enables neither, like the worker,
//! does not depend on tonic at all, so "only the api-server and clients know
//! tonic" is something Cargo checks. `WatchResponse` is written by hand
//! (module `watch`) so a watched event is encoded once for all its streams.

/// The public gRPC API, package `folio.v1`.
#[cfg(any(feature = "server", feature = "client"))]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/folio.v1.rs"));
    pub use crate::watch::{WatchResponse, watch_response};
}

#[cfg(any(feature = "server", feature = "client"))]
mod watch;

/// The queue contract, package `folio.queue.v1`.
pub mod queue {
    /// Version 1 of the queue contract.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/folio.queue.v1.rs"));
    }
}

/// The encoded `FileDescriptorSet` of every folio proto and its imports.
#[cfg(feature = "server")]
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/folio_descriptor.bin"));
