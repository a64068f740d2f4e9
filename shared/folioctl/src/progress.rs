//! Following documents' processing: one indicatif bar per document, driven
//! by its WatchDocument stream (stage and percent from each event), ending
//! at READY, FAILED or CANCELLED. A stream that ends early is resumed from
//! the last event id, after a refresh when the access token ran out, so no
//! event is missed or shown twice. Without a terminal on standard error
//! indicatif draws nothing; the caller prints the outcome either way.

use std::time::Duration;

use folio_proto::v1::{
    DocumentEvent, DocumentState, Stage, WatchDocumentRequest, document_service_client::DocumentServiceClient, watch_response::Item,
};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tonic::Code;

use crate::{client::Client, exit::Error};

/// Reconnects in a row without a new event before giving up.
const RECONNECTS: u32 = 5;

/// The bars of one command, drawn together on standard error.
pub struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    prefix_width: usize,
}

impl Bars {
    /// Bars for documents named `names` (for the width of their labels).
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let prefix_width = names.into_iter().map(|n| n.chars().count()).max().unwrap_or(0).min(20);
        let style = ProgressStyle::with_template(&format!("{{prefix:{prefix_width}}} [{{bar:24}}] {{pos:>3}}% {{wide_msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            style,
            prefix_width,
        }
    }

    /// Ends the drawing: the cursor goes below the last bar, so what is
    /// printed next starts on a line of its own.
    pub fn finish(&self) {
        if !self.multi.is_hidden() {
            eprintln!();
        }
    }

    /// A new bar labelled `name`, at 0% saying `message`.
    pub fn add(&self, name: &str, message: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(100));
        bar.set_style(self.style.clone());
        bar.set_prefix(name.chars().take(self.prefix_width).collect::<String>());
        bar.set_message(message.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        bar
    }
}

/// Follows `document_id` until its processing ends, moving `bar`; returns
/// the state it ended in.
pub async fn follow(client: &Client, bar: &ProgressBar, document_id: &str) -> Result<DocumentState, Error> {
    let mut after = 0;
    let mut reconnects = 0;
    loop {
        let token = client.access_token().await?;
        let request = WatchDocumentRequest {
            document_id: document_id.to_owned(),
            after_event_id: after,
            follow: false,
        };
        let ended = match DocumentServiceClient::new(client.authed(&token)?).watch_document(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            if let Some(Item::Event(event)) = message.item {
                                after = event.id;
                                reconnects = 0;
                                if let Some(end) = show(bar, &event) {
                                    return Ok(end);
                                }
                            }
                        }
                        // The stream ends after the terminal event, which
                        // returned above; anything else is resumed.
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
            Err(status) => Some(status),
        };
        match ended {
            Some(status) if status.code() == Code::Unauthenticated => {
                client.refresh(&token).await?;
            }
            Some(status) if status.code() != Code::Unavailable => return Err(status.into()),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
        reconnects += 1;
        if reconnects > RECONNECTS {
            return Err(Error::local(format!("the watch of {document_id} kept ending without news")));
        }
    }
}

/// Moves the bar to `event`; the document's final state if it ended.
fn show(bar: &ProgressBar, event: &DocumentEvent) -> Option<DocumentState> {
    let state = DocumentState::try_from(event.state).unwrap_or(DocumentState::Unspecified);
    let stage = Stage::try_from(event.stage).map_or("", |s| s.as_str_name());
    bar.set_position(u64::try_from(event.percent.clamp(0, 100)).unwrap_or(0));
    match state {
        DocumentState::Ready => {
            bar.set_position(100);
            bar.finish_with_message("READY");
            Some(state)
        }
        DocumentState::Failed | DocumentState::Cancelled => {
            let code = event
                .details
                .as_ref()
                .and_then(|d| d.fields.get("error_code"))
                .and_then(|v| match &v.kind {
                    Some(prost_types::value::Kind::StringValue(code)) => Some(code.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            bar.abandon_with_message(short(&format!("{} {code}: {}", state.as_str_name(), event.message)));
            Some(state)
        }
        _ => {
            bar.set_message(short(&format!("{} {stage}: {}", state.as_str_name(), event.message)));
            None
        }
    }
}

/// A bar's message, cut so the line fits an 80-column terminal (a wrapped
/// line would break the redrawing).
fn short(message: &str) -> String {
    const WIDTH: usize = 36;
    if message.chars().count() <= WIDTH {
        return message.to_owned();
    }
    let mut cut: String = message.chars().take(WIDTH - 1).collect();
    cut.push('…');
    cut
}
