//! Which format an upload is, from its first bytes (magic numbers), with the
//! filename and declared content type only to tell apart formats that share a
//! magic (a zip that is a DOCX, text that is Markdown).

use super::parse::{Format, image::ImageKind};

/// The list shown to a client whose upload is refused.
pub const SUPPORTED: &str =
    "plain text (UTF-8, UTF-16 with BOM, Latin-1), Markdown, HTML, PDF, DOCX, images (PNG, JPEG, TIFF, WebP; read by OCR)";

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
    let docx_declared = declared.contains("wordprocessingml");
    if head.starts_with(b"PK\x03\x04") {
        return if has_ext(&[".docx"]) || docx_declared || contains(head, b"word/") {
            Ok(Format::Docx)
        } else {
            Err("a zip archive that is not a DOCX document".into())
        };
    }
    // Word stores password-protected DOCX files in an OLE container; the DOCX
    // parser reports them as encrypted.
    if head.starts_with(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        return if has_ext(&[".docx"]) || docx_declared {
            Ok(Format::Docx)
        } else {
            Err("a legacy Office (OLE) file".into())
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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
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
}
