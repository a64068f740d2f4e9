//! The zip archives that DOCX, XLSX, PPTX, ODT, ODS and EPUB files are, opened
//! with the limits that keep a zip bomb from getting anywhere: every zip-based
//! parser reads its archive through [`Archive`], and the spreadsheet parser,
//! whose library opens the zip itself, vets the bytes here first.
//!
//! [`Archive::open`] refuses an archive with more than `max_zip_entries`
//! entries, two entries of one name, and any entry whose central-directory
//! sizes claim more than `max_compression_ratio` times its compressed size.
//! [`Archive::read`] reads an entry through a `take()` bound (the smaller of the
//! ratio limit and what is left of `max_inflated_bytes`), so a header that lies
//! about the inflated size cannot get more bytes out than that.
//!
//! Office saves a password-protected OOXML document as an OLE compound file
//! holding an `EncryptedPackage` stream rather than as a zip; [`ole_error`]
//! tells such a file from a legacy binary one.

use std::io::{Cursor, Read};

use zip::ZipArchive;
use zip::result::ZipError;

use super::{Budget, ParseError};

/// The signature of an OLE compound file, the container of encrypted Office
/// files and of legacy binary ones.
pub const OLE_SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
/// How many entries pass between two checks of the time budget.
const ENTRIES_PER_TIME_CHECK: usize = 256;

/// A zip archive being read by the parser of `format`, with the bytes
/// inflated from it so far.
pub struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    format: &'static str,
    inflated: u64,
    /// The sum of the inflated sizes the central directory declares.
    declared: u64,
}

impl<'a> Archive<'a> {
    /// Opens the archive and checks the entry count, that no two entries share
    /// a name, and every entry's declared compression ratio against the limits.
    /// `format` names the format in the errors.
    pub fn open(bytes: &'a [u8], format: &'static str, budget: &Budget<'_>) -> Result<Self, ParseError> {
        let limits = budget.limits();
        let corrupt = |detail: String| ParseError::Corrupt { format, detail };
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(format!("not a zip archive: {e}")))?;
        if zip.len() > limits.max_zip_entries {
            return Err(ParseError::LimitExceeded(format!(
                "the zip archive has {} entries, more than {}",
                zip.len(),
                limits.max_zip_entries
            )));
        }
        // Two entries of one name are read differently by different readers
        // (the first or the last wins), the trick of several archive exploits;
        // the zip crate keeps only one, so it is asked whether it dropped any.
        if zip.has_duplicate_names() {
            return Err(corrupt("the zip archive has two entries of the same name".into()));
        }
        let mut declared = 0u64;
        for index in 0..zip.len() {
            if index.is_multiple_of(ENTRIES_PER_TIME_CHECK) {
                budget.check_time()?;
            }
            let entry = zip.by_index_data(index).map_err(|e| corrupt(format!("zip entry {index}: {e}")))?;
            if entry.size() > entry.compressed_size().saturating_mul(limits.max_compression_ratio) {
                return Err(ratio_exceeded(
                    &String::from_utf8_lossy(entry.name_raw()),
                    limits.max_compression_ratio,
                ));
            }
            declared = declared.saturating_add(entry.size());
        }
        Ok(Archive {
            zip,
            format,
            inflated: 0,
            declared,
        })
    }

    /// Errs unless everything the archive declares fits in `max_inflated_bytes`:
    /// for a library that reads entries itself, which no `take()` bound reaches
    /// (the zip crate refuses to inflate an entry past its declared size).
    pub fn check_declared_total(&self, budget: &Budget<'_>) -> Result<(), ParseError> {
        let limit = budget.limits().max_inflated_bytes;
        if self.declared > limit {
            return Err(ParseError::LimitExceeded(format!(
                "the zip archive inflates to {} bytes, more than {limit}",
                self.declared
            )));
        }
        Ok(())
    }

    /// Reads one entry, or `None` if the archive has no entry of that name. The
    /// inflated bytes are bounded while they are read, whatever the headers say.
    pub fn read(&mut self, name: &str, budget: &Budget<'_>) -> Result<Option<Vec<u8>>, ParseError> {
        let limits = budget.limits();
        let format = self.format;
        let corrupt = |detail: String| ParseError::Corrupt { format, detail };
        let file = match self.zip.by_name(name) {
            Ok(file) => file,
            Err(ZipError::FileNotFound) => return Ok(None),
            Err(ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED)) => return Err(ParseError::Encrypted { format }),
            Err(e) => return Err(corrupt(format!("{name}: {e}"))),
        };
        let by_ratio = file.compressed_size().saturating_mul(limits.max_compression_ratio);
        let by_total = limits.max_inflated_bytes.saturating_sub(self.inflated);
        let cap = by_ratio.min(by_total);
        // One byte more than the cap is read so that an entry over it is seen.
        let mut limited = file.take(cap.saturating_add(1));
        let mut inflated = Vec::new();
        let mut chunk = vec![0u8; 64 << 10];
        loop {
            budget.check_time()?;
            let read = limited.read(&mut chunk).map_err(|e| corrupt(format!("{name}: {e}")))?;
            if read == 0 {
                break;
            }
            inflated.extend_from_slice(&chunk[..read]);
            if inflated.len() as u64 > cap {
                return Err(if cap == by_ratio {
                    ratio_exceeded(name, limits.max_compression_ratio)
                } else {
                    ParseError::LimitExceeded(format!(
                        "more than {} bytes inflated from the zip archive",
                        limits.max_inflated_bytes
                    ))
                });
            }
        }
        self.inflated += inflated.len() as u64;
        Ok(Some(inflated))
    }

    /// Reads an entry that must be there.
    pub fn require(&mut self, name: &str, budget: &Budget<'_>) -> Result<Vec<u8>, ParseError> {
        self.read(name, budget)?.ok_or_else(|| ParseError::Corrupt {
            format: self.format,
            detail: format!("the archive has no {name}"),
        })
    }
}

