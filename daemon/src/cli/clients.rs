//! `castellan clients`: OAuth clients registered by an operator (service clients using client
//! credentials, and applications using the authorization code flow).

use std::process::ExitCode;

use castellan_config::Tier;
use chrono::Utc;
use clap::Subcommand;

use super::terminal::{escape, table};
use super::{GlobalArgs, load_profile};
use crate::identity::{credentials, grants, redirect_uri};

#[derive(Subcommand, Debug)]
pub enum ClientsCommand {
    /// Register a client; prints its id and, for a confidential client, its secret once.
    Add {
        name: String,
        #[arg(long)]
        tier: String,
        /// client_credentials or authorization_code (repeatable). Default: client_credentials.
        #[arg(long = "grant")]
        grants: Vec<String>,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Scopes the client may request (repeatable). Default: any this server knows.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Register a public client (no secret; authorization code with PKCE only).
        #[arg(long)]
        public: bool,
    },
    /// List clients (never their secrets).
    List,
    /// Remove a client and revoke every grant it holds.
    Rm { id: String },
}

pub async fn run(global: &GlobalArgs, command: ClientsCommand) -> Result<ExitCode, String> {
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    match command {
        ClientsCommand::Add { name, tier, grants: mut grant_types, redirect_uris, scopes, public } => {
            let tier = Tier::parse(&tier)
                .ok_or_else(|| format!("unknown tier '{tier}': use admin, user, service, a2a, mcp or anonymous"))?;
            if name.trim().is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
                return Err("a client name is 1 to 200 printable characters".into());
            }
            if grant_types.is_empty() {
                grant_types.push("client_credentials".into());
            }
            for grant in &grant_types {
                if !matches!(grant.as_str(), "client_credentials" | "authorization_code") {
                    return Err(format!("unknown grant '{grant}': use client_credentials or authorization_code"));
                }
            }
            let code_flow = grant_types.iter().any(|grant| grant == "authorization_code");
            if code_flow {
                grant_types.push("refresh_token".into());
                if redirect_uris.is_empty() {
                    return Err("the authorization_code grant needs at least one --redirect-uri".into());
                }
            }
            if public && grant_types.iter().any(|grant| grant == "client_credentials") {
                return Err("a public client cannot use client_credentials: it has no secret".into());
            }
            for uri in &redirect_uris {
                redirect_uri::check_registrable(uri).map_err(|error| error.to_string())?;
            }
            if !scopes.is_empty() {
                grants::parse_scope(Some(&scopes.join(" "))).map_err(|error| error.to_string())?;
            }
            let client_id = credentials::generate_id("cl_");
            let secret = (!public).then(|| credentials::generate(credentials::CLIENT_SECRET_PREFIX));
            let secret_hash = secret.as_deref().map(credentials::hash);
            let new_client = castellan_schema::oauth::NewOAuthClient {
                client_id: &client_id,
                name: &name,
                tier: tier.as_str(),
                secret_hash: secret_hash.as_deref(),
                grant_types: &grant_types,
                redirect_uris: &redirect_uris,
                scopes: &scopes,
                dynamic: false,
            };
            castellan_schema::oauth::create_client(&db, &new_client, Utc::now())
                .await
                .map_err(|error| error.to_string())?;
            println!("client_id: {client_id}");
            if let Some(secret) = secret {
                eprintln!("client secret (shown once, store it now):");
                println!("client_secret: {secret}");
            }
        }
        ClientsCommand::List => {
            let clients = castellan_schema::oauth::list_clients(&db).await.map_err(|error| error.to_string())?;
            // Dynamically registered clients chose their own names: escaped before they are shown.
            let rows: Vec<Vec<String>> = clients
                .iter()
                .map(|client| {
                    vec![
                        escape(&client.client_id),
                        escape(&client.name),
                        client.tier.clone(),
                        client.secret_hash.is_some().to_string(),
                        client.dynamic.to_string(),
                        escape(&client.grant_types.join(",")),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "NAME", "TIER", "SECRET", "DYNAMIC", "GRANTS"], &rows));
        }
        ClientsCommand::Rm { id } => {
            if !castellan_schema::oauth::remove_client(&db, &id, Utc::now()).await.map_err(|error| error.to_string())? {
                return Err(format!("no client with id '{id}'"));
            }
            println!(
                "removed {id}; its refresh tokens are revoked now and a running daemon stops accepting the client within {}s",
                crate::identity::authority::CLIENT_CACHE_TTL.as_secs()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
