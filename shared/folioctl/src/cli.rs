//! The command line: every command, flag and help text, as clap derives.
//! Parsing only; `commands/` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const TOP_EXAMPLES: &str = "\
Examples:
  folioctl login --email admin@folio.local        # asks for the password (or FOLIO_PASSWORD)
  folioctl whoami
  folioctl documents upload notes.md report.pdf --labels demo --watch
  folioctl documents list --state ready
  folioctl search \"grey heron\" --top-k 3
  folioctl --json stats | jq .workers_alive
  folioctl settings set max_upload_bytes=52428800
  folioctl completions bash > /etc/bash_completion.d/folioctl";

/// folioctl: administer a folio deployment over its public gRPC API.
///
/// Sign in once with `login`; the session is kept in the config directory
/// (mode 0600) and refreshed automatically. Tables by default, `--json` for
/// scripts.
#[derive(Debug, Parser)]
#[command(name = "folioctl", version, after_help = format!("{TOP_EXAMPLES}\n\n{}", crate::exit::EXIT_CODES_HELP))]
pub struct Cli {
    /// The folio api-server's URL.
    #[arg(long, global = true, env = "FOLIO_SERVER", default_value = "http://127.0.0.1:50051")]
    pub server: String,
    /// Print JSON instead of tables (errors too, on standard error).
    #[arg(long, global = true)]
    pub json: bool,
    /// Where the credentials are kept [default: $XDG_CONFIG_HOME/folio or ~/.config/folio].
    #[arg(long, global = true, env = "FOLIOCTL_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in and save the session for this server.
    #[command(
        after_help = "Examples:\n  folioctl login --email admin@folio.local\n  FOLIO_PASSWORD=... folioctl --server http://folio:50051 login --email ada@example.org"
    )]
    Login(Login),
    /// Revoke the session on the server and forget it here.
    Logout,
    /// Show the signed-in account.
    Whoami,
    /// Accounts (admin).
    #[command(
        subcommand,
        after_help = "Examples:\n  folioctl users list --role member\n  folioctl users create --email ada@example.org --role member\n  folioctl users update 0190... --active false"
    )]
    Users(Users),
    /// The audit log, newest first (admin).
    #[command(
        after_help = "Examples:\n  folioctl audit --outcome PERMISSION_DENIED\n  folioctl audit --rpc /folio.v1.AuthService/Login --since 2026-01-01T00:00:00Z"
    )]
    Audit(Audit),
    /// Upload, inspect and manage documents.
    #[command(
        subcommand,
        after_help = "Examples:\n  folioctl documents upload *.pdf --labels manuals --watch\n  folioctl documents events 0190...\n  folioctl documents download 0190... --format markdown -o notes.md"
    )]
    Documents(Documents),
    /// Search the documents you may see.
    #[command(
        after_help = "Examples:\n  folioctl search \"grey heron\"\n  folioctl search pipelines --mode keyword --label manual --top-k 5"
    )]
    Search(Search),
    /// Jobs the broker dead-lettered: list, replay, purge (admin).
    #[command(
        subcommand,
        name = "dead-letters",
        after_help = "Examples:\n  folioctl dead-letters list\n  folioctl dead-letters replay --error-code UNAVAILABLE\n  folioctl dead-letters purge 12 13"
    )]
    DeadLetters(DeadLetters),
    /// The deployment at a glance, and the top users (admin).
    #[command(after_help = "Examples:\n  folioctl stats\n  folioctl stats --top-by bytes --top 5")]
    Stats(Stats),
    /// Run-time settings: read (anyone), set and reset (admin).
    #[command(
        subcommand,
        after_help = "Examples:\n  folioctl settings get\n  folioctl settings set max_upload_bytes=52428800 quota_documents=1000\n  folioctl settings reset max_upload_bytes"
    )]
    Settings(Settings),
    /// Registered external services and their status.
    #[command(
        subcommand,
        after_help = "Examples:\n  folioctl services list\n  folioctl services register search-proxy --kind http https://proxy.internal/health"
    )]
    Services(Services),
    /// The worker fleet: list the workers, or ping one through the queue (admin).
    #[command(after_help = "Examples:\n  folioctl workers\n  folioctl workers ping --wait 10")]
    Workers(Workers),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  folioctl completions bash > ~/.local/share/bash-completion/completions/folioctl\n  folioctl completions zsh > ~/.zfunc/_folioctl"
    )]
    Completions { shell: clap_complete::Shell },
}

#[derive(Debug, Args)]
pub struct Login {
    /// The account's email [default: asked].
    #[arg(long, env = "FOLIO_EMAIL")]
    pub email: Option<String>,
    /// The password [default: asked without echo].
    #[arg(long, env = "FOLIO_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// The second factor, when the account has one on: six digits from the
    /// authenticator app, or a backup code [default: asked].
    #[arg(long, env = "FOLIO_MFA_CODE", hide_env_values = true)]
    pub code: Option<String>,
}

