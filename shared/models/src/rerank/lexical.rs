//! The `lexical` reranker, the default: BM25 over the candidates themselves.
//! Document frequencies come from the candidate set (the texts search found),
//! not from the whole index, so it needs no statistics table and reorders
//! candidates by how densely and how specifically they contain the query's
//! words. Terms are lowercased runs of letters and digits; k1 = 1.2, b = 0.75.

use std::collections::{HashMap, HashSet};

use futures_util::future::BoxFuture;

use super::{RerankError, Reranker};

/// Term-frequency saturation.
const K1: f32 = 1.2;
/// Length normalisation.
const B: f32 = 0.75;

/// BM25 with the candidate set as the corpus.
#[derive(Debug, Default)]
pub struct LexicalReranker;

impl LexicalReranker {
    /// One BM25 score per text, in order (blocking; cheap).
    pub fn score(&self, query: &str, texts: &[String]) -> Vec<f32> {
        let query: HashSet<String> = terms(query).collect();
        let documents: Vec<HashMap<String, usize>> = texts
            .iter()
            .map(|text| {
                let mut counts = HashMap::new();
                for term in terms(text) {
                    *counts.entry(term).or_insert(0) += 1;
                }
                counts
            })
            .collect();
        let lengths: Vec<f32> = documents.iter().map(|d| d.values().sum::<usize>() as f32).collect();
        let average = lengths.iter().sum::<f32>() / lengths.len().max(1) as f32;
        let n = texts.len() as f32;
        // Lucene's IDF, which stays positive for a term in most candidates.
        let idf: HashMap<&str, f32> = query
            .iter()
            .map(|term| {
                let df = documents.iter().filter(|d| d.contains_key(term)).count() as f32;
                (term.as_str(), (1.0 + (n - df + 0.5) / (df + 0.5)).ln())
            })
            .collect();
        documents
            .iter()
            .zip(&lengths)
            .map(|(counts, length)| {
                idf.iter()
                    .filter_map(|(term, idf)| {
                        let tf = *counts.get(*term)? as f32;
                        let norm = if average > 0.0 { length / average } else { 0.0 };
                        Some(idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * norm)))
                    })
                    .sum()
            })
            .collect()
    }
}

/// Lowercased runs of letters and digits.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

impl Reranker for LexicalReranker {
    fn name(&self) -> &str {
        "lexical-bm25"
    }

    fn rerank<'a>(&'a self, query: &'a str, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<f32>, RerankError>> {
        Box::pin(async move { Ok(self.score(query, texts)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_text_with_the_query_terms_scores_highest_and_scores_keep_input_order() {
        let candidates = texts(&[
            "Quarterly revenue grew in Europe while costs fell.",
            "To install a package, run apt-get install with the package name.",
            "The package was delivered to the wrong address.",
            "",
        ]);
        let scores = LexicalReranker.score("Install PACKAGE", &candidates);
        assert_eq!(scores.len(), 4);
        assert!(scores[1] > scores[2], "{scores:?}");
        assert!(scores[2] > 0.0, "{scores:?}");
        assert_eq!(scores[0], 0.0);
        assert_eq!(scores[3], 0.0);
        // The same texts in another order get the same scores, moved with them.
        let reversed: Vec<String> = candidates.iter().rev().cloned().collect();
        let mut again = LexicalReranker.score("Install PACKAGE", &reversed);
        again.reverse();
        assert_eq!(scores, again);
    }

    #[test]
    fn a_rare_term_outweighs_a_common_one_and_long_texts_are_normalised() {
        let candidates = texts(&[
            "shell shell shell",
            "shell shell shell variables",
            "shell",
            &format!("shell variables {}", "filler ".repeat(200)),
        ]);
        let scores = LexicalReranker.score("shell variables", &candidates);
        // "variables" is in two of four texts, "shell" in all: the texts with
        // "variables" come first, the short one before the padded one.
        assert!(
            scores[1] > scores[3] && scores[3] > scores[0] && scores[0] > scores[2],
            "{scores:?}"
        );
    }

    #[test]
    fn empty_inputs_score_nothing() {
        assert!(LexicalReranker.score("anything", &[]).is_empty());
        assert_eq!(LexicalReranker.score("", &texts(&["some text"])), vec![0.0]);
    }
}
