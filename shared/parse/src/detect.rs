//! Which format an upload is, from its first bytes (magic numbers), with the
//! filename and declared content type only to break ties (text that is
//! Markdown, a zip whose first bytes name no part).
//!
//! The zip-based formats are told apart by what their first entries say:
//! ODF and EPUB files start with a `mimetype` entry, stored uncompressed, whose
//! text names the type; an Office Open XML package names its parts in the
//! local headers (`word/`, `xl/`, `ppt/`).

use super::parse::{Format, image::ImageKind};

/// The list shown to a client whose upload is refused.
pub const SUPPORTED: &str = "plain text (UTF-8, UTF-16 with BOM, Latin-1), Markdown, HTML, PDF, DOCX, ODT, XLSX, ODS, PPTX, EPUB, \
     images (PNG, JPEG, TIFF, WebP; read by OCR)";

/// How many leading bytes [`detect`] looks at.
pub const SNIFF_BYTES: usize = 4096;

/// Detects the format of a document whose first bytes are `head`. Errs with
/// what the bytes look like when folio cannot parse them.
pub fn detect(head: &[u8], filename: &str, declared: Option<&str>) -> Result<Format, String> {
    let name = filename.to_ascii_lowercase();
    let declared = declared.unwrap_or("").to_ascii_lowercase();
    let has_ext = |exts: &[&str]| exts.iter().any(|e| name.ends_with(e));
    if head.starts_with(b"%PDF-") {
        return Ok(Format::Pdf);
    }
    // What the name or the declared type says, for ties only.
    let named = [
        (Format::Docx, &[".docx", ".docm"][..], "wordprocessingml"),
        (Format::Xlsx, &[".xlsx", ".xlsm"], "spreadsheetml"),
        (Format::Pptx, &[".pptx", ".pptm"], "presentationml"),
        (Format::Odt, &[".odt"], "opendocument.text"),
        (Format::Ods, &[".ods"], "opendocument.spreadsheet"),
        (Format::Epub, &[".epub"], "epub+zip"),
    ]
    .into_iter()
    .find(|(_, exts, kind)| has_ext(exts) || declared.contains(kind))
    .map(|(format, _, _)| format);
    if head.starts_with(b"PK\x03\x04") {
        return zip_format(head, named);
    }
    // Office stores password-protected OOXML files in an OLE container; their
    // parsers report them as encrypted.
    if head.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return match named {
            Some(format @ (Format::Docx | Format::Xlsx | Format::Pptx)) => Ok(format),
            _ => Err("a legacy Office (OLE) file".into()),
        };
    }
    if ImageKind::sniff(head).is_some() {
        return Ok(Format::Image);
    }
    for (magic, what) in [
        (&b"GIF8"[..], "a GIF image"),
        (b"\x7FELF", "an executable"),
        (b"\x1F\x8B", "a gzip archive"),
        (b"Rar!", "a RAR archive"),
        (b"7z\xBC\xAF", "a 7-Zip archive"),
    ] {
        if head.starts_with(magic) {
            return Err(what.into());
        }
    }
    let utf16 = head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF");
    if !utf16 && head.contains(&0) {
        return Err("binary data".into());
    }
    let lowered = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    let lowered = lowered.trim_start_matches('\u{feff}').trim_start();
    let looks_html = lowered.starts_with("<!doctype html")
        || lowered.starts_with("<html")
        || ["<html", "<head>", "<body"].iter().any(|tag| lowered.contains(tag));
    if looks_html || declared.starts_with("text/html") || declared.starts_with("application/xhtml") || has_ext(&[".html", ".htm", ".xhtml"])
    {
        return Ok(Format::Html);
    }
    if declared.starts_with("text/markdown") || has_ext(&[".md", ".markdown", ".mdown"]) {
        return Ok(Format::Markdown);
    }
    Ok(Format::Text)
}

/// The format of a zip archive from the local headers in its first bytes:
/// the `mimetype` entry of an ODF or EPUB file decides; otherwise the part
/// names of an Office Open XML package; `named` (from the filename or the
/// declared type) only when the head shows neither, or parts of more than
/// one kind.
fn zip_format(head: &[u8], named: Option<Format>) -> Result<Format, String> {
    let entries = local_entries(head);
    if let Some((b"mimetype", Some(mimetype))) = entries.first() {
        let mimetype = String::from_utf8_lossy(mimetype.trim_ascii()).into_owned();
        return match mimetype.as_str() {
            "application/vnd.oasis.opendocument.text" => Ok(Format::Odt),
            "application/vnd.oasis.opendocument.spreadsheet" => Ok(Format::Ods),
            "application/epub+zip" => Ok(Format::Epub),
            _ => Err(format!("a zip archive of type {mimetype:?}")),
        };
    }
    let mut seen = Vec::new();
    for (name, _) in &entries {
        let format = if name.starts_with(b"word/") {
            Format::Docx
        } else if name.starts_with(b"xl/") {
            Format::Xlsx
        } else if name.starts_with(b"ppt/") {
            Format::Pptx
        } else {
            continue;
        };
        if !seen.contains(&format) {
            seen.push(format);
        }
    }
    match (seen.first(), named) {
        (Some(_), Some(named)) if seen.contains(&named) => Ok(named),
        (Some(first), _) => Ok(*first),
        (None, Some(named)) => Ok(named),
        (None, None) => Err("a zip archive that is not a document folio reads".into()),
    }
}

