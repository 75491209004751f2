//! Secrets pulled from HashiCorp Vault or OpenBao (the KV version 2 engine) into the secret store.
//!
//! [`pull`] reads one KV path, logging in with AppRole first when the source says so, and keeps the
//! entries that can be secrets; [`apply`] writes those whose value differs from the stored one and
//! refreshes the store. Vault is one source among several: a secret it does not hold is left alone,
//! and a Vault that cannot be read changes nothing. No message carries the token, the AppRole
//! `secret_id` or a value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use sea_orm::DatabaseConnection;
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

use crate::identity::master_key::MasterKey;
use crate::secrets::{SecretStore, SecretStoreError, purpose};

/// Where the AppRole auth method is mounted unless the profile says otherwise.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";

/// How long one request to Vault may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read from Vault; a larger one is refused, never truncated.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The limits `castellan secrets set` applies, so a secret from Vault could have been set by hand.
pub const MAX_NAME_BYTES: usize = 128;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

const TOKEN_HEADER: &str = "X-Vault-Token";
const NAMESPACE_HEADER: &str = "X-Vault-Namespace";
/// What Vault's own clients send; Vault Agent and Vault Proxy can require it (`require_request_header`).
const REQUEST_HEADER: &str = "X-Vault-Request";

/// One KV version 2 path to read, with the credentials already resolved by the caller.
#[derive(Debug, Clone)]
pub struct VaultSource {
    /// `https://vault.example` (plain `http` only to a loopback address), optionally with a path prefix.
    pub url: String,
    /// The KV engine's mount, e.g. `kv` or `secret`.
    pub mount: String,
    /// The secret's path under the mount, e.g. `castellan` or `teams/castellan`.
    pub path: String,
    pub auth: VaultAuth,
    /// Vault Enterprise / OpenBao namespace, sent as `X-Vault-Namespace`.
    pub namespace: Option<String>,
}

/// How Castellan logs in. `Debug` shows neither the token nor the AppRole credentials.
#[derive(Clone)]
pub enum VaultAuth {
    Token(String),
    /// A token is obtained at every pull and revoked once the path is read.
    AppRole {
        role_id: String,
        secret_id: String,
        mount: String,
    },
}

impl VaultAuth {
    /// AppRole at [`DEFAULT_APPROLE_MOUNT`].
    pub fn approle(role_id: String, secret_id: String) -> Self {
        VaultAuth::AppRole { role_id, secret_id, mount: DEFAULT_APPROLE_MOUNT.to_string() }
    }
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => formatter.write_str("Token(..)"),
            VaultAuth::AppRole { mount, .. } => {
                formatter.debug_struct("AppRole").field("mount", mount).finish_non_exhaustive()
            }
        }
    }
}

/// Why reading Vault failed. Messages name Vault's address (scheme, host and port only), the mount
/// and the path, and quote Vault's own error text with every credential blanked out.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the Vault source cannot be used: {0}")]
    InvalidSource(&'static str),
    #[error("the HTTP client for Vault cannot be built: {0}")]
    Client(String),
    #[error("Vault at {origin} is unreachable ({reason})")]
    Unreachable { origin: String, reason: String },
    #[error(
        "Vault at {origin} refused the AppRole login at auth/{mount}/login (HTTP {status}{detail}): check role_id and secret_id"
    )]
    LoginRefused { origin: String, mount: String, status: u16, detail: String },
    #[error(
        "Vault at {origin} denied reading {mount}/data/{path} (HTTP 403{detail}): the token is invalid or expired, or its policy lacks `read` on that path"
    )]
    PermissionDenied { origin: String, mount: String, path: String, detail: String },
    #[error(
        "Vault at {origin} has no secret at {mount}/data/{path} (HTTP 404{detail}): check `mount` and `path`, that the mount is KV version 2, and that the newest version is not deleted"
    )]
    NoSuchPath { origin: String, mount: String, path: String, detail: String },
    #[error("Vault at {origin} answered HTTP {status} to {request}{detail}")]
    Status { origin: String, request: &'static str, status: u16, detail: String },
    #[error("Vault at {origin} answered {request} with something else than expected: {problem}")]
    Malformed { origin: String, request: &'static str, problem: &'static str },
}

