//! The extensions built into this binary, as the daemon uses them: their profile sections (installed
//! before any profile is read), the checks made before anything starts, and their migrations.

use std::collections::BTreeSet;

use std::sync::Arc;

use castellan_extension::{LlmProvider, Ordered};

/// Tables the daemon owns, by prefix and by name: no extension may declare one.
const BUILT_IN_TABLE_PREFIXES: &[&str] = &["castellan_", "seaql_", "oauth_", "job_", "mcp_", "ai_", "a2a_", "skill"];
const BUILT_IN_TABLES: &[&str] = &[
    "api_keys",
    "auth_flow_states",
    "browser_sessions",
    "enrolment_links",
    "forward_cursors",
    "hook_events",
    "secrets",
    "signing_keys",
    "tool_pins",
    "users",
    "webauthn_credentials",
];

static LLM_PROVIDERS: std::sync::OnceLock<std::collections::BTreeMap<String, Arc<dyn LlmProvider>>> =
    std::sync::OnceLock::new();

/// The extension provider kind named `kind`, as installed at start.
pub fn llm_provider(kind: &str) -> Option<&'static Arc<dyn LlmProvider>> {
    LLM_PROVIDERS.get()?.get(kind)
}

/// Installs every registered extension's profile section and validator. Called once at the top of
/// `castellan::run()`, before the command line is acted on.
pub fn install_sections() {
    let mut kinds = Vec::new();
    let mut providers = std::collections::BTreeMap::new();
    let mut sections = Vec::new();
    for extension in castellan_extension::registered() {
        for provider in extension.llm_providers() {
            kinds.push(castellan_config::ExtensionProviderKind {
                name: provider.kind().to_string(),
                speaks: provider.speaks(),
                default_base_url: provider.default_base_url().trim_end_matches('/').to_string(),
            });
            providers.entry(provider.kind().to_string()).or_insert(provider);
        }
        if let Some(prefix) = extension.config_prefix() {
            let validate: castellan_config::SectionValidator = Box::new(move |value| extension.validate_config(value));
            sections.push(castellan_config::ExtensionSection { prefix: prefix.to_string(), validate });
        }
    }
    castellan_config::install_extension_provider_kinds(kinds);
    let _ = LLM_PROVIDERS.set(providers);
    castellan_config::install_extension_sections(sections);
}

/// Makes every migration run (`castellan migrate`, `serve`) include the extensions' own, after the
/// built-in ones, in the extensions' start order.
pub fn install_migrations() {
    castellan_schema::install_extension_migrations(|| match castellan_extension::discover() {
        Ok(extensions) => extensions.iter().flat_map(|extension| extension.migrations()).collect(),
        // `serve` reports the registry's problem before it migrates; `migrate` reports it here.
        Err(_) => Vec::new(),
    });
}

/// What [`castellan_extension::discover`] cannot see: profile sections that collide with a built-in
/// one or with each other, tables that collide, and migrations not named after their extension.
pub fn check(extensions: &Ordered) -> Result<(), String> {
    let mut prefixes = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let mut provider_kinds = BTreeSet::new();
    for extension in extensions.iter() {
        let id = extension.metadata().id;
        if let Some(prefix) = extension.config_prefix() {
            if castellan_config::BUILT_IN_SECTIONS.contains(&prefix)
                || castellan_config::RESERVED_SECTIONS.contains(&prefix)
            {
                return Err(format!("extension {id} claims the profile section `{prefix}`, which is Castellan's own"));
            }
            if !prefixes.insert(prefix) {
                return Err(format!("two extensions claim the profile section `{prefix}` (one of them is {id})"));
            }
        }
        for table in extension.schemas() {
            if BUILT_IN_TABLE_PREFIXES.iter().any(|prefix| table.name.starts_with(prefix))
                || BUILT_IN_TABLES.contains(&table.name)
            {
                return Err(format!("extension {id} declares the table `{}`, which is Castellan's own", table.name));
            }
            if !tables.insert(table.name) {
                return Err(format!("two extensions declare the table `{}` (one of them is {id})", table.name));
            }
        }
        for provider in extension.llm_providers() {
            let kind = provider.kind();
            let valid = !kind.is_empty()
                && kind.len() <= 48
                && kind.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
            if !valid || castellan_config::ProviderKind::parse(kind).is_some() {
                return Err(format!("extension {id} adds the provider kind `{kind}`, which is invalid or built in"));
            }
            if !provider_kinds.insert(kind.to_string()) {
                return Err(format!("two extensions add the provider kind `{kind}` (one of them is {id})"));
            }
        }
        for migration in extension.migrations() {
            let name = migration.name().to_string();
            if !name.starts_with(&format!("{id}_")) {
                return Err(format!(
                    "extension {id} has a migration named `{name}`; its names must start with `{id}_`"
                ));
            }
        }
    }
    Ok(())
}
