//! The one place where parsers turn what they read into [`Block`]s: the open
//! headings that make a block's section path, the tables and the cells of
//! their rows, and the text budget every emitted block is counted against.
//! Each parser only finds headings, paragraphs, tables and cells in its format
//! and hands them over, so the rules below hold for every format alike.

use super::{Block, Budget, ParseError, TableRow, normalize_whitespace};

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
/// - **Tables.** The rows between [`start_table`](Self::start_table) and
///   [`end_table`](Self::end_table) belong to one table, numbered from 0 in
///   reading order; a run of rows made outside them, up to the next
///   paragraph, heading or table, is a table of its own. A cell gathers text
///   from its start until the next cell, the end of its row or of the table.
///   A row is one block whose [`TableRow`] keeps its cells,
///   whitespace-normalised, empty ones included so columns line up (each
///   counting one byte against the text budget); the block's text is the
///   non-empty cells joined by `" | "`. A row whose cells are all empty
///   emits nothing. The first row a table emits is its header
///   row (a Markdown table has exactly one, and formats that mark header rows
///   put them first).
/// - **Nested tables.** A table started inside an open table is not a table
///   of its own: its text flows into the outer cell it sits in, its cells and
///   rows separated by spaces, so the outer row keeps its columns and no text
///   is lost.
#[derive(Debug)]
pub struct BlockBuilder<'b, 'l> {
    budget: &'b mut Budget<'l>,
    /// Open headings, outermost first, with their levels.
    headings: Vec<(usize, String)>,
    /// The page the next blocks are on (PDF only).
    page: Option<u32>,
    /// The table rows go to, if one is open.
    table: Option<Table>,
    /// How many tables were opened, hence the next one's number.
    tables: u32,
    /// The cells of the open table row, if a row is open.
    row: Option<Vec<String>>,
    /// The text of the open cell, if a cell is open.
    cell: Option<String>,
    blocks: Vec<Block>,
}

/// An open table.
#[derive(Debug)]
struct Table {
    number: u32,
    /// Whether it has emitted its header row.
    has_header: bool,
    /// Open `start_table` calls: 1 for the table itself, more while tables
    /// nested in it are open, 0 for a run of rows made outside any.
    depth: usize,
}

