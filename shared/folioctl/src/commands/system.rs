//! SystemService's admin commands: `dead-letters`, `stats`, `settings`,
//! `services` and `workers`.

use folio_proto::v1::{
    DeadLetterFilter, DeadLetterSelection, GetSettingsRequest, GetSystemStatsRequest, ListDeadLettersRequest, ListServicesRequest,
    ListTopUsersRequest, ListWorkersRequest, PingWorkersRequest, ProviderChoice, PurgeDeadLettersRequest, RegisterServiceRequest,
    ReplayDeadLettersRequest, RetentionRule, ServiceKind, Setting, Settings as SettingsMessage, TestProviderRequest, TopUsersBy,
    UnregisterServiceRequest, UpdateSettingsRequest, system_service_client::SystemServiceClient,
};

use crate::{
    cli::{
        DeadLetterFilterArgs, DeadLetterSelectionArgs, DeadLetters, KindArg, ProviderArgs, Services, Settings, Stats, TopByArg, Workers,
        WorkersCommand,
    },
    client::Client,
    context::Context,
    exit::Error,
    output::{self, Record},
    records,
};

const DEAD_LETTER_COLUMNS: &[&str] = &["id", "kind", "document_id", "filename", "error_code", "tries", "reason", "dead_at"];
const SETTING_COLUMNS: &[&str] = &["name", "value", "default_value", "source", "min", "max", "updated_at"];
const RULE_COLUMNS: &[&str] = &["label", "original_days", "document_days", "updated_at"];
const PROVIDER_COLUMNS: &[&str] = &["role", "kind", "url", "model", "api_key_set", "source", "updated_at"];
const SERVICE_COLUMNS: &[&str] = &["name", "kind", "target", "status", "latency", "error", "changed_at"];
const WORKER_COLUMNS: &[&str] = &[
    "id",
    "host",
    "pid",
    "version",
    "jobs_in_flight",
    "current_job",
    "last_seen_at",
    "stopped_at",
];
const TOP_USER_COLUMNS: &[&str] = &["rank", "email", "display_name", "value", "user_id"];

/// A run-time setting by its name in `Settings` (and `reset`): where
/// GetSettings answers it and where UpdateSettings takes a new value.
struct SettingField {
    name: &'static str,
    read: fn(&SettingsMessage) -> Option<&Setting>,
    write: fn(&mut UpdateSettingsRequest, i64),
}

/// Every setting folioctl can show and change; a new one is one line.
const SETTINGS: &[SettingField] = &[
    SettingField {
        name: "max_upload_bytes",
        read: |s| s.max_upload_bytes.as_ref(),
        write: |r, v| r.max_upload_bytes = Some(v),
    },
    SettingField {
        name: "quota_documents",
        read: |s| s.quota_documents.as_ref(),
        write: |r, v| r.quota_documents = Some(v),
    },
    SettingField {
        name: "quota_bytes",
        read: |s| s.quota_bytes.as_ref(),
        write: |r, v| r.quota_bytes = Some(v),
    },
    SettingField {
        name: "retention_original_days",
        read: |s| s.retention_original_days.as_ref(),
        write: |r, v| r.retention_original_days = Some(v),
    },
    SettingField {
        name: "retention_document_days",
        read: |s| s.retention_document_days.as_ref(),
        write: |r, v| r.retention_document_days = Some(v),
    },
    SettingField {
        name: "share_weight_admin",
        read: |s| s.share_weight_admin.as_ref(),
        write: |r, v| r.share_weight_admin = Some(v),
    },
    SettingField {
        name: "share_weight_member",
        read: |s| s.share_weight_member.as_ref(),
        write: |r, v| r.share_weight_member = Some(v),
    },
    SettingField {
        name: "max_waiting_per_owner",
        read: |s| s.max_waiting_per_owner.as_ref(),
        write: |r, v| r.max_waiting_per_owner = Some(v),
    },
];

/// The provider roles `settings reset` also takes.
const PROVIDER_ROLES: &[&str] = &["embedder", "reranker"];

