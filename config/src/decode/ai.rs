//! The `providers` and `models` sections: where AI requests go, and which route each requested model
//! name takes.

use std::collections::{BTreeMap, BTreeSet};

use super::mcp::{decode_headers, literals};
use super::scalars::check_http_url;
use super::{Decoder, Node, Placeholders};
use crate::ai::{DEFAULT_PROVIDER_CONNECT_TIMEOUT, DEFAULT_PROVIDER_TIMEOUT, ModelRoute, ProviderKind, ProviderSpec};
use crate::names::{SERVER_NAME_MAX_LEN, check_lowercase_name, glob_matches, is_model_glob};
use crate::template::Template;

const PROVIDER_KEYS: &[&str] = &["kind", "base_url", "api_key", "headers", "connect_timeout", "timeout"];
const ROUTE_KEYS: &[&str] = &["provider", "model", "fallbacks"];

/// The longest model name or model glob: real names are a few dozen characters.
const MODEL_NAME_MAX_LEN: usize = 128;

/// Decodes `providers`. Also returns every name the section declares, valid entry or not, so that a
/// route naming a broken provider is not reported a second time as naming a missing one.
pub(super) fn decode_providers(
    decoder: &mut Decoder,
    node: Option<Node>,
) -> (BTreeMap<String, ProviderSpec>, BTreeSet<String>) {
    let mut providers = BTreeMap::new();
    let mut declared = BTreeSet::new();
    let Some(node) = node else { return (providers, declared) };
    for (name, entry) in decoder.entries(&node) {
        declared.insert(name.clone());
        let name_ok = match check_lowercase_name("provider", &name, SERVER_NAME_MAX_LEN) {
            Ok(()) => true,
            Err(reason) => {
                decoder.at_key(&entry, reason);
                false
            }
        };
        // The entry is checked even when its name is bad, so one pass reports everything.
        if let Some(spec) = decode_provider(decoder, &name, &entry)
            && name_ok
        {
            providers.insert(name, spec);
        }
    }
    (providers, declared)
}

fn decode_provider(decoder: &mut Decoder, name: &str, node: &Node) -> Option<ProviderSpec> {
    let mut fields = decoder.fields(node, PROVIDER_KEYS)?;
    let mut extension_kind = None;
    let kind = match fields.take("kind") {
        Some(kind_node) => decode_kind(decoder, &kind_node, &mut extension_kind),
        None => {
            let implied = ProviderKind::parse(name);
            if implied.is_none() {
                decoder.at_key(
                    node,
                    "needs `kind: anthropic`, `openai` or `gemini` (only a provider named after one of them has it by default)",
                );
            }
            implied
        }
    };
    let base_url = match fields.take("base_url") {
        Some(url_node) => decode_base_url(decoder, &url_node),
        None => match &extension_kind {
            Some(extension) => crate::extensions::provider_kind(extension).map(|kind| kind.default_base_url.clone()),
            None => kind.map(|kind| kind.default_base_url().to_string()),
        },
    };
    let api_key = match fields.take("api_key") {
        Some(key_node) => decode_api_key(decoder, &key_node),
        None => {
            decoder.at_key(node, "needs `api_key`, e.g. `api_key: \"${secret:NAME}\"`");
            None
        }
    };
    let headers = fields
        .take("headers")
        .map(|headers| decode_headers(decoder, &headers, Placeholders::Secrets))
        .unwrap_or_default();
    let connect_node = fields.take("connect_timeout");
    let connect_timeout = match &connect_node {
        Some(timeout) => decoder.positive_duration(timeout),
        None => Some(DEFAULT_PROVIDER_CONNECT_TIMEOUT),
    };
    let timeout = match fields.take("timeout") {
        Some(timeout) => decoder.positive_duration(&timeout),
        None => Some(DEFAULT_PROVIDER_TIMEOUT),
    };
    if let (Some(connect), Some(whole), Some(connect_node)) = (connect_timeout, timeout, &connect_node)
        && connect > whole
    {
        decoder.at_value(
            connect_node,
            format!(
                "connect_timeout ({connect:?}) must not exceed timeout ({whole:?}), which covers the whole request"
            ),
        );
    }
    Some(ProviderSpec {
        kind: kind?,
        extension_kind,
        base_url: base_url?,
        api_key: api_key?,
        headers,
        connect_timeout: connect_timeout?,
        timeout: timeout?,
    })
}

fn decode_kind(decoder: &mut Decoder, node: &Node, extension_kind: &mut Option<String>) -> Option<ProviderKind> {
    let text = decoder.nonempty_plain(node)?;
    if let Some(kind) = ProviderKind::parse(&text) {
        return Some(kind);
    }
    // A kind an extension built into this binary adds, speaking one of the three formats.
    if let Some(extension) = crate::extensions::provider_kind(&text) {
        *extension_kind = Some(extension.name.clone());
        return Some(extension.speaks);
    }
    let mut expected = vec!["anthropic", "openai", "gemini"];
    expected.extend(crate::extensions::provider_kind_names());
    let shown = Decoder::shown(node);
    decoder.at_value(node, format!("{shown} is not a provider kind; expected {}", expected.join(", ")));
    None
}

/// `base_url`: no secrets (it is logged and shown), so no user info and no query either.
fn decode_base_url(decoder: &mut Decoder, node: &Node) -> Option<String> {
    let url = decoder.nonempty_plain(node)?;
    let problem = match check_http_url(&url) {
        Err(reason) => Some(reason),
        Ok(parsed) if parsed.rest.contains(['?', '#']) => {
            Some("a base_url has no query or fragment; the key belongs in `api_key`".to_string())
        }
        Ok(parsed) if url[..url.len() - parsed.rest.len()].contains('@') => {
            Some("a base_url has no user name or password; the key belongs in `api_key`".to_string())
        }
        Ok(_) => None,
    };
    match problem {
        Some(reason) => {
            decoder.at_value(node, reason);
            None
        }
        None => Some(url.trim_end_matches('/').to_string()),
    }
}

