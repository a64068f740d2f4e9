//! Spreadsheets, XLSX and ODS, read with calamine: a section per visible
//! worksheet, titled by the sheet's name, holding one table of the sheet's
//! rows. A row is a table row of the sheet's used columns (empty cells kept so
//! columns line up); rows with no value are left out, and the first row with a
//! value is the table's header row, as spreadsheets are usually laid out. A
//! formula's cell holds the value the application last computed and saved
//! with it (XLSX `<v>`, ODS `office:value`): folio evaluates nothing. Dates
//! are written as ISO 8601, numbers as the shortest text that reads back to
//! the stored value. Hidden and very hidden sheets, chart sheets and macro
//! sheets are skipped. The title is the workbook's `dc:title`.
//!
//! calamine opens the zip archive itself, so the archive is vetted first with
//! the checks of every zip-based parser ([`Archive::open`]: entries, duplicate
//! names, each entry's ratio) and must declare no more than
//! `max_inflated_bytes` in all (the zip crate inflates no entry past its
//! declared size). What calamine then builds in memory is bounded by
//! `max_sheet_cells`: an XLSX sheet is streamed cell by cell and counted as it
//! comes; an ODS file, which calamine reads whole when it opens it, is counted
//! first by a pass over its `content.xml` that expands its repeated rows and
//! columns as calamine would, refusing a document type declaration on the way.
//! calamine reads XML with quick-xml, which expands no entity a DTD declares.

use std::io::Cursor;

use calamine::{Data, DataRef, ExcelDateTime, Ods, OdsError, Reader, SheetType, SheetVisible, Xlsx, XlsxError};
use quick_xml::events::{BytesStart, Event};

use super::blocks::BlockBuilder;
use super::odt::refuse_encrypted;
use super::xml::{Part, attribute};
use super::zip::{Archive, is_ole, ole_error};
use super::{Budget, ParseError, ParsedDocument, normalize_whitespace};

/// How many cells pass between two checks of the time budget.
const CELLS_PER_TIME_CHECK: u64 = 4096;
/// The largest sheet calamine builds from an ODS file (as Excel's).
const ODS_MAX_ROWS: u64 = 1_048_576;
const ODS_MAX_COLUMNS: u64 = 16_384;
const TABLE: &str = "urn:oasis:names:tc:opendocument:xmlns:table:1.0";

pub fn parse_xlsx(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    const FORMAT: &str = "xlsx";
    if is_ole(bytes) {
        return Err(ole_error(bytes, FORMAT));
    }
    Archive::open(bytes, FORMAT, budget)?.check_declared_total(budget)?;
    let error = |e: XlsxError| match e {
        XlsxError::Password => ParseError::Encrypted { format: FORMAT },
        e => ParseError::Corrupt {
            format: FORMAT,
            detail: e.to_string(),
        },
    };
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(error)?;
    let title = workbook.workbook_properties().ok().and_then(|p| p.title);
    let sheets = visible_worksheets(workbook.sheets_metadata());
    let mut sheet = Sheet::new(budget, title)?;
    for name in sheets {
        let mut cells = workbook.worksheet_cells_reader(&name).map_err(error)?;
        loop {
            match cells.next_cell() {
                Ok(Some(cell)) => {
                    let (row, column) = cell.get_position();
                    sheet.add(row, column, &xlsx_text(cell.get_value()))?;
                }
                Ok(None) => break,
                // calamine refuses a value it cannot read (a number written
                // with a leading space, an unknown cell type) once it has read
                // past it; the sheet reads on without that cell, which still
                // counts as read, so a sheet of nothing else ends at the limit.
                Err(XlsxError::ParseFloat(_) | XlsxError::ParseInt(_) | XlsxError::CellTAttribute(_)) => {
                    sheet.add(0, 0, "")?;
                }
                Err(e) => return Err(error(e)),
            }
        }
        sheet.emit(&name)?;
    }
    sheet.finish()
}

