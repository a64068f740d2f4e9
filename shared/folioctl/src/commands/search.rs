//! `search`: SearchService's hybrid search over the documents the caller may see.

use folio_proto::v1::{SearchMode, SearchRequest, search_service_client::SearchServiceClient};

use crate::{
    cli::{ModeArg, Search},
    context::Context,
    exit::Error,
    records,
};

const RESULT_COLUMNS: &[&str] = &["rank", "score", "filename", "section_path", "text"];

pub async fn search(ctx: &Context, args: Search) -> Result<(), Error> {
    let client = ctx.client().await?;
    let request = SearchRequest {
        query: args.query,
        top_k: args.top_k,
        mode: match args.mode {
            ModeArg::Hybrid => SearchMode::Hybrid,
            ModeArg::Vector => SearchMode::Vector,
            ModeArg::Keyword => SearchMode::Keyword,
        } as i32,
        document_ids: args.documents,
        labels: args.labels,
        no_rerank: args.no_rerank,
    };
    let found = client
        .call(async |channel| SearchServiceClient::new(channel).search(request.clone()).await)
        .await?;
    let rows: Vec<_> = found
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| records::search_result(i + 1, r))
        .collect();
    if ctx.out.json {
        let timings = found.timings.unwrap_or_default();
        ctx.out.json(&serde_json::json!({
            "results": rows.into_iter().map(crate::output::to_json).collect::<Vec<_>>(),
            "model": found.model,
            "reranker": found.reranker,
            "timings": {
                "embed": records::duration(&timings.embed),
                "vector": records::duration(&timings.vector),
                "keyword": records::duration(&timings.keyword),
                "rerank": records::duration(&timings.rerank),
                "total": records::duration(&timings.total),
            },
        }));
    } else {
        ctx.out.list("results", rows, RESULT_COLUMNS, "");
    }
    Ok(())
}
