//! The outline (bookmarks), which gives the section path.

use lopdf::Document;

use crate::parse::normalize_whitespace;

/// One outline entry: its nesting level (1 at the top), title and page.
#[derive(Debug)]
pub(super) struct Bookmark {
    pub(super) level: usize,
    pub(super) title: String,
    pub(super) page: u32,
}

/// The outline in page order; a file without one, or with a broken one, has
/// none.
pub(super) fn outline(document: &Document) -> Vec<Bookmark> {
    let Ok(toc) = document.get_toc() else {
        return Vec::new();
    };
    let mut bookmarks: Vec<Bookmark> = toc
        .toc
        .into_iter()
        .filter_map(|entry| {
            let title = normalize_whitespace(&entry.title);
            let page = u32::try_from(entry.page).ok()?;
            (!title.is_empty()).then_some(Bookmark {
                level: entry.level,
                title,
                page,
            })
        })
        .collect();
    // A stable sort keeps the outline's order among the bookmarks of one page.
    bookmarks.sort_by_key(|b| b.page);
    bookmarks
}

pub(super) fn starts_with_title(paragraph: &str, title: &str) -> bool {
    let mut paragraph = paragraph.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase);
    title
        .chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .all(|t| paragraph.next() == Some(t))
}
