//! What OCR gives back, made into blocks. The worker runs the OCR engine
//! (Tesseract, a child process per page) and hands its TSV output here:
//! [`read_tsv`] turns one page of it into paragraphs and a mean confidence,
//! and [`insert_pages`] puts recognised pages into a parse result at their page
//! numbers, so a scanned page between two born-digital ones keeps its place,
//! its page number and the section it falls in.

use super::{Block, Limits, ParseError, ParsedDocument, normalize_whitespace};

/// A PDF page with fewer characters than this (whitespace aside) in its text
/// layer is read by OCR: a scan has none, or only a page number or a stamp.
pub const MIN_PAGE_CHARACTERS: usize = 16;

/// Which pages of a document were read by OCR, and how sure it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OcrReport {
    /// The OCR languages, as Tesseract names them ("eng", "eng+deu").
    pub languages: String,
    /// The resolution pages were read at, in dots per inch.
    pub dpi: u32,
    pub pages: Vec<OcrPage>,
}

impl OcrReport {
    /// The mean confidence over the pages that had words, 0 to 100.
    pub fn mean_confidence(&self) -> Option<u32> {
        let scored: Vec<u32> = self.pages.iter().filter_map(|p| p.confidence).collect();
        (!scored.is_empty()).then(|| scored.iter().sum::<u32>() / scored.len() as u32)
    }
}

/// One page read by OCR.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OcrPage {
    /// The 1-based page number.
    pub page: u32,
    /// The mean confidence of its words, 0 to 100 (None: no words found).
    pub confidence: Option<u32>,
}

/// One page's text as OCR read it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognisedPage {
    pub page: u32,
    /// Paragraphs in reading order, whitespace-normalised.
    pub paragraphs: Vec<String>,
    /// The mean confidence of its words, 0 to 100.
    pub confidence: Option<f32>,
    /// How many words it read.
    pub words: usize,
}

impl RecognisedPage {
    /// How much was read, and how surely: the sum of the words'
    /// confidences. Of two readings of one page, the one with more words read
    /// surely is the better (a reading that lost a paragraph to noise scores
    /// lower, and so does one full of unsure fragments).
    pub fn score(&self) -> f32 {
        self.confidence.unwrap_or(0.0) * self.words as f32
    }
}

/// Reads Tesseract's TSV output for one page (`tesseract <image> <out> tsv`):
/// its words (level 5 rows) grouped into paragraphs by block and paragraph
/// number, in the order Tesseract read them, and their mean confidence.
/// Rows that do not parse are skipped.
pub fn read_tsv(page: u32, tsv: &str) -> RecognisedPage {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Option<(u32, u32)> = None;
    let mut paragraph = String::new();
    let (mut confidence_sum, mut words) = (0.0f64, 0usize);
    for line in tsv.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < 12 || fields[0] != "5" {
            continue;
        }
        let (Ok(block), Ok(par), Ok(confidence)) = (fields[2].parse::<u32>(), fields[3].parse::<u32>(), fields[10].parse::<f64>()) else {
            continue;
        };
        let word = fields[11..].join("\t");
        let word = word.trim();
        if word.is_empty() {
            continue;
        }
        if current != Some((block, par)) {
            push_paragraph(&mut paragraphs, &mut paragraph);
            current = Some((block, par));
        }
        paragraph.push(' ');
        paragraph.push_str(word);
        if confidence >= 0.0 {
            confidence_sum += confidence;
            words += 1;
        }
    }
    push_paragraph(&mut paragraphs, &mut paragraph);
    RecognisedPage {
        page,
        paragraphs,
        confidence: (words > 0).then(|| (confidence_sum / words as f64) as f32),
        words,
    }
}

fn push_paragraph(paragraphs: &mut Vec<String>, paragraph: &mut String) {
    let text = normalize_whitespace(paragraph);
    if !text.is_empty() {
        paragraphs.push(text);
    }
    paragraph.clear();
}

