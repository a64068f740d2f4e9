//! Servers of a test's own, for tests that stop, kill and restart them: a
//! RabbitMQ node and a Redis server on free ports, with their own node name
//! and data directory, never the machine's (which other tests share).
//!
//! The RabbitMQ node is Debian's `rabbitmq-server`, run as the `rabbitmq`
//! user (its scripts switch to it), so its directory is handed to that user.
//! Its durable queues live in the data directory and survive a restart.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

use crate::helpers::eventually;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn accepts(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill").args([signal, &pid.to_string()]).status();
}

fn sigkill(pid: u32) {
    signal(pid, "-KILL");
}

/// A RabbitMQ node of the test's own.
pub struct RabbitNode {
    pub port: u16,
    dist_port: u16,
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl RabbitNode {
    /// Starts a node whose `rabbitmq.conf` adds `config` (lines such as
    /// `consumer_timeout = 4000`), and waits until it takes connections.
    pub async fn start(config: &str) -> Self {
        Self::start_with(config, "").await
    }

    /// [`Self::start`], adding `rabbit` application settings that only the
    /// advanced config takes (Erlang terms such as `{name, value}`).
    pub async fn start_with(config: &str, advanced: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let dir = std::env::temp_dir().join(format!("folio-rabbit-{id}"));
        std::fs::create_dir_all(dir.join("mnesia")).expect("node directory");
        std::fs::create_dir_all(dir.join("log")).expect("node log directory");
        let port = free_port();
        let dist_port = free_port();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = {port}\nloopback_users = none\ncollect_statistics_interval = 500\n{config}\n"),
        )
        .expect("rabbitmq.conf");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        // Quorum queues report their counts every tick (5 s by default): a
        // test that reads them wants them fresh.
        let advanced = if advanced.is_empty() {
            String::new()
        } else {
            format!(", {advanced}")
        };
        std::fs::write(
            dir.join("advanced.config"),
            format!("[{{rabbit, [{{quorum_tick_interval, 250}}{advanced}]}}].\n"),
        )
        .expect("advanced.config");
        let status = std::process::Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown the node's directory to rabbitmq");
        let mut node = RabbitNode {
            port,
            dist_port,
            name: format!("folio-{id}@localhost"),
            dir,
            child: None,
        };
        node.boot().await;
        node
    }

    /// `amqp://` URL of the node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn boot(&mut self) {
        let dir = &self.dir;
        let child = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.name)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start rabbitmq-server (Debian's rabbitmq-server package)");
        self.child = Some(child);
        let port = self.port;
        let url = self.url();
        eventually(Duration::from_secs(90), "the test's RabbitMQ node to start", || {
            let url = url.clone();
            async move {
                if !accepts(port).await {
                    return None;
                }
                let connection = lapin::Connection::connect(&url, Default::default()).await.ok()?;
                let _ = connection.close(200, "up".into()).await;
                Some(())
            }
        })
        .await;
    }

    /// Messages of `queue` ready and delivered but not yet acked, as the
    /// node counts them (`rabbitmqctl list_queues`); None if it has no such
    /// queue or did not answer.
    pub async fn queue_counts(&self, queue: &str) -> Option<(u64, u64)> {
        let output = Command::new("rabbitmqctl")
            .args([
                "-n",
                &self.name,
                "-q",
                "list_queues",
                "--no-table-headers",
                "name",
                "messages_ready",
                "messages_unacknowledged",
            ])
            .output()
            .await
            .ok()?;
        String::from_utf8_lossy(&output.stdout).lines().find_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == queue).then_some(())?;
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
    }

    /// The messages `queue` holds ready and its consumers (a passive
    /// declare: at once, unlike [`Self::queue_counts`]).
    pub async fn ready_and_consumers(&self, queue: &str) -> (u32, u32) {
        crate::helpers::passive_counts(&self.url(), queue).await
    }

    /// Waits until `queue` holds `counts` (ready, unacked): the node's
    /// statistics lag the queue by up to half a second.
    pub async fn queue_holds(&self, queue: &str, counts: (u64, u64)) {
        eventually(Duration::from_secs(10), &format!("{queue} holding {counts:?}"), || async move {
            (self.queue_counts(queue).await == Some(counts)).then_some(())
        })
        .await;
    }

    /// Runs `rabbitmqctl` against the node with `args`, panicking if it fails.
    pub async fn ctl(&self, args: &[&str]) {
        let output = Command::new("rabbitmqctl")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .await
            .expect("rabbitmqctl");
        assert!(
            output.status.success(),
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The names of the node's client connections ("peer -> node" addresses):
    /// a client that reconnected shows up under a new name.
    pub async fn connections(&self) -> Vec<String> {
        let output = Command::new("rabbitmqctl")
            .args(["-n", &self.name, "-q", "list_connections", "--no-table-headers", "name"])
            .output()
            .await
            .expect("rabbitmqctl list_connections");
        let mut names: Vec<String> = String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect();
        names.sort();
        names
    }

    /// Stops the node cleanly (`rabbitmqctl stop`), as an operator would.
    pub async fn stop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.name, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        self.reap().await;
    }

    /// Kills the node's Erlang VM with SIGKILL, as a crash would.
    pub async fn kill(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            sigkill(pid.trim().parse().unwrap_or(0));
        }
        if let Some(child) = &self.child
            && let Some(pid) = child.id()
        {
            sigkill(pid);
        }
        self.reap().await;
    }

    /// Freezes the node's Erlang VM (SIGSTOP): connections stay open and
    /// nothing answers, as a broker stalled on a full disk or a long GC.
    pub fn freeze(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            signal(pid.trim().parse().unwrap_or(0), "-STOP");
        }
    }

    /// Lets a frozen node go on (SIGCONT).
    pub fn thaw(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            signal(pid.trim().parse().unwrap_or(0), "-CONT");
        }
    }

    /// Starts the node again on the same ports and data.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    async fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
        }
        let port = self.port;
        eventually(Duration::from_secs(30), "the test's RabbitMQ node to stop", || async move {
            (!accepts(port).await).then_some(())
        })
        .await;
    }
}

