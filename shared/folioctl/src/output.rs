//! How results are printed. Each proto message becomes a [`Record`] in one
//! place (`records.rs`); that record is what `--json` prints and what the
//! tables are drawn from, so the two outputs cannot drift apart. Tables are
//! plain aligned columns: a header of the field names, one row per record.

use serde_json::{Map, Value};

/// A message as named fields, in display order.
pub type Record = Vec<(&'static str, Value)>;

/// Table cells longer than this are cut (the JSON keeps everything).
const CELL_WIDTH: usize = 72;

/// The record as a JSON object.
pub fn to_json(record: Record) -> Value {
    Value::Object(record.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())
}

/// Prints to standard output as a table or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// One message: `field  value` lines, or a JSON object.
    pub fn one(&self, record: Record) {
        if self.json {
            self.json(&to_json(record));
            return;
        }
        let width = record.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &record {
            println!("{key:width$}  {}", cell(value));
        }
    }

    /// A list: a table with `columns` of the records, or `{"<name>": [...]}`
    /// with every field, and `next_page_token` when there is another page.
    pub fn list(&self, name: &str, records: Vec<Record>, columns: &[&str], next_page_token: &str) {
        if self.json {
            let mut object = Map::new();
            object.insert(name.to_owned(), Value::Array(records.into_iter().map(to_json).collect()));
            if !next_page_token.is_empty() {
                object.insert("next_page_token".into(), Value::String(next_page_token.to_owned()));
            }
            self.json(&Value::Object(object));
            return;
        }
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|record| {
                columns
                    .iter()
                    .map(|column| {
                        let value = record.iter().find(|(k, _)| k == column).map(|(_, v)| v);
                        truncate(value.map(cell).unwrap_or_default())
                    })
                    .collect()
            })
            .collect();
        let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
        print!("{}", table(&header, &rows));
        if records.is_empty() {
            println!("(no {name})");
        }
        if !next_page_token.is_empty() {
            eprintln!("more: --page-token {next_page_token}");
        }
    }

    /// Any JSON value, pretty-printed.
    pub fn json(&self, value: &Value) {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    }

    /// A line for people; nothing with `--json` (which prints a record instead).
    pub fn note(&self, line: &str) {
        if !self.json {
            println!("{line}");
        }
    }
}

/// Aligned columns separated by two spaces, the last one unpadded.
pub fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let last = row.len().saturating_sub(1);
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
            }
        }
        out.push('\n');
    }
    out
}

/// A value as table text: strings bare, lists comma-joined, objects as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.replace('\n', " "),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn truncate(text: String) -> String {
    if text.chars().count() <= CELL_WIDTH {
        return text;
    }
    let mut cut: String = text.chars().take(CELL_WIDTH - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_to_the_widest_cell() {
        let header = vec!["ID".to_owned(), "STATE".to_owned()];
        let rows = vec![
            vec!["abcdef".to_owned(), "READY".to_owned()],
            vec!["x".to_owned(), "FAILED".to_owned()],
        ];
        assert_eq!(table(&header, &rows), "ID      STATE\nabcdef  READY\nx       FAILED\n");
    }

    #[test]
    fn lists_are_joined_and_long_cells_cut() {
        assert_eq!(cell(&serde_json::json!(["a", "b"])), "a,b");
        assert_eq!(truncate("x".repeat(100)).chars().count(), CELL_WIDTH);
    }
}
