//! Starting folio's servers for a test: in the test process
//! ([`TestEnv::spawn_api`], [`TestEnv::spawn_worker`]) or as the built binaries
//! ([`TestEnv::command`], [`spawn_api_process`]) where exit codes, signals or a
//! process's own memory are what is measured; and waiting for an in-process
//! api-server to serve and stopping it.

use std::time::Duration;

use folio_proto::v1::{LoginRequest, auth_service_client::AuthServiceClient};
use tokio::{io::AsyncBufReadExt as _, net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{
    clients::ApiHandle,
    environment::{ADMIN_EMAIL, ADMIN_PASSWORD, TestEnv, binary_path},
    helpers::{eventually, health_status},
};

/// The lines a process has written to its standard output so far.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Logs {
    /// The lines written so far that contain `needle`.
    pub fn containing(&self, needle: &str) -> Vec<String> {
        let lines = self.0.lock().expect("logs lock");
        lines.iter().filter(|line| line.contains(needle)).cloned().collect()
    }
}

/// How long [`spawn_api_process`] waits for the process to be SERVING. Start-up
/// itself gives up on a dependency after `FOLIO_STARTUP_TIMEOUT_SECS` (10 s in a
/// test env), so this bound is only reached by a process that hangs.
const API_PROCESS_START: Duration = Duration::from_secs(30);

impl TestEnv {
    /// Starts an api-server in this process, on port 0.
    pub async fn spawn_api(&self) -> ApiHandle {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.api_config();
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

    /// Starts one of folio's binaries with this env's variables and `extra`
    /// ones, logging JSON, and waits until a line of its standard output
    /// contains `ready`. Its output is drained from then on.
    pub async fn start_process(&self, binary: &str, extra: &[(&str, String)], ready: &str) -> tokio::process::Child {
        self.start(binary, extra, ready, None).await
    }

    /// [`Self::start_process`], keeping every line the process writes in the
    /// returned [`Logs`].
    pub async fn start_process_logged(&self, binary: &str, extra: &[(&str, String)], ready: &str) -> (tokio::process::Child, Logs) {
        let logs = Logs::default();
        (self.start(binary, extra, ready, Some(logs.clone())).await, logs)
    }

    /// An api-server process on a free port, serving, with its [`Logs`] and
    /// its address.
    pub async fn start_api_logged(&self) -> (tokio::process::Child, Logs, String) {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("its address")
            .to_string();
        let (child, logs) = self
            .start_process_logged("folio-api", &[("FOLIO_GRPC_ADDR", addr.clone())], "folio-api serving")
            .await;
        (child, logs, addr)
    }

    async fn start(&self, binary: &str, extra: &[(&str, String)], ready: &str, logs: Option<Logs>) -> tokio::process::Child {
        let mut command = self.command(binary);
        command
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FOLIO_LOG_FORMAT", "json");
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = ready.to_owned();
        let keep = move |line: &str| {
            if let Some(logs) = &logs {
                logs.0.lock().expect("logs lock").push(line.to_owned());
            }
        };
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.expect("read log") {
                keep(&line);
                if line.contains(&ready) {
                    break;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{binary} did not log {ready:?}"));
        // Keep draining the pipe so the child never blocks on a full one.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                keep(&line);
            }
        });
        child
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

impl ApiHandle {
    /// Waits until health says SERVING.
    pub async fn wait_serving(&self) {
        let url = self.url();
        eventually(Duration::from_secs(20), "api-server SERVING", || {
            let url = url.clone();
            async move { (health_status(&url, "").await == Some(ServingStatus::Serving)).then_some(()) }
        })
        .await;
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("api task")
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
///
/// Panics if the process exits first (with its exit status) or is not SERVING
/// within 30 s.
pub async fn spawn_api_process(env: &TestEnv) -> ApiProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("address")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = env
        .command("folio-api")
        .env("FOLIO_GRPC_ADDR", &addr)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("folio-api");
    let url = format!("http://{addr}");
    eventually(API_PROCESS_START, &format!("folio-api at {addr} to be SERVING"), || {
        // A process that exited will never serve: say how it ended rather than
        // wait out the bound.
        if let Some(status) = child.try_wait().expect("folio-api's status") {
            panic!("folio-api at {addr} exited with {status} before it was SERVING (its stderr is above)");
        }
        let url = url.clone();
        async move { (health_status(&url, "").await == Some(ServingStatus::Serving)).then_some(()) }
    })
    .await;
    let channel = Channel::from_shared(url.clone()).expect("url").connect().await.expect("connect");
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
