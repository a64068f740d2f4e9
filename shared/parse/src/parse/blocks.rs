//! The one place where parsers turn what they read into [`Block`]s: the open
//! headings that make a block's section path, the cells of a table row, and the
//! text budget every emitted block is counted against. Each parser only finds
//! headings, paragraphs and cells in its format and hands them over, so the
//! rules below hold for every format alike.

use super::{Block, Budget, ParseError, normalize_whitespace};

/// Builds the blocks of one document.
///
/// Rules, the same for every parser:
///
/// - **Headings.** A heading of level `n` closes every open heading of level
///   `n` or deeper, then opens itself under the ones above it. Lower numbers
///   are outer levels; any number may be used (DOCX gives its "Title" style
///   level 0, PDF outlines nest without bound). A heading whose text is empty
///   after whitespace normalisation still closes those headings but opens
///   nothing. A heading whose text equals that of the heading it would nest
///   under is not opened again: converters often write a title both as the
///   title and as the first heading, and a section path that repeats a name
///   says nothing more to search. Heading text counts against the text budget.
/// - **Blocks.** Text is emitted with the open headings as its section path
///   and the current page; empty text emits nothing.
/// - **Tables.** A cell gathers text from its start until the next cell, the
///   end of its row or of the table; a row's cells are whitespace-normalised,
///   empty cells are left out, and the rest are joined by `" | "` into one
///   block.
#[derive(Debug)]
pub struct BlockBuilder<'b, 'l> {
    budget: &'b mut Budget<'l>,
    /// Open headings, outermost first, with their levels.
    headings: Vec<(usize, String)>,
    /// The page the next blocks are on (PDF only).
    page: Option<u32>,
    /// The cells of the open table row, if a row is open.
    row: Option<Vec<String>>,
    /// The text of the open cell, if a cell is open.
    cell: Option<String>,
    blocks: Vec<Block>,
}

impl<'b, 'l> BlockBuilder<'b, 'l> {
    pub fn new(budget: &'b mut Budget<'l>) -> Self {
        BlockBuilder {
            budget,
            headings: Vec::new(),
            page: None,
            row: None,
            cell: None,
            blocks: Vec::new(),
        }
    }

