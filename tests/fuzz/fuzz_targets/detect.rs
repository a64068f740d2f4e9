#![no_main]
//! Format detection on any bytes, filename and declared type. The input is
//! `filename \0 declared \0 head`.

use folio_parse::detect::{SNIFF_BYTES, content_type, detect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let name = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let declared = parts.next().map(String::from_utf8_lossy);
    let head = parts.next().unwrap_or_default();
    let head = &head[..head.len().min(SNIFF_BYTES)];
    if let Ok(format) = detect(head, &name, declared.as_deref()) {
        assert!(!content_type(format, head).is_empty());
    }
});
