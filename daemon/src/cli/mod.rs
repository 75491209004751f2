//! The command line: parsing with clap, then one small function per command.

mod admin;
mod audit;
mod budgets;
mod clients;
pub(crate) mod costs;
mod database;
mod export_import;
mod hook;
mod hooks_tail;
mod jobs;
mod policy;
mod secrets;
mod skills;
mod terminal;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::{Application, ProfileSource};

#[derive(Parser, Debug)]
#[command(name = "castellan", version, about = "The governed MCP gateway: identity, RBAC, audit on every tool call")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The profile (YAML). Without it, the embedded default profile.
    #[arg(long, global = true, env = "CASTELLAN_PROFILE")]
    pub profile: Option<PathBuf>,
    /// Log lines of the daemon: text or json. Default: text when stderr is a terminal, else json.
    #[arg(long, global = true, value_enum, env = "CASTELLAN_LOG_FORMAT")]
    pub log_format: Option<crate::observability::LogFormat>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve {
        /// Listen address, overriding the profile's `server.listen`.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Profile tools.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(admin::UsersCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(admin::KeysCommand),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Manage the secret store (values are write-only).
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Skills (folders with a SKILL.md).
    #[command(subcommand)]
    Skills(skills::SkillsCommand),
    /// Pinned tool definitions.
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Claude Code hook shim: reads the hook JSON on stdin, asks the daemon, prints the decision.
    Hook {
        /// PreToolUse, PostToolUse, UserPromptSubmit, Stop, ...
        event: String,
    },
    /// Read and verify the audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Read the hook decisions (`hook_events`).
    #[command(subcommand)]
    Hooks(hooks_tail::HooksCommand),
    /// Scheduled jobs: their last run, next run and outcome; run one now.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Explain RBAC decisions.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Spend from `ai_requests`, in USD (stored as microdollars).
    Costs(costs::CostsArgs),
    /// Every budget with its period, spent and remaining.
    Budgets {
        /// One JSON object per budget account per line.
        #[arg(long)]
        json: bool,
    },
    /// Write the policy, users and skills as Markdown files with YAML frontmatter (for git).
    Export(export_import::ExportArgs),
    /// Check a folder `export` wrote, then apply it (or, with --dry-run, list the changes).
    Import(export_import::ImportArgs),
    /// A small MCP server with a customers data set (stdio, or HTTP with --http).
    DemoServer {
        /// Serve Streamable HTTP on this address instead of stdio.
        #[arg(long)]
        http: Option<String>,
    },
    /// Internal: runs between the daemon and a supervised MCP server.
    #[command(name = "supervise-child", hide = true)]
    SuperviseChild {
        #[arg(trailing_var_arg = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProfileCommand {
    /// Validate a profile: exit 0 if valid, else 1 and one line per problem.
    Check {
        file: PathBuf,
        /// The profile the daemon was started with: also print `FILE: needs a restart: KEY` for
        /// each setting FILE changes that a reload does not apply.
        #[arg(long, value_name = "RUNNING_FILE")]
        running: Option<PathBuf>,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SuperviseChild { mut command } => {
            let program = command.remove(0);
            let code = castellan_actors::spawn::run_child_supervisor(program, command);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Command::Profile(ProfileCommand::Check { file, running }) => check_profile(&file, running.as_deref()),
        // Checking a folder needs no profile, database or runtime.
        Command::Skills(skills::SkillsCommand::Check { dirs }) => skills::check(&dirs),
        Command::Skills(skills::SkillsCommand::Sign { dir, key }) => skills::sign(&dir, &key),
        command => run_async(cli.global, command),
    }
}

/// `castellan profile check FILE [--running RUNNING_FILE]`.
/// Exact routes to models with no price in the catalog or `pricing`: their rows will have no cost.
fn unpriced_routes(profile: &castellan_config::Profile) -> Vec<String> {
    let Ok(catalog) = castellan_ai::catalog::Catalog::builtin() else {
        return vec!["the built-in price catalog is unreadable: costs will be NULL".into()];
    };
    profile
        .priced_models_to_check()
        .into_iter()
        .filter(|model| catalog.prices(model).is_none())
        .map(|model| format!("models: '{model}' has no price in the catalog or in `pricing`; its requests will carry no cost and budgets will not count them"))
        .collect()
}

fn check_profile(file: &std::path::Path, running: Option<&std::path::Path>) -> ExitCode {
    let print_problems = |problems: Vec<castellan_config::Problem>| {
        for problem in problems {
            println!("{problem}");
        }
        ExitCode::FAILURE
    };
    let checked = match castellan_config::load_profile_file(file) {
        Ok(profile) => profile,
        Err(problems) => return print_problems(problems),
    };
    println!("{}: ok", file.display());
    for warning in unpriced_routes(&checked) {
        println!("{}: warning: {warning}", file.display());
    }
    let Some(running) = running else { return ExitCode::SUCCESS };
    let running = match castellan_config::load_profile_file(running) {
        Ok(profile) => profile,
        Err(problems) => return print_problems(problems),
    };
    for key in crate::reload::restart_only_changes(&running, &checked) {
        println!("{}: needs a restart: {key}", file.display());
    }
    ExitCode::SUCCESS
}

fn run_async(global: GlobalArgs, command: Command) -> ExitCode {
    let system = actix::System::new();
    let result = system.block_on(async move {
        match command {
            Command::Serve { listen } => serve(&global, listen).await,
            Command::Migrate => admin::migrate(&global).await,
            Command::Users(command) => admin::users(&global, command).await,
            Command::Keys(command) => admin::keys(&global, command).await,
            Command::Clients(command) => clients::run(&global, command).await,
            Command::Secrets(command) => secrets::run(&global, command).await,
            Command::Tools(command) => tools::run(&global, command).await,
            Command::Hook { event } => hook::run(&global, &event).await,
            Command::Audit(command) => audit::run(&global, command).await,
            Command::Hooks(command) => hooks_tail::run(&global, command).await,
            Command::Policy(command) => policy::run(&global, command).await,
            Command::Jobs(command) => jobs::run(&global, command).await,
            Command::Costs(args) => costs::run(&global, args).await,
            Command::Budgets { json } => budgets::run(&global, json).await,
            Command::Skills(command) => skills::run(&global, command).await,
            Command::Export(args) => export_import::run_export(&global, args).await,
            Command::Import(args) => export_import::run_import(&global, args).await,
            Command::DemoServer { http: None } => {
                crate::demo_server::run_stdio().await.map_err(|error| error.to_string()).map(|_| ExitCode::SUCCESS)
            }
            Command::DemoServer { http: Some(address) } => crate::demo_server::run_http(&address)
                .await
                .map_err(|error| error.to_string())
                .map(|_| ExitCode::SUCCESS),
            Command::Profile(_) | Command::SuperviseChild { .. } => Ok(ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("castellan: {message}");
            // Actors started before the failure (a daemon that could not finish starting) would be
            // cancelled when the system is dropped, outside its runtime, and panic there; the
            // process is exiting, so there is nothing to clean up.
            std::mem::forget(system);
            ExitCode::FAILURE
        }
    }
}

/// Loads the profile named by `--profile`/`CASTELLAN_PROFILE`, or the embedded default, and applies
/// `CASTELLAN_DATABASE_URL`.
pub fn load_profile(global: &GlobalArgs) -> Result<(castellan_config::Profile, ProfileSource), String> {
    let (loaded, source) = match &global.profile {
        Some(path) => (castellan_config::load_profile_file(path), ProfileSource::File(path.clone())),
        None => (castellan_config::default_profile(), ProfileSource::Embedded),
    };
    let mut profile = loaded.map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!("invalid profile:\n{}", lines.join("\n"))
    })?;
    apply_environment(&mut profile);
    Ok((profile, source))
}

/// What the environment overrides in a profile: `CASTELLAN_DATABASE_URL`. Applied to a reloaded
/// profile too, so that it is compared with the running one on equal terms.
pub fn apply_environment(profile: &mut castellan_config::Profile) {
    if let Ok(url) = std::env::var("CASTELLAN_DATABASE_URL")
        && !url.is_empty()
    {
        profile.database.url = url;
    }
}

async fn serve(global: &GlobalArgs, listen: Option<String>) -> Result<ExitCode, String> {
    crate::observability::init_logging(global.log_format);
    let (mut profile, source) = load_profile(global)?;
    // Before anything binds or migrates: a duplicate id, a missing dependency or a cycle among the
    // extensions built into this binary stops the start with the names involved.
    let extensions = castellan_extension::discover().map_err(|error| format!("extensions: {error}"))?;
    crate::extensions::check(&extensions).map_err(|error| format!("extensions: {error}"))?;
    for extension in extensions.iter() {
        let metadata = extension.metadata();
        tracing::info!(id = metadata.id, name = metadata.name, version = metadata.version, "extension registered");
    }
    let as_started = profile.clone();
    if let Some(listen) = listen {
        if profile.server.public_url == castellan_config::derived_public_url(&profile.server.listen) {
            profile.server.public_url = castellan_config::derived_public_url(&listen);
        }
        profile.server.listen = listen;
    }
    // Bound before anything else: a taken port is reported at once, before migrations run and
    // before the bootstrap admin key is printed for a daemon that would never serve it.
    let listener = std::net::TcpListener::bind(&profile.server.listen).map_err(|error| {
        let reason = match error.kind() {
            std::io::ErrorKind::AddrInUse => "the address is already in use (another castellan or another program listens there; choose another with --listen or server.listen)".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied (ports below 1024 need privileges)".to_string(),
            _ => error.to_string(),
        };
        format!("cannot listen on {}: {reason}", profile.server.listen)
    })?;
    let db = database::open_or_create(&profile).await?;
    admin::bootstrap_admin(&db, &profile.server.public_url).await?;
    let application =
        Application::build_on(&profile, db, listener).await.map_err(|error| one_line(&error.to_string()))?;
    tracing::info!(listen_addr = %application.address, "castellan listening");
    if let ProfileSource::File(path) = source {
        crate::reload::watch_profile(path, as_started, application.handles());
    }
    application.run_until_stopped().await.map_err(|error| error.to_string())?;
    Ok(ExitCode::SUCCESS)
}

/// An error message on one line: what a failed start prints is one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
