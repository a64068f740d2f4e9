//! DownloadDocument: the original bytes streamed from the blob store, or the
//! parse result rendered as JSON, Markdown or plain text (`render`, pure).

use bytes::Bytes;
use folio_db::models::{chunk, document::Document, document_event};
use folio_parse::parse::ParsedDocument;
use futures_util::{StreamExt as _, stream::BoxStream};

use super::Documents;
use crate::error::{ApiError, ApiResult};

/// Bytes per part of a rendered download.
const DOWNLOAD_PART: usize = 64 * 1024;

/// What DownloadDocument sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The bytes as uploaded.
    Original,
    Json,
    Markdown,
    Text,
    /// The searchable PDF of a document read by OCR; the original of any
    /// other PDF.
    Pdf,
}

/// A download: its content type and its bytes, in parts as they come.
pub struct Download {
    pub content_type: String,
    pub parts: BoxStream<'static, ApiResult<Bytes>>,
}

impl Documents {
    /// `found` (a document the caller may see) in `format`.
    pub(super) async fn download(&self, found: Document, format: Format) -> ApiResult<Download> {
        if format == Format::Original {
            return self.original(found).await;
        }
        if format == Format::Pdf {
            return self.pdf(found).await;
        }
        let parsed = match self.blobs.get(&folio_db::documents::parsed_key(found.id, found.attempt)).await {
            Ok(bytes) => serde_json::from_slice::<ParsedDocument>(&bytes).map_err(|e| ApiError::Internal(e.into()))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ApiError::FailedPrecondition(format!(
                    "the document is {} and has not been parsed yet",
                    found.state
                )));
            }
            Err(error) => return Err(ApiError::Internal(error.into())),
        };
        let (content_type, body) = match format {
            Format::Json => {
                let mut conn = self.pool.get().await?;
                let chunks = chunk::list(&mut conn, found.id, -1, i64::MAX).await?;
                ("application/json", render::json(&found, &parsed, &chunks).to_string())
            }
            Format::Markdown => ("text/markdown; charset=utf-8", render::markdown(&found, &parsed)),
            Format::Original | Format::Pdf | Format::Text => ("text/plain; charset=utf-8", render::text(&parsed)),
        };
        let body = Bytes::from(body);
        let parts: Vec<ApiResult<Bytes>> = (0..body.len())
            .step_by(DOWNLOAD_PART)
            .map(|start| Ok(body.slice(start..body.len().min(start + DOWNLOAD_PART))))
            .collect();
        Ok(Download {
            content_type: content_type.to_owned(),
            parts: futures_util::stream::iter(parts).boxed(),
        })
    }
}

impl Documents {
    /// The bytes as uploaded.
    async fn original(&self, found: Document) -> ApiResult<Download> {
        if !found.has_original() {
            return Err(self.original_deleted(&found).await?);
        }
        let parts = self.blobs.stream(&found.blob_key).await.map_err(|e| ApiError::Internal(e.into()))?;
        Ok(Download {
            content_type: found.content_type,
            parts: interrupted_as_unavailable(parts),
        })
    }

    /// DownloadDocument in format PDF: the searchable PDF that OCR made, else
    /// the original of a PDF.
    async fn pdf(&self, found: Document) -> ApiResult<Download> {
        let key = folio_db::documents::searchable_key(found.id, found.attempt);
        let parts = match self.blobs.stream(&key).await {
            Ok(parts) => parts,
            Err(object_store::Error::NotFound { .. }) if found.format == "pdf" => {
                return self.original(found).await;
            }
            Err(object_store::Error::NotFound { .. }) if found.format == "image" => {
                return Err(
                    ApiError::FailedPrecondition(format!("the document is {} and has not been read by OCR yet", found.state))
                        .because("NOT_A_PDF"),
                );
            }
            Err(object_store::Error::NotFound { .. }) => {
                return Err(ApiError::FailedPrecondition(format!(
                    "the document is {}, not a PDF or a scan: download format ORIGINAL, MARKDOWN, TEXT or JSON",
                    found.format
                ))
                .because("NOT_A_PDF"));
            }
            Err(error) => return Err(ApiError::Internal(error.into())),
        };
        Ok(Download {
            content_type: "application/pdf".into(),
            parts: interrupted_as_unavailable(parts),
        })
    }

