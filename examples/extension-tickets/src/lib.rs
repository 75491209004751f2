//! The reference extension: support tickets.
//!
//! It shows every part of the `Extension` trait the daemon puts behind the governed chain:
//! - a profile section, `tickets: { queues: [{ name, sla_hours }] }`, checked at `profile check`;
//! - a table, `tickets`, created by its own migration on SQLite and PostgreSQL;
//! - routes: `GET /ext/tickets/tickets` and `POST /ext/tickets/tickets` for signed-in users;
//! - a job, `tickets.escalate`, that marks open tickets past their queue's SLA `overdue`;
//! - tools, `tickets__open_ticket` and `tickets__list_open`, served in-process on `/mcp`;
//! - a page, `/ext/tickets/pages/queues`, rendered once at start from the section;
//! - a provider kind for the AI gateway, `acme-openai`: OpenAI's format, the key in `X-Acme-Key`.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use castellan::extension::{
    Access, CallContext, Extension, Job, JobContext, LlmProvider, Metadata, PagePrerenderer, ProviderKind, Routes,
    Schedule, SectionProblem, TableSchema, Tier, ToolProvider, register_extension,
};
use futures_util::future::BoxFuture;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::prelude::{ColumnDef, DbErr, Table};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use serde_json::{Value, json};

/// The extension's id: its routes are under `/ext/tickets/`, its section is `tickets:`.
pub const ID: &str = "tickets";

/// The longest title accepted.
const MAX_TITLE_CHARS: usize = 200;

pub struct Tickets;

impl Extension for Tickets {
    fn metadata(&self) -> Metadata {
        Metadata { id: ID, name: "Tickets", version: env!("CARGO_PKG_VERSION") }
    }

    fn router(&self) -> Option<Routes> {
        Some(Routes {
            access: Access { min_tier: Tier::User, scopes: Vec::new() },
            configure: Arc::new(|routes| {
                routes.route("/tickets", web::get().to(list_route)).route("/tickets", web::post().to(open_route));
            }),
        })
    }

    fn schemas(&self) -> Vec<TableSchema> {
        vec![TableSchema { name: "tickets", description: "support tickets, one row per ticket" }]
    }

    fn migrations(&self) -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateTickets)]
    }

    fn jobs(&self) -> Vec<Arc<dyn Job>> {
        vec![Arc::new(Escalate)]
    }

    fn tool_providers(&self) -> Vec<Arc<dyn ToolProvider>> {
        vec![Arc::new(TicketTools)]
    }

    fn llm_providers(&self) -> Vec<Arc<dyn LlmProvider>> {
        vec![Arc::new(AcmeLlm)]
    }

    fn page_prerenderers(&self) -> Vec<Arc<dyn PagePrerenderer>> {
        vec![Arc::new(QueuesPage)]
    }

    fn config_prefix(&self) -> Option<&'static str> {
        Some(ID)
    }

    fn validate_config(&self, section: &Value) -> Vec<SectionProblem> {
        validate(section)
    }
}

register_extension!(Tickets);

fn problem(path: impl Into<String>, message: impl Into<String>) -> SectionProblem {
    SectionProblem { path: path.into(), message: message.into() }
}

/// `tickets: { queues: [{ name: [a-z0-9-]+, sla_hours: 1.. }] }`; unknown keys are refused.
pub fn validate(section: &Value) -> Vec<SectionProblem> {
    let mut problems = Vec::new();
    let Some(section) = section.as_object() else {
        return vec![problem("", "expected a mapping with `queues`")];
    };
    for key in section.keys().filter(|key| key.as_str() != "queues") {
        problems.push(problem(key.clone(), format!("unknown key `{key}`; expected: queues")));
    }
    let Some(queues) = section.get("queues").and_then(Value::as_array) else {
        problems.push(problem("", "needs `queues`, a list of `{ name, sla_hours }`"));
        return problems;
    };
    for (index, queue) in queues.iter().enumerate() {
        let at = |field: &str| format!("queues[{index}]{field}");
        let Some(queue) = queue.as_object() else {
            problems.push(problem(at(""), "expected `{ name, sla_hours }`"));
            continue;
        };
        for key in queue.keys().filter(|key| !["name", "sla_hours"].contains(&key.as_str())) {
            problems.push(problem(at(&format!(".{key}")), format!("unknown key `{key}`; expected: name, sla_hours")));
        }
        match queue.get("name").and_then(Value::as_str) {
            Some(name) if is_queue_name(name) => {}
            _ => problems.push(problem(at(".name"), "must be lowercase letters, digits and `-`")),
        }
        match queue.get("sla_hours").and_then(Value::as_u64) {
            Some(hours) if (1..=8760).contains(&hours) => {}
            _ => problems.push(problem(at(".sla_hours"), "must be a whole number of hours from 1 to 8760")),
        }
    }
    problems
}

