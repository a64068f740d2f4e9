#![no_main]

use folio_parse::parse::Format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| folio_fuzz::parse(Format::Odt, data));