/// Why one Vault entry was not taken as a secret (the pull goes on without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not 1 to [`MAX_NAME_BYTES`] of letters, digits, `_`, `.` and `-` (the rule of `secrets set`).
    InvalidName,
    /// The value is a JSON number, boolean, object, array or null: refused rather than turned into
    /// text, so what a server receives is exactly what was stored in Vault.
    NotAString(&'static str),
    Empty,
    TooLong(usize),
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::InvalidName => {
                write!(formatter, "a secret name is 1 to {MAX_NAME_BYTES} of letters, digits, `_`, `.` and `-`")
            }
            Refusal::NotAString(kind) => write!(formatter, "the value is a JSON {kind}, not a string"),
            Refusal::Empty => formatter.write_str("the value is empty"),
            Refusal::TooLong(bytes) => {
                write!(formatter, "the value is {bytes} bytes; a secret is at most {MAX_VALUE_BYTES}")
            }
        }
    }
}

/// A Vault entry that was left out, by its key (shown escaped and shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEntry {
    pub key: String,
    pub refusal: Refusal,
}

impl fmt::Display for RefusedEntry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", shown_key(&self.key), self.refusal)
    }
}

/// What one read of a KV path gave. `Debug` lists the names, never the values.
pub struct Pulled {
    pub values: BTreeMap<String, String>,
    pub refused: Vec<RefusedEntry>,
    /// The KV version that was read (`data.metadata.version`).
    pub version: Option<u64>,
}

impl fmt::Debug for Pulled {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Pulled")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .field("refused", &self.refused)
            .field("version", &self.version)
            .finish()
    }
}

/// The client for Vault: the common outbound base (no redirects, our user agent) with
/// [`REQUEST_TIMEOUT`].
pub fn client() -> Result<reqwest::Client, VaultError> {
    castellan_actors::http_client::builder(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| VaultError::Client(crate::identity::outbound::error_chain(&error)))
}

/// Reads the source's KV path: the values that can be secrets, by name. Entries that cannot (a
/// non-string value, a name `secrets set` would refuse, an empty or oversized value) are left out
/// and logged; [`pull_entries`] returns them too.
pub async fn pull(client: &reqwest::Client, source: &VaultSource) -> Result<BTreeMap<String, String>, VaultError> {
    let pulled = pull_entries(client, source).await?;
    for entry in &pulled.refused {
        tracing::warn!(key = %shown_key(&entry.key), reason = %entry.refusal, "a Vault entry is not taken as a secret");
    }
    for (name, value) in &pulled.values {
        if value.len() < crate::redaction::MIN_SECRET_LEN {
            tracing::warn!(
                secret = %name,
                "values shorter than {} bytes are not redacted from tool results and logs",
                crate::redaction::MIN_SECRET_LEN
            );
        }
    }
    Ok(pulled.values)
}

/// [`pull`], with the refused entries and the version read.
#[tracing::instrument(skip_all, fields(vault.mount = %source.mount, vault.path = %source.path))]
pub async fn pull_entries(client: &reqwest::Client, source: &VaultSource) -> Result<Pulled, VaultError> {
    let endpoints = Endpoints::new(source)?;
    let namespace = match &source.namespace {
        Some(namespace) => Some(
            HeaderValue::from_str(namespace)
                .map_err(|_| VaultError::InvalidSource("the namespace is not a valid HTTP header value"))?,
        ),
        None => None,
    };
    let call = Call { client, endpoints: &endpoints, namespace: namespace.as_ref() };
    match &source.auth {
        VaultAuth::Token(token) => {
            let credentials = [token.as_str()];
            call.read(&token_header(token)?, &credentials).await
        }
        VaultAuth::AppRole { role_id, secret_id, .. } => {
            let issued = call.login(role_id, secret_id).await?;
            let token = token_header(&issued)?;
            let credentials = [role_id.as_str(), secret_id.as_str(), issued.as_str()];
            let read = call.read(&token, &credentials).await;
            call.revoke_self(&token).await;
            read
        }
    }
}