pub fn parse_ods(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    const FORMAT: &str = "ods";
    let mut archive = Archive::open(bytes, FORMAT, budget)?;
    archive.check_declared_total(budget)?;
    refuse_encrypted(&mut archive, FORMAT, budget)?;
    let content = archive.require("content.xml", budget)?;
    count_ods_cells(&content, budget)?;
    drop(content);
    let error = |e: OdsError| match e {
        OdsError::Password => ParseError::Encrypted { format: FORMAT },
        OdsError::CellLimitExceeded { requested, max } => {
            ParseError::LimitExceeded(format!("an ODS sheet of {requested} cells, more than {max}"))
        }
        e => ParseError::Corrupt {
            format: FORMAT,
            detail: e.to_string(),
        },
    };
    let mut workbook: Ods<_> = Ods::new(Cursor::new(bytes)).map_err(error)?;
    let title = workbook.workbook_properties().ok().and_then(|p| p.title);
    let sheets = visible_worksheets(workbook.sheets_metadata());
    let mut sheet = Sheet::new(budget, title)?;
    for name in sheets {
        let range = workbook.worksheet_range(&name).map_err(error)?;
        let (top, left) = range.start().unwrap_or((0, 0));
        for (row, column, value) in range.used_cells() {
            sheet.add(top + row as u32, left + column as u32, &ods_text(value))?;
        }
        sheet.emit(&name)?;
    }
    sheet.finish()
}

/// The names of the sheets to read: visible worksheets, in workbook order.
fn visible_worksheets(sheets: &[calamine::Sheet]) -> Vec<String> {
    sheets
        .iter()
        .filter(|sheet| sheet.typ == SheetType::WorkSheet && sheet.visible == SheetVisible::Visible)
        .map(|sheet| sheet.name.clone())
        .collect()
}

/// The sheet being gathered, and the blocks of those before it.
struct Sheet<'b, 'l> {
    builder: BlockBuilder<'b, 'l>,
    title: Option<String>,
    /// The cells with a value: (row, column, text), in the order read.
    cells: Vec<(u32, u32, String)>,
    /// Their text, in bytes.
    gathered: usize,
    /// Cells counted against `max_sheet_cells`, in the sheets emitted so far.
    counted: u64,
    /// Cells read from the sheet being gathered, empty ones included.
    read: u64,
}

impl<'b, 'l> Sheet<'b, 'l> {
    fn new(budget: &'b mut Budget<'l>, title: Option<String>) -> Result<Self, ParseError> {
        let title = title.map(|t| normalize_whitespace(&t)).filter(|t| !t.is_empty());
        if let Some(title) = &title {
            budget.take_text(title)?;
        }
        Ok(Sheet {
            builder: BlockBuilder::new(budget),
            title,
            cells: Vec::new(),
            gathered: 0,
            counted: 0,
            read: 0,
        })
    }

    /// Adds a cell read from the sheet; one without text is only counted,
    /// so that the cells read stay within the limit too.
    fn add(&mut self, row: u32, column: u32, text: &str) -> Result<(), ParseError> {
        self.read += 1;
        self.check(self.counted.saturating_add(self.read))?;
        if self.read.is_multiple_of(CELLS_PER_TIME_CHECK) {
            self.builder.budget().check_time()?;
        }
        let text = normalize_whitespace(text);
        if text.is_empty() {
            return Ok(());
        }
        self.gathered += text.len();
        self.builder.budget().check_gathered(self.gathered)?;
        self.cells.push((row, column, text));
        Ok(())
    }

    fn check(&mut self, cells: u64) -> Result<(), ParseError> {
        let limit = self.builder.budget().limits().max_sheet_cells;
        if cells > limit {
            return Err(ParseError::LimitExceeded(format!("more than {limit} spreadsheet cells")));
        }
        Ok(())
    }

