//! The `jobs` section: retention, forwarding to SIEM sinks, and the Vault pull.

use std::collections::BTreeSet;
use std::time::Duration;

use super::scalars::check_http_url;
use super::{Decoder, Fields, Node, Placeholders};
use crate::cron::Cron;
use crate::jobs::{
    DEFAULT_FORWARD_BATCH, DEFAULT_JOB_TIMEOUT, FORWARD_TABLES, ForwardJob, JobTiming, JobsSettings, MAX_FORWARD_BATCH,
    RetentionJob, Schedule, SecretsPullJob, SinkKind, SinkSpec, VaultAuthSpec, VaultSpec,
};
use crate::names::check_lowercase_name;
use crate::template::Template;

const TIMING_KEYS: [&str; 3] = ["every", "cron", "timeout"];
const RETENTION_KEYS: [&str; 4] = ["audit_days", "ai_requests_days", "hook_events_days", "anonymous_days"];
const SINK_KEYS: &[&str] = &["name", "kind", "url", "token", "tables", "batch"];
const VAULT_KEYS: &[&str] = &["url", "mount", "path", "namespace", "token", "approle"];
const APPROLE_KEYS: &[&str] = &["role_id", "secret_id", "mount"];

/// Ages above this are surely mistakes (a century).
const MAX_DAYS: u64 = 36_500;

pub(super) fn decode_jobs(decoder: &mut Decoder, node: Option<Node>) -> JobsSettings {
    let mut settings = JobsSettings::default();
    let Some(mut jobs) = node.as_ref().and_then(|node| decoder.fields(node, &["retention", "forward", "secrets_pull"]))
    else {
        return settings;
    };
    settings.retention = jobs.take("retention").and_then(|node| decode_retention(decoder, &node));
    settings.forward = jobs.take("forward").and_then(|node| decode_forward(decoder, &node));
    settings.secrets_pull = jobs.take("secrets_pull").and_then(|node| decode_secrets_pull(decoder, &node));
    settings
}

fn known<'k>(own: &[&'k str]) -> Vec<&'k str> {
    let mut keys: Vec<&str> = TIMING_KEYS.to_vec();
    keys.extend_from_slice(own);
    keys
}

/// `every` or `cron` (exactly one), and `timeout`.
fn decode_timing(decoder: &mut Decoder, node: &Node, fields: &mut Fields) -> Option<JobTiming> {
    let every = fields.take("every");
    let cron = fields.take("cron");
    let schedule = match (every, cron) {
        (Some(every), None) => {
            let period = decoder.duration(&every)?;
            if period < Duration::from_secs(1) {
                decoder.at_value(&every, "must be at least 1s");
                return None;
            }
            Schedule::Every(period)
        }
        (None, Some(cron)) => {
            let text = decoder.nonempty_plain(&cron)?;
            match Cron::parse(&text) {
                Ok(parsed) => Schedule::Cron(parsed),
                Err(reason) => {
                    decoder.at_value(&cron, format!("`{text}` {reason}"));
                    return None;
                }
            }
        }
        (Some(_), Some(cron)) => {
            decoder.at_key(&cron, "give either `every` or `cron`, not both");
            return None;
        }
        (None, None) => {
            decoder.at_key(node, "needs a schedule: `every: 1h` or `cron: \"0 3 * * *\"`");
            return None;
        }
    };
    let timeout = match fields.take("timeout") {
        Some(timeout) => decoder.positive_duration(&timeout)?,
        None => DEFAULT_JOB_TIMEOUT,
    };
    Some(JobTiming { schedule, timeout })
}

fn days(decoder: &mut Decoder, fields: &mut Fields, key: &str) -> Option<Option<u32>> {
    let Some(node) = fields.take(key) else { return Some(None) };
    let days = decoder.positive_integer(&node)?;
    if days > MAX_DAYS {
        decoder.at_value(&node, format!("must be at most {MAX_DAYS}"));
        return None;
    }
    Some(u32::try_from(days).ok())
}

