//! Paging (AIP-158): page sizes and cutting a page. The tokens themselves are
//! `folio_core::page_token` (re-exported here), where the fuzz targets reach
//! them without the api-server.

pub use folio_core::page_token::{decode_number, decode_text_id, decode_time_id, encode_number, encode_text_id, encode_time_id};

/// A page size: 0 is `default`, negative is invalid, above `max` is `max`.
pub fn page_size(requested: i32, default: i64, max: i64) -> crate::error::ApiResult<i64> {
    match requested {
        0 => Ok(default),
        n if n < 0 => Err(crate::error::ApiError::invalid("page_size", "must not be negative")),
        n => Ok(i64::from(n).min(max)),
    }
}

/// Cuts `rows` (fetched with one extra) to `page_size` and returns the token
/// of the next page, empty on the last.
pub fn next_token<T>(rows: &mut Vec<T>, page_size: i64, token: impl Fn(&T) -> String) -> String {
    if rows.len() as i64 > page_size {
        rows.truncate(page_size as usize);
        rows.last().map(token).unwrap_or_default()
    } else {
        String::new()
    }
}

/// One page of a list: at most the page size of rows, and the token of the
/// next page (empty on the last).
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl<T> Page<T> {
    /// The page of `rows` (fetched with one extra) that fits `page_size`,
    /// with the next page's token made from its last row by `token`.
    pub fn cut(mut rows: Vec<T>, page_size: i64, token: impl Fn(&T) -> String) -> Self {
        let next_page_token = next_token(&mut rows, page_size, token);
        Page {
            items: rows,
            next_page_token,
        }
    }
}