/// Puts `pages` into `document` in place of whatever text layer those pages
/// had, each at its page number; a page's blocks take the section path of the
/// block before them (the heading a scanned page falls under). Records the
/// pages in `document.ocr` and counts the text against `limits`.
pub fn insert_pages(
    document: &mut ParsedDocument,
    pages: Vec<RecognisedPage>,
    report: OcrReport,
    limits: &Limits,
) -> Result<(), ParseError> {
    let mut text_bytes: usize = document.blocks.iter().map(|b| b.text.len()).sum();
    for recognised in pages {
        let page = recognised.page;
        document.blocks.retain(|b| b.page != Some(page));
        let at = document
            .blocks
            .iter()
            .position(|b| b.page.is_some_and(|p| p > page))
            .unwrap_or(document.blocks.len());
        let section_path = at
            .checked_sub(1)
            .map(|before| document.blocks[before].section_path.clone())
            .unwrap_or_default();
        for (offset, text) in recognised.paragraphs.into_iter().enumerate() {
            text_bytes += text.len();
            if text_bytes > limits.max_text_bytes {
                return Err(ParseError::LimitExceeded(format!(
                    "more than {} bytes of text",
                    limits.max_text_bytes
                )));
            }
            document.blocks.insert(
                at + offset,
                Block {
                    section_path: section_path.clone(),
                    page: Some(page),
                    text,
                    row: None,
                },
            );
        }
    }
    document.textless_pages.clear();
    document.ocr = Some(report);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext
1\t1\t0\t0\t0\t0\t0\t0\t2480\t3508\t-1\t
2\t1\t1\t0\t0\t0\t300\t300\t1800\t120\t-1\t
3\t1\t1\t1\t0\t0\t300\t300\t1800\t120\t-1\t
4\t1\t1\t1\t1\t0\t300\t300\t1800\t60\t-1\t
5\t1\t1\t1\t1\t1\t300\t300\t200\t60\t96.5\tShell
5\t1\t1\t1\t1\t2\t520\t300\t300\t60\t91.5\tBuiltin
4\t1\t1\t1\t2\t0\t300\t360\t1800\t60\t-1\t
5\t1\t1\t1\t2\t1\t300\t360\t300\t60\t90\tCommands
5\t1\t1\t1\t2\t2\t300\t360\t300\t60\t-1\t 
2\t1\t2\t0\t0\t0\t300\t500\t1800\t120\t-1\t
5\t1\t2\t1\t1\t1\t300\t500\t200\t60\t82\tBuiltin
5\t1\t2\t1\t1\t2\t300\t500\t200\t60\t80\tcommands.
garbage line
";

    #[test]
    fn words_group_into_paragraphs_with_a_mean_confidence() {
        let page = read_tsv(3, TSV);
        assert_eq!(page.page, 3);
        assert_eq!(page.paragraphs, ["Shell Builtin Commands", "Builtin commands."]);
        assert_eq!(page.confidence, Some(88.0));
        assert_eq!((page.words, page.score()), (5, 440.0));
        let empty = read_tsv(1, "level\tpage_num\n1\t1\t0\t0\t0\t0\t0\t0\t10\t10\t-1\t\n");
        assert!(empty.paragraphs.is_empty() && empty.confidence.is_none());
    }

    fn block(path: &[&str], page: u32, text: &str) -> Block {
        Block {
            section_path: path.iter().map(|p| p.to_string()).collect(),
            page: Some(page),
            text: text.into(),
            row: None,
        }
    }

    #[test]
    fn recognised_pages_take_their_place_and_section() {
        let mut document = ParsedDocument {
            pages: Some(4),
            blocks: vec![
                block(&["Intro"], 1, "born digital"),
                block(&["Intro"], 2, "12"),
                block(&["Usage"], 4, "last page"),
            ],
            textless_pages: vec![2, 3],
            ..ParsedDocument::default()
        };
        let page = |page: u32, paragraphs: &[&str]| RecognisedPage {
            page,
            paragraphs: paragraphs.iter().map(|p| p.to_string()).collect(),
            confidence: Some(90.0),
            words: paragraphs.len(),
        };
        let report = OcrReport {
            languages: "eng".into(),
            dpi: 300,
            pages: vec![],
        };
        insert_pages(
            &mut document,
            vec![page(2, &["scanned two", "more"]), page(3, &["scanned three"])],
            report,
            &Limits::default(),
        )
        .unwrap();
        let got: Vec<(Vec<String>, Option<u32>, &str)> = document
            .blocks
            .iter()
            .map(|b| (b.section_path.clone(), b.page, b.text.as_str()))
            .collect();
        let intro = vec!["Intro".to_string()];
        assert_eq!(
            got,
            [
                (intro.clone(), Some(1), "born digital"),
                (intro.clone(), Some(2), "scanned two"),
                (intro.clone(), Some(2), "more"),
                (intro.clone(), Some(3), "scanned three"),
                (vec!["Usage".to_string()], Some(4), "last page"),
            ]
        );
        assert!(document.textless_pages.is_empty());
        assert_eq!(document.ocr.as_ref().unwrap().dpi, 300);

        let mut small = ParsedDocument::default();
        let limits = Limits {
            max_text_bytes: 10,
            ..Limits::default()
        };
        let error = insert_pages(&mut small, vec![page(1, &["0123456789ab"])], OcrReport::default(), &limits).unwrap_err();
        assert_eq!(error.code(), "LIMIT_EXCEEDED");
    }
}