fn token_header(token: &str) -> Result<HeaderValue, VaultError> {
    if token.is_empty() {
        return Err(VaultError::InvalidSource("the Vault token is empty"));
    }
    let mut value = HeaderValue::from_str(token)
        .map_err(|_| VaultError::InvalidSource("the Vault token is not a valid HTTP header value"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// The URLs of one source, and how it is named in messages.
struct Endpoints {
    /// `scheme://host:port`: never a user, a password, a path or a query.
    origin: String,
    mount: String,
    path: String,
    read: Url,
    login: Option<(String, Url)>,
    revoke_self: Url,
}

impl Endpoints {
    fn new(source: &VaultSource) -> Result<Self, VaultError> {
        let base =
            Url::parse(source.url.trim()).map_err(|_| VaultError::InvalidSource("the Vault URL does not parse"))?;
        crate::identity::federation::check_transport(&base).map_err(|_| {
            VaultError::InvalidSource("the Vault URL must be https (plain http only to a loopback address)")
        })?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(VaultError::InvalidSource("the Vault URL must not have a query or a fragment"));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(VaultError::InvalidSource("the Vault URL must not carry a user or a password"));
        }
        let mount = segments(&source.mount, "the mount must be path segments, without `.` or `..`")?;
        let path = segments(&source.path, "the path must be path segments, without `.` or `..`")?;
        let login = match &source.auth {
            VaultAuth::Token(_) => None,
            VaultAuth::AppRole { mount, .. } => {
                let auth_mount = segments(mount, "the AppRole mount must be path segments, without `.` or `..`")?;
                let url = endpoint(&base, &[&["auth"][..], &auth_mount, &["login"]].concat())?;
                Some((auth_mount.join("/"), url))
            }
        };
        Ok(Endpoints {
            origin: base.origin().ascii_serialization(),
            read: endpoint(&base, &[&mount[..], &["data"], &path].concat())?,
            revoke_self: endpoint(&base, &["auth", "token", "revoke-self"])?,
            mount: mount.join("/"),
            path: path.join("/"),
            login,
        })
    }
}

fn segments<'a>(text: &'a str, refusal: &'static str) -> Result<Vec<&'a str>, VaultError> {
    let parts: Vec<&str> = text.split('/').filter(|part| !part.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|part| *part == "." || *part == "..") {
        return Err(VaultError::InvalidSource(refusal));
    }
    Ok(parts)
}

/// `base` + `/v1/` + the segments, each percent-encoded on its own.
fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, VaultError> {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| VaultError::InvalidSource("the Vault URL cannot have a path appended"))?;
        path.pop_if_empty().push("v1").extend(segments);
    }
    Ok(url)
}

/// One pull's requests: the same client, source and namespace header.
struct Call<'a> {
    client: &'a reqwest::Client,
    endpoints: &'a Endpoints,
    namespace: Option<&'a HeaderValue>,
}

#[derive(serde::Serialize)]
struct LoginBody<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

