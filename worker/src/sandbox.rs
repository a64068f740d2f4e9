//! Parsing in a child process that may die: `folio-worker parse`.
//!
//! Uploads come from strangers, and a parser that aborts, overflows its stack
//! or runs out of memory would take the worker and every job in it down, again
//! on every redelivery. So the worker never parses in its own process: it
//! starts `<FOLIO_PARSER_PATH> parse` (itself, by default) with an empty
//! environment, in a process group of its own, writes one JSON line of
//! [`Request`] and then the blob to its standard input, and reads one JSON
//! [`Reply`] from its standard output. The child limits itself before it reads
//! the blob: its address space to `FOLIO_PARSE_MEMORY_MB`, its CPU time to the
//! parse budget, and no core files; the worker kills it when the wall-clock
//! budget is spent.
//!
//! How the child ended decides the document's fate ([`outcome`]): a reply is
//! the parse result or the parser's own error; an allocation that failed is
//! `PARSE_MEMORY` (as is a SIGKILL the worker did not send: the kernel's
//! out-of-memory killer); the CPU limit or the wall clock is `PARSE_TIME`; any
//! other death (a panic, an abort, a stack overflow) is `PARSE_CRASH`. All of
//! these are permanent. Only SIGTERM, SIGINT and SIGHUP, which a stopping host
//! sends, are transient: that is not the document's fault.

use std::{
    io::{BufRead as _, Read as _, Write as _},
    os::unix::process::ExitStatusExt as _,
    path::PathBuf,
    process::{ExitCode, ExitStatus, Stdio},
    time::Duration,
};

use anyhow::Context as _;
use folio_core::config::DocumentsConfig;
use folio_parse::parse::{self, Format, Limits, ParsedDocument};
use nix::sys::{
    resource::{Resource, setrlimit},
    signal::Signal,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt as _;

/// What the child prints when an allocation fails (Rust's default handler),
/// before it aborts.
const ALLOCATION_FAILED: &str = "memory allocation of";
/// How much of the child's standard error is kept for the failure message.
const STDERR_KEPT: usize = 2048;

/// The first line of the child's standard input; the blob follows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub format: String,
    pub limits: Limits,
    /// The child's address-space limit, in bytes.
    pub memory_bytes: u64,
}

/// The child's answer, on its standard output.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Parsed(ParsedDocument),
    Refused { code: String, message: String },
}

/// Why a document was not parsed.
#[derive(Debug, thiserror::Error)]
pub enum ParseFailure {
    /// The document's fault: parsing it again cannot help. `code` is for
    /// clients (`PARSE_MEMORY`, `PARSE_TIME`, `PARSE_CRASH` or the parser's
    /// own, such as `CORRUPT_FILE`).
    #[error("permanent ({code}): {message}")]
    Permanent { code: &'static str, message: String },
    /// Not the document's fault: the parser could not start, or the host is
    /// stopping.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
}

impl ParseFailure {
    fn permanent(code: &'static str, message: impl Into<String>) -> Self {
        ParseFailure::Permanent {
            code,
            message: message.into(),
        }
    }
}

/// How the worker runs the parser.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The program run as `<program> parse`.
    pub program: PathBuf,
    /// The child's address-space limit, in bytes.
    pub memory_bytes: u64,
}

impl Sandbox {
    /// `FOLIO_PARSER_PATH` (the running executable by default) and
    /// `FOLIO_PARSE_MEMORY_MB`.
    pub fn from_config(documents: &DocumentsConfig) -> anyhow::Result<Self> {
        let program = match &documents.parser_path {
            Some(path) => path.clone(),
            None => std::env::current_exe().context("finding the worker's own executable, the parser")?,
        };
        Ok(Sandbox {
            program,
            memory_bytes: documents.parse_memory_bytes,
        })
    }