    /// The budget the blocks are counted against, for the parser's own checks
    /// (time, text gathered for a block, a title).
    pub fn budget(&mut self) -> &mut Budget<'l> {
        self.budget
    }

    /// Opens a heading of `level`, by the rules in the type's documentation.
    pub fn heading(&mut self, level: usize, text: &str) -> Result<(), ParseError> {
        let text = normalize_whitespace(text);
        self.headings.retain(|(open, _)| *open < level);
        if text.is_empty() || self.headings.last().is_some_and(|(_, above)| *above == text) {
            return Ok(());
        }
        self.budget.take_text(&text)?;
        self.headings.push((level, text));
        Ok(())
    }

    /// Sets the page of the blocks that follow.
    pub fn start_page(&mut self, number: u32) {
        self.page = Some(number);
    }

    /// Emits `text`, whitespace-normalised, as one block.
    pub fn paragraph(&mut self, text: &str) -> Result<(), ParseError> {
        self.emit(normalize_whitespace(text))
    }

    /// Emits preformatted `text` as one block: it keeps its lines, only the
    /// spaces within each line are normalised, and blank lines at either end
    /// are dropped.
    pub fn preformatted(&mut self, text: &str) -> Result<(), ParseError> {
        let lines: Vec<String> = text.lines().map(normalize_whitespace).collect();
        self.emit(lines.join("\n").trim_matches('\n').to_owned())
    }

    /// Ends the open table row, if any, and opens a new one.
    pub fn start_row(&mut self) -> Result<(), ParseError> {
        self.end_row()?;
        self.row = Some(Vec::new());
        Ok(())
    }

    /// Ends the open cell, if any, and opens a new one in the open row
    /// (opening a row if none is).
    pub fn start_cell(&mut self) {
        self.end_cell();
        self.cell = Some(String::new());
    }

    /// Whether a cell is open.
    pub fn in_cell(&self) -> bool {
        self.cell.is_some()
    }

    /// The text of the open cell, to add to; None when no cell is open.
    pub fn open_cell(&mut self) -> Option<&mut String> {
        self.cell.as_mut()
    }

    /// Adds the open cell, if any, to the open row.
    pub fn end_cell(&mut self) {
        if let Some(cell) = self.cell.take() {
            self.row.get_or_insert_with(Vec::new).push(normalize_whitespace(&cell));
        }
    }

    /// Ends the open cell and emits the open row, if any, as one block.
    pub fn end_row(&mut self) -> Result<(), ParseError> {
        self.end_cell();
        if let Some(row) = self.row.take() {
            let cells: Vec<String> = row.into_iter().filter(|cell| !cell.is_empty()).collect();
            self.emit(cells.join(" | "))?;
        }
        Ok(())
    }

    /// Ends the open row and hands the blocks over.
    pub fn finish(mut self) -> Result<Vec<Block>, ParseError> {
        self.end_row()?;
        Ok(self.blocks)
    }

    fn emit(&mut self, text: String) -> Result<(), ParseError> {
        if text.is_empty() {
            return Ok(());
        }
        self.budget.take_text(&text)?;
        self.blocks.push(Block {
            section_path: self.headings.iter().map(|(_, heading)| heading.clone()).collect(),
            page: self.page,
            text,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Limits;

    /// Each block as (section path, text).
    fn paths(blocks: &[Block]) -> Vec<(Vec<&str>, &str)> {
        blocks
            .iter()
            .map(|b| (b.section_path.iter().map(String::as_str).collect(), b.text.as_str()))
            .collect()
    }

    #[test]
    fn headings_nest_by_level_and_close_the_deeper_ones() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.paragraph("before").unwrap();
        builder.heading(1, "Install").unwrap();
        builder.heading(2, " Disks ").unwrap();
        builder.heading(3, "RAID").unwrap();
        builder.paragraph("three").unwrap();
        builder.heading(2, "Network").unwrap();
        builder.paragraph("two").unwrap();
        builder.heading(2, "").unwrap();
        builder.paragraph("after an empty heading").unwrap();
        builder.heading(0, "Title").unwrap();
        builder.paragraph("zero").unwrap();
        let blocks = builder.finish().unwrap();
        assert_eq!(
            paths(&blocks),
            [
                (vec![], "before"),
                (vec!["Install", "Disks", "RAID"], "three"),
                (vec!["Install", "Network"], "two"),
                (vec!["Install"], "after an empty heading"),
                (vec!["Title"], "zero"),
            ]
        );
    }

    #[test]
    fn a_heading_equal_to_its_parent_is_not_nested_under_itself() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.heading(0, "Annual Report").unwrap();
        builder.heading(1, "Annual Report").unwrap();
        builder.paragraph("preface").unwrap();
        builder.heading(2, "Results").unwrap();
        builder.heading(3, "Annual Report").unwrap();
        builder.paragraph("deeper").unwrap();
        // Only the heading directly above counts: a level-1 "Annual Report"
        // falls under the level-0 one again and is dropped each time.
        builder.heading(1, "Annual Report").unwrap();
        builder.heading(1, "Annual Report").unwrap();
        builder.paragraph("again").unwrap();
        let blocks = builder.finish().unwrap();
        assert_eq!(
            paths(&blocks),
            [
                (vec!["Annual Report"], "preface"),
                (vec!["Annual Report", "Results", "Annual Report"], "deeper"),
                (vec!["Annual Report"], "again"),
            ]
        );
    }

    /// Opens a cell with `text`, left open: the next cell, row or the end
    /// closes it.
    fn cell(builder: &mut BlockBuilder<'_, '_>, text: &str) {
        builder.start_cell();
        builder.open_cell().expect("a cell just opened").push_str(text);
    }

    #[test]
    fn table_rows_join_their_non_empty_cells() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        assert!(!builder.in_cell());
        builder.heading(1, "Data").unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, " Name ");
        cell(&mut builder, "");
        cell(&mut builder, "Size\n");
        builder.open_cell().unwrap().push_str("(bytes)");
        builder.start_row().unwrap();
        assert!(!builder.in_cell(), "a new row closes the open cell");
        builder.start_row().unwrap();
        cell(&mut builder, "a");
        builder.end_row().unwrap();
        cell(&mut builder, "without a row");
        let blocks = builder.finish().unwrap();
        assert_eq!(
            paths(&blocks),
            [
                (vec!["Data"], "Name | Size (bytes)"),
                (vec!["Data"], "a"),
                (vec!["Data"], "without a row"),
            ]
        );
    }

    #[test]
    fn preformatted_text_keeps_its_lines_and_pages_are_recorded() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.preformatted("\n$ ls   -l\n  total 0\n\n").unwrap();
        builder.start_page(2);
        builder.paragraph("  on   page two ").unwrap();
        builder.paragraph(" \n ").unwrap();
        let blocks = builder.finish().unwrap();
        let got: Vec<(Option<u32>, &str)> = blocks.iter().map(|b| (b.page, b.text.as_str())).collect();
        assert_eq!(got, [(None, "$ ls -l\ntotal 0"), (Some(2), "on page two")]);
    }

    #[test]
    fn blocks_and_headings_count_against_the_text_budget() {
        let limits = Limits {
            max_text_bytes: 10,
            ..Limits::default()
        };
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.paragraph("12345").unwrap();
        builder.heading(1, "1234").unwrap();
        assert_eq!(builder.paragraph("12").unwrap_err().code(), "LIMIT_EXCEEDED");

        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.start_row().unwrap();
        cell(&mut builder, "1234567");
        cell(&mut builder, "8");
        assert_eq!(builder.finish().unwrap_err().code(), "LIMIT_EXCEEDED", "7 + 3 + 1 bytes");
    }
}
