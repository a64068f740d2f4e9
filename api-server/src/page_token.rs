//! Opaque page tokens (AIP-158). A token encodes where the previous page ended;
//! clients must treat it as opaque, so it is hex, not readable text.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Encodes a worker-list cursor.
pub fn encode_worker_cursor((seen, id): (DateTime<Utc>, Uuid)) -> String {
    hex(&format!("w1|{}|{}", seen.timestamp_micros(), id))
}

/// Decodes a worker-list cursor; `None` for anything this server did not issue.
pub fn decode_worker_cursor(token: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let text = unhex(token)?;
    let mut parts = text.split('|');
    if parts.next()? != "w1" {
        return None;
    }
    let micros: i64 = parts.next()?.parse().ok()?;
    let id: Uuid = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((DateTime::from_timestamp_micros(micros)?, id))
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) || token.len() > 512 {
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
    fn a_worker_cursor_round_trips() {
        let seen = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        assert_eq!(decode_worker_cursor(&encode_worker_cursor((seen, id))), Some((seen, id)));
    }

    #[test]
    fn foreign_tokens_are_refused() {
        for token in ["", "zz", "abc", &hex("w2|1|x"), &hex("w1|1|not-a-uuid")] {
            assert_eq!(decode_worker_cursor(token), None, "{token}");
        }
    }
}