    /// Emits the gathered cells as the sheet `name`: a heading and one table
    /// of the rows with a value, over the columns used. The empty cells those
    /// rows carry count against the cell limit before they are made.
    fn emit(&mut self, name: &str) -> Result<(), ParseError> {
        let mut cells = std::mem::take(&mut self.cells);
        self.gathered = 0;
        self.read = 0;
        cells.sort_by_key(|(row, column, _)| (*row, *column));
        let (Some(first), Some(last)) = (
            cells.iter().map(|(_, column, _)| *column).min(),
            cells.iter().map(|(_, column, _)| *column).max(),
        ) else {
            return Ok(());
        };
        let width = u64::from(last - first) + 1;
        let mut rows: Vec<u32> = cells.iter().map(|(row, _, _)| *row).collect();
        rows.dedup();
        self.counted = self.counted.saturating_add((rows.len() as u64).saturating_mul(width));
        self.check(self.counted)?;
        self.builder.heading(1, name)?;
        self.builder.start_table()?;
        let mut cells = cells.into_iter().peekable();
        while let Some((row, _, _)) = cells.peek() {
            let row = *row;
            self.builder.start_row()?;
            let mut column = first;
            while let Some((_, at, text)) = cells.next_if(|(r, _, _)| *r == row) {
                // Two values at one position (a malformed sheet): the last wins.
                if at < column {
                    if let Some(open) = self.builder.open_cell() {
                        *open = text;
                    }
                    continue;
                }
                while column < at {
                    self.builder.start_cell();
                    column += 1;
                }
                self.builder.start_cell();
                if let Some(open) = self.builder.open_cell() {
                    open.push_str(&text);
                }
                column += 1;
            }
            while column <= last {
                self.builder.start_cell();
                column += 1;
            }
            self.builder.end_row()?;
        }
        self.builder.end_table()
    }

    fn finish(self) -> Result<ParsedDocument, ParseError> {
        Ok(ParsedDocument {
            title: self.title,
            pages: None,
            blocks: self.builder.finish()?,
            ..ParsedDocument::default()
        })
    }
}