impl Call<'_> {
    fn request(&self, method: reqwest::Method, url: &Url, token: Option<&HeaderValue>) -> reqwest::RequestBuilder {
        let mut request =
            self.client.request(method, url.clone()).timeout(REQUEST_TIMEOUT).header(REQUEST_HEADER, "true");
        if let Some(token) = token {
            request = request.header(TOKEN_HEADER, token.clone());
        }
        if let Some(namespace) = self.namespace {
            request = request.header(NAMESPACE_HEADER, namespace.clone());
        }
        request
    }

    /// Sends and reads the whole answer, bounded.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<(StatusCode, Zeroizing<Vec<u8>>), VaultError> {
        let unreachable = |error: &reqwest::Error| {
            tracing::warn!(
                origin = %self.endpoints.origin,
                error = %crate::identity::outbound::error_chain(error),
                "a request to Vault failed"
            );
            VaultError::Unreachable { origin: self.endpoints.origin.clone(), reason: transport_reason(error) }
        };
        let mut response = request.send().await.map_err(|error| unreachable(&error))?;
        let status = response.status();
        let mut body = Zeroizing::new(Vec::new());
        while let Some(chunk) = response.chunk().await.map_err(|error| unreachable(&error))? {
            if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
                return Err(self.malformed(what, "the answer is larger than 4 MiB"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    fn malformed(&self, request: &'static str, problem: &'static str) -> VaultError {
        VaultError::Malformed { origin: self.endpoints.origin.clone(), request, problem }
    }

    /// `POST auth/{mount}/login`: the token AppRole issues.
    async fn login(&self, role_id: &str, secret_id: &str) -> Result<Zeroizing<String>, VaultError> {
        const WHAT: &str = "the AppRole login";
        let Some((mount, url)) = &self.endpoints.login else {
            return Err(VaultError::InvalidSource("no AppRole mount"));
        };
        let request = self.request(reqwest::Method::POST, url, None).json(&LoginBody { role_id, secret_id });
        let (status, body) = self.send(request, WHAT).await?;
        let credentials = [role_id, secret_id];
        match status.as_u16() {
            200 => {
                let answer: Value =
                    serde_json::from_slice(&body).map_err(|_| self.malformed(WHAT, "it is not JSON"))?;
                match answer.pointer("/auth/client_token").and_then(Value::as_str) {
                    Some(token) if !token.is_empty() => Ok(Zeroizing::new(token.to_string())),
                    _ => Err(self.malformed(WHAT, "it carries no `auth.client_token`")),
                }
            }
            code @ (400 | 401 | 403) => Err(VaultError::LoginRefused {
                origin: self.endpoints.origin.clone(),
                mount: mount.clone(),
                status: code,
                detail: vault_messages(&body, &credentials),
            }),
            code => Err(VaultError::Status {
                origin: self.endpoints.origin.clone(),
                request: WHAT,
                status: code,
                detail: vault_messages(&body, &credentials),
            }),
        }
    }

    /// `GET {mount}/data/{path}`.
    async fn read(&self, token: &HeaderValue, credentials: &[&str]) -> Result<Pulled, VaultError> {
        const WHAT: &str = "the KV read";
        let request = self.request(reqwest::Method::GET, &self.endpoints.read, Some(token));
        let (status, body) = self.send(request, WHAT).await?;
        let endpoints = self.endpoints;
        match status.as_u16() {
            200 => parse_kv_answer(&body).map_err(|problem| self.malformed(WHAT, problem)),
            403 => Err(VaultError::PermissionDenied {
                origin: endpoints.origin.clone(),
                mount: endpoints.mount.clone(),
                path: endpoints.path.clone(),
                detail: vault_messages(&body, credentials),
            }),
            404 => Err(VaultError::NoSuchPath {
                origin: endpoints.origin.clone(),
                mount: endpoints.mount.clone(),
                path: endpoints.path.clone(),
                detail: vault_messages(&body, credentials),
            }),
            code => Err(VaultError::Status {
                origin: endpoints.origin.clone(),
                request: WHAT,
                status: code,
                detail: vault_messages(&body, credentials),
            }),
        }
    }

    /// `POST auth/token/revoke-self`, so a pull every few minutes does not leave a live token behind
    /// each time. Best effort: a token limited to one use is already spent, which is as good.
    async fn revoke_self(&self, token: &HeaderValue) {
        let request = self.request(reqwest::Method::POST, &self.endpoints.revoke_self, Some(token));
        match self.send(request, "the token revocation").await {
            Ok((status, _)) if status.is_success() => {}
            Ok((status, _)) => tracing::debug!(status = status.as_u16(), "Vault did not revoke the AppRole token"),
            Err(error) => tracing::debug!(%error, "revoking the AppRole token failed"),
        }
    }
}

fn transport_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("no answer within {}s", REQUEST_TIMEOUT.as_secs());
    }
    match std::error::Error::source(error) {
        Some(cause) => crate::identity::outbound::error_chain(cause),
        None => "the request failed".to_string(),
    }
}