fn decode_retention(decoder: &mut Decoder, node: &Node) -> Option<RetentionJob> {
    let mut fields = decoder.fields(node, &known(&RETENTION_KEYS))?;
    let timing = decode_timing(decoder, node, &mut fields);
    let audit_days = days(decoder, &mut fields, "audit_days");
    let ai_requests_days = days(decoder, &mut fields, "ai_requests_days");
    let hook_events_days = days(decoder, &mut fields, "hook_events_days");
    let anonymous_days = days(decoder, &mut fields, "anonymous_days");
    Some(RetentionJob {
        timing: timing?,
        audit_days: audit_days?,
        ai_requests_days: ai_requests_days?,
        hook_events_days: hook_events_days?,
        anonymous_days: anonymous_days?,
    })
}

fn decode_forward(decoder: &mut Decoder, node: &Node) -> Option<ForwardJob> {
    let mut fields = decoder.fields(node, &known(&["to"]))?;
    let timing = decode_timing(decoder, node, &mut fields);
    let Some(to) = fields.take("to") else {
        decoder.at_key(node, "needs `to`: a list of sinks, e.g. `to: [{ kind: splunk_hec, url: ..., token: ... }]`");
        return None;
    };
    let mut sinks = Vec::new();
    let mut names = BTreeSet::new();
    let mut all_ok = true;
    for item in decoder.items(&to)? {
        match decode_sink(decoder, &item) {
            Some(sink) if !names.insert(sink.name.clone()) => {
                decoder.at_value(&item, format!("a second sink named `{}`; give each a distinct `name`", sink.name));
                all_ok = false;
            }
            Some(sink) => sinks.push(sink),
            None => all_ok = false,
        }
    }
    if sinks.is_empty() && all_ok {
        decoder.at_value(&to, "names no sink");
        return None;
    }
    Some(ForwardJob { timing: timing?, to: sinks })
}

fn decode_sink(decoder: &mut Decoder, node: &Node) -> Option<SinkSpec> {
    let mut fields = decoder.fields(node, SINK_KEYS)?;
    let kind = match fields.take("kind") {
        Some(kind) => {
            let text = decoder.nonempty_plain(&kind)?;
            match SinkKind::parse(&text) {
                Some(parsed) => Some(parsed),
                None => {
                    decoder.at_value(&kind, "expected splunk_hec, datadog or otlp");
                    None
                }
            }
        }
        None => {
            decoder.at_key(node, "needs `kind`: splunk_hec, datadog or otlp");
            None
        }
    };
    let name = match fields.take("name") {
        Some(name) => {
            let text = decoder.nonempty_plain(&name)?;
            match check_lowercase_name("sink", &text, 48) {
                Ok(()) => Some(text),
                Err(reason) => {
                    decoder.at_value(&name, reason);
                    None
                }
            }
        }
        None => kind.map(|kind| kind.as_str().replace('_', "-")),
    };
    let url = decode_url(decoder, node, fields.take("url"), "needs `url`, the intake's base URL");
    let token = match fields.take("token") {
        Some(token) => Some(decoder.template(&token, Placeholders::Secrets)?),
        None if kind == Some(SinkKind::Otlp) => None,
        None => {
            decoder.at_key(node, "needs `token`, e.g. `token: \"${secret:NAME}\"`");
            return None;
        }
    };
    let tables = match fields.take("tables") {
        Some(tables) => {
            let mut chosen = Vec::new();
            for item in decoder.items(&tables)? {
                let text = decoder.nonempty_plain(&item)?;
                if !FORWARD_TABLES.contains(&text.as_str()) {
                    decoder.at_value(&item, format!("expected one of: {}", FORWARD_TABLES.join(", ")));
                    return None;
                }
                if !chosen.contains(&text) {
                    chosen.push(text);
                }
            }
            chosen
        }
        None => FORWARD_TABLES.iter().map(|table| table.to_string()).collect(),
    };
    let batch = match fields.take("batch") {
        Some(batch) => {
            let size = decoder.positive_integer(&batch)?;
            match usize::try_from(size) {
                Ok(size) if size <= MAX_FORWARD_BATCH => size,
                _ => {
                    decoder.at_value(&batch, format!("must be at most {MAX_FORWARD_BATCH}"));
                    return None;
                }
            }
        }
        None => DEFAULT_FORWARD_BATCH,
    };
    Some(SinkSpec { name: name?, kind: kind?, url: url?, token, tables, batch })
}