fn ratio_exceeded(name: &str, ratio: u64) -> ParseError {
    ParseError::LimitExceeded(format!("zip entry {name} inflates to more than {ratio} times its compressed size"))
}

/// Why an OLE file given as `format` cannot be read: Office writes one for a
/// password-protected document (the real package sits encrypted in an
/// `EncryptedPackage` stream, described by `EncryptionInfo`); without those
/// streams it is a legacy binary document (`.doc`, `.xls`, `.ppt`).
pub fn ole_error(bytes: &[u8], format: &'static str) -> ParseError {
    let utf16 = |name: &str| name.encode_utf16().flat_map(u16::to_le_bytes).collect::<Vec<u8>>();
    let encrypted = ["EncryptedPackage", "EncryptionInfo"]
        .iter()
        .any(|name| bytes.windows(name.len() * 2).any(|window| window == utf16(name).as_slice()));
    if encrypted {
        ParseError::Encrypted { format }
    } else {
        ParseError::Corrupt {
            format,
            detail: "an OLE compound file (a legacy binary Office document?), not a zip package".into(),
        }
    }
}

/// Whether `bytes` start like an OLE compound file.
pub fn is_ole(bytes: &[u8]) -> bool {
    bytes.starts_with(&OLE_SIGNATURE[..4])
}

/// Joins a path relative to the entry `base` (a zip entry's name) into an
/// entry name: `..` climbs, `.` and empty segments drop, and a leading `/`
/// means the archive's root. Percent-escapes are decoded, as package
/// relationships and EPUB manifests write them.
pub fn resolve(base: &str, relative: &str) -> String {
    let relative = percent_decode(relative.split(['#', '?']).next().unwrap_or(""));
    let mut parts: Vec<&str> = if relative.starts_with('/') {
        Vec::new()
    } else {
        let mut parts: Vec<&str> = base.split('/').collect();
        parts.pop();
        parts
    };
    for segment in relative.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(segment),
        }
    }
    parts.retain(|part| !part.is_empty());
    parts.join("/")
}

/// Decodes `%XX` escapes; a malformed escape or one that makes invalid UTF-8
/// is kept as written.
fn percent_decode(text: &str) -> String {
    if !text.contains('%') {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, ZipWriter};

    use super::*;
    use crate::parse::Limits;

    /// Zips `entries` (name, content) with deflate, the `mimetype` entry
    /// stored as ODF and EPUB require.
    pub(crate) fn zipped(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            let method = if *name == "mimetype" {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            };
            writer
                .start_file(*name, SimpleFileOptions::default().compression_method(method))
                .unwrap();
            writer.write_all(content).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn paths_resolve_against_their_entry() {
        assert_eq!(resolve("ppt/presentation.xml", "slides/slide1.xml"), "ppt/slides/slide1.xml");
        assert_eq!(resolve("ppt/slides/slide1.xml", "../notesSlides/n1.xml"), "ppt/notesSlides/n1.xml");
        assert_eq!(resolve("OEBPS/content.opf", "text/ch%201.xhtml#top"), "OEBPS/text/ch 1.xhtml");
        assert_eq!(resolve("a/b.xml", "/xl/x.xml"), "xl/x.xml");
        assert_eq!(resolve("a.xml", "../../x.xml"), "x.xml");
        assert_eq!(resolve("a.xml", "bad%zz%e9"), "bad%zz%e9");
    }

    #[test]
    fn the_declared_total_is_checked_on_request() {
        // Words that deflate well under the ratio limit.
        let words: String = (0..800).map(|i| format!("{:x} ", i * 7919)).collect();
        let bytes = zipped(&[("a", words.as_bytes()), ("b", words.as_bytes())]);
        let limits = Limits {
            max_inflated_bytes: 5000,
            ..Limits::default()
        };
        let budget = Budget::new(&limits);
        let archive = Archive::open(&bytes, "test", &budget).unwrap();
        let error = archive.check_declared_total(&budget).unwrap_err();
        let declared = 2 * words.len();
        assert!(error.to_string().contains(&format!("{declared} bytes")), "{error}");
    }
}
