//! Reciprocal-rank fusion: of the vector and keyword candidates ([`fuse`]),
//! and of the retrieval order with the reranker's and the heading matches'
//! ([`blend`]).

use std::collections::{HashMap, HashSet};

use folio_db::models::chunk::Candidate;
use folio_models::rerank::lexical::terms;

/// Reciprocal-rank fusion's k: a result at rank r adds 1 / (K + r).
const RRF_K: f64 = 60.0;

/// A candidate's scores. Each is 0 (a rank 0) where the chunk was not a
/// candidate of that kind, or was not reranked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Scores {
    pub vector: f64,
    pub vector_rank: i32,
    pub keyword: f64,
    pub keyword_rank: i32,
    pub fused: f64,
    pub rerank: f64,
    /// How closely the query matches the chunk's own heading
    /// ([`heading_match`]), where it was reranked.
    pub heading: f64,
}

/// What rank `rank` (0-based) adds to a fused score.
fn reciprocal(rank: usize) -> f64 {
    1.0 / (RRF_K + rank as f64 + 1.0)
}

/// How much each order counts.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub vector: f64,
    pub keyword: f64,
    /// The reranker's order, against the fused order, in [`blend`].
    pub rerank: f64,
    /// The heading matches' order, in [`blend`].
    pub heading: f64,
}

/// A heading match under this is no signal: a sentence shares a word or two
/// with many headings.
pub const HEADING_MATCH_MIN: f64 = 0.5;

/// How closely `query` matches a chunk's own `heading`: the overlap of
/// their words (lowercased runs of letters and digits, numbers left out:
/// "6.1.1. Syntax" is "syntax") over their union, 0 to 1. Someone who types
/// a section's title, or most of it, is looking for that section.
pub fn heading_match(query: &str, heading: &str) -> f64 {
    let words = |text| -> HashSet<String> { terms(text).filter(|t| !t.chars().all(|c| c.is_ascii_digit())).collect() };
    let (query, heading) = (words(query), words(heading));
    let union = query.union(&heading).count();
    if union == 0 {
        return 0.0;
    }
    query.intersection(&heading).count() as f64 / union as f64
}

/// Weighted reciprocal-rank fusion of the two candidate lists (each best
/// first): a candidate at rank r of a list adds the list's weight / (K + r).
pub fn fuse(by_vector: &[Candidate], by_keyword: &[Candidate], weights: Weights) -> HashMap<i64, Scores> {
    let mut fused: HashMap<i64, Scores> = HashMap::new();
    for (rank, candidate) in by_vector.iter().enumerate() {
        let entry = fused.entry(candidate.id).or_default();
        entry.vector = candidate.score;
        entry.vector_rank = rank as i32 + 1;
        entry.fused += weights.vector * reciprocal(rank);
    }
    for (rank, candidate) in by_keyword.iter().enumerate() {
        let entry = fused.entry(candidate.id).or_default();
        entry.keyword = candidate.score;
        entry.keyword_rank = rank as i32 + 1;
        entry.fused += weights.keyword * reciprocal(rank);
    }
    fused
}

/// The fused candidates' ids, best first (ties: the lower id first).
pub fn by_fused(fused: &HashMap<i64, Scores>) -> Vec<i64> {
    let mut order: Vec<i64> = fused.keys().copied().collect();
    order.sort_by(|a, b| fused[b].fused.total_cmp(&fused[a].fused).then(a.cmp(b)));
    order
}

/// Reorders `order` (the retrieval order) once its candidates' `rerank`
/// and `heading` scores are in: it fuses the retrieval order with the
/// reranker's by weighted reciprocal rank again, so a reranker refines what
/// retrieval found rather than overruling it, and adds to each candidate
/// whose own heading matches the query (at least [`HEADING_MATCH_MIN`]) the
/// heading weight times the match times a first rank's share (ties: the
/// higher rerank score first).
pub fn blend(order: &mut [i64], scores: &HashMap<i64, Scores>, weights: Weights) {
    let mut by_rerank = order.to_vec();
    by_rerank.sort_by(|a, b| scores[b].rerank.total_cmp(&scores[a].rerank));
    let blended: HashMap<i64, f64> = order
        .iter()
        .enumerate()
        .map(|(rank, id)| (*id, reciprocal(rank)))
        .chain(
            by_rerank
                .iter()
                .enumerate()
                .map(|(rank, id)| (*id, weights.rerank * reciprocal(rank))),
        )
        .chain(order.iter().filter(|id| scores[id].heading >= HEADING_MATCH_MIN).map(|id| {
            // As much as a first rank, in proportion to the match: a
            // heading the query names exactly outranks one it half names.
            (*id, weights.heading * scores[id].heading * reciprocal(0))
        }))
        .fold(HashMap::new(), |mut acc, (id, score)| {
            *acc.entry(id).or_default() += score;
            acc
        });
    order.sort_by(|a, b| {
        blended[b]
            .total_cmp(&blended[a])
            .then(scores[b].rerank.total_cmp(&scores[a].rerank))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_adds_reciprocal_ranks_from_both_lists() {
        let c = |id, score| Candidate { id, score };
        let even = Weights {
            vector: 1.0,
            keyword: 1.0,
            rerank: 1.0,
            heading: 1.0,
        };
        let fused = fuse(&[c(1, 0.9), c(2, 0.8)], &[c(2, 3.0), c(3, 1.0)], even);
        assert_eq!(fused[&2].vector_rank, 2);
        assert_eq!(fused[&2].keyword_rank, 1);
        assert!((fused[&2].fused - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
        assert!(fused[&2].fused > fused[&1].fused, "in both lists beats first in one");
        assert_eq!(fused[&3].vector_rank, 0);
    }

    #[test]
    fn a_heading_match_is_the_shared_words_over_all_words_numbers_aside() {
        assert_eq!(heading_match("Syntax", "6.1.1. Syntax"), 1.0);
        assert_eq!(heading_match("shell syntax", "Shell Grammar"), 1.0 / 3.0);
        assert_eq!(heading_match("2.1", "2.1 Definitions"), 0.0);
        assert_eq!(heading_match("", ""), 0.0);
    }

    #[test]
    fn an_exact_heading_match_lifts_a_candidate_over_better_retrieved_ones() {
        let weights = Weights {
            vector: 1.0,
            keyword: 1.0,
            rerank: 0.75,
            heading: 4.0,
        };
        let scores: HashMap<i64, Scores> = [
            (
                1,
                Scores {
                    rerank: 3.0,
                    heading: 0.5,
                    ..Default::default()
                },
            ),
            (
                2,
                Scores {
                    rerank: 2.0,
                    ..Default::default()
                },
            ),
            (
                3,
                Scores {
                    rerank: 1.0,
                    heading: 1.0,
                    ..Default::default()
                },
            ),
        ]
        .into();
        let mut order = vec![1, 2, 3];
        blend(&mut order, &scores, weights);
        assert_eq!(order, [3, 1, 2]);
    }
}
