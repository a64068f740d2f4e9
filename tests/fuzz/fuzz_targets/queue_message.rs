#![no_main]
//! The queue message as a worker receives it: decoded, described (kind and
//! document), and encoded back to the same job.

use folio_core::queue::{decode, describe};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let Ok(job) = decode(data) else { return };
    let (kind, _document) = describe(&job);
    assert!(!kind.is_empty());
    let again = decode(&job.encode_to_vec()).expect("a job folio encoded decodes");
    assert_eq!(again, job);
});
