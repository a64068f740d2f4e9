//! Markdown (CommonMark with tables): headings build the section path; each
//! paragraph, list item, table row and code block is a block. The first level-1
//! heading is the title.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::blocks::BlockBuilder;
use super::{Budget, ParseError, ParsedDocument, normalize_whitespace, text::decode};

pub fn parse(bytes: &[u8], budget: &mut Budget<'_>) -> Result<ParsedDocument, ParseError> {
    let source = decode(bytes)?;
    let mut builder = BlockBuilder::new(budget);
    let mut title = None;
    let mut current = String::new();
    let mut in_heading: Option<usize> = None;
    let mut in_code = false;
    let flush = |current: &mut String, builder: &mut BlockBuilder<'_, '_>| {
        let result = builder.paragraph(current);
        current.clear();
        result
    };
    for event in Parser::new_ext(&source, Options::ENABLE_TABLES) {
        builder.budget().check_time()?;
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                flush(&mut current, &mut builder)?;
                in_heading = Some(level_number(level));
            }
            Event::End(TagEnd::Heading(_)) => {
                let level = in_heading.take().unwrap_or(1);
                let text = normalize_whitespace(&current);
                current.clear();
                if level == 1 && title.is_none() && !text.is_empty() {
                    title = Some(text.clone());
                }
                builder.heading(level, &text)?;
            }
            Event::Start(Tag::CodeBlock(_)) => {
                flush(&mut current, &mut builder)?;
                in_code = true;
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code = false;
                flush(&mut current, &mut builder)?;
            }
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead | TagEnd::BlockQuote(_)) => {
                flush(&mut current, &mut builder)?;
            }
            Event::End(TagEnd::TableCell) => current.push_str(" | "),
            Event::Text(text) | Event::Code(text) => {
                current.push_str(&text);
                if in_code {
                    current.push('\n');
                }
            }
            Event::SoftBreak | Event::HardBreak => current.push(' '),
            _ => {}
        }
    }
    flush(&mut current, &mut builder)?;
    Ok(ParsedDocument {
        title,
        pages: None,
        blocks: builder.finish()?,
        ..ParsedDocument::default()
    })
}

fn level_number(level: HeadingLevel) -> usize {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Limits;

    #[test]
    fn headings_nest_into_section_paths() {
        let source = "# Guide\n\nIntro text.\n\n## Install\n\nRun it.\n\n- one\n- two\n\n### Debian\n\n```\napt install x\n```\n\n## Use\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let parsed = parse(source.as_bytes(), &mut Budget::new(&Limits::default())).unwrap();
        assert_eq!(parsed.title.as_deref(), Some("Guide"));
        let got: Vec<(Vec<String>, String)> = parsed.blocks.into_iter().map(|b| (b.section_path, b.text)).collect();
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                (path(&["Guide"]), "Intro text.".to_string()),
                (path(&["Guide", "Install"]), "Run it.".to_string()),
                (path(&["Guide", "Install"]), "one".to_string()),
                (path(&["Guide", "Install"]), "two".to_string()),
                (path(&["Guide", "Install", "Debian"]), "apt install x".to_string()),
                (path(&["Guide", "Use"]), "a | b |".to_string()),
                (path(&["Guide", "Use"]), "1 | 2 |".to_string()),
            ]
        );
    }
}
