//! A real OpenID provider for the sign-in tests: the npm package
//! `oidc-provider` (installed by scripts/test into tests/oidc/node_modules) run
//! by Node.js from `tests/oidc/provider.mjs`, one child process per test on a
//! free port. [`OidcProvider::authorize`] plays the user's browser: it follows
//! the authorization URL, fills in the provider's login and consent forms
//! (keeping its cookies) and stops at the redirect back to folio, returning
//! its `code` and `state`.

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use crate::helpers::eventually;

/// A running provider.
pub struct OidcProvider {
    _child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub issuer: String,
}

/// A client registered at the provider.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub redirect_uri: String,
}

impl OidcProvider {
    /// Starts a provider knowing `clients`; with `clock_behind` (`-1h`), its
    /// clock that far in the past through libfaketime (so its tokens have
    /// expired when issued).
    pub async fn start(clients: &[Client], clock_behind: Option<&str>) -> OidcProvider {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed in {} (scripts/test installs it)",
            dir.display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .expect("address")
            .port();
        let clients: Vec<serde_json::Value> = clients
            .iter()
            .map(|c| serde_json::json!({"client_id": c.id, "client_secret": c.secret, "redirect_uris": [c.redirect_uri]}))
            .collect();
        let mut command = tokio::process::Command::new("node");
        if let Some(offset) = clock_behind {
            // libfaketime preloaded into node itself (the faketime wrapper
            // would fork, and its child outlive the test).
            command.env("LD_PRELOAD", libfaketime()).env("FAKETIME", offset);
        }
        let child = command
            .arg(dir.join("provider.mjs"))
            .arg(port.to_string())
            .arg(serde_json::Value::from(clients).to_string())
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let issuer = format!("http://127.0.0.1:{port}");
        let http = browser();
        eventually(Duration::from_secs(30), "the OpenID provider answers", || {
            let request = http.get(format!("{issuer}/.well-known/openid-configuration")).send();
            async move { request.await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        OidcProvider { _child: child, issuer }
    }

    /// Signs in as `login` (the account's email) at `authorization_url`,
    /// filling in the login and consent forms, and returns the `code` and
    /// `state` the provider sends back to `redirect_uri`.
    pub async fn authorize(&self, authorization_url: &str, login: &str, redirect_uri: &str) -> (String, String) {
        let http = browser();
        let mut cookies: BTreeMap<String, String> = BTreeMap::new();
        let mut next = (reqwest::Method::GET, authorization_url.to_owned(), Vec::<(String, String)>::new());
        for _ in 0..20 {
            let (method, url, form) = next;
            let cookie = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
            let mut request = http.request(method, &url).header("cookie", cookie);
            if !form.is_empty() {
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                request = request.header("content-type", "application/x-www-form-urlencoded").body(body);
            }
            let response = request.send().await.expect("the provider answers");
            for set in response.headers().get_all("set-cookie") {
                let pair = set.to_str().unwrap_or_default().split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    if value.is_empty() {
                        cookies.remove(name);
                    } else {
                        cookies.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
            if let Some(location) = response.headers().get("location") {
                let location = location.to_str().expect("a location").to_owned();
                if location.starts_with(redirect_uri) {
                    let query: BTreeMap<String, String> = reqwest::Url::parse(&location)
                        .expect("the redirect back")
                        .query_pairs()
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    let code = query.get("code").unwrap_or_else(|| panic!("no code in {location}")).clone();
                    return (code, query["state"].clone());
                }
                let absolute = if location.starts_with('/') {
                    format!("{}{location}", self.issuer)
                } else {
                    location
                };
                next = (reqwest::Method::GET, absolute, Vec::new());
                continue;
            }
            let page = response.text().await.expect("a page");
            let action = attribute(&page, "<form", "action").unwrap_or_else(|| panic!("no form on the page:\n{page}"));
            let mut fields: Vec<(String, String)> = page
                .match_indices("<input")
                .filter_map(|(at, _)| {
                    let tag = &page[at..=at + page[at..].find('>')?];
                    let name = attribute(tag, "<input", "name")?;
                    let value = attribute(tag, "<input", "value").unwrap_or_default();
                    Some((name, value))
                })
                .collect();
            for (name, value) in &mut fields {
                match name.as_str() {
                    "login" => *value = login.to_owned(),
                    "password" => *value = "any password: the development form takes it".to_owned(),
                    _ => {}
                }
            }
            next = (reqwest::Method::POST, action, fields);
        }
        panic!("the sign-in did not come back to {redirect_uri}");
    }
}

/// Debian's libfaketime (the package faketime, which scripts/test installs).
fn libfaketime() -> PathBuf {
    std::fs::read_dir("/usr/lib")
        .expect("/usr/lib")
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.is_file())
        .expect("libfaketime (scripts/test installs the package faketime)")
}

/// An HTTP client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    folio_core::startup::install_tls_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client")
}

/// The value of `name="…"` in the first `tag` of `html`.
fn attribute(html: &str, tag: &str, name: &str) -> Option<String> {
    let start = html.find(tag)?;
    let end = start + html[start..].find('>')?;
    let element = &html[start..end];
    let key = format!("{name}=\"");
    let from = element.find(&key)? + key.len();
    let to = from + element[from..].find('"')?;
    Some(element[from..to].replace("&amp;", "&"))
}

/// `application/x-www-form-urlencoded` encoding of one name or value.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
