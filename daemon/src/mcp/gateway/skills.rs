//! Skills over MCP, as the protocol's skills extension (`io.modelcontextprotocol/skills`) on the
//! aggregated endpoint `/mcp`: `skills/list`, `skills/get`, `resources/read` and
//! `resources/directory/read` of `skill://` URIs, and each skill's SKILL.md in `resources/list`.
//!
//! A thin adapter: each request is stated as kind `skill` (server `skills`) and runs the governed
//! chain: the rate limit, RBAC on the skill's name (a listing is filtered per skill), the audit
//! row. Reading a file's content (`resources/read`) also records a `skill_fetches` row, in the
//! execute step, so it is committed before the answer leaves.

use std::collections::BTreeSet;
use std::sync::Arc;

use base64::Engine;
use castellan_schema::audit::ExecutionKind;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{CallContext, Gateway, decode_cursor, encode_cursor};
use crate::governance::{Executed, RbacTarget, Resolution, Target, Upstream};
use crate::mcp::answer::{self, Answer};
use crate::mcp::jsonrpc::{self, INVALID_PARAMS, METHOD_NOT_FOUND};
use crate::mcp::session::Scope;
use crate::skills::catalog::{Catalog, CatalogEntry};
use crate::skills::{SKILLS_SERVER, SkillCatalog, uri};

/// The extension's identifier in `capabilities.extensions`.
pub const SKILLS_EXTENSION: &str = "io.modelcontextprotocol/skills";

/// The most skills in one `skills/list` page, and entries in one directory page.
const SKILLS_PAGE_SIZE: usize = 1000;

/// What the extension declares: directories can be read.
pub fn extension_capability() -> Value {
    json!({ SKILLS_EXTENSION: {"directoryRead": true} })
}

/// Whether a method is one of the skills surface's (for `resources/read`, when its URI is a
/// `skill://` one).
pub fn is_skills_request(method: &str, params: Option<&Value>) -> bool {
    match method {
        "skills/list" | "skills/get" => true,
        "resources/read" | "resources/directory/read" => params
            .and_then(|params| params.get("uri"))
            .and_then(Value::as_str)
            .is_some_and(|uri| uri.starts_with(uri::SCHEME)),
        _ => false,
    }
}

/// What the execute step does once the chain admits the request.
enum Action {
    List { offset: usize },
    Get,
    Read { path: String },
    Directory { path: String, offset: usize },
}

impl Gateway {
    pub(super) async fn skills_request(
        &self,
        call: &CallContext<'_>,
        id: &Value,
        method: &str,
        params: Option<Value>,
    ) -> Answer {
        let refuse = |code: i64, message: &str| Answer::message(jsonrpc::error_message(id, code, message));
        let Some(catalog) = self.skills.as_ref() else {
            return refuse(METHOD_NOT_FOUND, &format!("method not found: {method}"));
        };
        if *call.scope != Scope::Aggregated {
            return refuse(METHOD_NOT_FOUND, &format!("method not found: {method} (skills are served on /mcp)"));
        }
        let params = params.unwrap_or_else(|| json!({}));
        let snapshot = catalog.snapshot();
        let (requested, resolution, action) = resolve(&snapshot, method, &params);
        let request = self.request(call, id, ExecutionKind::Skill, &requested, params.clone());
        let upstream =
            SkillUpstream { gateway: self, catalog, snapshot, call, action, listing: std::sync::Mutex::new(None) };
        let governed = self.govern_with(request, resolution, &upstream).await;
        let answered = matches!(governed.outcome, crate::governance::Outcome::Answered(_));
        // An unknown file is MCP's "resource not found"; an unknown skill is invalid params.
        let kind = if method == "resources/read" { ExecutionKind::Resource } else { ExecutionKind::Skill };
        let mut answer = answer::render(id, kind, governed.outcome);
        if answered && let Some(listing) = upstream.listing.lock().ok().and_then(|mut listing| listing.take()) {
            answer.spliced_result = Some(listing.members);
        }
        answer
    }

    /// Each SKILL.md the caller may see, as `resources/list` items of the aggregated endpoint.
    pub(super) fn skill_resources(&self, call: &CallContext<'_>) -> Vec<Value> {
        let Some(catalog) = self.skills.as_ref() else { return Vec::new() };
        let snapshot = catalog.snapshot();
        let policies = self.policies.load();
        SkillCatalog::visible(&snapshot, &policies.policy, call.principal.tier)
            .map(|entry| {
                json!({
                    "uri": uri::skill_uri(entry.name()),
                    "name": entry.name(),
                    "description": entry.version.description,
                    "mimeType": "text/markdown",
                })
            })
            .collect()
    }
}