/// Paging flags every list shares.
#[derive(Debug, Args)]
pub struct Page {
    /// Items per page (the server's default when unset).
    #[arg(long, default_value_t = 0)]
    pub page_size: i32,
    /// Continue from a previous page (printed as "more: --page-token ...").
    #[arg(long, default_value = "")]
    pub page_token: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
    Viewer,
}

#[derive(Debug, Subcommand)]
pub enum Users {
    /// Page through accounts, oldest first.
    List {
        #[arg(long)]
        role: Option<RoleArg>,
        /// Only active (true) or inactive (false) accounts.
        #[arg(long)]
        active: Option<bool>,
        /// Only emails starting with this.
        #[arg(long, default_value = "")]
        email_prefix: String,
        #[command(flatten)]
        page: Page,
    },
    /// Show one account.
    Get { id: String },
    /// Create an account.
    Create {
        #[arg(long)]
        email: String,
        /// The new account's password [default: asked without echo].
        #[arg(long, env = "FOLIO_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long, value_enum, default_value = "member")]
        role: RoleArg,
    },
    /// Change an account's role, active flag, display name, quotas or share weight.
    Update {
        id: String,
        #[arg(long)]
        role: Option<RoleArg>,
        /// false deactivates the account and revokes its sessions.
        #[arg(long)]
        active: Option<bool>,
        #[arg(long)]
        display_name: Option<String>,
        /// The account's own document quota (0: no limit; "default": the setting's).
        #[arg(long)]
        quota_documents: Option<QuotaArg>,
        /// The account's own byte quota (0: no limit; "default": the setting's).
        #[arg(long)]
        quota_bytes: Option<QuotaArg>,
        /// The weight of the account's fair share of the workers, 1 to 100
        /// ("default": its role's setting).
        #[arg(long)]
        share_weight: Option<QuotaArg>,
    },
}

/// A quota: a number, or back to the default.
#[derive(Debug, Clone, Copy)]
pub enum QuotaArg {
    Limit(i64),
    Default,
}

impl std::str::FromStr for QuotaArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "default" {
            return Ok(QuotaArg::Default);
        }
        s.parse()
            .map(QuotaArg::Limit)
            .map_err(|_| format!("{s:?} is neither a number nor \"default\""))
    }
}