fn provider_role(role: &str) -> Result<String, Error> {
    if PROVIDER_ROLES.contains(&role) {
        Ok(role.to_owned())
    } else {
        Err(Error::local(format!(
            "{role:?} is not a provider role; the roles are embedder, reranker"
        )))
    }
}

/// The choice the flags make (None without --kind).
fn provider_choice(args: ProviderArgs) -> Option<ProviderChoice> {
    let kind = args.kind?;
    Some(ProviderChoice {
        kind,
        url: args.url,
        model: args.model,
        api_key: std::env::var(&args.api_key_env).ok(),
    })
}

fn print_rules(ctx: &Context, settings: &SettingsMessage) {
    let rows = settings.retention_rules.iter().map(records::retention_rule).collect();
    ctx.out.list("retention_rules", rows, RULE_COLUMNS, "");
}

fn print_providers(ctx: &Context, settings: &SettingsMessage) {
    let rows = [("embedder", &settings.embedder), ("reranker", &settings.reranker)]
        .into_iter()
        .filter_map(|(role, p)| p.as_ref().map(|p| records::provider(role, p)))
        .collect();
    ctx.out.list("providers", rows, PROVIDER_COLUMNS, "");
}

fn setting_field(name: &str) -> Result<&'static SettingField, Error> {
    SETTINGS.iter().find(|f| f.name == name).ok_or_else(|| {
        let known: Vec<_> = SETTINGS.iter().map(|f| f.name).collect();
        Error::local(format!("no setting {name:?}; the settings are {}", known.join(", ")))
    })
}

fn print_settings(ctx: &Context, settings: &SettingsMessage) {
    let rows: Vec<Record> = SETTINGS
        .iter()
        .filter_map(|f| (f.read)(settings).map(|s| records::setting(f.name, s)))
        .collect();
    ctx.out.list("settings", rows, SETTING_COLUMNS, "");
}

/// What a `settings` command prints of the settings it read or changed.
enum View {
    Settings,
    Rules,
    Providers,
}

pub async fn settings(ctx: &Context, command: Settings) -> Result<(), Error> {
    let client = ctx.client().await?;
    let mut request = UpdateSettingsRequest::default();
    let (view, change) = match command {
        Settings::Get => (View::Settings, false),
        Settings::Rules => (View::Rules, false),
        Settings::Providers => (View::Providers, false),
        Settings::Set { assignments } => {
            for assignment in assignments {
                let (name, value) = assignment
                    .split_once('=')
                    .ok_or_else(|| Error::local(format!("{assignment:?} is not NAME=VALUE")))?;
                let field = setting_field(name.trim())?;
                let value: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::local(format!("{name}: {value:?} is not a whole number")))?;
                (field.write)(&mut request, value);
            }
            (View::Settings, true)
        }
        Settings::Reset { names } => {
            for name in names {
                let name = match provider_role(&name) {
                    Ok(role) => role,
                    Err(_) => setting_field(&name)?.name.to_owned(),
                };
                request.reset.push(name);
            }
            (View::Settings, true)
        }
        Settings::Retain {
            label,
            original_days,
            document_days,
        } => {
            request.set_retention_rules.push(RetentionRule {
                label,
                original_days,
                document_days,
                ..Default::default()
            });
            (View::Rules, true)
        }
        Settings::Unretain { label } => {
            request.remove_retention_rules.push(label);
            (View::Rules, true)
        }
        Settings::Provider { role, choice } => {
            let role = provider_role(&role)?;
            let choice = provider_choice(choice).ok_or_else(|| Error::local("--kind is needed to choose a provider"))?;
            if role == "embedder" {
                request.embedder = Some(choice);
            } else {
                request.reranker = Some(choice);
            }
            (View::Providers, true)
        }
        Settings::TestProvider { role, choice } => {
            let request = TestProviderRequest {
                role: provider_role(&role)?,
                candidate: provider_choice(choice),
            };
            let tested = client
                .call(async |channel| SystemServiceClient::new(channel).test_provider(request.clone()).await)
                .await?;
            ctx.out.one(records::provider_test(&tested));
            return if tested.ok {
                Ok(())
            } else {
                Err(Error::local(format!("the provider did not answer as needed: {}", tested.error)))
            };
        }
    };
    let settings = if change {
        client
            .call(async |channel| SystemServiceClient::new(channel).update_settings(request.clone()).await)
            .await?
    } else {
        client
            .call(async |channel| SystemServiceClient::new(channel).get_settings(GetSettingsRequest {}).await)
            .await?
    };
    match view {
        View::Settings => print_settings(ctx, &settings),
        View::Rules => print_rules(ctx, &settings),
        View::Providers => print_providers(ctx, &settings),
    }
    Ok(())
}

