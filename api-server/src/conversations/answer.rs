//! The text of answers, pure and unit-tested: the words a question asks
//! about, a follow-up made standalone without a chat endpoint, the
//! extractive answer (the passages' sentences that best match the question),
//! and the citation markers (`[2]`, `[1, 3]`) read out of an answer, those
//! that name no passage taken out.

use std::collections::{BTreeSet, HashMap, HashSet};

/// Words that say nothing about what a question is about.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "again", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "before", "being", "between",
    "both", "but", "by", "can", "could", "did", "do", "does", "doing", "done", "each", "else", "for", "from", "get", "gets", "give", "had",
    "has", "have", "having", "he", "her", "here", "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "know", "let",
    "like", "make", "makes", "me", "more", "most", "much", "must", "my", "no", "not", "now", "of", "on", "one", "only", "or", "other",
    "our", "out", "over", "please", "same", "say", "says", "she", "should", "so", "some", "such", "tell", "than", "that", "the", "their",
    "them", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "up", "us", "use", "used", "using", "very",
    "want", "was", "way", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your",
];

/// Words by which a follow-up points back at an earlier question. Not "that"
/// or "one": most questions that hold them stand on their own.
const BACK_REFERENCES: &[&str] = &[
    "it", "its", "it's", "they", "them", "their", "theirs", "this", "these", "those", "he", "she", "him", "his", "her", "same", "former",
    "latter",
];

/// A follow-up with fewer content words than this takes the earlier
/// question's words too.
const SHORT_QUESTION: usize = 3;

/// Sentences an extractive answer gives, at most, and from one passage.
const ANSWER_SENTENCES: usize = 3;
const SENTENCES_PER_PASSAGE: usize = 2;

/// The longest sentence quoted whole, in characters.
const SENTENCE_CHARS: usize = 400;

/// The lower-case words of `text`, as written.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '_'))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
}

/// A word's stem, crudely: enough that "pipes" and "pipelines" meet "pipe"
/// and "pipeline", "processes" meets "process" and "libraries" "library".
fn stem(word: &str) -> String {
    let word = word.strip_suffix("'s").unwrap_or(word);
    let n = word.chars().count();
    let cut = |suffix: &str| word[..word.len() - suffix.len()].to_owned();
    if n >= 5 && word.ends_with("ies") {
        format!("{}y", cut("ies"))
    } else if n >= 6 && word.ends_with("ing") {
        cut("ing")
    } else if n >= 5 && word.ends_with("ed") {
        cut("ed")
    } else if n >= 5 && ["ses", "xes", "zes", "ches", "shes"].iter().any(|s| word.ends_with(s)) {
        cut("es")
    } else if n >= 4 && word.ends_with('s') && !["ss", "us", "is"].iter().any(|s| word.ends_with(s)) {
        cut("s")
    } else {
        word.to_owned()
    }
}

/// The stems of `text`'s content words, each once, in order.
pub fn terms(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    words(text)
        .filter(|w| w.chars().count() >= 2 && !STOPWORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// Whether `text` has any of `terms` (stems, as [`terms`] makes them).
pub fn mentions(terms: &[String], text: &str) -> bool {
    words(text).any(|w| terms.contains(&stem(&w)))
}

/// A follow-up made standalone without a model: when it points back
/// ("what does it return?") or is short, the content words of the earlier
/// query it follows that it does not repeat are added to it.
pub fn standalone(question: &str, previous_query: Option<&str>) -> String {
    let Some(previous) = previous_query else {
        return question.to_owned();
    };
    let asked = terms(question);
    let points_back = words(question).any(|w| BACK_REFERENCES.contains(&w.as_str()));
    if !points_back && asked.len() >= SHORT_QUESTION {
        return question.to_owned();
    }
    let mut seen: HashSet<String> = asked.into_iter().collect();
    let mut added = Vec::new();
    for word in words(previous).filter(|w| w.chars().count() >= 2 && !STOPWORDS.contains(&w.as_str())) {
        if seen.insert(stem(&word)) {
            added.push(word);
        }
    }
    if added.is_empty() {
        question.to_owned()
    } else {
        format!("{} ({})", question.trim(), added.join(" "))
    }
}

/// `text`'s sentences: its lines, each split after a `.`, `?` or `!` that a
/// space and a capital, digit or quote follow.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for i in 0..chars.len() {
            let (at, c) = chars[i];
            if !matches!(c, '.' | '?' | '!') {
                continue;
            }
            let next = chars.get(i + 1).map(|&(_, c)| c);
            let after = chars.get(i + 2).map(|&(_, c)| c);
            if next == Some(' ') && after.is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || c == '"' || c == '\'') {
                let end = at + c.len_utf8();
                out.push(line[start..end].trim());
                start = end;
            }
        }
        out.push(line[start..].trim());
    }
    out.retain(|s| s.chars().any(char::is_alphanumeric));
    out
}