    /// Why `found`'s original cannot be downloaded: when retention deleted it
    /// and after how many days (its event says).
    async fn original_deleted(&self, found: &Document) -> ApiResult<ApiError> {
        let mut conn = self.pool.get().await?;
        let event = document_event::latest_with(&mut conn, found.id, "retention", "original").await?;
        let when = match &event {
            Some(event) => format!(
                " on {} (originals were kept {} days)",
                event.created_at.format("%Y-%m-%d %H:%M UTC"),
                event.details["days"]
            ),
            None => String::new(),
        };
        Ok(ApiError::FailedPrecondition(format!(
            "the retention policy deleted this document's original{when}; its text and chunks stay searchable: \
             download format TEXT, MARKDOWN or JSON instead"
        ))
        .because("ORIGINAL_DELETED"))
    }
}

/// A blob's parts, a failure midway as UNAVAILABLE (the client may retry).
fn interrupted_as_unavailable(parts: BoxStream<'static, object_store::Result<Bytes>>) -> BoxStream<'static, ApiResult<Bytes>> {
    parts
        .map(|part| {
            part.map_err(|error| {
                tracing::error!(%error, "download interrupted");
                ApiError::Unavailable("the blob store failed mid-download; try again".into())
            })
        })
        .boxed()
}

/// The parsed forms of DownloadDocument.
mod render {
    use folio_db::models::{chunk::Chunk, document::Document};
    use folio_parse::parse::{Block, ParsedDocument};

    fn title<'a>(document: &'a Document, parsed: &'a ParsedDocument) -> &'a str {
        if !document.title.is_empty() {
            &document.title
        } else {
            parsed.title.as_deref().unwrap_or(&document.filename)
        }
    }

    /// Sections (runs of blocks under the same headings) with their blocks
    /// (a table row's with its table, header flag and cells), and the
    /// indexed chunks.
    pub fn json(document: &Document, parsed: &ParsedDocument, chunks: &[Chunk]) -> serde_json::Value {
        let mut sections: Vec<serde_json::Value> = Vec::new();
        let mut current: Option<(Vec<String>, Vec<serde_json::Value>)> = None;
        for block in &parsed.blocks {
            if current.as_ref().is_none_or(|(path, _)| *path != block.section_path) {
                if let Some((path, blocks)) = current.take() {
                    sections.push(serde_json::json!({ "path": path, "blocks": blocks }));
                }
                current = Some((block.section_path.clone(), Vec::new()));
            }
            if let Some((_, blocks)) = current.as_mut() {
                let mut json = serde_json::json!({ "page": block.page, "text": block.text });
                if let Some(row) = &block.row {
                    json["row"] = serde_json::json!(row);
                }
                blocks.push(json);
            }
        }
        if let Some((path, blocks)) = current {
            sections.push(serde_json::json!({ "path": path, "blocks": blocks }));
        }
        serde_json::json!({
            "id": document.id,
            "title": title(document, parsed),
            "filename": document.filename,
            "format": document.format,
            "pages": parsed.pages,
            "sections": sections,
            "ocr": parsed.ocr.as_ref().map(|ocr| serde_json::json!({
                "languages": ocr.languages,
                "dpi": ocr.dpi,
                "pages": ocr.pages,
                "mean_confidence": ocr.mean_confidence(),
            })),
            "chunks": chunks.iter().map(|c| serde_json::json!({
                "ordinal": c.ordinal,
                "section_path": c.section_path.iter().flatten().collect::<Vec<_>>(),
                "page_start": c.page_start,
                "page_end": c.page_end,
                "text": c.text,
            })).collect::<Vec<_>>(),
        })
    }

    /// Headings where the section path changes, then the blocks as
    /// paragraphs, and the rows of a table as a Markdown table.
    pub fn markdown(document: &Document, parsed: &ParsedDocument) -> String {
        let mut out = format!("# {}\n\n", title(document, parsed));
        let mut path: Vec<String> = Vec::new();
        let mut blocks = parsed.blocks.iter().enumerate().peekable();
        while let Some((index, block)) = blocks.next() {
            if block.section_path != path {
                let common = path.iter().zip(&block.section_path).take_while(|(a, b)| a == b).count();
                // A top heading that is the title is the `#` line already: the
                // headings under it move up a level, so none is skipped.
                let under_title = usize::from(block.section_path.first().is_some_and(|h| h == title(document, parsed)));
                for (depth, heading) in block.section_path.iter().enumerate().skip(common) {
                    if depth == 0 && under_title == 1 {
                        continue;
                    }
                    out.push_str(&format!("{} {heading}\n\n", "#".repeat((depth + 2 - under_title).min(6))));
                }
                path = block.section_path.clone();
            }
            if let Some(row) = &block.row {
                // The rows that follow of the same table, under the same headings.
                let mut end = index + 1;
                while blocks.next_if(|(_, next)| same_table(row.table, block, next)).is_some() {
                    end += 1;
                }
                table(&mut out, &parsed.blocks[index..end]);
                continue;
            }
            out.push_str(&block.text);
            out.push_str("\n\n");
        }
        out
    }

    /// A row's cells (none for a block that is no row).
    fn cells(block: &Block) -> &[String] {
        block.row.as_ref().map_or(&[], |row| &row.cells)
    }

    fn same_table(table: u32, block: &Block, next: &Block) -> bool {
        next.section_path == block.section_path && next.row.as_ref().is_some_and(|row| row.table == table)
    }

    /// Rows of one table as a Markdown table: the first row (the header, or
    /// the first row there is where a paragraph or heading split the table)
    /// as its header, widened with empty cells to the widest row so that no
    /// cell is dropped; the other rows as they are (a row of fewer cells is
    /// filled by the reader, as GitHub-flavoured Markdown says). A `|` in a
    /// cell is escaped, a line break becomes a space.
    fn table(out: &mut String, rows: &[Block]) {
        let width = rows.iter().map(|row| cells(row).len()).max().unwrap_or(0).max(1);
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            out.push('|');
            for cell in cells {
                out.push(' ');
                out.push_str(&cell.replace('|', "\\|").replace(['\r', '\n'], " "));
                out.push_str(" |");
            }
            out.push('\n');
        };
        let header = cells(&rows[0]);
        line(
            &mut header
                .iter()
                .map(String::as_str)
                .chain(std::iter::repeat_n("", width - header.len())),
        );
        line(&mut std::iter::repeat_n("---", width));
        for row in &rows[1..] {
            line(&mut cells(row).iter().map(String::as_str));
        }
        out.push('\n');
    }

    /// The blocks as paragraphs.
    pub fn text(parsed: &ParsedDocument) -> String {
        parsed.blocks.iter().map(|b| b.text.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}

/// Every blob a document may have: its bytes, its parse results (with the
/// searchable PDF of a scanned one) and any vectors saved for a retry.
pub fn blob_keys(document: &Document) -> Vec<String> {
    let mut keys: Vec<String> = document.has_original().then(|| document.blob_key.clone()).into_iter().collect();
    keys.extend((1..=document.attempt).map(|attempt| folio_db::documents::parsed_key(document.id, attempt)));
    keys.extend((1..=document.attempt).map(|attempt| folio_db::documents::embedded_key(document.id, attempt)));
    keys.extend((1..=document.attempt).map(|attempt| folio_db::documents::searchable_key(document.id, attempt)));
    keys
}

#[cfg(test)]
mod tests {
    use folio_db::{
        documents::{lifecycle::NewDocument, state::State},
        models::document::Document,
    };
    use folio_parse::parse::{Block, ParsedDocument, TableRow};

    use super::render;

    fn document(title: &str) -> Document {
        let new = NewDocument {
            id: uuid::Uuid::nil(),
            owner_id: uuid::Uuid::nil(),
            filename: "tides.md".into(),
            title: title.into(),
            content_type: "text/markdown".into(),
            format: "markdown".into(),
            labels: vec![],
            size_bytes: 1,
            sha256: vec![],
            blob_key: String::new(),
            idempotency_key: None,
            max_tries: 3,
            priority: Default::default(),
        };
        Document {
            state: State::Ready,
            ..new.into_row()
        }
    }

    fn parsed() -> ParsedDocument {
        let block = |path: &[&str], text: &str| Block {
            section_path: path.iter().map(|p| p.to_string()).collect(),
            page: None,
            text: text.into(),
            row: None,
        };
        ParsedDocument {
            title: Some("Tide Tables".into()),
            pages: None,
            blocks: vec![
                block(&["Tide Tables"], "When the water comes and goes."),
                block(&["Tide Tables", "Spring tides"], "The largest range."),
                block(&["Tide Tables", "Spring tides"], "Near new and full moon."),
                block(&["Tide Tables", "Neap tides"], "The smallest range."),
            ],
            ..ParsedDocument::default()
        }
    }

    #[test]
    fn markdown_opens_a_heading_where_the_section_changes_and_not_the_title_twice() {
        let markdown = render::markdown(&document(""), &parsed());
        assert_eq!(
            markdown,
            "# Tide Tables\n\nWhen the water comes and goes.\n\n## Spring tides\n\nThe largest range.\n\n\
             Near new and full moon.\n\n## Neap tides\n\nThe smallest range.\n\n"
        );
    }

    /// A row of table `table`, the header if `header`.
    fn row(path: &[&str], table: u32, header: bool, cells: &[&str]) -> Block {
        Block {
            section_path: path.iter().map(|p| p.to_string()).collect(),
            page: None,
            text: cells.iter().filter(|c| !c.is_empty()).copied().collect::<Vec<_>>().join(" | "),
            row: Some(TableRow {
                table,
                header,
                cells: cells.iter().map(|c| c.to_string()).collect(),
            }),
        }
    }

    fn tables() -> ParsedDocument {
        let mut document = parsed();
        document.blocks.splice(
            2..2,
            [
                row(&["Tide Tables", "Spring tides"], 0, true, &["Port", "High | low", ""]),
                row(&["Tide Tables", "Spring tides"], 0, false, &["Brest", "7.2 m", "spring"]),
                row(&["Tide Tables", "Spring tides"], 0, false, &["Saint-Malo", "", "12 m", "the most"]),
                row(&["Tide Tables", "Spring tides"], 1, true, &["Second table"]),
            ],
        );
        // A table split by a heading: its rows after it have no header row.
        document.blocks.extend([
            row(&["Tide Tables", "Neap tides"], 2, true, &["Day", "Range"]),
            row(&["Tide Tables", "Neap tides", "Later"], 2, false, &["Monday", "2.1 m"]),
            row(&["Tide Tables", "Neap tides", "Later"], 2, false, &["Tuesday", "2.0 m"]),
        ]);
        document
    }

    #[test]
    fn markdown_renders_each_table_as_a_markdown_table_with_a_header_row() {
        let markdown = render::markdown(&document(""), &tables());
        assert_eq!(
            markdown,
            "# Tide Tables\n\nWhen the water comes and goes.\n\n## Spring tides\n\nThe largest range.\n\n\
             | Port | High \\| low |  |  |\n\
             | --- | --- | --- | --- |\n\
             | Brest | 7.2 m | spring |\n\
             | Saint-Malo |  | 12 m | the most |\n\n\
             | Second table |\n| --- |\n\n\
             Near new and full moon.\n\n## Neap tides\n\nThe smallest range.\n\n\
             | Day | Range |\n| --- | --- |\n\n\
             ### Later\n\n\
             | Monday | 2.1 m |\n| --- | --- |\n| Tuesday | 2.0 m |\n\n"
        );
    }

    #[test]
    fn json_and_text_carry_the_rows() {
        let json = render::json(&document(""), &tables(), &[]);
        let blocks = json["sections"][1]["blocks"].as_array().unwrap();
        assert_eq!(blocks[0].get("row"), None, "a paragraph has no row");
        assert_eq!(
            blocks[1]["row"],
            serde_json::json!({ "table": 0, "header": true, "cells": ["Port", "High | low", ""] })
        );
        assert_eq!(blocks[2]["text"], "Brest | 7.2 m | spring");
        assert!(render::text(&tables()).contains("\n\nBrest | 7.2 m | spring\n\n"));
    }

    #[test]
    fn json_groups_blocks_into_sections_and_prefers_the_stored_title() {
        let json = render::json(&document("My tides"), &parsed(), &[]);
        assert_eq!(json["title"], "My tides");
        let sections = json["sections"].as_array().unwrap();
        assert_eq!(sections.len(), 3);
        assert_eq!(sections[1]["path"], serde_json::json!(["Tide Tables", "Spring tides"]));
        assert_eq!(sections[1]["blocks"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn text_is_the_blocks_as_paragraphs() {
        let text = render::text(&parsed());
        assert_eq!(text.split("\n\n").count(), 4);
        assert!(text.starts_with("When the water"));
    }
}