    /// Parses `bytes` as `format` in a child under `limits`; the wall clock is
    /// `limits.time_budget` and a second more.
    pub async fn parse(&self, format: Format, bytes: bytes::Bytes, limits: Limits) -> Result<ParsedDocument, ParseFailure> {
        let wall = limits.time_budget + Duration::from_secs(1);
        let mut header = serde_json::to_vec(&Request {
            format: format.as_str().to_owned(),
            limits,
            memory_bytes: self.memory_bytes,
        })
        .map_err(|e| ParseFailure::Transient(e.into()))?;
        header.push(b'\n');
        let mut child = tokio::process::Command::new(&self.program)
            .arg("parse")
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ParseFailure::Transient(anyhow::anyhow!("cannot start the parser {}: {e}", self.program.display())))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A child that dies early closes its end: the write fails, and how it
        // died says why.
        let feed = async move {
            let _ = async {
                stdin.write_all(&header).await?;
                stdin.write_all(&bytes).await?;
                stdin.shutdown().await
            }
            .await;
        };
        let run = async { tokio::join!(feed, child.wait_with_output()).1 };
        // On timeout the child is dropped, and `kill_on_drop` sends SIGKILL.
        match tokio::time::timeout(wall, run).await {
            Err(_) => Err(ParseFailure::permanent(
                "PARSE_TIME",
                format!("parsing took longer than {}s and was stopped", wall.as_secs()),
            )),
            Ok(Err(e)) => Err(ParseFailure::Transient(anyhow::anyhow!("waiting for the parser: {e}"))),
            Ok(Ok(output)) => outcome(output.status, &output.stdout, &output.stderr, self.memory_bytes),
        }
    }
}

/// What a child's exit means for the document.
fn outcome(status: ExitStatus, stdout: &[u8], stderr: &[u8], memory_bytes: u64) -> Result<ParsedDocument, ParseFailure> {
    let stderr = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(STDERR_KEPT)..]);
    let said = stderr.trim();
    if status.success() {
        return match serde_json::from_slice::<Reply>(stdout) {
            Ok(Reply::Parsed(document)) => Ok(document),
            Ok(Reply::Refused { code, message }) => Err(ParseFailure::permanent(stable_code(&code), message)),
            Err(e) => Err(ParseFailure::permanent(
                "PARSE_CRASH",
                format!("the parser's reply is unreadable: {e}"),
            )),
        };
    }
    let memory = || {
        ParseFailure::permanent(
            "PARSE_MEMORY",
            format!("parsing needed more than {} MiB of memory", memory_bytes >> 20),
        )
    };
    if said.contains(ALLOCATION_FAILED) {
        return Err(memory());
    }
    let signal = status.signal().and_then(|s| Signal::try_from(s).ok());
    match signal {
        Some(Signal::SIGXCPU) => Err(ParseFailure::permanent(
            "PARSE_TIME",
            "parsing used up its CPU time and was stopped",
        )),
        Some(Signal::SIGKILL) => Err(memory()),
        Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP) => Err(ParseFailure::Transient(anyhow::anyhow!(
            "the parser was stopped by {signal:?} (the host is stopping)"
        ))),
        _ => {
            let how = match signal {
                Some(signal) => format!("was killed by {signal}"),
                None => format!("exited with {status}"),
            };
            let last = said.lines().rfind(|l| !l.is_empty()).unwrap_or("");
            let what = if said.contains("overflowed its stack") {
                " (stack overflow)"
            } else {
                ""
            };
            Err(ParseFailure::permanent("PARSE_CRASH", format!("the parser {how}{what}: {last}")))
        }
    }
}

/// The codes a child may send, as `'static` strings.
fn stable_code(code: &str) -> &'static str {
    match code {
        "CORRUPT_FILE" => "CORRUPT_FILE",
        "ENCRYPTED_FILE" => "ENCRYPTED_FILE",
        "LIMIT_EXCEEDED" => "LIMIT_EXCEEDED",
        "PARSE_TIME" => "PARSE_TIME",
        "UNSUPPORTED_FORMAT" => "UNSUPPORTED_FORMAT",
        "TOO_MANY_PAGES" => "TOO_MANY_PAGES",
        "IMAGE_TOO_LARGE" => "IMAGE_TOO_LARGE",
        _ => "PARSE_CRASH",
    }
}

/// `folio-worker parse`: the child. Reads a [`Request`] line and the blob
/// from standard input, limits itself, parses, and prints a [`Reply`].
pub fn child_main() -> ExitCode {
    match child() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("folio-worker parse: {message}");
            ExitCode::from(2)
        }
    }
}

