//! `documents`: upload (streamed, with `--watch` progress bars), list, get,
//! events, watch, cancel, retry, delete and download.

use std::{io::Write as _, path::Path};

use folio_proto::v1::{
    CancelDocumentRequest, DeleteDocumentRequest, Document, DocumentMetadata, DocumentState, DownloadDocumentRequest, DownloadFormat,
    GetDocumentRequest, ListDocumentEventsRequest, ListDocumentsRequest, RetryDocumentRequest, UploadDocumentRequest,
    document_service_client::DocumentServiceClient, upload_document_request::Part,
};

use crate::{
    cli::{Documents, FormatArg, StateArg},
    client::Client,
    context::Context,
    exit::Error,
    progress::{self, Bars},
    records,
};

const DOCUMENT_COLUMNS: &[&str] = &["id", "filename", "state", "stage", "size_bytes", "chunks", "labels", "created_at"];
const EVENT_COLUMNS: &[&str] = &["id", "created_at", "stage", "kind", "percent", "state", "message"];
/// Bytes per upload message (the server takes any size up to its message limit).
const UPLOAD_CHUNK: usize = 256 * 1024;

fn state(arg: StateArg) -> DocumentState {
    match arg {
        StateArg::Queued => DocumentState::Queued,
        StateArg::Processing => DocumentState::Processing,
        StateArg::RetryWait => DocumentState::RetryWait,
        StateArg::Ready => DocumentState::Ready,
        StateArg::Failed => DocumentState::Failed,
        StateArg::Cancelled => DocumentState::Cancelled,
    }
}

pub async fn documents(ctx: &Context, command: Documents) -> Result<(), Error> {
    let client = ctx.client().await?;
    match command {
        Documents::Upload { files, labels, watch } => upload(ctx, &client, &files, &labels, watch).await?,
        Documents::List {
            state: wanted,
            label,
            filename_contains,
            order_by,
            page,
        } => {
            let request = ListDocumentsRequest {
                page_size: page.page_size,
                page_token: page.page_token,
                state: wanted.map_or(DocumentState::Unspecified, state) as i32,
                label,
                filename_contains,
                order_by,
                ..Default::default()
            };
            let listed = client
                .call(async |channel| DocumentServiceClient::new(channel).list_documents(request.clone()).await)
                .await?;
            let rows = listed.documents.iter().map(records::document).collect();
            ctx.out.list("documents", rows, DOCUMENT_COLUMNS, &listed.next_page_token);
        }
        Documents::Get { id } => ctx.out.one(records::document(&get(&client, &id).await?)),
        Documents::Events { id, after } => {
            let mut events = Vec::new();
            let mut after = after;
            loop {
                let request = ListDocumentEventsRequest {
                    document_id: id.clone(),
                    after_event_id: after,
                    page_size: 1000,
                };
                let page = client
                    .call(async |channel| DocumentServiceClient::new(channel).list_document_events(request.clone()).await)
                    .await?;
                events.extend(page.events.iter().map(records::document_event));
                if page.next_after_event_id == 0 {
                    break;
                }
                after = page.next_after_event_id;
            }
            ctx.out.list("events", events, EVENT_COLUMNS, "");
        }
        Documents::Watch { id } => {
            let document = get(&client, &id).await?;
            let bars = Bars::new([document.filename.as_str()]);
            let bar = bars.add(&document.filename, "watching");
            let end = progress::follow(&client, &bar, &id).await;
            bars.finish();
            let end = end?;
            let document = get(&client, &id).await?;
            ctx.out.one(records::document(&document));
            if end != DocumentState::Ready {
                return Err(Error::DocumentFailed(format!("{id} ended {}", end.as_str_name())));
            }
        }
        Documents::Cancel { id } => {
            let document = client
                .call(async |channel| {
                    DocumentServiceClient::new(channel)
                        .cancel_document(CancelDocumentRequest { id: id.clone() })
                        .await
                })
                .await?;
            ctx.out.one(records::document(&document));
        }
        Documents::Retry { id } => {
            let document = client
                .call(async |channel| {
                    DocumentServiceClient::new(channel)
                        .retry_document(RetryDocumentRequest { id: id.clone() })
                        .await
                })
                .await?;
            ctx.out.one(records::document(&document));
        }
        Documents::Delete { id } => {
            client
                .call(async |channel| {
                    DocumentServiceClient::new(channel)
                        .delete_document(DeleteDocumentRequest { id: id.clone() })
                        .await
                })
                .await?;
            ctx.out.note(&format!("deleted {id}"));
            if ctx.out.json {
                ctx.out.json(&serde_json::json!({ "deleted": id }));
            }
        }
        Documents::Download { id, format, output } => download(&client, &id, format, output.as_deref()).await?,
    }
    Ok(())
}