/// A required http(s) base URL, kept without a trailing `/`.
fn decode_url(decoder: &mut Decoder, node: &Node, url: Option<Node>, missing: &str) -> Option<String> {
    let Some(url) = url else {
        decoder.at_key(node, missing);
        return None;
    };
    let text = decoder.nonempty_plain(&url)?;
    match check_http_url(&text) {
        Ok(_) => Some(text.trim_end_matches('/').to_string()),
        Err(reason) => {
            decoder.at_value(&url, reason);
            None
        }
    }
}

fn decode_secrets_pull(decoder: &mut Decoder, node: &Node) -> Option<SecretsPullJob> {
    let mut fields = decoder.fields(node, &known(&["vault"]))?;
    let timing = decode_timing(decoder, node, &mut fields);
    let Some(vault) = fields.take("vault") else {
        decoder.at_key(node, "needs `vault: { url, mount, path, token }`");
        return None;
    };
    let vault = decode_vault(decoder, &vault);
    Some(SecretsPullJob { timing: timing?, vault: vault? })
}

fn decode_vault(decoder: &mut Decoder, node: &Node) -> Option<VaultSpec> {
    let mut fields = decoder.fields(node, VAULT_KEYS)?;
    let url = decode_url(decoder, node, fields.take("url"), "needs `url`");
    let segment = |decoder: &mut Decoder, node: &Node| -> Option<String> {
        let text = decoder.nonempty_plain(node)?;
        let valid = text.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
        });
        if !valid {
            decoder.at_value(node, "must be path segments of letters, digits, `-`, `_` and `.`, separated by `/`");
            return None;
        }
        Some(text)
    };
    let mount = match fields.take("mount") {
        Some(mount) => segment(decoder, &mount),
        None => Some("secret".to_string()),
    };
    let path = match fields.take("path") {
        Some(path) => segment(decoder, &path),
        None => {
            decoder.at_key(node, "needs `path`, the secret's path under the mount");
            None
        }
    };
    let namespace = match fields.take("namespace") {
        Some(namespace) => Some(segment(decoder, &namespace)?),
        None => None,
    };
    let auth = match (fields.take("token"), fields.take("approle")) {
        (Some(token), None) => decoder.template(&token, Placeholders::Secrets).map(VaultAuthSpec::Token),
        (None, Some(approle)) => decode_approle(decoder, &approle),
        (Some(_), Some(approle)) => {
            decoder.at_key(&approle, "give either `token` or `approle`, not both");
            None
        }
        (None, None) => {
            decoder.at_key(node, "needs `token` or `approle: { role_id, secret_id }`");
            None
        }
    };
    Some(VaultSpec { url: url?, mount: mount?, path: path?, namespace, auth: auth? })
}

fn decode_approle(decoder: &mut Decoder, node: &Node) -> Option<VaultAuthSpec> {
    let mut fields = decoder.fields(node, APPROLE_KEYS)?;
    let mut credential = |decoder: &mut Decoder, key: &str| -> Option<Template> {
        match fields.take(key) {
            Some(value) => decoder.template(&value, Placeholders::Secrets),
            None => {
                decoder.at_key(node, format!("needs `{key}`"));
                None
            }
        }
    };
    let role_id = credential(decoder, "role_id");
    let secret_id = credential(decoder, "secret_id");
    let mount = match fields.take("mount") {
        Some(mount) => decoder.nonempty_plain(&mount)?,
        None => "approle".to_string(),
    };
    Some(VaultAuthSpec::AppRole { role_id: role_id?, secret_id: secret_id?, mount })
}