fn is_queue_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
}

/// The queues of a (validated) section, with their SLA.
fn queues(config: Option<&Value>) -> Vec<(String, u64)> {
    config
        .and_then(|config| config.get("queues"))
        .and_then(Value::as_array)
        .map(|queues| {
            queues
                .iter()
                .filter_map(|queue| Some((queue.get("name")?.as_str()?.to_string(), queue.get("sla_hours")?.as_u64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The `tickets` table.
struct CreateTickets;

impl MigrationName for CreateTickets {
    fn name(&self) -> &str {
        "tickets_m20261207_000001_create_tickets"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for CreateTickets {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("tickets"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("id")).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Alias::new("queue")).string().not_null())
                    .col(ColumnDef::new(Alias::new("title")).string().not_null())
                    .col(ColumnDef::new(Alias::new("opened_by")).string().not_null())
                    .col(ColumnDef::new(Alias::new("status")).string().not_null())
                    .col(ColumnDef::new(Alias::new("opened_at_ms")).big_integer().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Alias::new("tickets")).to_owned()).await
    }
}

/// A ticket as the routes and tools show it.
async fn open_ticket(
    db: &DatabaseConnection,
    config: Option<&Value>,
    queue: &str,
    title: &str,
    user: &str,
) -> Result<Value, String> {
    if !queues(config).iter().any(|(name, _)| name == queue) {
        let known: Vec<String> = queues(config).into_iter().map(|(name, _)| name).collect();
        return Err(format!("no queue named `{queue}`; the queues are: {}", known.join(", ")));
    }
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(format!("a title is 1 to {MAX_TITLE_CHARS} characters"));
    }
    let now = chrono::Utc::now().timestamp_millis();
    let insert = Query::insert()
        .into_table(Alias::new("tickets"))
        .columns(["queue", "title", "opened_by", "status", "opened_at_ms"].map(Alias::new))
        .values([queue.into(), title.into(), user.into(), "open".into(), now.into()])
        .map_err(|error| error.to_string())?
        .to_owned();
    db.execute(&insert).await.map_err(|error| error.to_string())?;
    Ok(json!({"queue": queue, "title": title, "opened_by": user, "status": "open"}))
}

async fn list_tickets(db: &DatabaseConnection, only_open: bool) -> Result<Vec<Value>, String> {
    let mut select = Query::select();
    select
        .columns(["id", "queue", "title", "opened_by", "status"].map(Alias::new))
        .from(Alias::new("tickets"))
        .order_by(Alias::new("id"), Order::Asc);
    if only_open {
        select.and_where(Expr::col(Alias::new("status")).ne("closed"));
    }
    let rows = db.query_all(&select).await.map_err(|error| error.to_string())?;
    rows.iter()
        .map(|row| {
            let text = |column: &str| row.try_get::<String>("", column).map_err(|error| error.to_string());
            Ok(json!({
                "id": row.try_get::<i64>("", "id").map_err(|error| error.to_string())?,
                "queue": text("queue")?, "title": text("title")?, "opened_by": text("opened_by")?, "status": text("status")?,
            }))
        })
        .collect()
}

async fn list_route(context: web::ReqData<CallContext>) -> HttpResponse {
    match list_tickets(&context.db, false).await {
        Ok(tickets) => HttpResponse::Ok().json(json!({"tickets": tickets})),
        Err(error) => HttpResponse::InternalServerError().json(json!({"error": error})),
    }
}

async fn open_route(context: web::ReqData<CallContext>, body: web::Bytes) -> HttpResponse {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return HttpResponse::BadRequest().json(json!({"error": "the body must be JSON: {\"queue\", \"title\"}"}));
    };
    let (Some(queue), Some(title)) = (request["queue"].as_str(), request["title"].as_str()) else {
        return HttpResponse::BadRequest().json(json!({"error": "needs `queue` and `title`"}));
    };
    match open_ticket(&context.db, context.config.as_ref(), queue, title, &context.caller.user).await {
        Ok(ticket) => HttpResponse::Created().json(ticket),
        Err(error) => HttpResponse::BadRequest().json(json!({"error": error})),
    }
}

/// `tickets.escalate`: open tickets older than their queue's SLA become `overdue`.
struct Escalate;

impl Job for Escalate {
    fn name(&self) -> &str {
        "escalate"
    }

    fn schedule(&self) -> Schedule {
        Schedule::Every(Duration::from_secs(60))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    fn run<'a>(&'a self, context: &'a JobContext) -> BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            let now = chrono::Utc::now().timestamp_millis();
            let mut escalated = 0;
            for (queue, sla_hours) in queues(context.config.as_ref()) {
                let due_before = now - (Ord::min(sla_hours, 8760) as i64) * 3_600_000;
                let update = Query::update()
                    .table(Alias::new("tickets"))
                    .value(Alias::new("status"), "overdue")
                    .and_where(Expr::col(Alias::new("queue")).eq(queue.as_str()))
                    .and_where(Expr::col(Alias::new("status")).eq("open"))
                    .and_where(Expr::col(Alias::new("opened_at_ms")).lte(due_before))
                    .to_owned();
                escalated += context.db.execute(&update).await.map_err(|error| error.to_string())?.rows_affected();
            }
            Ok(format!("{escalated} tickets overdue"))
        })
    }
}

