#![no_main]
//! An image's pages and sizes read from its headers (`image::survey`), on any
//! bytes: what the worker does before OCR decodes anything. It must refuse or
//! answer within its limits, never panic or loop.

use folio_parse::parse::image::survey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(surveyed) = survey(data, 100, 50_000_000) {
        assert!(!surveyed.pages.is_empty() && surveyed.pages.len() <= 100);
        assert!(surveyed.pages.iter().all(|&(w, h)| w > 0 && h > 0 && w * h <= 50_000_000));
    }
});