/// One passage an answer may be drawn from: its number and text.
pub struct Source<'a> {
    pub number: u32,
    pub text: &'a str,
}

/// The extractive answer to `question` from `sources` (best first): the
/// sentences that share the most of the question's words, weighted by how
/// rare each word is among the sentences, at most [`ANSWER_SENTENCES`] and
/// [`SENTENCES_PER_PASSAGE`] from one passage; each is returned with the
/// number of its passage, in the order of the passages and, within one, of
/// the text. With no sentence sharing a word, the first sentence of the best
/// passage.
pub fn extractive(question: &str, sources: &[Source<'_>]) -> Vec<(u32, String)> {
    let asked = terms(question);
    // (passage index, sentence index, text, stems)
    let mut candidates = Vec::new();
    for (p, source) in sources.iter().enumerate() {
        for (s, sentence) in sentences(source.text).into_iter().enumerate() {
            let stems: HashSet<String> = words(sentence).map(|w| stem(&w)).collect();
            candidates.push((p, s, sentence, stems));
        }
    }
    let total = candidates.len() as f64;
    let mut frequency: HashMap<&str, usize> = HashMap::new();
    for term in &asked {
        frequency.insert(term, candidates.iter().filter(|c| c.3.contains(term)).count());
    }
    let weight = |term: &str| (1.0 + total / (1.0 + frequency[term] as f64)).ln();
    let asked_weight: f64 = asked.iter().map(|t| weight(t)).sum();
    let mut scored: Vec<(f64, usize, usize, &str)> = candidates
        .iter()
        .map(|(p, s, sentence, stems)| {
            let shared: f64 = asked.iter().filter(|t| stems.contains(*t)).map(|t| weight(t)).sum();
            // Coverage first; a better passage and a shorter sentence break ties.
            let score = shared / asked_weight.max(f64::MIN_POSITIVE) - 0.01 * *p as f64 - 0.0001 * stems.len() as f64;
            (if shared > 0.0 { score } else { f64::NEG_INFINITY }, *p, *s, *sentence)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut chosen: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut per_passage: HashMap<usize, usize> = HashMap::new();
    let mut texts: HashMap<(usize, usize), &str> = HashMap::new();
    for (score, p, s, sentence) in scored {
        if chosen.len() == ANSWER_SENTENCES || score == f64::NEG_INFINITY {
            break;
        }
        let taken = per_passage.entry(p).or_default();
        if *taken < SENTENCES_PER_PASSAGE {
            *taken += 1;
            chosen.insert((p, s));
            texts.insert((p, s), sentence);
        }
    }
    if chosen.is_empty()
        && let Some((p, s, sentence, _)) = candidates.first()
    {
        chosen.insert((*p, *s));
        texts.insert((*p, *s), sentence);
    }
    chosen.into_iter().map(|key| (sources[key.0].number, quoted(texts[&key]))).collect()
}

/// A sentence as quoted: whole, or cut at a word near [`SENTENCE_CHARS`].
fn quoted(sentence: &str) -> String {
    if sentence.chars().count() <= SENTENCE_CHARS {
        return sentence.to_owned();
    }
    let cut: String = sentence.chars().take(SENTENCE_CHARS).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}…", cut.trim_end())
}

/// The citations of `answer`: every `[n]` or `[n, m, ...]` whose numbers
/// all parse. Returns the answer with the numbers not in `valid` taken out
/// (a marker left empty goes with the space before it), and the valid
/// numbers in the order first cited.
pub fn citations(answer: &str, valid: &[u32]) -> (String, Vec<u32>) {
    let mut out = String::with_capacity(answer.len());
    let mut cited = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let marker = from[1..].find(']').map(|close| &from[1..=close]);
        let numbers: Option<Vec<u32>> = marker.and_then(|inner| {
            let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
            parts.iter().map(|p| p.parse::<u32>().ok()).collect()
        });
        match (marker, numbers) {
            (Some(inner), Some(numbers)) => {
                let kept: Vec<u32> = numbers.into_iter().filter(|n| valid.contains(n)).collect();
                for n in &kept {
                    if !cited.contains(n) {
                        cited.push(*n);
                    }
                }
                if kept.is_empty() {
                    let trimmed = out.trim_end_matches(' ').len();
                    out.truncate(trimmed);
                } else {
                    let list: Vec<String> = kept.iter().map(u32::to_string).collect();
                    out.push('[');
                    out.push_str(&list.join(", "));
                    out.push(']');
                }
                rest = &from[inner.len() + 2..];
            }
            _ => {
                out.push('[');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    (out, cited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_content_stems_once() {
        assert_eq!(
            terms("How do I use pipes and piping in the shell's pipelines?"),
            ["pipe", "pip", "shell", "pipeline"]
        );
        assert_eq!(terms("What is the default value of HISTSIZE?"), ["default", "value", "histsize"]);
        assert_eq!(terms("processes, libraries, status"), ["process", "library", "status"]);
        let asked = terms("What is the airspeed velocity of an unladen swallow?");
        assert!(!mentions(&asked, "What is the exit status of a pipeline?"));
        assert!(mentions(&asked, "Swallows fly.") && !mentions(&asked, "What is it of the an?"));
    }

    #[test]
    fn a_follow_up_that_points_back_takes_the_earlier_words() {
        let first = "What does the set builtin do?";
        assert_eq!(standalone(first, None), first);
        assert_eq!(
            standalone("And what does it print without options?", Some(first)),
            "And what does it print without options? (set builtin)"
        );
        assert_eq!(standalone("Defaults?", Some(first)), "Defaults? (set builtin)");
        // A question that stands on its own stays as it is.
        let own = "How are arithmetic expansion results rounded?";
        assert_eq!(standalone(own, Some(first)), own);
    }

    #[test]
    fn sentences_split_at_ends_followed_by_a_capital() {
        assert_eq!(
            sentences("One is e.g. two. Three? Yes! 4 fours.\nNext line"),
            ["One is e.g. two.", "Three?", "Yes!", "4 fours.", "Next line"]
        );
        assert!(sentences("\n  \n--\n").is_empty());
    }

    #[test]
    fn the_extractive_answer_quotes_the_best_sentences_with_their_passages() {
        let sources = [
            Source {
                number: 1,
                text: "Bash is a shell. A pipeline is a sequence of commands separated by the control operator |. Each command in a pipeline runs in its own subshell.",
            },
            Source {
                number: 2,
                text: "The exit status of a pipeline is the exit status of the last command. Unrelated words here.",
            },
            Source {
                number: 3,
                text: "Nothing about the question at all.",
            },
        ];
        let answer = extractive("What is the exit status of a pipeline?", &sources);
        assert_eq!(
            answer[0],
            (
                1,
                "A pipeline is a sequence of commands separated by the control operator |.".into()
            )
        );
        assert!(answer.contains(&(2, "The exit status of a pipeline is the exit status of the last command.".into())));
        assert!(
            answer.len() <= ANSWER_SENTENCES && answer.iter().all(|(n, _)| *n != 3),
            "{answer:?}"
        );
        // Nothing shared: the best passage's first sentence.
        assert_eq!(extractive("zebra?", &sources), [(1, "Bash is a shell.".into())]);
    }

    #[test]
    fn citations_keep_valid_numbers_in_first_cited_order() {
        let (text, cited) = citations(
            "Pipes connect commands [2]. Status is the last's [1, 7]. See [9]. An [array] and [3.",
            &[1, 2],
        );
        assert_eq!(
            text,
            "Pipes connect commands [2]. Status is the last's [1]. See. An [array] and [3."
        );
        assert_eq!(cited, [2, 1]);
        assert_eq!(citations("none", &[1]), ("none".into(), vec![]));
        assert_eq!(citations("[1][1] twice", &[1]), ("[1][1] twice".into(), vec![1]));
    }
}