fn filter(args: DeadLetterFilterArgs) -> DeadLetterFilter {
    DeadLetterFilter {
        kind: args.kind,
        reason: args.reason,
        owner_id: args.owner,
        error_code: args.error_code,
        ..Default::default()
    }
}

fn selection(args: DeadLetterSelectionArgs) -> DeadLetterSelection {
    let filter = filter(args.filter);
    let filtered = filter != DeadLetterFilter::default();
    DeadLetterSelection {
        ids: args.ids,
        filter: filtered.then_some(filter),
        all: args.all,
    }
}

pub async fn dead_letters(ctx: &Context, command: DeadLetters) -> Result<(), Error> {
    let client = ctx.client().await?;
    let settled = match command {
        DeadLetters::List {
            filter: wanted,
            include_settled,
            page,
        } => {
            let wanted = filter(wanted);
            let request = ListDeadLettersRequest {
                page_size: page.page_size,
                page_token: page.page_token,
                filter: (wanted != DeadLetterFilter::default()).then_some(wanted),
                include_settled,
            };
            let listed = client
                .call(async |channel| SystemServiceClient::new(channel).list_dead_letters(request.clone()).await)
                .await?;
            let rows = listed.dead_letters.iter().map(records::dead_letter).collect();
            ctx.out.list("dead_letters", rows, DEAD_LETTER_COLUMNS, &listed.next_page_token);
            return Ok(());
        }
        DeadLetters::Replay(args) => {
            let request = ReplayDeadLettersRequest {
                selection: Some(selection(args)),
            };
            client
                .call(async |channel| SystemServiceClient::new(channel).replay_dead_letters(request.clone()).await)
                .await?
        }
        DeadLetters::Purge(args) => {
            let request = PurgeDeadLettersRequest {
                selection: Some(selection(args)),
            };
            client
                .call(async |channel| SystemServiceClient::new(channel).purge_dead_letters(request.clone()).await)
                .await?
        }
    };
    ctx.out.one(records::settlement(&settled));
    Ok(())
}