/// `data.data` of a KV version 2 read: string values under valid names are kept, the rest refused.
fn parse_kv_answer(body: &[u8]) -> Result<Pulled, &'static str> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| "it is not JSON")?;
    let data = answer.get("data").and_then(Value::as_object).ok_or("it has no `data` object")?;
    let entries = match data.get("data") {
        Some(Value::Object(entries)) => entries,
        Some(Value::Null) => return Err("`data.data` is null: the newest version is deleted or destroyed"),
        _ => return Err("`data.data` is missing or not an object (is the mount KV version 1?)"),
    };
    let version = data.get("metadata").and_then(|metadata| metadata.get("version")).and_then(Value::as_u64);
    let mut values = BTreeMap::new();
    let mut refused = Vec::new();
    for (key, value) in entries {
        let checked = match value {
            Value::String(text) => check_entry(key, text).map(|()| text),
            other => check_name(key).and(Err(Refusal::NotAString(json_kind(other)))),
        };
        match checked {
            Ok(text) => {
                values.insert(key.clone(), text.clone());
            }
            Err(refusal) => refused.push(RefusedEntry { key: key.clone(), refusal }),
        }
    }
    Ok(Pulled { values, refused, version })
}

fn check_name(name: &str) -> Result<(), Refusal> {
    if name.len() <= MAX_NAME_BYTES && castellan_config::is_secret_name(name) {
        Ok(())
    } else {
        Err(Refusal::InvalidName)
    }
}

