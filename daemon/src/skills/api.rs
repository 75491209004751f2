//! Skills over HTTP: `GET /api/v1/skills` (what the caller may use), `GET /api/v1/skills/{name}`
//! (its versions), `GET /api/v1/skills/{name}/{version}` (a version's files and digests),
//! `GET /api/v1/skills/{name}/{version}/archive.tar.gz` (its content; `?via=sync` when
//! `castellan skills sync` asks). For any caller with a Castellan credential for `/mcp` (scope
//! `mcp:tools`), filtered by RBAC; each request runs the governed chain as kind `skill`, and an
//! archive download is a `skill_fetches` row committed before the bytes leave.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use castellan_schema::audit::ExecutionKind;
use castellan_schema::skills::VersionSummary;
use chrono::Utc;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{SKILLS_SERVER, SkillCatalog};
use crate::governance::{Executed, HookIdentity, Outcome, RbacTarget, Request, Resolution, Target, Upstream};
use crate::http::AppState;
use crate::identity::Principal;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/skills", web::get().to(list))
        .route("/api/v1/skills/{name}", web::get().to(versions))
        .route("/api/v1/skills/{name}/{version}", web::get().to(version))
        .route("/api/v1/skills/{name}/{version}/archive.tar.gz", web::get().to(archive))
        .route("/marketplace/.claude-plugin/marketplace.json", web::get().to(marketplace))
        .route("/marketplace/plugins/{name}/plugin.zip", web::get().to(plugin_zip));
}

/// The marketplace's name in Claude Code (`/plugin install SKILL@castellan`).
pub const MARKETPLACE_NAME: &str = "castellan";

/// Records one content fetch. A failure is an error: the fetch is refused rather than unrecorded.
pub async fn record_fetch(
    db: &sea_orm::DatabaseConnection,
    version: &VersionSummary,
    principal: &Principal,
    via: &str,
    trace_id: &str,
) -> Result<(), String> {
    let fetch = castellan_schema::skills::NewFetch {
        skill: &version.name,
        version: &version.version,
        user_id: Some(&principal.subject),
        via,
        trace_id: Some(trace_id),
        at: Utc::now(),
    };
    castellan_schema::skills::record_fetch(db, fetch).await.map_err(|error| {
        tracing::error!(%error, trace_id, "recording a skill fetch failed");
        "the fetch could not be recorded; try again".to_string()
    })
}

/// A version as the API shows it.
pub fn version_json(version: &VersionSummary) -> Value {
    json!({
        "name": version.name,
        "version": version.version,
        "description": version.description,
        "digest": version.digest,
        "signed_by": version.signed_by,
        "file_count": version.file_count,
        "total_bytes": version.total_bytes,
        "published_at": version.published_at.to_rfc3339(),
        "yanked": version.yanked,
    })
}

