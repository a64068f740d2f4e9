//! A real SMTP server for the email tests: Python's aiosmtpd (from PyPI,
//! installed by scripts/test), one child process per test on a free port,
//! delivering into a Maildir the test reads. folio's real SMTP client
//! (lettre) talks to it; the test reads the delivered messages from disk,
//! decoding them as any mail reader would (quoted-printable or base64).

use std::{path::PathBuf, process::Stdio, time::Duration};

use base64::Engine as _;

use crate::helpers::eventually;

/// A running SMTP server and its Maildir.
pub struct SmtpServer {
    _child: tokio::process::Child,
    pub port: u16,
    dir: PathBuf,
}

/// A delivered message, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: String,
    pub from: String,
    pub subject: String,
    pub body: String,
}

impl Mail {
    /// The token a verification or reset email carries (after `token=`).
    pub fn token(&self) -> String {
        let start = self.body.find("token=").unwrap_or_else(|| panic!("no token in {self:?}")) + "token=".len();
        self.body[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }
}

impl SmtpServer {
    /// Starts the server and waits until it takes connections.
    pub async fn start() -> SmtpServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("address")
            .port();
        let dir = std::env::temp_dir().join(format!("folio-mail-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("the maildir's folder");
        let child = tokio::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(dir.join("Maildir"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs aiosmtpd)");
        eventually(Duration::from_secs(30), "the SMTP server takes connections", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
        })
        .await;
        SmtpServer { _child: child, port, dir }
    }

    /// `FOLIO_SMTP_URL` for this server (plain SMTP, as a local relay).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message delivered so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.dir.join("Maildir").join(sub)).ok())
            .flatten()
            .filter_map(|entry| entry.ok())
            .map(|entry| {
                (
                    entry.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH),
                    entry.path(),
                )
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .map(|raw| parse(&raw))
            .collect()
    }

    /// Waits for a message to `to` whose subject contains `subject`.
    pub async fn wait_for(&self, to: &str, subject: &str) -> Mail {
        eventually(
            Duration::from_secs(30),
            &format!("an email to {to} about {subject:?}"),
            || async move {
                self.messages()
                    .into_iter()
                    .find(|mail| mail.to.contains(to) && mail.subject.contains(subject))
            },
        )
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A single-part text message: its headers (unfolded) and its body decoded.
fn parse(raw: &str) -> Mail {
    let raw = raw.replace("\r\n", "\n");
    let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
    let unfolded = head.replace("\n ", " ").replace("\n\t", " ");
    let header = |name: &str| {
        unfolded
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let body = match header("Content-Transfer-Encoding").to_ascii_lowercase().as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8_lossy(&base64::engine::general_purpose::STANDARD.decode(compact).expect("a base64 body")).into_owned()
        }
        _ => body.to_owned(),
    };
    Mail {
        to: header("To"),
        from: header("From"),
        subject: header("Subject"),
        body,
    }
}

/// RFC 2045 quoted-printable: soft line breaks and `=XX` escapes.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len() + 1
            && let Some(byte) = joined.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