async fn get(client: &Client, id: &str) -> Result<Document, Error> {
    client
        .call(async |channel| {
            DocumentServiceClient::new(channel)
                .get_document(GetDocumentRequest { id: id.to_owned() })
                .await
        })
        .await
}

/// Uploads every file (concurrently), then with `watch` follows each to its
/// end; prints the documents as they are at the end.
async fn upload(ctx: &Context, client: &Client, files: &[std::path::PathBuf], labels: &[String], watch: bool) -> Result<(), Error> {
    let names: Vec<String> = files
        .iter()
        .map(|path| {
            path.file_name()
                .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    let bars = watch.then(|| Bars::new(names.iter().map(String::as_str)));
    let one = async |path: &Path, name: &str| -> Result<(Document, Option<DocumentState>), Error> {
        let bar = bars.as_ref().map(|bars| bars.add(name, "uploading"));
        let bytes = std::fs::read(path).map_err(|e| Error::local(format!("cannot read {}: {e}", path.display())))?;
        let metadata = DocumentMetadata {
            filename: name.to_owned(),
            labels: labels.to_vec(),
            ..Default::default()
        };
        let uploaded = client
            .call(async |channel| {
                let first = UploadDocumentRequest {
                    part: Some(Part::Metadata(metadata.clone())),
                };
                let chunks = bytes.chunks(UPLOAD_CHUNK).map(|chunk| UploadDocumentRequest {
                    part: Some(Part::Chunk(chunk.to_vec())),
                });
                let messages: Vec<_> = std::iter::once(first).chain(chunks).collect();
                DocumentServiceClient::new(channel)
                    .upload_document(futures_util::stream::iter(messages))
                    .await
            })
            .await;
        let document = match uploaded {
            Ok(response) => response.document.unwrap_or_default(),
            Err(error) => {
                if let Some(bar) = &bar {
                    bar.abandon_with_message("upload refused");
                }
                return Err(error);
            }
        };
        match bar {
            Some(bar) => {
                bar.set_message(if document.duplicate {
                    "uploaded before: watching"
                } else {
                    "uploaded"
                });
                let end = progress::follow(client, &bar, &document.id).await?;
                Ok((get(client, &document.id).await?, Some(end)))
            }
            None => Ok((document, None)),
        }
    };
    let outcomes = futures_util::future::join_all(files.iter().zip(&names).map(|(path, name)| one(path, name))).await;
    if let Some(bars) = &bars {
        bars.finish();
    }
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    let mut unfinished = 0;
    for (outcome, name) in outcomes.into_iter().zip(&names) {
        match outcome {
            Ok((document, end)) => {
                if end.is_some_and(|end| end != DocumentState::Ready) {
                    unfinished += 1;
                }
                documents.push(records::document(&document));
            }
            Err(error) => errors.push((name, error)),
        }
    }
    if !documents.is_empty() {
        ctx.out.list("documents", documents, DOCUMENT_COLUMNS, "");
    }
    // Every file was tried; the first failure decides the exit code.
    let mut first = None;
    for (name, error) in errors {
        eprintln!("{name}: {}", error.render());
        first.get_or_insert(error);
    }
    match first {
        Some(error) => Err(error),
        None if unfinished > 0 => Err(Error::DocumentFailed(format!(
            "{unfinished} of {} documents did not reach READY",
            files.len()
        ))),
        None => Ok(()),
    }
}

async fn download(client: &Client, id: &str, format: FormatArg, output: Option<&Path>) -> Result<(), Error> {
    let format = match format {
        FormatArg::Original => DownloadFormat::Original,
        FormatArg::Json => DownloadFormat::Json,
        FormatArg::Markdown => DownloadFormat::Markdown,
        FormatArg::Text => DownloadFormat::Text,
    };
    let mut stream = client
        .call(async |channel| {
            DocumentServiceClient::new(channel)
                .download_document(DownloadDocumentRequest {
                    id: id.to_owned(),
                    format: format as i32,
                })
                .await
        })
        .await?;
    let mut sink: Box<dyn std::io::Write> = match output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| Error::local(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    while let Some(message) = stream.message().await? {
        sink.write_all(&message.data)?;
    }
    sink.flush()?;
    Ok(())
}