impl Drop for RabbitNode {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-n", &self.name, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pid")) {
            sigkill(pid.trim().parse().unwrap_or(0));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server of the test's own that keeps nothing on disk.
pub struct RedisNode {
    pub port: u16,
    child: Option<Child>,
}

impl RedisNode {
    pub async fn start() -> Self {
        let mut node = RedisNode {
            port: free_port(),
            child: None,
        };
        node.boot().await;
        node
    }

    /// `redis://` URL of the server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn boot(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let port = self.port;
        eventually(Duration::from_secs(30), "the test's Redis to start", || async move {
            accepts(port).await.then_some(())
        })
        .await;
    }

    /// Kills the server and starts it again, empty, on the same port.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.boot().await;
    }
}

/// A PostgreSQL primary and a streaming replica of it, of the test's own:
/// Debian's server binaries (with the machine's extensions) in a temporary
/// directory, run as the `postgres` user (the server refuses root), the
/// replica made with `pg_basebackup -R` and replaying over streaming
/// replication. Both stop when this is dropped.
pub struct PostgresPair {
    pub primary_port: u16,
    pub replica_port: u16,
    dir: PathBuf,
    primary: Option<Child>,
    replica: Option<Child>,
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id").args([flag, "postgres"]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("the postgres user")
    };
    (id("-u"), id("-g"))
}

/// The newest installed server's program `name`.
fn postgres_program(name: &str) -> PathBuf {
    let root = PathBuf::from("/usr/lib/postgresql");
    let newest = std::fs::read_dir(&root)
        .expect("/usr/lib/postgresql (scripts/lib.sh installs the server)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .expect("a PostgreSQL version");
    root.join(newest.to_string()).join("bin").join(name)
}

impl PostgresPair {
    /// Starts the primary, copies it into a replica, starts the replica, and
    /// waits until both take connections.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let dir = std::env::temp_dir().join(format!("folio-postgres-{id}"));
        std::fs::create_dir_all(&dir).expect("cluster directory");
        let (uid, gid) = postgres_user();
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the cluster directory");
        let workdir = dir.clone();
        let as_postgres = |program: &str| {
            let mut command = Command::new(postgres_program(program));
            command
                .uid(uid)
                .gid(gid)
                .env("LC_ALL", "C.UTF-8")
                .current_dir(&workdir)
                .stdin(Stdio::null());
            command
        };
        let primary_dir = dir.join("primary");
        let status = as_postgres("initdb")
            .args(["-D".as_ref(), primary_dir.as_os_str()])
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .status()
            .await
            .expect("initdb");
        assert!(status.success(), "initdb failed");
        let mut pair = PostgresPair {
            primary_port: free_port(),
            replica_port: free_port(),
            dir,
            primary: None,
            replica: None,
        };
        pair.primary = Some(pair.serve(as_postgres("postgres"), &primary_dir, pair.primary_port).await);
        let replica_dir = pair.dir.join("replica");
        let status = as_postgres("pg_basebackup")
            .args(["-D".as_ref(), replica_dir.as_os_str()])
            .args(["-h", "127.0.0.1", "-p", &pair.primary_port.to_string(), "-U", "postgres"])
            .args(["-R", "-X", "stream", "--no-sync"])
            .status()
            .await
            .expect("pg_basebackup");
        assert!(status.success(), "pg_basebackup failed");
        pair.replica = Some(pair.serve(as_postgres("postgres"), &replica_dir, pair.replica_port).await);
        pair
    }

    /// Runs a server on `data` and `port` until it takes connections.
    async fn serve(&self, mut command: Command, data: &std::path::Path, port: u16) -> Child {
        let child = command
            .args(["-D".as_ref(), data.as_os_str()])
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "wal_level=replica", "-c", "max_wal_senders=4"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start postgres");
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        eventually(Duration::from_secs(60), "the test's PostgreSQL to take connections", || {
            let url = url.clone();
            async move {
                use diesel_async::AsyncConnection as _;
                diesel_async::AsyncPgConnection::establish(&url).await.ok().map(|_| ())
            }
        })
        .await;
        child
    }

    /// The URL of database `name` on the primary.
    pub fn primary_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.primary_port)
    }

    /// The URL of database `name` on the replica.
    pub fn replica_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.replica_port)
    }
}

impl Drop for PostgresPair {
    fn drop(&mut self) {
        for child in [self.replica.take(), self.primary.take()].into_iter().flatten() {
            if let Some(pid) = child.id() {
                // Immediate shutdown: nothing here is kept.
                signal(pid, "-QUIT");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
