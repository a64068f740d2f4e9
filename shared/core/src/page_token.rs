//! Opaque page tokens (AIP-158). A token encodes where the previous page ended
//! and which list it belongs to (a tag), so a token from one list is refused by
//! another. Clients must treat tokens as opaque; they are hex, not text, and at
//! most [`MAX_TOKEN_CHARS`] characters. Decoding never trusts the token:
//! anything that is not exactly what [`encode_time_id`] and its siblings make
//! is `None` (an id in any form but the one they write, too), and everything
//! they make decodes.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The longest token read: room for the longest cursor folio writes, a
/// 255-character filename of 4-byte characters with its tag and id (2,2xx
/// hex characters).
pub const MAX_TOKEN_CHARS: usize = 4096;

/// An id as the encoders write it (hyphenated, lower case) and in no other
/// form, so that what decodes encodes back to the same token.
fn id(text: &str) -> Option<Uuid> {
    let id: Uuid = text.parse().ok()?;
    (id.hyphenated().to_string() == text).then_some(id)
}

/// Encodes a (time, id) cursor for the list `tag`.
pub fn encode_time_id(tag: &str, (at, id): (DateTime<Utc>, Uuid)) -> String {
    hex(&format!("{tag}|{}|{id}", at.timestamp_micros()))
}

/// Decodes a (time, id) cursor for the list `tag`; `None` for anything else.
pub fn decode_time_id(tag: &str, token: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = unhex(token)?;
    let mut parts = text.split('|');
    if parts.next()? != tag {
        return None;
    }
    let micros: i64 = parts.next()?.parse().ok()?;
    let id = id(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some((DateTime::from_timestamp_micros(micros)?, id))
}

/// Encodes a (text, id) cursor for the list `tag`.
pub fn encode_text_id(tag: &str, (text, id): (&str, Uuid)) -> String {
    hex(&format!("{tag}|{id}|{text}"))
}

/// Decodes a (text, id) cursor for the list `tag`.
pub fn decode_text_id(tag: &str, token: &str) -> Option<(String, Uuid)> {
    let text = unhex(token)?;
    let mut parts = text.splitn(3, '|');
    if parts.next()? != tag {
        return None;
    }
    let id = id(parts.next()?)?;
    Some((parts.next()?.to_owned(), id))
}

/// Encodes a numeric cursor for the list `tag`.
pub fn encode_number(tag: &str, value: i64) -> String {
    hex(&format!("{tag}|{value}"))
}

/// Decodes a numeric cursor for the list `tag`.
pub fn decode_number(tag: &str, token: &str) -> Option<i64> {
    let text = unhex(token)?;
    let (found, value) = text.split_once('|')?;
    if found != tag {
        return None;
    }
    value.parse().ok()
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || token.len() > MAX_TOKEN_CHARS {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_time_id("w1", &encode_time_id("w1", (at, id))), Some((at, id)));
        assert_eq!(decode_number("a1", &encode_number("a1", 42)), Some(42));
    }

    #[test]
    fn the_longest_name_a_cursor_holds_round_trips() {
        let name = "𝄞".repeat(255);
        let id = Uuid::new_v4();
        let token = encode_text_id("n1", (&name, id));
        assert!(token.len() <= MAX_TOKEN_CHARS, "{}", token.len());
        assert_eq!(decode_text_id("n1", &token), Some((name, id)));
    }

    #[test]
    fn an_id_in_another_form_is_refused() {
        // The page_token fuzz target's find (tests/fixtures/fuzz/page_token/):
        // a simple-form id decoded, and its re-encoding, longer, did not.
        let found = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/fuzz/page_token/simple-form-id-grows-on-re-encoding"
        ))
        .unwrap();
        if let Some((text, id)) = decode_text_id("d1", &found) {
            assert_eq!(decode_text_id("d1", &encode_text_id("d1", (&text, id))), Some((text, id)));
        }
        let id = Uuid::new_v4();
        for form in [
            id.simple().to_string(),
            id.braced().to_string(),
            id.urn().to_string(),
            id.to_string().to_uppercase(),
        ] {
            assert_eq!(decode_text_id("n1", &hex(&format!("n1|{form}|name"))), None, "{form}");
            assert_eq!(decode_time_id("n1", &hex(&format!("n1|1|{form}"))), None, "{form}");
        }
    }

    #[test]
    fn foreign_tokens_are_refused() {
        let other_list = encode_time_id("u1", (Utc::now(), Uuid::new_v4()));
        for token in ["", "zz", "abc", &hex("w2|1|x"), &hex("w1|1|not-a-uuid"), &other_list] {
            assert_eq!(decode_time_id("w1", token), None, "{token}");
        }
        assert_eq!(decode_number("a1", &encode_number("a2", 1)), None);
    }
}