/// `api_key`: a template sent as a header value, so it must not be empty or break the header.
fn decode_api_key(decoder: &mut Decoder, node: &Node) -> Option<Template> {
    let template = decoder.template(node, Placeholders::Secrets)?;
    if template.parts().is_empty() {
        decoder.at_value(node, "must not be empty");
        return None;
    }
    if literals(&template).any(|text| text.contains(['\r', '\n', '\0'])) {
        decoder.at_value(node, "an API key must not contain line breaks or NUL");
        return None;
    }
    Some(template)
}

/// Checks a model name (`glob: false`) or a model glob (`glob: true`): printable ASCII without spaces,
/// quotes or other characters no model name has.
pub(super) fn check_model_name(text: &str, glob: bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("a model name must not be empty".to_string());
    }
    if text.len() > MODEL_NAME_MAX_LEN {
        return Err(format!("a model name has at most {MODEL_NAME_MAX_LEN} characters"));
    }
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-._:/@+".contains(&byte);
    if glob {
        if !text.bytes().all(|byte| allowed(byte) || byte == b'*' || byte == b'?') {
            return Err(
                "a model name or glob may contain only letters, digits, `-`, `.`, `_`, `:`, `/`, `@`, `+` and the wildcards `*` and `?`"
                    .to_string(),
            );
        }
    } else if !text.bytes().all(allowed) {
        return Err(
            "a model name may contain only letters, digits, `-`, `.`, `_`, `:`, `/`, `@` and `+` (no wildcards)"
                .to_string(),
        );
    }
    Ok(())
}

/// Decodes `models`, in file order (serde_yaml_ng keeps a mapping's order), checking that each route
/// names a declared provider and that each fallback is a model name some other route takes.
pub(super) fn decode_models(
    decoder: &mut Decoder,
    node: Option<Node>,
    providers: &BTreeSet<String>,
) -> Vec<(String, ModelRoute)> {
    let Some(node) = node else { return Vec::new() };
    let entries = decoder.entries(&node);
    let keys: Vec<&str> = entries.iter().map(|(key, _)| key.as_str()).collect();
    let mut routes = Vec::new();
    for (key, entry) in &entries {
        let key_ok = match check_model_name(key, true) {
            Ok(()) => true,
            Err(reason) => {
                decoder.at_key(entry, reason);
                false
            }
        };
        if let Some(route) = decode_route(decoder, key, entry, providers, &keys)
            && key_ok
        {
            routes.push((key.clone(), route));
        }
    }
    routes
}

fn decode_route(
    decoder: &mut Decoder,
    key: &str,
    node: &Node,
    providers: &BTreeSet<String>,
    keys: &[&str],
) -> Option<ModelRoute> {
    let mut fields = decoder.fields(node, ROUTE_KEYS)?;
    let provider = match fields.take("provider") {
        Some(provider_node) => decoder.nonempty_plain(&provider_node).filter(|provider| {
            let declared = providers.contains(provider);
            if !declared {
                let known: Vec<&str> = providers.iter().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "the profile has no `providers`".to_string()
                } else {
                    format!("declared: {}", known.join(", "))
                };
                decoder.at_value(&provider_node, format!("no provider named `{provider}` in `providers` ({hint})"));
            }
            declared
        }),
        None => {
            decoder.at_key(node, "a route needs `provider`: the name of an entry of `providers`");
            None
        }
    };
    let model = match fields.take("model") {
        Some(model_node) => {
            let model = decoder.nonempty_plain(&model_node);
            match model.as_deref().map(|model| check_model_name(model, false)) {
                Some(Ok(())) => Some(model),
                Some(Err(reason)) => {
                    decoder.at_value(&model_node, reason);
                    None
                }
                None => None,
            }
        }
        None => Some(None),
    };
    let fallbacks = match fields.take("fallbacks") {
        Some(list) => decode_fallbacks(decoder, key, &list, keys),
        None => Some(Vec::new()),
    };
    Some(ModelRoute { provider: provider?, model: model?, fallbacks: fallbacks? })
}

/// `fallbacks`: model names, each routed like a request for it (the first key that matches), to a
/// route other than this one.
fn decode_fallbacks(decoder: &mut Decoder, key: &str, node: &Node, keys: &[&str]) -> Option<Vec<String>> {
    let mut fallbacks: Vec<String> = Vec::new();
    let mut valid = true;
    for item in decoder.items(node)? {
        let Some(name) = decoder.nonempty_plain(&item) else {
            valid = false;
            continue;
        };
        let resolved = keys.iter().find(|candidate| glob_matches(candidate, &name));
        let problem = if is_model_glob(&name) {
            Some("a fallback is one model name, not a glob: it says which model to try".to_string())
        } else if let Err(reason) = check_model_name(&name, false) {
            Some(reason)
        } else if resolved.is_none() {
            Some(format!("no key of `models` matches `{name}`, so it has no route to fall back to"))
        } else if resolved == Some(&key) {
            Some(format!("`{name}` takes this same route (`{key}`); a fallback must go to another route"))
        } else if fallbacks.contains(&name) {
            Some(format!("`{name}` is listed twice"))
        } else {
            None
        };
        match problem {
            Some(message) => {
                valid = false;
                decoder.at_value(&item, message);
            }
            None => fallbacks.push(name),
        }
    }
    valid.then_some(fallbacks)
}