/// What a request asks for, once admitted.
enum Action {
    List,
    Versions,
    Version { version: String },
    Archive { version: String, via: &'static str },
    Marketplace,
    PluginZip,
}

async fn list(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    governed(&request, &state, "skills/list".into(), None, Action::List).await
}

async fn versions(request: HttpRequest, state: web::Data<AppState>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    governed(&request, &state, name.clone(), Some(name), Action::Versions).await
}

async fn version(request: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (name, version) = path.into_inner();
    governed(&request, &state, format!("{name}@{version}"), Some(name), Action::Version { version }).await
}

async fn archive(request: HttpRequest, state: web::Data<AppState>, path: web::Path<(String, String)>) -> HttpResponse {
    let (name, version) = path.into_inner();
    let via = if request.query_string().split('&').any(|pair| pair == "via=sync") { "sync" } else { "api" };
    governed(&request, &state, format!("{name}@{version}/archive"), Some(name), Action::Archive { version, via }).await
}

/// `GET /marketplace/.claude-plugin/marketplace.json`: the skills the caller may use as a Claude
/// Code plugin marketplace, one plugin per skill, each an `archive` source on this daemon.
async fn marketplace(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    governed(&request, &state, "marketplace".into(), None, Action::Marketplace).await
}

/// `GET /marketplace/plugins/{name}/plugin.zip`: one skill's latest version as a plugin.
async fn plugin_zip(request: HttpRequest, state: web::Data<AppState>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    governed(&request, &state, format!("{name}/plugin.zip"), Some(name), Action::PluginZip).await
}

/// Authenticates, states the request in the chain's terms and runs it.
async fn governed(
    request: &HttpRequest,
    state: &AppState,
    requested: String,
    skill: Option<String>,
    action: Action,
) -> HttpResponse {
    let trace_id = crate::http::trace_id_for(request);
    let principal = match crate::http::authenticate(state, request, &trace_id, None).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let Some(catalog) = state.gateway.skills.clone() else {
        return HttpResponse::NotFound().json(json!({"error": "skills are not served by this daemon"}));
    };
    let server = SKILLS_SERVER.to_string();
    let resolution = match &skill {
        None => Resolution::Found(Target {
            server,
            name: requested.clone(),
            rbac: RbacTarget::Listing,
            definition_hash: None,
        }),
        Some(name) if castellan_skills::check_name(name).is_err() => {
            Resolution::Invalid { server, message: format!("`{name}` is not a skill name") }
        }
        Some(name) => match catalog.snapshot().get(name) {
            Some(_) => {
                Resolution::Found(Target { server, name: name.clone(), rbac: RbacTarget::Skill, definition_hash: None })
            }
            None => Resolution::Unknown { server, message: format!("unknown skill: {name}") },
        },
    };
    let chain_request = Request {
        principal: &principal,
        client: crate::http::client_address(state, request),
        kind: ExecutionKind::Skill,
        requested: &requested,
        arguments: json!({"path": request.path()}),
        session_id: None,
        trace_id: &trace_id,
        hook: HookIdentity { tool_use_id: format!("skills:{trace_id}") },
    };
    let upstream =
        ApiUpstream { state, catalog, principal: &principal, trace_id: &trace_id, action, archive: Mutex::new(None) };
    let governed = state.gateway.govern_with(chain_request, resolution, &upstream).await;
    match governed.outcome {
        Outcome::Answered(body) => match upstream.archive.lock().ok().and_then(|mut archive| archive.take()) {
            Some((file_name, digest, bytes)) => HttpResponse::Ok()
                .content_type(if file_name.ends_with(".zip") { "application/zip" } else { "application/gzip" })
                .insert_header(("Content-Disposition", format!("attachment; filename=\"{file_name}\"")))
                .insert_header(("X-Castellan-Skill-Digest", digest))
                .insert_header(("Cache-Control", "private, no-store"))
                .body(bytes),
            None => HttpResponse::Ok().insert_header(("Cache-Control", "private, no-store")).json(body),
        },
        Outcome::UpstreamError(error) => {
            let status = error.get("status").and_then(Value::as_u64).unwrap_or(500);
            let message = error.get("message").and_then(Value::as_str).unwrap_or("failed").to_string();
            let status = actix_web::http::StatusCode::from_u16(u16::try_from(status).unwrap_or(500))
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            HttpResponse::build(status).json(json!({"error": message}))
        }
        Outcome::RateLimited { policy, retry_after } => crate::http::too_many_requests(
            &policy,
            retry_after,
            json!({"error": format!("rate limited by {}", policy.limit)}),
        ),
        Outcome::Forbidden(message) => HttpResponse::Forbidden().json(json!({"error": message})),
        Outcome::Unknown(message) => HttpResponse::NotFound().json(json!({"error": message})),
        Outcome::InvalidRequest(message) => HttpResponse::BadRequest().json(json!({"error": message})),
        other => {
            let message = other.error_message().unwrap_or_else(|| "the request did not run".to_string());
            HttpResponse::ServiceUnavailable().json(json!({"error": message}))
        }
    }
}

/// An archive ready to send: file name, digest, bytes.
type ReadyArchive = (String, String, Vec<u8>);

/// The chain's execute step for an API request.
struct ApiUpstream<'a> {
    state: &'a AppState,
    catalog: Arc<SkillCatalog>,
    principal: &'a Principal,
    trace_id: &'a str,
    action: Action,
    archive: Mutex<Option<ReadyArchive>>,
}

