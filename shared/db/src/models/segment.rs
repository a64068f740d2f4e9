//! `chunk_segments`: the sealed segments of the chunk table, and the
//! statements that build, merge and clean up their indexes.
//!
//! A sealed segment is a range of chunk ids `[lo, hi)` with an HNSW graph and
//! a RUM keyword index of its own, partial over that range (the planner uses
//! them for a query that names the same range). Chunks past the last sealed
//! segment form the open segment: scanned exactly for vectors, matched
//! through the GIN index over every chunk for keywords. Segments are
//! contiguous from id 0 and never overlap (an exclusion constraint), so the
//! sealed ranges and the open one cover every chunk exactly once, and a
//! chunk committed late into a range already sealed is in that range's
//! indexes like any insert. One worker at a time (an advisory lock) builds:
//! it seals the open segment when it is full or ingestion has paused, and
//! merges runs of same-tier segments into one, as Lucene's tiered merges do.

use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use crate::schema::chunk_segments;

/// The HNSW parameters of every segment's graph: 24 links per node (48 on
/// the bottom layer), built with a 128-wide candidate list. `hash` vectors sit
/// in a thin band of similarity; at 100,000 chunks pgvector's defaults gave
/// recall@10 0.89 (heading queries) / 0.93 (sentences) at ef_search 400, these
/// 0.97 / 0.99 at ef_search 800 (BENCHMARKS.md, Search).
pub const GRAPH_WITH: &str = "m = 24, ef_construction = 128";

/// The advisory lock the segment builder holds: one builder at a time.
const BUILDER_LOCK: i64 = 0x666f_6c69_6f53_4547; // "folioSEG"

/// Where index names start; the rest is `{lo}_{hi}_{vec|tsv}`.
const INDEX_PREFIX: &str = "chunks_seg_";

/// A sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = chunk_segments)]
pub struct Segment {
    pub lo: i64,
    pub hi: i64,
    pub level: i32,
}

impl Segment {
    /// Its HNSW graph's name.
    pub fn graph_index(&self) -> String {
        format!("{INDEX_PREFIX}{}_{}_vec", self.lo, self.hi)
    }

    /// Its RUM index's name.
    pub fn keyword_index(&self) -> String {
        format!("{INDEX_PREFIX}{}_{}_tsv", self.lo, self.hi)
    }

    /// The condition on `chunks` (as `alias`) that selects this segment,
    /// written as its indexes' predicate is, so the planner can use them.
    pub fn condition(&self, alias: &str) -> String {
        format!("{alias}.id >= {} AND {alias}.id < {}", self.lo, self.hi)
    }
}

/// The sealed segments in id order.
pub async fn sealed(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Segment>> {
    chunk_segments::table
        .order(chunk_segments::lo.asc())
        .select(Segment::as_select())
        .load(conn)
        .await
}

/// Where the open segment begins: past the last sealed one.
pub fn open_from(sealed: &[Segment]) -> i64 {
    sealed.last().map_or(0, |last| last.hi)
}

/// How many chunks are in the open segment: not yet in an approximate index.
pub async fn open_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct Open {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        open: i64,
    }
    let counted: Open =
        diesel::sql_query("SELECT count(*) AS open FROM chunks WHERE id >= (SELECT coalesce(max(hi), 0) FROM chunk_segments)")
            .get_result(conn)
            .await?;
    Ok(counted.open)
}

/// The open segment as the builder sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, QueryableByName)]
pub struct Open {
    /// Chunks in it, counted up to the limit asked for.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub chunks: i64,
    /// The newest chunk id in the table (0 when there is none).
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub newest: i64,
}

/// The open segment from `from`, its chunks counted up to `limit`.
pub async fn open(conn: &mut AsyncPgConnection, from: i64, limit: i64) -> QueryResult<Open> {
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM chunks WHERE id >= $1 LIMIT $2) o) AS chunks, \
         coalesce((SELECT max(id) FROM chunks), 0) AS newest",
    )
    .bind::<diesel::sql_types::BigInt, _>(from)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .get_result(conn)
    .await
}

