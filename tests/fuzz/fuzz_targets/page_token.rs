#![no_main]
//! Page tokens on any string: decoding never panics, and whatever decodes
//! encodes back to the same cursor.

use folio_core::page_token::{decode_number, decode_text_id, decode_time_id, encode_number, encode_text_id, encode_time_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    for tag in ["d1", "w1"] {
        if let Some(cursor) = decode_time_id(tag, token) {
            assert_eq!(decode_time_id(tag, &encode_time_id(tag, cursor)), Some(cursor));
        }
        if let Some((text, id)) = decode_text_id(tag, token) {
            assert_eq!(decode_text_id(tag, &encode_text_id(tag, (&text, id))), Some((text, id)));
        }
        if let Some(number) = decode_number(tag, token) {
            assert_eq!(decode_number(tag, &encode_number(tag, number)), Some(number));
        }
    }
});