impl<'b, 'l> BlockBuilder<'b, 'l> {
    pub fn new(budget: &'b mut Budget<'l>) -> Self {
        BlockBuilder {
            budget,
            headings: Vec::new(),
            page: None,
            table: None,
            tables: 0,
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
        self.end_run_of_rows();
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
        self.emit(normalize_whitespace(text), None)
    }

    /// Emits preformatted `text` as one block: it keeps its lines, only the
    /// spaces within each line are normalised, and blank lines at either end
    /// are dropped.
    pub fn preformatted(&mut self, text: &str) -> Result<(), ParseError> {
        let lines: Vec<String> = text.lines().map(normalize_whitespace).collect();
        self.emit(lines.join("\n").trim_matches('\n').to_owned(), None)
    }

    /// Opens a table: the rows up to [`end_table`](Self::end_table) are its
    /// rows. Inside an open table, opens a nested one, whose text joins the
    /// open cell.
    pub fn start_table(&mut self) -> Result<(), ParseError> {
        if let Some(table) = self.table.as_mut().filter(|table| table.depth > 0) {
            table.depth += 1;
            self.separate();
            return Ok(());
        }
        self.end_row()?;
        self.table = Some(Table {
            number: self.tables,
            has_header: false,
            depth: 1,
        });
        self.tables += 1;
        Ok(())
    }

    /// Ends the innermost open table, emitting its open row if it is the
    /// outermost.
    pub fn end_table(&mut self) -> Result<(), ParseError> {
        if let Some(table) = self.table.as_mut().filter(|table| table.depth > 1) {
            table.depth -= 1;
            self.separate();
            return Ok(());
        }
        self.end_row()?;
        self.table = None;
        Ok(())
    }

    /// Ends the open table row, if any, and opens a new one.
    pub fn start_row(&mut self) -> Result<(), ParseError> {
        if self.nested() {
            self.separate();
            return Ok(());
        }
        self.end_row()?;
        self.row = Some(Vec::new());
        Ok(())
    }

    /// Ends the open cell, if any, and opens a new one in the open row
    /// (opening a row if none is).
    pub fn start_cell(&mut self) {
        if self.nested() {
            self.separate();
            return;
        }
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

    /// Adds a paragraph of `text` (already normalised) to the open cell, a
    /// space after the cell's text so far; false, adding nothing, when no
    /// cell is open. Paragraphs within a cell, headings included, are the
    /// cell's text.
    pub fn paragraph_in_cell(&mut self, text: &str) -> bool {
        let Some(cell) = self.cell.as_mut() else {
            return false;
        };
        if !text.is_empty() {
            if !cell.is_empty() {
                cell.push(' ');
            }
            cell.push_str(text);
        }
        true
    }

    /// Adds the open cell, if any, to the open row.
    pub fn end_cell(&mut self) {
        if self.nested() {
            self.separate();
            return;
        }
        if let Some(cell) = self.cell.take() {
            self.row.get_or_insert_with(Vec::new).push(normalize_whitespace(&cell));
        }
    }

    /// Ends the open cell and emits the open row, if any, as one block.
    pub fn end_row(&mut self) -> Result<(), ParseError> {
        if self.nested() {
            self.separate();
            return Ok(());
        }
        self.end_cell();
        let Some(cells) = self.row.take() else {
            return Ok(());
        };
        let text = cells
            .iter()
            .filter(|cell| !cell.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" | ");
        if text.is_empty() {
            return Ok(());
        }
        let tables = &mut self.tables;
        let table = self.table.get_or_insert_with(|| {
            *tables += 1;
            Table {
                number: *tables - 1,
                has_header: false,
                depth: 0,
            }
        });
        let row = TableRow {
            table: table.number,
            header: !table.has_header,
            cells,
        };
        table.has_header = true;
        // An empty cell is kept, so it counts as one byte of text: a row of a
        // few words and endless empty cells cannot grow the result unbounded.
        let empty = row.cells.iter().filter(|cell| cell.is_empty()).count();
        self.budget.take_text_bytes(empty)?;
        self.emit(text, Some(row))
    }

    /// Ends the open row and tables and hands the blocks over.
    pub fn finish(mut self) -> Result<Vec<Block>, ParseError> {
        while self.table.as_ref().is_some_and(|table| table.depth > 1) {
            self.end_table()?;
        }
        self.end_row()?;
        Ok(self.blocks)
    }

    /// Whether a table nested in the open one is open.
    fn nested(&self) -> bool {
        self.table.as_ref().is_some_and(|table| table.depth > 1)
    }

    /// Separates the text of a nested table's cells within the outer cell.
    fn separate(&mut self) {
        if let Some(cell) = self.cell.as_mut() {
            cell.push(' ');
        }
    }

    /// Ends a run of rows made outside `start_table`: what follows is no
    /// longer its table.
    fn end_run_of_rows(&mut self) {
        if self.table.as_ref().is_some_and(|table| table.depth == 0) {
            self.table = None;
        }
    }

    fn emit(&mut self, text: String, row: Option<TableRow>) -> Result<(), ParseError> {
        if text.is_empty() {
            return Ok(());
        }
        if row.is_none() {
            self.end_run_of_rows();
        }
        self.budget.take_text(&text)?;
        self.blocks.push(Block {
            section_path: self.headings.iter().map(|(_, heading)| heading.clone()).collect(),
            page: self.page,
            text,
            row,
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

    /// Each row block as (table, header, cells).
    fn rows(blocks: &[Block]) -> Vec<(u32, bool, Vec<&str>)> {
        blocks
            .iter()
            .filter_map(|b| b.row.as_ref())
            .map(|r| (r.table, r.header, r.cells.iter().map(String::as_str).collect()))
            .collect()
    }

    #[test]
    fn rows_keep_their_cells_and_the_first_row_of_each_table_is_its_header() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.start_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "");
        cell(&mut builder, "");
        builder.start_row().unwrap();
        cell(&mut builder, "Name");
        cell(&mut builder, "");
        cell(&mut builder, " Size ");
        builder.start_row().unwrap();
        cell(&mut builder, "a");
        cell(&mut builder, "");
        cell(&mut builder, "1");
        builder.end_table().unwrap();
        builder.paragraph("between").unwrap();
        builder.start_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "only row");
        builder.end_table().unwrap();
        let blocks = builder.finish().unwrap();
        assert_eq!(
            rows(&blocks),
            [
                (0, true, vec!["Name", "", "Size"]),
                (0, false, vec!["a", "", "1"]),
                (1, true, vec!["only row"]),
            ],
            "a row of empty cells is not a header nor a block"
        );
        assert_eq!(blocks[0].text, "Name | Size");
        assert_eq!(blocks[2].row, None, "a paragraph is no row");
    }

    #[test]
    fn rows_outside_a_table_make_a_table_of_each_run() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        for text in ["h", "a"] {
            builder.start_row().unwrap();
            cell(&mut builder, text);
        }
        builder.end_row().unwrap();
        builder.heading(1, "Next").unwrap();
        for text in ["h2", "b"] {
            builder.start_row().unwrap();
            cell(&mut builder, text);
        }
        builder.start_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "h3");
        builder.end_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "h4");
        builder.end_row().unwrap();
        builder.paragraph("").unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "c");
        let blocks = builder.finish().unwrap();
        assert_eq!(
            rows(&blocks),
            [
                (0, true, vec!["h"]),
                (0, false, vec!["a"]),
                (1, true, vec!["h2"]),
                (1, false, vec!["b"]),
                (2, true, vec!["h3"]),
                (3, true, vec!["h4"]),
                (3, false, vec!["c"]),
            ],
            "a heading or a table ends a run; an empty paragraph, which emits nothing, does not"
        );
    }

    #[test]
    fn a_nested_table_flows_into_the_outer_cell() {
        let limits = Limits::default();
        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.start_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "Key");
        cell(&mut builder, "Value");
        builder.start_row().unwrap();
        cell(&mut builder, "outer");
        builder.start_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "inner1");
        builder.start_cell();
        builder.open_cell().unwrap().push_str("inner2");
        builder.end_cell();
        builder.end_row().unwrap();
        builder.start_table().unwrap();
        cell(&mut builder, "deepest");
        builder.end_table().unwrap();
        builder.end_table().unwrap();
        builder.open_cell().unwrap().push_str("after");
        cell(&mut builder, "second");
        builder.end_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "outside");
        // An unterminated nested table ends with the document.
        builder.start_table().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "h");
        builder.start_table().unwrap();
        cell(&mut builder, "x");
        let blocks = builder.finish().unwrap();
        assert_eq!(
            rows(&blocks),
            [
                (0, true, vec!["Key", "Value"]),
                (0, false, vec!["outer inner1 inner2 deepest after", "second"]),
                (1, true, vec!["outside"]),
                (2, true, vec!["h x"]),
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

        let mut budget = Budget::new(&limits);
        let mut builder = BlockBuilder::new(&mut budget);
        builder.start_row().unwrap();
        cell(&mut builder, "12345");
        (0..5).for_each(|_| cell(&mut builder, ""));
        builder.end_row().unwrap();
        builder.start_row().unwrap();
        cell(&mut builder, "1");
        cell(&mut builder, "");
        assert_eq!(
            builder.finish().unwrap_err().code(),
            "LIMIT_EXCEEDED",
            "5 + 5 empty cells, then 1 + 1"
        );
    }
}