/// What `castellan secrets set` would accept: the name's rule, a non-empty value, at most
/// [`MAX_VALUE_BYTES`].
fn check_entry(name: &str, value: &str) -> Result<(), Refusal> {
    check_name(name)?;
    match value.len() {
        0 => Err(Refusal::Empty),
        bytes if bytes > MAX_VALUE_BYTES => Err(Refusal::TooLong(bytes)),
        _ => Ok(()),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A key as messages show it: escaped, at most 64 characters.
fn shown_key(key: &str) -> String {
    const LIMIT: usize = 64;
    match key.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{:?}…", &key[..cut]),
        None => format!("{key:?}"),
    }
}

/// Vault's `{"errors": [...]}` as `: "first"; "second"` (at most three, each at most 200
/// characters, escaped), with every credential replaced; empty when there is none.
fn vault_messages(body: &[u8], credentials: &[&str]) -> String {
    const MAX_MESSAGES: usize = 3;
    const MAX_CHARS: usize = 200;
    let Ok(answer) = serde_json::from_slice::<Value>(body) else { return String::new() };
    let Some(errors) = answer.get("errors").and_then(Value::as_array) else { return String::new() };
    let messages: Vec<String> = errors
        .iter()
        .filter_map(Value::as_str)
        .filter(|message| !message.is_empty())
        .take(MAX_MESSAGES)
        .map(|message| {
            let mut message = message.to_string();
            for credential in credentials.iter().filter(|credential| !credential.is_empty()) {
                message = message.replace(credential, "[hidden]");
            }
            let shortened: String = message.chars().take(MAX_CHARS).collect();
            format!("{shortened:?}")
        })
        .collect();
    if messages.is_empty() { String::new() } else { format!(": {}", messages.join("; ")) }
}

/// What [`apply`] did. `Display` is one line naming the changed secrets, never a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// The secrets written, by name, sorted.
    pub changed: Vec<String>,
    /// How many pulled values were already stored as they are.
    pub unchanged: usize,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.changed.len() {
            0 => write!(formatter, "no secret changed ({} unchanged)", self.unchanged),
            1 => write!(formatter, "1 secret changed: {} ({} unchanged)", self.changed.join(", "), self.unchanged),
            count => {
                write!(formatter, "{count} secrets changed: {} ({} unchanged)", self.changed.join(", "), self.unchanged)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{} cannot be stored as a secret: {refusal}; nothing was written", shown_key(name))]
    Refused { name: String, refusal: Refusal },
    #[error("reading the secret store: {0}")]
    Read(castellan_schema::DbError),
    #[error("secret {0} in the store cannot be opened with this master key; nothing was written")]
    Sealed(String),
    #[error("writing secret {name}: {source} ({written} written before it; the next pull writes the rest)")]
    Write {
        name: String,
        written: usize,
        #[source]
        source: castellan_schema::DbError,
    },
    #[error("the secrets were written but re-reading the store failed: {0} (the periodic refresh tries again)")]
    Refresh(SecretStoreError),
}

/// Writes the values that differ from the stored ones (compared in clear, after opening them with
/// `master`), sealed as `secrets set` seals them, then re-reads `store` so lookups and redaction
/// see them at once. Nothing is written, and the store is not re-read, when nothing differs.
/// Secrets that `values` does not name are left alone. `db` and `master` must be the store's.
#[tracing::instrument(skip_all, fields(secrets = values.len()))]
pub async fn apply(
    store: &SecretStore,
    db: &DatabaseConnection,
    master: &MasterKey,
    values: &BTreeMap<String, String>,
) -> Result<ApplyReport, ApplyError> {
    for (name, value) in values {
        check_entry(name, value).map_err(|refusal| ApplyError::Refused { name: name.clone(), refusal })?;
    }
    let stored: HashMap<String, String> =
        castellan_schema::secrets::all_sealed(db).await.map_err(ApplyError::Read)?.into_iter().collect();
    let mut report = ApplyReport::default();
    let mut to_write = Vec::new();
    for (name, value) in values {
        let differs = match stored.get(name) {
            None => true,
            Some(sealed) => {
                let opened =
                    Zeroizing::new(master.open(&purpose(name), sealed).map_err(|_| ApplyError::Sealed(name.clone()))?);
                opened.as_slice() != value.as_bytes()
            }
        };
        if differs {
            to_write.push((name, value));
        } else {
            report.unchanged += 1;
        }
    }
    let now = chrono::Utc::now();
    for (written, (name, value)) in to_write.into_iter().enumerate() {
        let sealed = master.seal(&purpose(name), value.as_bytes());
        castellan_schema::secrets::set(db, name, &sealed, now).await.map_err(|source| ApplyError::Write {
            name: name.clone(),
            written,
            source,
        })?;
        report.changed.push(name.clone());
    }
    if !report.changed.is_empty() {
        store.reload().await.map_err(ApplyError::Refresh)?;
    }
    tracing::info!(changed = ?report.changed, unchanged = report.unchanged, "secrets from Vault applied");
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const TOKEN: &str = "hvs.unit-test-token-3f9a";

    fn source(url: &str, mount: &str, path: &str, auth: VaultAuth) -> VaultSource {
        VaultSource { url: url.into(), mount: mount.into(), path: path.into(), auth, namespace: None }
    }

    fn token_source(url: &str, mount: &str, path: &str) -> VaultSource {
        source(url, mount, path, VaultAuth::Token(TOKEN.into()))
    }

    #[test]
    fn string_entries_under_valid_names_are_kept_and_every_other_entry_is_refused_by_key() {
        let body = serde_json::json!({
            "request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {
                "data": {
                    "db-password": "correct horse battery",
                    "api.key_2": "k-1234567890",
                    "port": 5432,
                    "enabled": true,
                    "nested": {"a": "b"},
                    "list": ["a"],
                    "nothing": null,
                    "bad name": "some value here",
                    "empty": "",
                    "huge": "x".repeat(MAX_VALUE_BYTES + 1),
                    "x".repeat(MAX_NAME_BYTES + 1): "too long a name",
                },
                "metadata": {"created_time": "2026-01-01T00:00:00Z", "version": 7, "destroyed": false}
            },
            "wrap_info": null, "warnings": null, "auth": null
        });
        let pulled = parse_kv_answer(body.to_string().as_bytes()).unwrap();
        let kept: Vec<(&str, &str)> =
            pulled.values.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        assert_eq!(kept, vec![("api.key_2", "k-1234567890"), ("db-password", "correct horse battery")]);
        assert_eq!(pulled.version, Some(7));
        let refused: BTreeMap<&str, &Refusal> =
            pulled.refused.iter().map(|entry| (entry.key.as_str(), &entry.refusal)).collect();
        let long_name = "x".repeat(MAX_NAME_BYTES + 1);
        let expected: BTreeMap<&str, Refusal> = [
            ("port", Refusal::NotAString("number")),
            ("enabled", Refusal::NotAString("boolean")),
            ("nested", Refusal::NotAString("object")),
            ("list", Refusal::NotAString("array")),
            ("nothing", Refusal::NotAString("null")),
            ("bad name", Refusal::InvalidName),
            ("empty", Refusal::Empty),
            ("huge", Refusal::TooLong(MAX_VALUE_BYTES + 1)),
            (long_name.as_str(), Refusal::InvalidName),
        ]
        .into_iter()
        .collect();
        assert_eq!(refused, expected.iter().map(|(key, refusal)| (*key, refusal)).collect());
        let debug = format!("{pulled:?}");
        assert!(!debug.contains("correct horse"), "Debug names secrets but shows no value: {debug}");
    }

    #[test]
    fn answers_that_are_not_a_kv_version_2_read_are_malformed_with_a_reason() {
        let cases: [(&str, &[u8], &str); 5] = [
            ("not JSON", b"<html>", "not JSON"),
            ("no data", br#"{"errors":[]}"#, "no `data`"),
            ("deleted version", br#"{"data":{"data":null,"metadata":{"version":3}}}"#, "deleted"),
            ("a KV version 1 answer", br#"{"data":{"password":"p"}}"#, "version 1"),
            ("data.data not an object", br#"{"data":{"data":"p"}}"#, "not an object"),
        ];
        for (case, body, expected) in cases {
            let problem = parse_kv_answer(body).map(|_| ()).unwrap_err();
            assert!(problem.contains(expected), "{case}: {problem}");
        }
    }

    #[test]
    fn endpoints_append_each_segment_encoded_under_v1() {
        let cases = [
            ("https://vault.example", "kv", "castellan", "https://vault.example/v1/kv/data/castellan"),
            ("https://vault.example/", "kv/", "/castellan/", "https://vault.example/v1/kv/data/castellan"),
            (
                "https://vault.example:8200/prefix/",
                "team/kv",
                "a/b",
                "https://vault.example:8200/prefix/v1/team/kv/data/a/b",
            ),
            ("http://127.0.0.1:8200", "secret", "with space", "http://127.0.0.1:8200/v1/secret/data/with%20space"),
            ("http://localhost:8200", "secret", "q?x#y", "http://localhost:8200/v1/secret/data/q%3Fx%23y"),
        ];
        for (url, mount, path, expected) in cases {
            let endpoints = Endpoints::new(&token_source(url, mount, path)).unwrap();
            assert_eq!(endpoints.read.as_str(), expected, "{url} {mount} {path}");
            assert!(endpoints.login.is_none(), "a token source does not log in");
        }
        let approle = source(
            "https://vault.example",
            "kv",
            "castellan",
            VaultAuth::AppRole { role_id: "r".into(), secret_id: "s".into(), mount: "ci/approle".into() },
        );
        let endpoints = Endpoints::new(&approle).unwrap();
        let (mount, login) = endpoints.login.unwrap();
        assert_eq!((mount.as_str(), login.as_str()), ("ci/approle", "https://vault.example/v1/auth/ci/approle/login"));
        assert_eq!(endpoints.revoke_self.as_str(), "https://vault.example/v1/auth/token/revoke-self");
        assert_eq!(endpoints.origin, "https://vault.example");
    }

    #[test]
    fn unusable_sources_are_refused_before_any_request() {
        let cases = [
            ("plain http to another host", token_source("http://vault.example", "kv", "p"), "https"),
            ("not a URL", token_source("vault.example", "kv", "p"), "does not parse"),
            ("a query", token_source("https://vault.example/?x=1", "kv", "p"), "query"),
            ("a user in the URL", token_source("https://me:pw@vault.example", "kv", "p"), "user"),
            ("an empty path", token_source("https://vault.example", "kv", "/"), "path"),
            ("a dot-dot path", token_source("https://vault.example", "kv", "a/../b"), "path"),
            ("a dot-dot mount", token_source("https://vault.example", "..", "p"), "mount"),
        ];
        for (case, source, expected) in cases {
            let error = Endpoints::new(&source).map(|_| ()).unwrap_err().to_string();
            assert!(error.contains(expected), "{case}: {error}");
        }
        for (case, token) in [("empty", ""), ("a newline", "abc\ndef")] {
            let error = token_header(token).unwrap_err().to_string();
            assert!(error.contains("token") && !error.contains("abc"), "{case}: {error}");
        }
    }

    #[test]
    fn vault_messages_are_quoted_bounded_and_never_carry_a_credential() {
        let body = serde_json::json!({"errors": [
            format!("token {TOKEN} is not valid"),
            "permission denied",
            "",
            "line\nbreak",
            "a fourth message",
        ]})
        .to_string();
        let detail = vault_messages(body.as_bytes(), &[TOKEN, ""]);
        assert_eq!(detail, r#": "token [hidden] is not valid"; "permission denied"; "line\nbreak""#);
        let long = serde_json::json!({"errors": ["y".repeat(500)]}).to_string();
        assert_eq!(vault_messages(long.as_bytes(), &[]).len(), ": \"\"".len() + 200);
        for (case, body) in [("no errors", &br#"{"errors":[]}"#[..]), ("not JSON", b"oops"), ("no key", b"{}")] {
            assert_eq!(vault_messages(body, &[TOKEN]), "", "{case}");
        }
    }

    #[test]
    fn debug_output_shows_no_credential() {
        let token = format!("{:?}", token_source("https://vault.example", "kv", "p"));
        assert!(!token.contains(TOKEN), "{token}");
        let approle = format!("{:?}", VaultAuth::approle("role-1234".into(), "secret-5678".into()));
        assert!(!approle.contains("role-1234") && !approle.contains("secret-5678"), "{approle}");
        assert!(approle.contains(DEFAULT_APPROLE_MOUNT), "{approle}");
    }

    #[test]
    fn the_report_is_one_line_of_names() {
        let cases = [
            (ApplyReport { changed: vec![], unchanged: 3 }, "no secret changed (3 unchanged)"),
            (ApplyReport { changed: vec!["api-key".into()], unchanged: 2 }, "1 secret changed: api-key (2 unchanged)"),
            (
                ApplyReport { changed: vec!["a".into(), "b".into()], unchanged: 0 },
                "2 secrets changed: a, b (0 unchanged)",
            ),
        ];
        for (report, expected) in cases {
            assert_eq!(report.to_string(), expected);
        }
    }
}