/// The entries whose local headers start in `head`: each name, and the data
/// when the entry is stored uncompressed and ends within `head`. Every
/// signature found is tried, so a header after an entry whose size the head
/// cannot tell (one with a data descriptor) is still seen.
fn local_entries(head: &[u8]) -> Vec<(&[u8], Option<&[u8]>)> {
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([head[at], head[at + 1]]));
    let mut entries = Vec::new();
    let mut from = 0;
    while let Some(offset) = head[from..].windows(4).position(|w| w == b"PK\x03\x04") {
        let at = from + offset;
        from = at + 4;
        if at + 30 > head.len() {
            break;
        }
        let stored = u16_at(at + 8) == 0;
        let size = u32::from_le_bytes([head[at + 18], head[at + 19], head[at + 20], head[at + 21]]) as usize;
        let name_end = at + 30 + u16_at(at + 26);
        let Some(name) = head.get(at + 30..name_end) else { break };
        let data_start = name_end + u16_at(at + 28);
        let data = data_start.checked_add(size).and_then(|end| head.get(data_start..end));
        entries.push((name, data.filter(|_| stored)));
    }
    entries
}

/// The content type folio records for a document of `format` whose first
/// bytes are `head` when the client declared none.
pub fn content_type(format: Format, head: &[u8]) -> &'static str {
    match format {
        Format::Text => "text/plain",
        Format::Markdown => "text/markdown",
        Format::Html => "text/html",
        Format::Pdf => "application/pdf",
        Format::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Format::Odt => "application/vnd.oasis.opendocument.text",
        Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Format::Ods => "application/vnd.oasis.opendocument.spreadsheet",
        Format::Pptx => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        Format::Epub => "application/epub+zip",
        Format::Image => ImageKind::sniff(head).map_or("application/octet-stream", ImageKind::content_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_and_names_only_disambiguate() {
        assert_eq!(detect(b"%PDF-1.7\n...", "x.txt", None), Ok(Format::Pdf));
        assert_eq!(detect(b"PK\x03\x04....", "report.docx", None), Ok(Format::Docx));
        assert!(detect(b"PK\x03\x04....", "photos.zip", None).is_err());
        assert_eq!(detect(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1..", "locked.xlsx", None), Ok(Format::Xlsx));
        assert!(detect(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1..", "old.xls", None).is_err());
        assert_eq!(detect(b"<!DOCTYPE html><html>", "page", None), Ok(Format::Html));
        assert_eq!(detect(b"# Title\n\ntext", "notes.md", None), Ok(Format::Markdown));
        assert_eq!(detect(b"# Title\n\ntext", "notes", Some("text/markdown")), Ok(Format::Markdown));
        assert_eq!(detect(b"just words", "notes.txt", None), Ok(Format::Text));
        assert_eq!(detect(b"\xFF\xFEh\0i\0", "notes.txt", None), Ok(Format::Text));
        assert_eq!(detect(b"\x89PNG\r\n\x1a\n", "scan.txt", None), Ok(Format::Image));
        assert_eq!(detect(b"II*\0\x08\0\0\0", "fax", None), Ok(Format::Image));
        assert!(detect(b"GIF89a", "image.txt", None).unwrap_err().contains("GIF"));
        assert!(detect(b"abc\0def", "data.txt", None).is_err());
    }

    /// A zip of `entries` (name, content), the `mimetype` entry stored.
    fn zip(entries: &[(&str, &str)]) -> Vec<u8> {
        use std::io::Write as _;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, content) in entries {
            let method = if *name == "mimetype" {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            };
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            writer.start_file(*name, options).unwrap();
            writer.write_all(content.as_bytes()).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_formats_are_told_apart_by_their_content_and_names_only_break_ties() {
        let odf = |mimetype: &str| zip(&[("mimetype", mimetype), ("content.xml", "<x/>")]);
        let text = odf("application/vnd.oasis.opendocument.text");
        let sheet = odf("application/vnd.oasis.opendocument.spreadsheet");
        let epub = odf("application/epub+zip");
        // The content wins over a misleading name.
        assert_eq!(detect(&text, "report.docx", None), Ok(Format::Odt));
        assert_eq!(detect(&sheet, "data.odt", None), Ok(Format::Ods));
        assert_eq!(detect(&epub, "book.zip", None), Ok(Format::Epub));
        let presentation = odf("application/vnd.oasis.opendocument.presentation");
        assert!(detect(&presentation, "talk.odp", None).unwrap_err().contains("presentation"));

        let ooxml = |part: &str| zip(&[("[Content_Types].xml", "<Types/>"), ("_rels/.rels", "<R/>"), (part, "<x/>")]);
        assert_eq!(detect(&ooxml("word/document.xml"), "upload", None), Ok(Format::Docx));
        assert_eq!(detect(&ooxml("xl/workbook.xml"), "upload.docx", None), Ok(Format::Xlsx));
        assert_eq!(detect(&ooxml("ppt/presentation.xml"), "upload", None), Ok(Format::Pptx));

        // Parts of two kinds (a workbook embedded in a document): the name
        // decides between them.
        let both = zip(&[("word/document.xml", "<x/>"), ("xl/workbook.xml", "<x/>")]);
        assert_eq!(detect(&both, "upload", None), Ok(Format::Docx));
        assert_eq!(detect(&both, "upload.xlsx", None), Ok(Format::Xlsx));

        // A head that names no part: the name or the declared type decides.
        let mut unnamed = b"PK\x03\x04".to_vec();
        unnamed.resize(4096, 7);
        assert_eq!(detect(&unnamed, "talk.pptx", None), Ok(Format::Pptx));
        assert_eq!(detect(&unnamed, "book", Some("application/epub+zip")), Ok(Format::Epub));
        assert_eq!(detect(&unnamed, "sheet.ods", None), Ok(Format::Ods));
        assert!(detect(&unnamed, "archive.zip", None).is_err());
    }

    #[test]
    fn every_format_has_a_stored_name_and_a_content_type() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.as_str()), Some(format));
            assert!(content_type(format, b"").contains('/'));
        }
    }
}