/// The name as the client wrote it (for hooks and the row), how the chain resolves it, and what
/// runs if admitted.
fn resolve(catalog: &Catalog, method: &str, params: &Value) -> (String, Resolution, Action) {
    let server = SKILLS_SERVER.to_string();
    let offset = match params.get("cursor") {
        None | Some(Value::Null) => Some(0),
        Some(cursor) => decode_cursor(cursor),
    };
    let invalid = |message: &str| Resolution::Invalid { server: server.clone(), message: message.to_string() };
    let found = |name: &str| {
        Resolution::Found(Target {
            server: server.clone(),
            name: name.to_string(),
            rbac: RbacTarget::Skill,
            definition_hash: None,
        })
    };
    if method == "skills/list" {
        let resolution = match offset {
            Some(_) => Resolution::Found(Target {
                server: server.clone(),
                name: method.to_string(),
                rbac: RbacTarget::Listing,
                definition_hash: None,
            }),
            None => invalid("invalid cursor"),
        };
        return (method.to_string(), resolution, Action::List { offset: offset.unwrap_or(0) });
    }
    let requested = params.get("uri").and_then(Value::as_str).unwrap_or_default().to_string();
    let unknown = |message: String| Resolution::Unknown { server: server.clone(), message };
    let Some(parsed) = uri::parse(&requested) else {
        let message = if requested.is_empty() {
            "params.uri is required".to_string()
        } else {
            format!("not a skill URI: {requested}")
        };
        return (requested, invalid(&message), Action::Get);
    };
    let Some(entry) = catalog.get(&parsed.name) else {
        return (requested.clone(), unknown(format!("unknown skill: {requested}")), Action::Get);
    };
    let is_file = entry.file(&parsed.path).is_some();
    let is_directory = is_directory(entry, &parsed.path);
    let (resolution, action) = match method {
        "skills/get" if parsed.path == "SKILL.md" || parsed.path.is_empty() => (found(entry.name()), Action::Get),
        "skills/get" => (invalid("skills/get takes a skill's URI: skill://{name}/SKILL.md"), Action::Get),
        "resources/read" if is_file => (found(entry.name()), Action::Read { path: parsed.path }),
        "resources/read" => (unknown(format!("resource not found: {requested}")), Action::Get),
        _ if is_directory => match offset {
            Some(offset) => (found(entry.name()), Action::Directory { path: parsed.path, offset }),
            None => (invalid("invalid cursor"), Action::Get),
        },
        _ if is_file => (invalid(&format!("not a directory: {requested}")), Action::Get),
        _ => (unknown(format!("resource not found: {requested}")), Action::Get),
    };
    (requested, resolution, action)
}

fn is_directory(entry: &CatalogEntry, path: &str) -> bool {
    path.is_empty()
        || entry.files.iter().any(|file| file.path.strip_prefix(path).is_some_and(|rest| rest.starts_with('/')))
}

/// The skill as `skills/list` and `skills/get` show it: built once per catalog load.
pub fn skill_json(entry: &CatalogEntry) -> Value {
    let resources: Vec<Value> = entry
        .files
        .iter()
        .map(|file| json!({"uri": uri::file_uri(entry.name(), &file.path), "digest": format!("sha256:{}", file.sha256), "size": file.size}))
        .collect();
    json!({
        "uri": uri::skill_uri(entry.name()),
        "frontmatter": entry.frontmatter,
        "resources": resources,
        "_meta": {"dev.castellan/version": entry.version.version, "dev.castellan/digest": entry.version.digest},
    })
}

/// The chain's execute step for a skills request.
struct SkillUpstream<'a> {
    gateway: &'a Gateway,
    catalog: &'a Arc<SkillCatalog>,
    snapshot: Arc<Catalog>,
    call: &'a CallContext<'a>,
    action: Action,
    /// The page a listing answered, for the transport to splice in, and what its row records.
    listing: std::sync::Mutex<Option<crate::skills::catalog::ListedPage>>,
}

