//! Traces across the queue: one upload's W3C trace id, sent by the caller in
//! `traceparent`, is in the answer, in the api-server's and the worker's JSON
//! logs (each its own process), in every event of the document and in the
//! ErrorInfo of an error; a call without one gets a trace of its own. With
//! `FOLIO_OTLP_ENDPOINT` set, both processes export their spans in that trace
//! over OTLP/HTTP: the real exporter sends them to a receiver here that
//! decodes them with the OpenTelemetry protocol's own message types.

use std::time::Duration;

use folio_proto::v1::{
    CreateDocumentRequest, DocumentMetadata, DocumentState, GetDocumentRequest, LoginRequest, auth_service_client::AuthServiceClient,
    document_service_client::DocumentServiceClient,
};
use folio_tests::{Bearer, TestEnv, document_events, wait_for_state};
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use tonic_types::StatusExt as _;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn with_trace<T>(message: T, trace_id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    request.metadata_mut().insert("traceparent", traceparent.parse().unwrap());
    request
}

/// A DocumentService client of the api-server at `addr`, signed in as the
/// bootstrap admin.
async fn admin_documents(addr: &str) -> DocumentServiceClient<folio_tests::Authed> {
    let channel = Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let token = AuthServiceClient::new(channel.clone())
        .login(LoginRequest {
            email: folio_tests::ADMIN_EMAIL.into(),
            password: folio_tests::ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    DocumentServiceClient::new(InterceptedService::new(channel, Bearer::new(&token)))
}

fn answered_trace(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get("folio-trace-id")
        .expect("a folio-trace-id header")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_uploads_trace_id_reaches_both_processes_logs_its_events_and_its_errors() {
    let mut env = TestEnv::new().await;
    let (_api, api_logs, addr) = env.start_api_logged().await;
    let (_worker, worker_logs) = env.start_process_logged("folio-worker", &[], "consuming").await;
    let mut documents = admin_documents(&addr).await;

    let created = documents
        .create_document(with_trace(
            CreateDocumentRequest {
                metadata: Some(DocumentMetadata {
                    filename: "traced.txt".into(),
                    ..Default::default()
                }),
                content: folio_tests::prose(300),
            },
            TRACE_ID,
        ))
        .await
        .unwrap();
    assert_eq!(answered_trace(created.metadata()), TRACE_ID, "the answer names the caller's trace");
    let document = created.into_inner().document.expect("the document");
    wait_for_state(&documents, &document.id, DocumentState::Ready, Duration::from_secs(60)).await;

    // Every event, the api-server's (STORE) and the worker's, is in the trace.
    let events = document_events(&documents, &document.id).await;
    assert!(events.len() > 3, "{events:?}");
    for event in &events {
        assert_eq!(event.trace_id, TRACE_ID, "{event:?}");
    }
    // Both processes' JSON logs name it: the upload, and the job that ran it.
    let stored = api_logs.containing("document stored and queued");
    assert!(
        stored.iter().any(|line| line.contains(TRACE_ID) && line.contains(&document.id)),
        "{stored:#?}"
    );
    let done = worker_logs.containing(TRACE_ID);
    assert!(done.iter().any(|line| line.contains("job done")), "{done:#?}");
    for line in &done {
        let parsed: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert!(
            parsed["spans"]
                .as_array()
                .is_some_and(|spans| spans.iter().any(|s| s["trace_id"] == TRACE_ID)),
            "{line}"
        );
    }

    // An error answers with its trace in ErrorInfo.
    let other = "0af7651916cd43dd8448eb211c80319c";
    let refused = documents
        .get_document(with_trace(GetDocumentRequest { id: "not-an-id".into() }, other))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let info = refused.get_details_error_info().expect("ErrorInfo");
    assert_eq!(info.metadata.get("trace_id").map(String::as_str), Some(other));

    // Without a traceparent (or with a malformed one) a call starts a trace of its own.
    let mut traces = Vec::new();
    for _ in 0..2 {
        let mut request = tonic::Request::new(GetDocumentRequest { id: document.id.clone() });
        request.metadata_mut().insert("traceparent", "not a trace".parse().unwrap());
        let answer = documents.get_document(request).await.unwrap();
        traces.push(answered_trace(answer.metadata()));
    }
    assert!(
        traces.iter().all(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())),
        "{traces:?}"
    );
    assert_ne!(traces[0], traces[1]);
    assert!(!traces.contains(&TRACE_ID.to_owned()));
    env.cleanup().await;
}

/// Spans received over OTLP/HTTP: (service name, trace id in hex, span name).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

async fn otlp_receiver() -> (String, Received) {
    use opentelemetry_proto::tonic::{collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value};
    use prost::Message as _;
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
                for spans in request.resource_spans {
                    let service = spans
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|a| a.key == "service.name")
                        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(name) => Some(name.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in spans.scope_spans {
                        for span in scope.spans {
                            let trace_id: String = span.trace_id.iter().map(|b| format!("{b:02x}")).collect();
                            sink.lock().unwrap().push((service.clone(), trace_id, span.name));
                        }
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_otlp_endpoint_both_processes_export_the_uploads_trace() {
    let (endpoint, received) = otlp_receiver().await;
    let mut env = TestEnv::new().await;
    env.set("FOLIO_OTLP_ENDPOINT", endpoint);
    // The batch exporter sends every 200 ms instead of every 5 s.
    env.set("OTEL_BSP_SCHEDULE_DELAY", "200");
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let _api = env
        .start_process("folio-api", &[("FOLIO_GRPC_ADDR", addr.clone())], "folio-api serving")
        .await;
    let _worker = env.start_process("folio-worker", &[], "consuming").await;
    let mut documents = admin_documents(&addr).await;
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4737";
    let document = documents
        .create_document(with_trace(
            CreateDocumentRequest {
                metadata: Some(DocumentMetadata {
                    filename: "exported.txt".into(),
                    ..Default::default()
                }),
                content: folio_tests::prose(200),
            },
            trace_id,
        ))
        .await
        .unwrap()
        .into_inner()
        .document
        .expect("the document");
    wait_for_state(&documents, &document.id, DocumentState::Ready, Duration::from_secs(60)).await;
    folio_tests::eventually(Duration::from_secs(30), "both processes' spans of the upload's trace", || {
        let spans = received.lock().unwrap().clone();
        async move {
            let exported = |service: &str, name: &str| spans.iter().any(|(s, t, n)| s == service && t == trace_id && n == name);
            (exported("folio-api", "rpc") && exported("folio-worker", "job")).then_some(())
        }
    })
    .await;
    env.cleanup().await;
}