/// An archive is sent as published (its digest must verify), so it cannot be redacted: a skill
/// whose content holds the value of a secret in the store is not sent at all. The refusal names
/// the file, never the secret.
fn holds_a_secret(skill: &str, files: &[(castellan_schema::skills::FileEntry, Vec<u8>)]) -> Option<Executed> {
    let redactor = crate::redaction::current();
    let file = files
        .iter()
        .find(|(_, bytes)| matches!(redactor.redact(&String::from_utf8_lossy(bytes)), std::borrow::Cow::Owned(_)))?;
    tracing::warn!(skill, file = %file.0.path, "a skill's content holds a secret's value; its archive is refused");
    Some(refusal(
        409,
        format!(
            "{skill}/{} holds the value of a secret in Castellan's store; the skill is not served as an archive",
            file.0.path
        ),
    ))
}

fn refusal(status: u16, message: impl Into<String>) -> Executed {
    Executed::Answered(Err(json!({"status": status, "message": message.into()})))
}

impl ApiUpstream<'_> {
    /// The version `wanted` names (`latest` for the catalog's), if it may be served.
    async fn find(&self, name: &str, wanted: &str) -> Result<VersionSummary, Executed> {
        if wanted == "latest" {
            return match self.catalog.snapshot().get(name) {
                Some(entry) => Ok(entry.version.clone()),
                None => Err(refusal(404, format!("unknown skill: {name}"))),
            };
        }
        let found = castellan_schema::skills::find_version(self.catalog.db(), name, Some(wanted))
            .await
            .map_err(|error| Executed::Failed(format!("reading the skill failed: {error}")))?;
        let Some(version) = found else { return Err(refusal(404, format!("skill {name} has no version {wanted}"))) };
        if version.yanked {
            return Err(refusal(410, format!("version {wanted} of skill {name} was yanked")));
        }
        let keys = self.catalog.signing_keys();
        if !keys.is_empty() && !version.signed_by.as_ref().is_some_and(|key| keys.contains(key)) {
            return Err(refusal(404, format!("version {wanted} of skill {name} is not signed by a trusted key")));
        }
        Ok(version)
    }

    async fn run(&self, target: &Target) -> Executed {
        let db = self.catalog.db();
        match &self.action {
            Action::List => {
                let snapshot = self.catalog.snapshot();
                let policies = self.state.gateway.policies.load();
                let skills: Vec<Value> = SkillCatalog::visible(&snapshot, &policies.policy, self.principal.tier)
                    .map(|entry| {
                        let mut shown = version_json(&entry.version);
                        shown["frontmatter"] = entry.frontmatter.clone();
                        shown
                    })
                    .collect();
                Executed::Answered(Ok(json!({"skills": skills})))
            }
            Action::Versions => {
                let all = match castellan_schema::skills::versions_of(db, &target.name).await {
                    Ok(all) => all,
                    Err(error) => return Executed::Failed(format!("reading the skill failed: {error}")),
                };
                let admin = self.principal.tier >= castellan_config::Tier::Admin;
                let shown: Vec<Value> =
                    all.iter().filter(|version| admin || !version.yanked).map(version_json).collect();
                let latest = self.catalog.snapshot().get(&target.name).map(|entry| entry.version.version.clone());
                Executed::Answered(Ok(json!({"name": target.name, "latest": latest, "versions": shown})))
            }
            Action::Version { version } => {
                let found = match self.find(&target.name, version).await {
                    Ok(found) => found,
                    Err(refused) => return refused,
                };
                let files = match castellan_schema::skills::files_of(db, found.id).await {
                    Ok(files) => files,
                    Err(error) => return Executed::Failed(format!("reading the skill failed: {error}")),
                };
                let mut shown = version_json(&found);
                shown["frontmatter"] = serde_json::from_str(&found.frontmatter).unwrap_or(Value::Null);
                shown["signature"] =
                    found.signature.as_deref().and_then(|text| serde_json::from_str(text).ok()).unwrap_or(Value::Null);
                shown["files"] = files
                    .iter()
                    .map(|file| json!({"path": file.path, "sha256": file.sha256, "size": file.size}))
                    .collect();
                Executed::Answered(Ok(shown))
            }
            Action::Archive { version, via } => {
                let found = match self.find(&target.name, version).await {
                    Ok(found) => found,
                    Err(refused) => return refused,
                };
                let files = match castellan_schema::skills::read_all_files(db, found.id).await {
                    Ok(files) => files,
                    Err(error) => return Executed::Failed(format!("reading the skill failed: {error}")),
                };
                if let Some(refused) = holds_a_secret(&found.name, &files) {
                    return refused;
                }
                let files: Vec<(String, Vec<u8>)> = files.into_iter().map(|(file, bytes)| (file.path, bytes)).collect();
                let mtime = u64::try_from(found.published_at.timestamp()).unwrap_or(0);
                let bytes = match super::archive::write(&found.name, &files, mtime) {
                    Ok(bytes) => bytes,
                    Err(error) => return Executed::Failed(error),
                };
                if let Err(message) = record_fetch(db, &found, self.principal, via, self.trace_id).await {
                    return Executed::Failed(message);
                }
                let size = bytes.len();
                let file_name = format!("{}-{}.tar.gz", found.name, found.version);
                if let Ok(mut archive) = self.archive.lock() {
                    *archive = Some((file_name, found.digest.clone(), bytes));
                }
                Executed::Answered(Ok(json!({"skill": found.name, "version": found.version, "bytes": size})))
            }
            Action::Marketplace => {
                let snapshot = self.catalog.snapshot();
                let policies = self.state.gateway.policies.load();
                let base = self.state.public_url.trim_end_matches('/');
                let plugins: Vec<Value> = SkillCatalog::visible(&snapshot, &policies.policy, self.principal.tier)
                    .map(|entry| {
                        json!({
                            "name": entry.name(),
                            "description": entry.version.description,
                            "version": entry.version.version,
                            "source": {"source": "archive", "url": format!("{base}/marketplace/plugins/{}/plugin.zip", entry.name())},
                            "category": "skills",
                        })
                    })
                    .collect();
                Executed::Answered(Ok(json!({
                    "name": MARKETPLACE_NAME,
                    "owner": {"name": "Castellan", "url": base},
                    "metadata": {"description": format!("The skills published to Castellan at {base} that you may use")},
                    "plugins": plugins,
                })))
            }
            Action::PluginZip => {
                let Some(entry) = self.catalog.snapshot().get(&target.name).cloned() else {
                    return refusal(404, format!("unknown skill: {}", target.name));
                };
                let files = match castellan_schema::skills::read_all_files(db, entry.version.id).await {
                    Ok(files) => files,
                    Err(error) => return Executed::Failed(format!("reading the skill failed: {error}")),
                };
                if let Some(refused) = holds_a_secret(entry.name(), &files) {
                    return refused;
                }
                let manifest = json!({
                    "name": entry.name(),
                    "description": entry.version.description,
                    "version": entry.version.version,
                    "author": {"name": "Castellan"},
                });
                let mut zipped =
                    vec![(".claude-plugin/plugin.json".to_string(), format!("{manifest:#}\n").into_bytes())];
                zipped.extend(
                    files.into_iter().map(|(file, bytes)| (format!("skills/{}/{}", entry.name(), file.path), bytes)),
                );
                let bytes = match super::zip::write(&zipped) {
                    Ok(bytes) => bytes,
                    Err(error) => return Executed::Failed(error),
                };
                if let Err(message) = record_fetch(db, &entry.version, self.principal, "api", self.trace_id).await {
                    return Executed::Failed(message);
                }
                let size = bytes.len();
                if let Ok(mut archive) = self.archive.lock() {
                    *archive = Some((format!("{}.zip", entry.name()), entry.version.digest.clone(), bytes));
                }
                Executed::Answered(Ok(json!({"skill": entry.name(), "version": entry.version.version, "bytes": size})))
            }
        }
    }
}

impl Upstream for ApiUpstream<'_> {
    fn execute<'a>(&'a self, target: &'a Target, _arguments: Value) -> BoxFuture<'a, Executed> {
        Box::pin(self.run(target))
    }
}
