//! Starting folio's servers for a test: in the test process
//! ([`TestEnv::spawn_api`], [`TestEnv::spawn_worker`]) or as the built binaries
//! ([`TestEnv::command`], [`spawn_api_process`]) where exit codes, signals or a
//! process's own memory are what is measured.

use std::{path::PathBuf, time::Duration};

use folio_proto::v1::{LoginRequest, auth_service_client::AuthServiceClient};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;

use crate::{
    clients::ApiHandle,
    environment::{ADMIN_EMAIL, ADMIN_PASSWORD, TestEnv},
    helpers::health_status,
};

impl TestEnv {
    /// Starts an api-server in this process, on port 0.
    pub async fn spawn_api(&self) -> ApiHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config();
        let task = tokio::spawn(folio_api::run(config, listener, async {
            let _ = stopped.await;
        }));
        let handle = ApiHandle {
            addr,
            stop: Some(stop),
            task,
        };
        handle.wait_serving().await;
        handle
    }

    /// Starts a worker in this process.
    pub fn spawn_worker(&self) -> WorkerHandle {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(folio_worker::run(self.config(), async {
            let _ = stopped.await;
        }));
        WorkerHandle { stop: Some(stop), task }
    }

    /// A command for one of folio's binaries with this env's variables (and no
    /// others from the test process, so nothing leaks in).
    pub fn command(&self, binary: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(binary_path(binary));
        command
            .env_clear()
            .envs(&self.vars)
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        // A `.env` in the working directory would leak settings in: run elsewhere.
        command.current_dir(std::env::temp_dir()).kill_on_drop(true);
        command
    }
}

/// A worker running in the test process.
pub struct WorkerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl WorkerHandle {
    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("worker task")
    }
}

/// A folio-api process (the built binary) serving on a free port.
pub struct ApiProcess {
    pub child: tokio::process::Child,
    pub url: String,
    pub channel: Channel,
    /// The bootstrap admin's access token.
    pub admin_token: String,
}

/// Starts folio-api as its own process with `env`'s settings, waits until it
/// is SERVING and logs in as the bootstrap admin. The benchmarks use it.
pub async fn spawn_api_process(env: &TestEnv) -> ApiProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = env
        .command("folio-api")
        .env("FOLIO_GRPC_ADDR", &addr)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("folio-api");
    let url = format!("http://{addr}");
    let channel = loop {
        if health_status(&url, "").await == Some(tonic_health::pb::health_check_response::ServingStatus::Serving) {
            break Channel::from_shared(url.clone()).expect("url").connect().await.expect("connect");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let admin_token = AuthServiceClient::new(channel.clone())
        .login(LoginRequest {
            email: ADMIN_EMAIL.into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .expect("admin login")
        .into_inner()
        .access_token;
    ApiProcess {
        child,
        url,
        channel,
        admin_token,
    }
}

/// The path of a workspace binary, built by `cargo build --bins` (scripts/test
/// does that before the suite).
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // Test executables live in target/<profile>/deps, bench binaries in target/<profile>.
    let mut dir = exe.parent().expect("executable directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first (scripts/test does)",
        path.display()
    );
    path
}
