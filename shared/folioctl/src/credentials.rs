//! The saved sessions: `credentials.json` in the config directory, one entry
//! per server URL, readable by its owner only (mode 0600, directory 0700),
//! since a refresh token is as good as a password until it expires. Written
//! to a temporary file and renamed, so a crash never leaves half a file.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::exit::Error;

/// One server's session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Saved {
    pub email: String,
    pub access_token: String,
    pub access_expires_at: Option<DateTime<Utc>>,
    pub refresh_token: String,
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// When the session was received, which with `access_expires_at` gives
    /// the access token's lifetime (absent in files from before it was kept).
    #[serde(default)]
    pub saved_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    servers: BTreeMap<String, Saved>,
}

/// The credentials file of one config directory.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(config_dir: &Path) -> Self {
        Store {
            path: config_dir.join("credentials.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The session saved for `server`, if any.
    pub fn load(&self, server: &str) -> Result<Option<Saved>, Error> {
        Ok(self.read()?.servers.remove(server))
    }

    /// Saves (or, with `None`, forgets) the session for `server`.
    pub fn save(&self, server: &str, saved: Option<Saved>) -> Result<(), Error> {
        let mut file = self.read()?;
        match saved {
            Some(saved) => file.servers.insert(server.to_owned(), saved),
            None => file.servers.remove(server),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Error::local(format!("cannot create {}: {e}", dir.display())))?;
        let text = serde_json::to_string_pretty(&file).map_err(|e| Error::local(e.to_string()))?;
        let temporary = self.path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            // A file left by an older run may have looser bits: mode() applies
            // only to files it creates.
            out.set_permissions(fs::Permissions::from_mode(0o600))?;
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
            fs::rename(&temporary, &self.path)
        };
        write().map_err(|e| Error::local(format!("cannot write {}: {e}", self.path.display())))
    }

    fn read(&self) -> Result<File, Error> {
        match fs::read_to_string(&self.path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| Error::local(format!("{} is not a credentials file: {e}", self.path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
            Err(e) => Err(Error::local(format!("cannot read {}: {e}", self.path.display()))),
        }
    }
}

/// `$XDG_CONFIG_HOME/folio`, else `~/.config/folio`.
pub fn default_config_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    non_empty("XDG_CONFIG_HOME")
        .or_else(|| non_empty("HOME").map(|home| home.join(".config")))
        .map(|base| base.join("folio"))
}