pub async fn stats(ctx: &Context, args: Stats) -> Result<(), Error> {
    let client = ctx.client().await?;
    let stats = client
        .call(async |channel| SystemServiceClient::new(channel).get_system_stats(GetSystemStatsRequest {}).await)
        .await?;
    let top = if args.top > 0 {
        let request = ListTopUsersRequest {
            by: match args.top_by {
                TopByArg::Documents => TopUsersBy::Documents,
                TopByArg::Bytes => TopUsersBy::Bytes,
                TopByArg::Activity => TopUsersBy::Activity,
            } as i32,
            since: args.since,
            until: None,
            limit: args.top,
        };
        client
            .call(async |channel| SystemServiceClient::new(channel).list_top_users(request).await)
            .await?
            .users
    } else {
        Vec::new()
    };
    let top: Vec<Record> = top.iter().enumerate().map(|(i, u)| records::top_user(i + 1, u)).collect();
    let record = records::system_stats(&stats);
    if ctx.out.json {
        let mut json = output::to_json(record);
        json["top_users"] = serde_json::Value::Array(top.into_iter().map(output::to_json).collect());
        ctx.out.json(&json);
        return Ok(());
    }
    let field = |name: &str| record.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    println!("workers alive  {}", field("workers_alive"));
    println!("live sessions  {}", field("live_sessions"));
    let rows = |value: serde_json::Value, columns: &[&str]| -> Vec<Vec<String>> {
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|item| columns.iter().map(|c| output::cell(&item[*c])).collect())
                    .collect()
            })
            .unwrap_or_default()
    };
    let heading = |columns: &[&str]| columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>();
    println!("\nusers");
    print!(
        "{}",
        output::table(
            &heading(&["role", "active", "users"]),
            &rows(field("users"), &["role", "active", "users"])
        )
    );
    let documents = field("documents");
    println!(
        "\ndocuments  {} ({} bytes, {} chunks)",
        documents["total_documents"], documents["total_bytes"], documents["total_chunks"]
    );
    let states = ["state", "documents", "bytes", "chunks"];
    print!("{}", output::table(&heading(&states), &rows(documents["states"].clone(), &states)));
    let stages = ["stage", "p50_ms", "p95_ms", "samples"];
    print!("{}", output::table(&heading(&stages), &rows(documents["stages"].clone(), &stages)));
    let days = ["date", "uploads", "failures"];
    let recent: Vec<_> = rows(field("days"), &days).into_iter().rev().take(7).rev().collect();
    println!("\nlast 7 days");
    print!("{}", output::table(&heading(&days), &recent));
    let failures = ["error_code", "documents"];
    println!("\nfailures by code");
    print!(
        "{}",
        output::table(&heading(&failures), &rows(field("failures_by_code"), &failures))
    );
    if !top.is_empty() {
        println!("\ntop users by {:?}", args.top_by);
        let top: Vec<Vec<String>> = top
            .iter()
            .map(|r| {
                TOP_USER_COLUMNS
                    .iter()
                    .map(|c| r.iter().find(|(k, _)| k == c).map(|(_, v)| output::cell(v)).unwrap_or_default())
                    .collect()
            })
            .collect();
        print!("{}", output::table(&heading(TOP_USER_COLUMNS), &top));
    }
    Ok(())
}

pub async fn services(ctx: &Context, command: Services) -> Result<(), Error> {
    let client = ctx.client().await?;
    match command {
        Services::List => list_services(ctx, &client).await?,
        Services::Register { name, target, kind } => {
            let request = RegisterServiceRequest {
                name,
                kind: match kind {
                    KindArg::Http => ServiceKind::Http,
                    KindArg::Grpc => ServiceKind::Grpc,
                } as i32,
                target,
            };
            let service = client
                .call(async |channel| SystemServiceClient::new(channel).register_service(request.clone()).await)
                .await?;
            ctx.out.one(records::service(&service));
        }
        Services::Unregister { name } => {
            client
                .call(async |channel| {
                    SystemServiceClient::new(channel)
                        .unregister_service(UnregisterServiceRequest { name: name.clone() })
                        .await
                })
                .await?;
            ctx.out.note(&format!("unregistered {name}"));
            if ctx.out.json {
                ctx.out.json(&serde_json::json!({ "unregistered": name }));
            }
        }
    }
    Ok(())
}

async fn list_services(ctx: &Context, client: &Client) -> Result<(), Error> {
    let listed = client
        .call(async |channel| SystemServiceClient::new(channel).list_services(ListServicesRequest {}).await)
        .await?;
    let rows = listed.services.iter().map(records::service).collect();
    ctx.out.list("services", rows, SERVICE_COLUMNS, "");
    Ok(())
}

pub async fn workers(ctx: &Context, args: Workers) -> Result<(), Error> {
    let client = ctx.client().await?;
    match args.command.unwrap_or(WorkersCommand::List { include_stopped: false }) {
        WorkersCommand::List { include_stopped } => {
            let mut workers = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = ListWorkersRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    include_stopped,
                };
                let page = client
                    .call(async |channel| SystemServiceClient::new(channel).list_workers(request.clone()).await)
                    .await?;
                workers.extend(page.workers.iter().map(records::worker));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            ctx.out.list("workers", workers, WORKER_COLUMNS, "");
        }
        WorkersCommand::Ping { wait } => {
            let request = PingWorkersRequest {
                wait: Some(prost_types::Duration {
                    seconds: i64::from(wait.min(60)),
                    nanos: 0,
                }),
            };
            let ping = client
                .call(async |channel| SystemServiceClient::new(channel).ping_workers(request).await)
                .await?;
            ctx.out.one(records::ping(&ping));
        }
    }
    Ok(())
}