/// When to seal and what to merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The open segment is sealed once it holds this many chunks.
    pub seal_at: i64,
    /// Segments merged at once: a run of this many adjacent segments of one
    /// tier becomes one of the next tier.
    pub fan_in: usize,
}

impl Policy {
    /// The tier a segment spanning `span` ids belongs to by its size: 0 up to
    /// `seal_at * fan_in`, one more for each further factor of `fan_in`. A
    /// large seal (the chunks already there when segments began) starts high
    /// and is not merged again with small ones.
    pub fn level_for(&self, span: i64) -> i32 {
        let mut level = 0;
        let mut bound = self.seal_at.max(1).saturating_mul(self.fan_in as i64);
        while span >= bound && level < 30 {
            level += 1;
            bound = bound.saturating_mul(self.fan_in as i64);
        }
        level
    }

    /// The first run of `fan_in` adjacent segments of one tier, merged into
    /// one segment of the next tier (or higher, by its size).
    pub fn next_merge(&self, sealed: &[Segment]) -> Option<(Vec<Segment>, Segment)> {
        let fan_in = self.fan_in.max(2);
        let mut start = 0;
        for i in 1..=sealed.len() {
            let run_ends = i == sealed.len() || sealed[i].level != sealed[start].level;
            if run_ends {
                start = i;
                continue;
            }
            if i + 1 - start == fan_in {
                let run = sealed[start..=i].to_vec();
                let (lo, hi) = (run[0].lo, run[fan_in - 1].hi);
                let level = (run[0].level + 1).max(self.level_for(hi - lo));
                return Some((run, Segment { lo, hi, level }));
            }
        }
        None
    }

    /// The segment that seals the open one from `from` through `newest`.
    pub fn seal(&self, from: i64, newest: i64) -> Segment {
        Segment {
            lo: from,
            hi: newest + 1,
            level: self.level_for(newest + 1 - from),
        }
    }
}

/// Takes the builder's advisory lock for this session, if no other session
/// holds it. It is held until the session ends.
pub async fn try_lead(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    let taken: Taken = diesel::sql_query(format!("SELECT pg_try_advisory_lock({BUILDER_LOCK}) AS taken"))
        .get_result(conn)
        .await?;
    Ok(taken.taken)
}

/// Builds `segment`'s graph and keyword index with `CREATE INDEX
/// CONCURRENTLY` (inserts and deletes go on meanwhile). Run it outside a
/// transaction; a build cut short leaves an INVALID index, which
/// [`drop_orphans`] removes.
pub async fn build(conn: &mut AsyncPgConnection, segment: &Segment) -> QueryResult<()> {
    build_with(conn, segment, GRAPH_WITH).await
}

