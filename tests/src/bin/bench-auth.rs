//! Identity benchmarks, printed as a Markdown table (BENCHMARKS.md keeps the
//! figures). Run with `scripts/bench auth` (release build, real servers):
//!
//! - token verifications per second on one core (in process);
//! - `Login` p50/p99 with the production argon2 parameters, one caller;
//! - `WhoAmI` p50/p99 and calls/s with 32 concurrent callers;
//! - folio-api's resident memory before and at its peak during a flood of 100
//!   concurrent logins.

use std::{process::Stdio, time::Duration};

use folio_auth::{
    Role,
    tokens::{TokenIssuer, TokenKeys},
};
use folio_proto::v1::{LoginRequest, WhoAmIRequest, auth_service_client::AuthServiceClient};
use folio_tests::{
    ADMIN_EMAIL, ADMIN_PASSWORD, Bearer, TestEnv,
    bench::{gather_latencies, ms, percentile},
};
use tokio::time::Instant;
use tonic::{service::interceptor::InterceptedService, transport::Channel};
use uuid::Uuid;

/// Resident and peak resident memory of `pid` in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn verify_rate() -> f64 {
    let issuer = TokenIssuer {
        keys: TokenKeys::from_paserks(&[TokenKeys::generate_secret()]).unwrap(),
        issuer: "folio".into(),
        audience: "folio".into(),
        ttl: Duration::from_secs(900),
    };
    let (token, _) = issuer.issue(Uuid::new_v4(), Role::Member, Uuid::new_v4());
    for _ in 0..1000 {
        issuer.verify(&token).unwrap();
    }
    let n = 20_000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(issuer.verify(std::hint::black_box(&token)).unwrap());
    }
    f64::from(n) / started.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rate = tokio::task::spawn_blocking(verify_rate).await.unwrap();

    let mut env = TestEnv::new().await;
    env.set("FOLIO_RATE_LIMIT_ADMIN", "1000000");
    env.set("FOLIO_RATE_LIMIT_PEER", "1000000");
    env.set("FOLIO_LOG_FORMAT", "json");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut api = env
        .command("folio-api")
        .env("FOLIO_GRPC_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .envs(std::env::var("BENCH_MALLOC_ARENA_MAX").ok().map(|v| ("MALLOC_ARENA_MAX", v)))
        .stdout(Stdio::null())
        .spawn()
        .expect("start folio-api");
    let pid = api.id().unwrap();
    let url = format!("http://{addr}");
    let channel = loop {
        if let Ok(channel) = Channel::from_shared(url.clone()).unwrap().connect().await
            && folio_tests::health_status(&url, "").await == Some(tonic_health::pb::health_check_response::ServingStatus::Serving)
        {
            break channel;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rss_started = memory(pid).0;
    let mut auth = AuthServiceClient::new(channel.clone());
    let login = || LoginRequest {
        email: ADMIN_EMAIL.into(),
        password: ADMIN_PASSWORD.into(),
    };

    // Login, one caller.
    let mut logins = Vec::new();
    for _ in 0..60 {
        let started = Instant::now();
        auth.login(login()).await.unwrap();
        logins.push(started.elapsed());
    }
    logins.sort();
    let rss_after_logins = memory(pid).0;
    let token = auth.login(login()).await.unwrap().into_inner().access_token;

    // WhoAmI, 32 callers.
    let per_caller = 300;
    let started = Instant::now();
    let callers = (0..32).map(|_| {
        let mut client = AuthServiceClient::new(InterceptedService::new(channel.clone(), Bearer::new(&token)));
        tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_caller);
            for _ in 0..per_caller {
                let t = Instant::now();
                client.who_am_i(WhoAmIRequest {}).await.unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let whoami = gather_latencies(callers).await;
    let whoami_rate = whoami.len() as f64 / started.elapsed().as_secs_f64();

    // Login flood, 100 callers at once, each logging in 3 times.
    let (rss_before, _) = memory(pid);
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..600 {
            peak = peak.max(memory(pid).0);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    let started = Instant::now();
    let flood = (0..100).map(|_| {
        let mut client = AuthServiceClient::new(channel.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for _ in 0..3 {
                let t = Instant::now();
                client
                    .login(LoginRequest {
                        email: ADMIN_EMAIL.into(),
                        password: ADMIN_PASSWORD.into(),
                    })
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let flood = gather_latencies(flood).await;
    let flood_time = started.elapsed();
    sampler.abort();
    let (_, hwm) = memory(pid);

    println!("| measure | figure |");
    println!("|---|---|");
    println!("| token verifications per second, one core | {rate:.0} |");
    println!(
        "| `Login` p50 / p99, one caller, m=19456 KiB t=2 p=1 | {} / {} |",
        ms(percentile(&logins, 0.5)),
        ms(percentile(&logins, 0.99))
    );
    println!(
        "| `WhoAmI` p50 / p99, 32 concurrent callers ({} calls) | {} / {} |",
        whoami.len(),
        ms(percentile(&whoami, 0.5)),
        ms(percentile(&whoami, 0.99))
    );
    println!("| `WhoAmI` calls per second, 32 callers | {whoami_rate:.0} |");
    println!(
        "| login flood: 100 callers × 3 logins, all done in | {:.2} s (p50 {} / p99 {}) |",
        flood_time.as_secs_f64(),
        ms(percentile(&flood, 0.5)),
        ms(percentile(&flood, 0.99))
    );
    println!(
        "| folio-api resident memory: started / after 60 logins / after the WhoAmI run / peak in the flood (VmHWM) | {} / {} / {} / {} MiB |",
        rss_started / 1024,
        rss_after_logins / 1024,
        rss_before / 1024,
        hwm / 1024
    );

    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = api.wait().await;
    env.cleanup().await;
}
