//! Images (PNG, JPEG, TIFF, WebP): no text of their own, so [`parse`] gives an
//! empty document and the worker reads every page by OCR. What this module
//! does is look before anything decodes: [`survey`] reads the kind, the page
//! count and each page's size from the headers alone (the `imagesize` crate;
//! for TIFF, whose pages are a chain of directories, by walking the chain
//! here), so a decompression bomb (a small file that claims a huge picture)
//! or a TIFF of a million pages is refused before a decoder allocates for it.

use super::{Budget, ParseError, ParsedDocument};

/// The image formats folio reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Tiff,
    Webp,
}

impl ImageKind {
    /// The kind of an image whose first bytes are `head`, by magic number.
    pub fn sniff(head: &[u8]) -> Option<ImageKind> {
        if head.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if head.starts_with(b"\xFF\xD8\xFF") {
            Some(ImageKind::Jpeg)
        } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
            Some(ImageKind::Tiff)
        } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
            Some(ImageKind::Webp)
        } else {
            None
        }
    }

    /// The usual file extension (what the OCR engine is handed).
    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
            ImageKind::Tiff => "tif",
            ImageKind::Webp => "webp",
        }
    }

    /// The content type.
    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Tiff => "image/tiff",
            ImageKind::Webp => "image/webp",
        }
    }
}

/// What the headers of an image say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Survey {
    pub kind: ImageKind,
    /// Width and height of each page, in pixels (one page but for TIFF).
    pub pages: Vec<(u64, u64)>,
}

/// Reads the kind, pages and sizes of `bytes` from its headers, refusing
/// more than `max_pages` pages ([`ParseError::TooManyPages`]) or a page of
/// more than `max_pixels` pixels ([`ParseError::ImageTooLarge`]), before
/// anything decodes it.
pub fn survey(bytes: &[u8], max_pages: usize, max_pixels: u64) -> Result<Survey, ParseError> {
    let kind = ImageKind::sniff(bytes).ok_or_else(|| corrupt("not a PNG, JPEG, TIFF or WebP image"))?;
    let pages = match kind {
        ImageKind::Tiff => tiff_pages(bytes, max_pages)?,
        _ => {
            let size = imagesize::blob_size(bytes).map_err(|e| corrupt(format!("unreadable image header: {e}")))?;
            vec![(size.width as u64, size.height as u64)]
        }
    };
    if pages.len() > max_pages {
        return Err(ParseError::TooManyPages { max: max_pages });
    }
    for (index, &(width, height)) in pages.iter().enumerate() {
        if width == 0 || height == 0 {
            return Err(corrupt(format!("page {} is empty ({width}x{height})", index + 1)));
        }
        if width.saturating_mul(height) > max_pixels {
            return Err(ParseError::ImageTooLarge {
                page: index + 1,
                width,
                height,
                max: max_pixels,
            });
        }
    }
    Ok(Survey { kind, pages })
}

/// An image has no text layer: its document is empty until OCR fills it.
pub fn parse(bytes: &[u8], _budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    ImageKind::sniff(bytes).ok_or_else(|| corrupt("not a PNG, JPEG, TIFF or WebP image"))?;
    Ok(ParsedDocument::default())
}

fn corrupt(detail: impl Into<String>) -> ParseError {
    ParseError::Corrupt {
        format: "image",
        detail: detail.into(),
    }
}

/// TIFF tags giving a page's width and height.
const IMAGE_WIDTH: u16 = 256;
const IMAGE_LENGTH: u16 = 257;

