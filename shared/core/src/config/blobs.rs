//! Where blobs go: the store's URL and, for `s3://`, the object store's own
//! settings.

use std::fmt;

use super::{ConfigError, vars::Vars};

/// The variables an `s3://` blob store reads: credentials (without them the
/// store asks the environment's instance or container credentials), region,
/// and an endpoint for an S3-compatible service.
pub const BLOB_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_SERVER_SIDE_ENCRYPTION",
    "AWS_SSE_KMS_KEY_ID",
];

/// Object store settings as (lower-cased variable name, value) pairs. Debug
/// shows only the names: the values include secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BlobOptions(pub Vec<(String, String)>);

impl fmt::Debug for BlobOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}

impl BlobOptions {
    /// The [`BLOB_VARIABLES`] that are set.
    pub(super) fn from_vars(vars: &Vars<'_>) -> Self {
        BlobOptions(
            BLOB_VARIABLES
                .iter()
                .filter_map(|name| vars.get(name).map(|value| (name.to_ascii_lowercase(), value)))
                .collect(),
        )
    }
}

/// `FOLIO_BLOB_URL`: `file://<directory>` or `s3://<bucket>[/<prefix>]`.
pub(super) fn blob_url(vars: &Vars<'_>) -> Result<String, ConfigError> {
    let url = vars.text("FOLIO_BLOB_URL", "file://./data/blobs");
    let bucket = url.strip_prefix("s3://").map(|rest| rest.split('/').next().unwrap_or_default());
    if !(url.starts_with("file://") || bucket.is_some_and(|b| !b.is_empty())) {
        return Err(ConfigError::new(
            "FOLIO_BLOB_URL",
            format!("{url:?} is not supported; use file://<directory> or s3://<bucket>[/<prefix>]"),
        ));
    }
    Ok(url)
}