/// `kind: acme-openai`: an OpenAI-compatible API that wants its key in `X-Acme-Key`.
struct AcmeLlm;

impl LlmProvider for AcmeLlm {
    fn kind(&self) -> &str {
        "acme-openai"
    }

    fn speaks(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn default_base_url(&self) -> &str {
        "https://llm.acme.example/v1"
    }

    fn credential_headers(&self, api_key: &str) -> Vec<(String, String)> {
        vec![("x-acme-key".to_string(), api_key.to_string())]
    }
}

/// `pages/queues`: the queues and their SLA, rendered once at start from the section.
struct QueuesPage;

impl PagePrerenderer for QueuesPage {
    fn path(&self) -> &str {
        "queues"
    }

    fn render(&self, config: Option<&Value>) -> Result<String, String> {
        let rows: String = queues(config)
            .iter()
            .map(|(name, hours)| format!("<tr><td>{}</td><td>{hours} h</td></tr>", escape_html(name)))
            .collect();
        Ok(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Ticket queues</title></head>\
             <body><h1>Ticket queues</h1><table><tr><th>Queue</th><th>SLA</th></tr>{rows}</table></body></html>"
        ))
    }
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The tools: open a ticket as the caller, list the tickets not closed.
struct TicketTools;

impl ToolProvider for TicketTools {
    fn server(&self) -> &str {
        ID
    }

    fn tools(&self) -> Vec<Value> {
        vec![
            json!({
                "name": "open_ticket",
                "description": "Open a support ticket in a queue",
                "inputSchema": {"type": "object", "required": ["queue", "title"], "properties": {
                    "queue": {"type": "string"}, "title": {"type": "string"}}}
            }),
            json!({
                "name": "list_open",
                "description": "List the tickets that are not closed",
                "inputSchema": {"type": "object", "properties": {}}
            }),
        ]
    }

    fn call<'a>(
        &'a self,
        context: &'a CallContext,
        tool: &'a str,
        arguments: Value,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(async move {
            let text = |value: &Value| json!({"content": [{"type": "text", "text": value.to_string()}], "structuredContent": value});
            match tool {
                "open_ticket" => {
                    let queue = arguments["queue"].as_str().unwrap_or_default();
                    let title = arguments["title"].as_str().unwrap_or_default();
                    let ticket =
                        open_ticket(&context.db, context.config.as_ref(), queue, title, &context.caller.user).await?;
                    Ok(text(&ticket))
                }
                "list_open" => Ok(text(&json!({"tickets": list_tickets(&context.db, true).await?}))),
                other => Err(format!("unknown tool: {other}")),
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_section_has_no_problems_and_each_defect_names_its_path() {
        assert!(validate(&json!({"queues": [{"name": "support", "sla_hours": 4}]})).is_empty());
        let problems = validate(&json!({"queues": [{"name": "Support", "sla_hours": 0, "owner": "x"}], "extra": 1}));
        let paths: Vec<&str> = problems.iter().map(|problem| problem.path.as_str()).collect();
        assert_eq!(paths, ["extra", "queues[0].owner", "queues[0].name", "queues[0].sla_hours"]);
        assert_eq!(validate(&json!([])).len(), 1);
    }
}