#[derive(Debug, Args)]
pub struct Audit {
    /// Only events by this user id.
    #[arg(long, default_value = "")]
    pub actor: String,
    /// Only this RPC's events, e.g. /folio.v1.AuthService/Login.
    #[arg(long, default_value = "")]
    pub rpc: String,
    /// Only this outcome, a gRPC code name such as OK or UNAUTHENTICATED.
    #[arg(long, default_value = "")]
    pub outcome: String,
    /// Only events at or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<prost_types::Timestamp>,
    /// Only events before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub until: Option<prost_types::Timestamp>,
    #[command(flatten)]
    pub page: Page,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Queued,
    Processing,
    RetryWait,
    Ready,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// The bytes as uploaded.
    Original,
    Json,
    Markdown,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Documents {
    /// Upload files; with --watch, a progress bar per document until READY or FAILED.
    Upload {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Labels for every file, comma-separated.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Follow each document's processing to its end.
        #[arg(long)]
        watch: bool,
    },
    /// Page through documents, newest first.
    List {
        #[arg(long)]
        state: Option<StateArg>,
        #[arg(long, default_value = "")]
        label: String,
        /// Only filenames containing this (case-insensitive).
        #[arg(long, default_value = "")]
        filename_contains: String,
        /// "created_at desc" (default), "created_at asc" or "filename asc".
        #[arg(long, default_value = "")]
        order_by: String,
        #[command(flatten)]
        page: Page,
    },
    /// Show one document with its processing state.
    Get { id: String },
    /// A document's event log, oldest first.
    Events {
        id: String,
        /// Only events after this id.
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Follow one document's processing with a progress bar.
    Watch { id: String },
    /// Stop a document's processing.
    Cancel { id: String },
    /// Process a FAILED or CANCELLED document again.
    Retry { id: String },
    /// Delete a document with its chunks, events and file.
    Delete { id: String },
    /// Write the original bytes, or the parse result, to a file or standard output.
    Download {
        id: String,
        #[arg(long, value_enum, default_value = "original")]
        format: FormatArg,
        /// The file to write [default: standard output].
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Hybrid,
    Vector,
    Keyword,
}

#[derive(Debug, Args)]
pub struct Search {
    pub query: String,
    /// Results to return, 1 to 100.
    #[arg(long, default_value_t = 10)]
    pub top_k: i32,
    #[arg(long, value_enum, default_value = "hybrid")]
    pub mode: ModeArg,
    /// Only documents with any of these labels.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Only these documents.
    #[arg(long = "document")]
    pub documents: Vec<String>,
    /// Skip the reranker.
    #[arg(long)]
    pub no_rerank: bool,
}

/// Which dead letters: every flag that is set must match.
#[derive(Debug, Args)]
pub struct DeadLetterFilterArgs {
    /// process_document, reindex_document, ping or undecodable.
    #[arg(long, default_value = "")]
    pub kind: String,
    /// rejected, delivery_limit or expired.
    #[arg(long, default_value = "")]
    pub reason: String,
    /// The document owner's user id.
    #[arg(long, default_value = "")]
    pub owner: String,
    /// The document's error code, e.g. UNAVAILABLE.
    #[arg(long, default_value = "")]
    pub error_code: String,
}

#[derive(Debug, Args)]
pub struct DeadLetterSelectionArgs {
    /// Letter ids; else the filter flags; else --all.
    pub ids: Vec<i64>,
    #[command(flatten)]
    pub filter: DeadLetterFilterArgs,
    /// Every pending letter.
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeadLetters {
    /// Pending letters, newest first.
    List {
        #[command(flatten)]
        filter: DeadLetterFilterArgs,
        /// Also letters already replayed or purged.
        #[arg(long)]
        include_settled: bool,
        #[command(flatten)]
        page: Page,
    },
    /// Queue the letters' documents again as a new attempt.
    Replay(DeadLetterSelectionArgs),
    /// Set the letters aside for good (their documents stay FAILED).
    Purge(DeadLetterSelectionArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TopByArg {
    Documents,
    Bytes,
    Activity,
}

#[derive(Debug, Args)]
pub struct Stats {
    /// Rank the top users by this.
    #[arg(long, value_enum, default_value = "documents")]
    pub top_by: TopByArg,
    /// How many top users (0: none).
    #[arg(long, default_value_t = 5)]
    pub top: i32,
    /// The top users' window starts here (RFC 3339; default 30 days ago).
    #[arg(long, value_parser = parse_time)]
    pub since: Option<prost_types::Timestamp>,
}

#[derive(Debug, Subcommand)]
pub enum Settings {
    /// Every setting with its value, default and source.
    Get,
    /// Set settings, NAME=VALUE each.
    Set {
        #[arg(required = true, value_name = "NAME=VALUE")]
        assignments: Vec<String>,
    },
    /// Return settings to their defaults (a provider role, "embedder" or
    /// "reranker", to the environment's).
    Reset {
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
    },
    /// The per-label retention rules.
    Rules,
    /// Set the retention rule of a label: days its documents keep their
    /// original and themselves (0: for ever; unset: the setting applies).
    Retain {
        label: String,
        #[arg(long)]
        original_days: Option<i32>,
        #[arg(long)]
        document_days: Option<i32>,
    },
    /// Remove the retention rule of a label.
    Unretain { label: String },
    /// The embedding and reranking providers in force (never an API key).
    Providers,
    /// Choose a provider for ROLE ("embedder" or "reranker"); it is called
    /// once first, and a new embedder re-embeds every document.
    #[command(after_help = "Examples:\n  folioctl settings provider reranker --kind none\n  \
        FOLIO_PROVIDER_KEY=sk-... folioctl settings provider embedder --kind openai --url http://models:8080 --model text-embedding-3-small")]
    Provider {
        role: String,
        #[command(flatten)]
        choice: ProviderArgs,
    },
    /// Make one call to the provider of ROLE in force, or to a candidate
    /// given with --kind.
    TestProvider {
        role: String,
        #[command(flatten)]
        choice: ProviderArgs,
    },
}

#[derive(Debug, Args)]
pub struct ProviderArgs {
    /// embedder: hash or openai; reranker: lexical, tei, cohere or none.
    #[arg(long)]
    pub kind: Option<String>,
    #[arg(long, default_value = "")]
    pub url: String,
    #[arg(long, default_value = "")]
    pub model: String,
    /// The API key, read from this environment variable (unset: keep the
    /// stored key; set and empty: no key).
    #[arg(long, default_value = "FOLIO_PROVIDER_KEY")]
    pub api_key_env: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    /// Up when GET answers below 500.
    Http,
    /// Up when grpc.health.v1 says SERVING.
    Grpc,
}

#[derive(Debug, Subcommand)]
pub enum Services {
    /// The registered services with their last check.
    List,
    /// Register (or change) a service and check it once.
    Register {
        name: String,
        /// An http:// or https:// URL.
        target: String,
        #[arg(long, value_enum, default_value = "http")]
        kind: KindArg,
    },
    /// Remove a registered service.
    Unregister { name: String },
}

#[derive(Debug, Args)]
pub struct Workers {
    #[command(subcommand)]
    pub command: Option<WorkersCommand>,
}

#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
    /// The registered workers, newest heartbeat first (the default).
    List {
        /// Include workers that have stopped.
        #[arg(long)]
        include_stopped: bool,
    },
    /// Send a ping job through the queue and wait for a worker to record it.
    Ping {
        /// Seconds to wait, at most 60.
        #[arg(long, default_value_t = 5)]
        wait: u32,
    },
}

/// An RFC 3339 time, e.g. 2026-01-31T12:00:00Z.
fn parse_time(text: &str) -> Result<prost_types::Timestamp, String> {
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| format!("not an RFC 3339 time ({e})"))?;
    Ok(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    })
}