fn child() -> Result<(), String> {
    let mut input = std::io::stdin().lock();
    let mut line = Vec::new();
    input
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("reading the request: {e}"))?;
    let request: Request = serde_json::from_slice(&line).map_err(|e| format!("a malformed request: {e}"))?;
    // Limits first, so the blob itself counts against them.
    let cpu = request.limits.time_budget.as_secs().max(1);
    setrlimit(Resource::RLIMIT_CORE, 0, 0).map_err(|e| format!("RLIMIT_CORE: {e}"))?;
    setrlimit(Resource::RLIMIT_CPU, cpu, cpu + 1).map_err(|e| format!("RLIMIT_CPU: {e}"))?;
    setrlimit(Resource::RLIMIT_AS, request.memory_bytes, request.memory_bytes).map_err(|e| format!("RLIMIT_AS: {e}"))?;
    let mut bytes = Vec::new();
    input.read_to_end(&mut bytes).map_err(|e| format!("reading the document: {e}"))?;
    let reply = match Format::parse(&request.format) {
        None => Reply::Refused {
            code: "UNSUPPORTED_FORMAT".into(),
            message: request.format,
        },
        Some(format) => match parse::parse(format, &bytes, &request.limits) {
            Ok(document) => Reply::Parsed(document),
            Err(error) => Reply::Refused {
                code: error.code().into(),
                message: error.to_string(),
            },
        },
    };
    drop(bytes);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer(&mut out, &reply).map_err(|e| format!("writing the reply: {e}"))?;
    out.flush().map_err(|e| format!("writing the reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(result: Result<ParsedDocument, ParseFailure>) -> String {
        match result {
            Ok(_) => "OK".into(),
            Err(ParseFailure::Permanent { code, .. }) => code.into(),
            Err(ParseFailure::Transient(_)) => "transient".into(),
        }
    }

    fn killed(signal: Signal) -> ExitStatus {
        ExitStatus::from_raw(signal as i32)
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn every_way_a_child_ends_has_its_code() {
        let reply = |reply: &Reply| serde_json::to_vec(reply).unwrap();
        let parsed = reply(&Reply::Parsed(ParsedDocument::default()));
        let refused = reply(&Reply::Refused {
            code: "LIMIT_EXCEEDED".into(),
            message: "too big".into(),
        });
        let memory = 256 << 20;
        let cases: [(ExitStatus, &[u8], &str, &str); 11] = [
            (exited(0), &parsed, "", "OK"),
            (exited(0), &refused, "", "LIMIT_EXCEEDED"),
            (exited(0), b"{\"Parsed\":", "", "PARSE_CRASH"),
            (
                killed(Signal::SIGABRT),
                b"",
                "memory allocation of 1048576 bytes failed",
                "PARSE_MEMORY",
            ),
            (killed(Signal::SIGKILL), b"", "", "PARSE_MEMORY"),
            (killed(Signal::SIGXCPU), b"", "", "PARSE_TIME"),
            (
                killed(Signal::SIGSEGV),
                b"",
                "thread 'main' has overflowed its stack\nfatal runtime error: stack overflow",
                "PARSE_CRASH",
            ),
            (exited(101), b"", "thread 'main' panicked at src/x.rs:1:1:\nboom", "PARSE_CRASH"),
            (killed(Signal::SIGTERM), b"", "", "transient"),
            (killed(Signal::SIGINT), b"", "", "transient"),
            (killed(Signal::SIGHUP), b"", "", "transient"),
        ];
        for (status, stdout, stderr, expected) in cases {
            assert_eq!(
                code(outcome(status, stdout, stderr.as_bytes(), memory)),
                expected,
                "{status} {stderr:?}"
            );
        }
        let Err(ParseFailure::Permanent { message, .. }) = outcome(killed(Signal::SIGSEGV), b"", b"has overflowed its stack", memory)
        else {
            panic!("a crash is permanent");
        };
        assert!(message.contains("stack overflow") && message.contains("SIGSEGV"), "{message}");
    }
}
