//! `folio.v1.WatchResponse`, written by hand instead of generated so that the
//! api-server can encode an event once and send the same bytes to every
//! stream watching it: with 1,000 watchers, cloning and encoding each copy
//! (its details are a `google.protobuf.Struct`) was most of the fan-out's
//! work. On the wire and for clients it is the generated message exactly:
//! the same fields, tags and oneof.

use prost::{
    DecodeError, Message,
    bytes::{Buf, BufMut, Bytes},
    encoding::{DecodeContext, WireType, skip_field},
};

use crate::v1::{DocumentEvent, Heartbeat};

/// One message of a watch stream: an event or a heartbeat.
#[derive(Clone, PartialEq, Default)]
pub struct WatchResponse {
    pub item: Option<watch_response::Item>,
    /// The whole message, already encoded (server side); when set it is what
    /// goes on the wire and `item` is not read.
    encoded: Option<Bytes>,
}

/// The oneof of [`WatchResponse`].
pub mod watch_response {
    /// What a watch stream message carries.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Item {
        #[prost(message, tag = "1")]
        Event(super::DocumentEvent),
        #[prost(message, tag = "2")]
        Heartbeat(super::Heartbeat),
    }
}

impl WatchResponse {
    /// A response carrying `event`, encoded now: its clones share the bytes,
    /// so every stream sending it costs a reference count, not an encoding.
    pub fn pre_encoded_event(event: &DocumentEvent) -> Self {
        let mut buf = Vec::with_capacity(prost::encoding::message::encoded_len(1, event));
        prost::encoding::message::encode(1, event, &mut buf);
        WatchResponse {
            item: None,
            encoded: Some(Bytes::from(buf)),
        }
    }

    /// A heartbeat.
    pub fn heartbeat(heartbeat: Heartbeat) -> Self {
        WatchResponse {
            item: Some(watch_response::Item::Heartbeat(heartbeat)),
            encoded: None,
        }
    }
}

impl std::fmt::Debug for WatchResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("WatchResponse");
        match &self.encoded {
            Some(bytes) => s.field("encoded_len", &bytes.len()),
            None => s.field("item", &self.item),
        }
        .finish()
    }
}

impl Message for WatchResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match &self.encoded {
            Some(bytes) => buf.put_slice(bytes),
            None => {
                if let Some(item) = &self.item {
                    item.encode(buf);
                }
            }
        }
    }

    fn merge_field(&mut self, tag: u32, wire_type: WireType, buf: &mut impl Buf, ctx: DecodeContext) -> Result<(), DecodeError> {
        match tag {
            1 | 2 => watch_response::Item::merge(&mut self.item, tag, wire_type, buf, ctx).map_err(|mut error| {
                error.push("WatchResponse", "item");
                error
            }),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        match &self.encoded {
            Some(bytes) => bytes.len(),
            None => self.item.as_ref().map_or(0, watch_response::Item::encoded_len),
        }
    }

    fn clear(&mut self) {
        self.item = None;
        self.encoded = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> DocumentEvent {
        DocumentEvent {
            id: 42,
            document_id: "0190".into(),
            message: "parsed".into(),
            details: Some(prost_types::Struct {
                fields: [(
                    "pages".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::NumberValue(12.0)),
                    },
                )]
                .into(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn an_encoded_response_is_the_same_bytes_as_the_message_and_decodes_to_it() {
        let message = WatchResponse {
            item: Some(watch_response::Item::Event(event())),
            encoded: None,
        };
        let shared = WatchResponse::pre_encoded_event(&event());
        assert_eq!(shared.encode_to_vec(), message.encode_to_vec());
        assert_eq!(shared.encoded_len(), message.encoded_len());
        assert_eq!(WatchResponse::decode(&shared.encode_to_vec()[..]).unwrap(), message);
    }

    #[test]
    fn a_heartbeat_round_trips() {
        let message = WatchResponse::heartbeat(Heartbeat {
            time: None,
            last_event_id: 7,
        });
        assert_eq!(WatchResponse::decode(&message.encode_to_vec()[..]).unwrap(), message);
    }
}