fn xlsx_text(value: &DataRef<'_>) -> String {
    match value {
        DataRef::SharedString(text) => (*text).to_owned(),
        DataRef::String(text) | DataRef::DateTimeIso(text) | DataRef::DurationIso(text) => text.clone(),
        DataRef::Int(n) => n.to_string(),
        DataRef::Float(n) => n.to_string(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        DataRef::DateTime(date) => date_text(date),
        DataRef::Error(error) => error.to_string(),
        DataRef::Empty => String::new(),
    }
}

fn ods_text(value: &Data) -> String {
    match value {
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(n) => n.to_string(),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        Data::DateTime(date) => date_text(date),
        Data::Error(error) => error.to_string(),
        Data::Empty => String::new(),
    }
}

/// An Excel date as ISO 8601: the date, with the time when there is one; a
/// time alone; a duration as hours, minutes and seconds.
fn date_text(date: &ExcelDateTime) -> String {
    let value = date.as_f64();
    if date.is_duration() {
        let seconds = (value * 86_400.0).round() as i64;
        let sign = if seconds < 0 { "-" } else { "" };
        let seconds = seconds.abs();
        return format!("{sign}{}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60);
    }
    let (year, month, day, hour, minute, second, _) = date.to_ymd_hms_milli();
    let time = format!("{hour:02}:{minute:02}:{second:02}");
    if (0.0..1.0).contains(&value) {
        time
    } else if (hour, minute, second) == (0, 0, 0) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        format!("{year:04}-{month:02}-{day:02} {time}")
    }
}

/// Counts the cells calamine will hold for an ODS `content.xml`, every
/// sheet at once as calamine reads them: each row element's cells up to its
/// last one with a value, and each sheet's rectangle from its first to its
/// last row and column with a value, rows and columns repeated as
/// `number-rows-repeated` and `number-columns-repeated` say (up to calamine's
/// own caps). Errs when that is more than `max_sheet_cells`.
fn count_ods_cells(xml: &[u8], budget: &Budget<'_>) -> Result<(), ParseError> {
    let limit = budget.limits().max_sheet_cells;
    let mut part = Part::new(xml, "content.xml", "ods");
    let mut total = 0u64;
    let mut table = TableCount::default();
    loop {
        let (namespace, event) = part.next(budget)?;
        let in_table = namespace == TABLE;
        match &event {
            Event::Start(element) | Event::Empty(element) if in_table => {
                let empty = matches!(event, Event::Empty(_));
                match element.local_name().as_ref() {
                    "table" if !empty => table = TableCount::default(),
                    "table-row" => table.start_row(repeats(element, "number-rows-repeated")),
                    "table-cell" | "covered-table-cell" => {
                        let valued = !empty || has_value(element);
                        table.cell(repeats(element, "number-columns-repeated"), valued);
                    }
                    _ => {}
                }
                if empty && element.local_name().as_ref() == "table-row" {
                    total = total.saturating_add(table.end_row());
                }
            }
            Event::End(element) if in_table => match element.local_name().as_ref() {
                "table-row" => total = total.saturating_add(table.end_row()),
                "table" => total = total.saturating_add(table.rectangle()),
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        if total > limit {
            return Err(ParseError::LimitExceeded(format!("more than {limit} spreadsheet cells")));
        }
    }
    Ok(())
}

/// A repeat count attribute, at least 1.
fn repeats(element: &BytesStart<'_>, name: &str) -> u64 {
    attribute(element, name)
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1)
}

/// Whether an empty cell element still carries a value (or a formula); when
/// in doubt it counts as one.
fn has_value(element: &BytesStart<'_>) -> bool {
    element.attributes().flatten().any(|a| {
        matches!(
            a.key.local_name().as_ref(),
            "value" | "value-type" | "string-value" | "date-value" | "time-value" | "boolean-value" | "formula"
        )
    })
}

/// What one ODS table costs calamine, as its rows are read.
#[derive(Debug, Default)]
struct TableCount {
    /// Rows read so far, repeats included (capped as calamine caps them).
    rows: u64,
    /// The first and last row (exclusive) with a value.
    first_row: Option<u64>,
    end_row: u64,
    /// The first and last column (exclusive) with a value.
    first_column: Option<u64>,
    end_column: u64,
    /// The open row: its repeats, the columns read and the end of its last
    /// run of cells with a value.
    row_repeats: u64,
    column: u64,
    row_end: u64,
    row_first: Option<u64>,
}

impl TableCount {
    fn start_row(&mut self, repeats: u64) {
        self.row_repeats = repeats.min(ODS_MAX_ROWS.saturating_sub(self.rows));
        self.column = 0;
        self.row_end = 0;
        self.row_first = None;
    }

    fn cell(&mut self, repeats: u64, valued: bool) {
        let repeats = repeats.min(ODS_MAX_COLUMNS.saturating_sub(self.column));
        if valued && repeats > 0 {
            self.row_first.get_or_insert(self.column);
            self.row_end = self.column + repeats;
        }
        self.column += repeats;
    }

    /// Ends the open row; returns the cells calamine holds for it while
    /// reading (its row element's, once, whatever its repeats).
    fn end_row(&mut self) -> u64 {
        if let Some(first) = self.row_first {
            self.first_row.get_or_insert(self.rows);
            self.end_row = self.rows + self.row_repeats;
            self.first_column = Some(self.first_column.map_or(first, |f| f.min(first)));
            self.end_column = self.end_column.max(self.row_end);
        }
        self.rows += self.row_repeats;
        std::mem::take(&mut self.row_end)
    }

    /// The cells of the rectangle calamine builds from the table.
    fn rectangle(&self) -> u64 {
        match (self.first_row, self.first_column) {
            (Some(first_row), Some(first_column)) => {
                (self.end_row - first_row).saturating_mul(self.end_column.saturating_sub(first_column))
            }
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