/// [`build`] with other HNSW parameters than [`GRAPH_WITH`] (benchmarks
/// compare them).
pub async fn build_with(conn: &mut AsyncPgConnection, segment: &Segment, graph_with: &str) -> QueryResult<()> {
    let range = segment.condition("chunks");
    diesel::sql_query(format!(
        "CREATE INDEX CONCURRENTLY {} ON chunks USING hnsw (embedding vector_cosine_ops) WITH ({graph_with}) WHERE {range}",
        segment.graph_index()
    ))
    .execute(conn)
    .await?;
    diesel::sql_query(format!(
        "CREATE INDEX CONCURRENTLY {} ON chunks USING rum (tsv rum_tsvector_ops) WHERE {range}",
        segment.keyword_index()
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a built segment: searches use it from the next statement on.
pub async fn record_sealed(conn: &mut AsyncPgConnection, segment: &Segment) -> QueryResult<()> {
    diesel::insert_into(chunk_segments::table).values(segment).execute(conn).await?;
    Ok(())
}

/// Replaces the segments `run` with `merged` (built already over their
/// combined range), in one transaction.
pub async fn record_merged(conn: &mut AsyncPgConnection, run: &[Segment], merged: &Segment) -> QueryResult<()> {
    let los: Vec<i64> = run.iter().map(|s| s.lo).collect();
    conn.transaction(async |conn| {
        diesel::delete(chunk_segments::table.filter(chunk_segments::lo.eq_any(&los)))
            .execute(conn)
            .await?;
        diesel::insert_into(chunk_segments::table).values(merged).execute(conn).await?;
        QueryResult::Ok(())
    })
    .await
}

/// Brings the planner's statistics of the chunks and their documents up to
/// date, so it sees the rows of the newest segment (and how many documents
/// a scope joins) and scans each segment through its own indexes.
pub async fn analyze(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::sql_query("ANALYZE documents, chunks").execute(conn).await?;
    Ok(())
}

/// Drops every segment index that belongs to no recorded segment: those of
/// segments merged away, and builds cut short. Returns their names. Only the
/// builder (holding the lock) may call it, so no build is in progress.
pub async fn drop_orphans(conn: &mut AsyncPgConnection) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        indexname: String,
    }
    let existing: Vec<Name> = diesel::sql_query(format!(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'chunks' \
         AND starts_with(indexname, '{INDEX_PREFIX}')"
    ))
    .load(conn)
    .await?;
    let wanted: Vec<String> = sealed(conn)
        .await?
        .iter()
        .flat_map(|s| [s.graph_index(), s.keyword_index()])
        .collect();
    let mut dropped = Vec::new();
    for Name { indexname } in existing {
        if wanted.contains(&indexname) {
            continue;
        }
        // Names are ours (the prefix and two numbers), quoted all the same.
        diesel::sql_query(format!("DROP INDEX CONCURRENTLY IF EXISTS \"{}\"", indexname.replace('"', "\"\"")))
            .execute(conn)
            .await?;
        dropped.push(indexname);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy { seal_at: 100, fan_in: 4 };

    fn segment(lo: i64, hi: i64, level: i32) -> Segment {
        Segment { lo, hi, level }
    }

    #[test]
    fn a_seal_takes_the_open_segment_through_the_newest_chunk_at_the_tier_of_its_size() {
        assert_eq!(POLICY.seal(0, 99), segment(0, 100, 0));
        assert_eq!(POLICY.seal(100, 499), segment(100, 500, 1));
        assert_eq!(POLICY.seal(0, 1_599), segment(0, 1_600, 2));
        assert_eq!(POLICY.level_for(399), 0);
    }

    #[test]
    fn a_run_of_fan_in_segments_of_one_tier_merges_into_the_next() {
        let tier0: Vec<Segment> = (0..3).map(|i| segment(i * 100, (i + 1) * 100, 0)).collect();
        assert_eq!(POLICY.next_merge(&tier0), None);
        let mut four = tier0.clone();
        four.push(segment(300, 420, 0));
        let (run, merged) = POLICY.next_merge(&four).unwrap();
        assert_eq!(run, four);
        assert_eq!(merged, segment(0, 420, 1));
    }

    #[test]
    fn only_adjacent_segments_of_one_tier_merge() {
        let sealed = [
            segment(0, 100, 0),
            segment(100, 200, 0),
            segment(200, 300, 0),
            segment(300, 800, 1),
            segment(800, 900, 0),
            segment(900, 1_000, 0),
            segment(1_000, 1_100, 0),
            segment(1_100, 1_200, 0),
            segment(1_200, 1_300, 0),
        ];
        let (run, merged) = POLICY.next_merge(&sealed).unwrap();
        assert_eq!(run, sealed[4..8].to_vec());
        assert_eq!(merged, segment(800, 1_200, 1));
    }

    #[test]
    fn a_merge_large_for_its_tier_goes_higher() {
        let sealed: Vec<Segment> = (0..4).map(|i| segment(i * 1_000, (i + 1) * 1_000, 0)).collect();
        assert_eq!(POLICY.next_merge(&sealed).unwrap().1, segment(0, 4_000, 2));
    }
}