/// The size of each page of a TIFF: its image file directories (IFDs) form a
/// chain from the header. Stops past `max_pages` (the caller refuses that)
/// and refuses a chain that loops or points outside the file.
fn tiff_pages(bytes: &[u8], max_pages: usize) -> Result<Vec<(u64, u64)>, ParseError> {
    let little = bytes.starts_with(b"II");
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if little { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if little { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let truncated = || corrupt("the TIFF directory chain is truncated");
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut offset = u32_at(4).ok_or_else(truncated)? as usize;
    while offset != 0 {
        if pages.len() > max_pages {
            break;
        }
        if !seen.insert(offset) {
            return Err(corrupt("the TIFF directory chain loops"));
        }
        let entries = u16_at(offset).ok_or_else(truncated)? as usize;
        let (mut width, mut height) = (None, None);
        for entry in 0..entries {
            let at = offset + 2 + entry * 12;
            let tag = u16_at(at).ok_or_else(truncated)?;
            let field_type = u16_at(at + 2).ok_or_else(truncated)?;
            // SHORT (3) or LONG (4), one value, stored in the entry itself.
            let value = match field_type {
                3 => u16_at(at + 8).map(u64::from),
                4 => u32_at(at + 8).map(u64::from),
                _ => None,
            };
            match tag {
                IMAGE_WIDTH => width = value,
                IMAGE_LENGTH => height = value,
                _ => {}
            }
        }
        let (Some(width), Some(height)) = (width, height) else {
            return Err(corrupt(format!("TIFF page {} has no width or height", pages.len() + 1)));
        };
        pages.push((width, height));
        offset = u32_at(offset + 2 + entries * 12).ok_or_else(truncated)? as usize;
    }
    if pages.is_empty() {
        return Err(corrupt("the TIFF has no pages"));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian TIFF header and one directory per page, chained, with
    /// only the width and height tags (what `survey` reads).
    fn tiff(pages: &[(u32, u32)]) -> Vec<u8> {
        let mut bytes = b"II*\0".to_vec();
        bytes.extend(8u32.to_le_bytes());
        for (index, &(width, height)) in pages.iter().enumerate() {
            bytes.extend(2u16.to_le_bytes());
            for (tag, value) in [(IMAGE_WIDTH, width), (IMAGE_LENGTH, height)] {
                bytes.extend(tag.to_le_bytes());
                bytes.extend(4u16.to_le_bytes());
                bytes.extend(1u32.to_le_bytes());
                bytes.extend(value.to_le_bytes());
            }
            let next = if index + 1 < pages.len() { bytes.len() as u32 + 4 } else { 0 };
            bytes.extend(next.to_le_bytes());
        }
        bytes
    }

    /// A PNG signature and IHDR chunk claiming `width` x `height`.
    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        bytes.extend(width.to_be_bytes());
        bytes.extend(height.to_be_bytes());
        bytes.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
        bytes
    }

    #[test]
    fn kinds_are_told_by_magic_numbers() {
        assert_eq!(ImageKind::sniff(&png(1, 1)), Some(ImageKind::Png));
        assert_eq!(ImageKind::sniff(b"\xFF\xD8\xFF\xE0"), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::sniff(b"MM\0*\0\0\0\x08"), Some(ImageKind::Tiff));
        assert_eq!(ImageKind::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageKind::Webp));
        assert_eq!(ImageKind::sniff(b"RIFF\0\0\0\0WAVEfmt "), None);
        assert_eq!(ImageKind::sniff(b"GIF89a"), None);
    }

    #[test]
    fn every_page_of_a_tiff_is_surveyed() {
        let survey = survey(&tiff(&[(2480, 3508), (1240, 1754), (100, 50)]), 10, 10_000_000).unwrap();
        assert_eq!(survey.kind, ImageKind::Tiff);
        assert_eq!(survey.pages, [(2480, 3508), (1240, 1754), (100, 50)]);
    }

    #[test]
    fn bombs_are_refused_from_their_headers() {
        // 100,000 x 100,000 pixels claimed in a few bytes.
        let error = survey(&png(100_000, 100_000), 10, 50_000_000).unwrap_err();
        assert_eq!(error.code(), "IMAGE_TOO_LARGE");
        assert!(error.to_string().contains("100000x100000"), "{error}");
        // The walk stops one page past the limit.
        let error = survey(&tiff(&[(10, 10); 40]), 10, 50_000_000).unwrap_err();
        assert_eq!(error.code(), "TOO_MANY_PAGES");
        assert_eq!(error.to_string(), "more than 10 pages to read by OCR");
        let error = survey(&tiff(&[(10, 10), (60_000, 60_000)]), 10, 50_000_000).unwrap_err();
        assert!(error.to_string().starts_with("page 2 is 60000x60000"), "{error}");
    }

    #[test]
    fn broken_headers_are_corrupt_not_panics() {
        let mut looping = tiff(&[(10, 10)]);
        let end = looping.len();
        looping[end - 4..].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(survey(&looping, 10, 1_000).unwrap_err().code(), "CORRUPT_FILE");
        assert_eq!(survey(b"II*\0\xff\xff\0\0", 10, 1_000).unwrap_err().code(), "CORRUPT_FILE");
        assert_eq!(survey(&png(1, 1)[..12], 10, 1_000).unwrap_err().code(), "CORRUPT_FILE");
        assert_eq!(survey(&png(0, 5), 10, 1_000).unwrap_err().code(), "CORRUPT_FILE");
    }
}