impl SkillUpstream<'_> {
    fn error(message: &str) -> Executed {
        Executed::Answered(Err(json!({"code": INVALID_PARAMS, "message": message})))
    }

    async fn record_fetch(&self, entry: &CatalogEntry) -> Result<(), Executed> {
        crate::skills::api::record_fetch(
            self.catalog.db(),
            &entry.version,
            self.call.principal,
            "mcp",
            self.call.trace_id,
        )
        .await
        .map_err(Executed::Failed)
    }

    /// A page of the caller's listing, from the catalog's cache of serialized (and redacted)
    /// pages: the chain's answer is an empty result object and the page is spliced into it.
    fn list(&self, offset: usize) -> Executed {
        let policies = self.gateway.policies.load();
        let redactor = crate::redaction::current();
        match self.snapshot.page(&policies.policy, self.call.principal.tier, offset, SKILLS_PAGE_SIZE, &redactor) {
            Some(page) => {
                if let Ok(mut listing) = self.listing.lock() {
                    *listing = Some(page);
                }
                Executed::Answered(Ok(Value::Object(serde_json::Map::new())))
            }
            None => Self::error("invalid cursor"),
        }
    }

    async fn read(&self, entry: &CatalogEntry, path: &str) -> Executed {
        let Some(file) = entry.file(path) else { return Self::error("resource not found") };
        let bytes = match castellan_schema::skills::read_file(self.catalog.db(), entry.version.id, path).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Executed::Failed(format!("skill {} has no file {path} in the database", entry.name())),
            Err(error) => return Executed::Failed(format!("reading the skill failed: {error}")),
        };
        if let Err(failed) = self.record_fetch(entry).await {
            return failed;
        }
        let mut content = json!({
            "uri": uri::file_uri(entry.name(), path),
            "mimeType": uri::mime_type(path),
            "_meta": {"dev.castellan/sha256": file.sha256, "dev.castellan/size": file.size},
        });
        match String::from_utf8(bytes) {
            Ok(text) => content["text"] = Value::String(text),
            Err(not_text) => {
                content["blob"] = Value::String(base64::engine::general_purpose::STANDARD.encode(not_text.into_bytes()))
            }
        }
        Executed::Answered(Ok(json!({"contents": [content]})))
    }

    fn directory(entry: &CatalogEntry, path: &str, offset: usize) -> Executed {
        let prefix = if path.is_empty() { String::new() } else { format!("{path}/") };
        let mut folders = BTreeSet::new();
        let mut children = Vec::new();
        for file in &entry.files {
            let Some(rest) = file.path.strip_prefix(&prefix) else { continue };
            match rest.split_once('/') {
                Some((folder, _)) => {
                    folders.insert(folder.to_string());
                }
                None => children.push(json!({
                    "uri": uri::file_uri(entry.name(), &file.path),
                    "name": rest,
                    "mimeType": uri::mime_type(rest),
                    "size": file.size,
                })),
            }
        }
        for folder in folders {
            let child = format!("{prefix}{folder}");
            children.push(
                json!({"uri": uri::directory_uri(entry.name(), &child), "name": folder, "mimeType": "inode/directory"}),
            );
        }
        if offset > children.len() {
            return Self::error("invalid cursor");
        }
        let page: Vec<Value> = children.iter().skip(offset).take(SKILLS_PAGE_SIZE).cloned().collect();
        let mut result = json!({"resources": page});
        if offset + SKILLS_PAGE_SIZE < children.len() {
            result["nextCursor"] = Value::String(encode_cursor(offset + SKILLS_PAGE_SIZE));
        }
        Executed::Answered(Ok(result))
    }
}

impl Upstream for SkillUpstream<'_> {
    /// A listing is recorded by the names and versions it listed: the entries themselves are the
    /// catalog's, published and immutable.
    fn audited_output(&self, _answer: &Value) -> Option<String> {
        let listing = self.listing.lock().ok()?;
        listing.as_ref().map(|page| page.audited.clone())
    }

    fn execute<'a>(&'a self, target: &'a Target, _arguments: Value) -> BoxFuture<'a, Executed> {
        Box::pin(async move {
            if let Action::List { offset } = self.action {
                return self.list(offset);
            }
            let Some(entry) = self.snapshot.get(&target.name) else { return Self::error("unknown skill") };
            match &self.action {
                Action::List { .. } => Self::error("unreachable"),
                // The manifest only: content is fetched (and recorded) by resources/read.
                Action::Get => Executed::Answered(Ok(Value::Object(serde_json::Map::from_iter([(
                    "skill".to_string(),
                    entry.listed.clone(),
                )])))),
                Action::Read { path } => self.read(entry, path).await,
                Action::Directory { path, offset } => Self::directory(entry, path, *offset),
            }
        })
    }
}
