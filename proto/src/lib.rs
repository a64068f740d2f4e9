//! Generated code for folio's protobuf contracts.
//!
//! `folio.v1` is the public gRPC API (seen only by the api-server and clients);
//! `folio.queue.v1` is the body of the messages workers consume. The encoded file
//! descriptor set lets the api-server answer gRPC reflection, so grpcurl works
//! without `.proto` files. `WatchResponse` is written by hand (module `watch`)
//! so a watched event is encoded once for all its streams.

/// The public gRPC API, package `folio.v1`.
pub mod v1 {
    tonic::include_proto!("folio.v1");
    pub use crate::watch::{WatchResponse, watch_response};
}

mod watch;

/// The queue contract, package `folio.queue.v1`.
pub mod queue {
    /// Version 1 of the queue contract.
    pub mod v1 {
        tonic::include_proto!("folio.queue.v1");
    }
}

/// The encoded `FileDescriptorSet` of every folio proto and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/folio_descriptor.bin"));
