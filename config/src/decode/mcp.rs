//! The `mcp_servers` section: which form each entry takes (stdio child, remote HTTP, HTTP child) and
//! the keys each form allows.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::scalars::{check_url_template, is_header_name};
use super::{Decoder, Node, Placeholders};
use crate::model::{ChildProcess, McpServerSpec, PortSetting, RestartPolicy, Transport};
use crate::names::ServerName;
use crate::template::{Template, TemplatePart, is_env_var_name};

const ENTRY_KEYS: &[&str] =
    &["command", "args", "env", "cwd", "url", "headers", "port", "restart", "call_timeout", "enabled"];
const RESTART_KEYS: &[&str] = &["backoff_initial", "backoff_max", "crash_loop_threshold", "crash_loop_window"];

pub(super) fn decode_mcp_servers(decoder: &mut Decoder, node: Option<Node>) -> BTreeMap<ServerName, McpServerSpec> {
    let mut servers = BTreeMap::new();
    let Some(node) = node else { return servers };
    for (name, entry) in decoder.entries(&node) {
        let name = match ServerName::parse(&name) {
            Ok(name) => Some(name),
            Err(reason) => {
                decoder.at_key(&entry, reason);
                None
            }
        };
        // The entry is checked even when its name is bad, so one pass reports everything.
        let spec = decode_entry(decoder, &entry);
        if let (Some(name), Some(spec)) = (name, spec) {
            servers.insert(name, spec);
        }
    }
    servers
}

/// The keys that configure a child process, taken out of an entry together.
pub(super) struct ProcessKeys<'v, 'p> {
    pub(super) command: Node<'v, 'p>,
    pub(super) args: Option<Node<'v, 'p>>,
    pub(super) env: Option<Node<'v, 'p>>,
    pub(super) cwd: Option<Node<'v, 'p>>,
}

fn decode_entry(decoder: &mut Decoder, node: &Node) -> Option<McpServerSpec> {
    let mut fields = decoder.fields(node, ENTRY_KEYS)?;
    let command = fields.take("command");
    let url = fields.take("url");
    let (args, env, cwd) = (fields.take("args"), fields.take("env"), fields.take("cwd"));
    let (headers, port_node) = (fields.take("headers"), fields.take("port"));

    if command.is_none() && url.is_none() {
        decoder.at_key(
            node,
            "needs `command` (a stdio server, or with `url` a child serving HTTP) or `url` (a remote HTTP server)",
        );
    }
    let port = port_node.as_ref().and_then(|port_node| decode_port(decoder, port_node)).unwrap_or_default();
    if let Some(port_node) = &port_node {
        if url.is_none() {
            decoder.at_key(port_node, "`port` applies only to HTTP servers, which have `url`");
        } else if port == PortSetting::Auto && command.is_none() {
            decoder
                .at_key(port_node, "`port: auto` needs `command`: the port is allocated for a child Castellan starts");
        }
    }
    if url.is_none()
        && let Some(headers) = &headers
    {
        decoder.at_key(headers, "`headers` apply only to HTTP servers, which have `url`");
    }
    let port_allowed = port == PortSetting::Auto && url.is_some() && command.is_some();
    let placeholders = if port_allowed { Placeholders::SecretsAndPort } else { Placeholders::Secrets };

    let process = match command {
        Some(command) => decode_process(decoder, ProcessKeys { command, args, env, cwd }, placeholders),
        None => {
            for (key, misplaced) in [("args", &args), ("env", &env), ("cwd", &cwd)] {
                if let Some(misplaced) = misplaced {
                    decoder.at_key(
                        misplaced,
                        format!("`{key}` applies only with `command`: it configures the child process"),
                    );
                }
            }
            None
        }
    };
    let http = url.map(|url| {
        let url = decode_url(decoder, &url, port_allowed);
        let headers = headers.map(|headers| decode_headers(decoder, &headers, placeholders)).unwrap_or_default();
        (url, headers)
    });

    let restart = fields.take("restart").map(|restart| decode_restart(decoder, &restart)).unwrap_or_default();
    let call_timeout = fields.take("call_timeout").and_then(|timeout| decoder.positive_duration(&timeout));
    let enabled = fields.take("enabled").and_then(|enabled| decoder.boolean(&enabled)).unwrap_or(true);

    let transport = match (http, process) {
        (Some((url, headers)), process) => Transport::Http { url: url?, headers, process, port },
        (None, Some(process)) => {
            Transport::Stdio { command: process.command, args: process.args, env: process.env, cwd: process.cwd }
        }
        (None, None) => return None,
    };
    Some(McpServerSpec { transport, restart, call_timeout, enabled })
}

fn decode_port(decoder: &mut Decoder, node: &Node) -> Option<PortSetting> {
    let setting = match node.value {
        Value::String(_) => match decoder.plain(node)?.as_str() {
            "auto" => Some(PortSetting::Auto),
            "fixed" => Some(PortSetting::Fixed),
            _ => None,
        },
        _ => None,
    };
    if setting.is_none() {
        decoder.at_value(node, "`port` is `auto` or `fixed` (the default); a fixed port belongs in `url`");
    }
    setting
}

pub(super) fn decode_process(
    decoder: &mut Decoder,
    keys: ProcessKeys,
    placeholders: Placeholders,
) -> Option<ChildProcess> {
    let command = decoder
        .nonempty_plain(&keys.command)
        .filter(|command| no_nul(decoder, &keys.command, &Template::literal(command.as_str())));
    let mut args = Vec::new();
    if let Some(node) = &keys.args {
        for item in decoder.items(node).unwrap_or_default() {
            if let Some(arg) = decoder.template(&item, placeholders)
                && no_secret_in_args(decoder, &item, &arg)
                && no_nul(decoder, &item, &arg)
            {
                args.push(arg);
            }
        }
    }
    let mut env = BTreeMap::new();
    if let Some(node) = &keys.env {
        for (name, value) in decoder.entries(node) {
            if !is_env_var_name(&name) {
                decoder.at_key(
                    &value,
                    "an environment variable name is letters, digits and `_`, not starting with a digit",
                );
            }
            if let Some(template) = decoder.template(&value, placeholders)
                && no_nul(decoder, &value, &template)
            {
                env.insert(name, template);
            }
        }
    }
    let cwd = keys.cwd.as_ref().and_then(|node| {
        let cwd = decoder.nonempty_plain(node)?;
        no_nul(decoder, node, &Template::literal(cwd.as_str())).then(|| PathBuf::from(cwd))
    });
    Some(ChildProcess { command: command?, args, env, cwd })
}

/// A command line is readable by every local user (`ps`, `/proc/PID/cmdline`), so a secret there would
/// leak to all of them; the environment and headers are not.
fn no_secret_in_args(decoder: &mut Decoder, node: &Node, template: &Template) -> bool {
    let Some(name) = template.secret_names().first().map(|name| name.to_string()) else { return true };
    decoder.at_value(
        node,
        format!(
            "`${{secret:{name}}}` is not allowed in `args`: command lines are visible to every local user; pass the secret in `env` (or, for an HTTP server, in `headers`)"
        ),
    );
    false
}

/// A NUL cannot pass through `exec`, so it is refused here rather than failing at every spawn.
fn no_nul(decoder: &mut Decoder, node: &Node, template: &Template) -> bool {
    let has_nul = literals(template).any(|text| text.contains('\0'));
    if has_nul {
        decoder.at_value(node, "must not contain a NUL character");
    }
    !has_nul
}

pub(super) fn literals(template: &Template) -> impl Iterator<Item = &str> {
    template.parts().iter().filter_map(|part| match part {
        TemplatePart::Literal(text) => Some(text.as_str()),
        _ => None,
    })
}

fn decode_url(decoder: &mut Decoder, node: &Node, port_allowed: bool) -> Option<Template> {
    let placeholders = if port_allowed { Placeholders::SecretsAndPort } else { Placeholders::Secrets };
    let url = decoder.template(node, placeholders)?;
    if let Err(reason) = check_url_template(&url) {
        decoder.at_value(node, reason);
        return None;
    }
    if port_allowed && !url.uses_port() {
        decoder.at_value(node, "with `port: auto` the url must contain `${PORT}`, where the allocated port goes");
        return None;
    }
    Some(url)
}

pub(super) fn decode_headers(
    decoder: &mut Decoder,
    node: &Node,
    placeholders: Placeholders,
) -> BTreeMap<String, Template> {
    let mut headers = BTreeMap::new();
    for (name, value) in decoder.entries(node) {
        if !is_header_name(&name) {
            decoder.at_key(&value, "not a valid HTTP header name");
        }
        let Some(template) = decoder.template(&value, placeholders) else { continue };
        // A line break in a header value would let the profile smuggle extra headers into the request.
        if literals(&template).any(|text| text.contains(['\r', '\n', '\0'])) {
            decoder.at_value(&value, "a header value must not contain line breaks or NUL");
            continue;
        }
        headers.insert(name, template);
    }
    headers
}

fn decode_restart(decoder: &mut Decoder, node: &Node) -> RestartPolicy {
    let mut policy = RestartPolicy::default();
    let Some(mut fields) = decoder.fields(node, RESTART_KEYS) else { return policy };
    let initial = fields.take("backoff_initial");
    let max = fields.take("backoff_max");
    let initial_value = initial.as_ref().and_then(|node| decoder.positive_duration(node));
    let max_value = max.as_ref().and_then(|node| decoder.positive_duration(node));
    policy.backoff_initial = initial_value.unwrap_or(policy.backoff_initial);
    policy.backoff_max = max_value.unwrap_or(policy.backoff_max);
    let both_valid = initial.is_none() == initial_value.is_none() && max.is_none() == max_value.is_none();
    if both_valid
        && policy.backoff_initial > policy.backoff_max
        && let Some(at) = max.as_ref().or(initial.as_ref())
    {
        decoder.at_value(
            at,
            format!(
                "backoff_initial ({:?}) must not exceed backoff_max ({:?})",
                policy.backoff_initial, policy.backoff_max
            ),
        );
    }
    if let Some(node) = fields.take("crash_loop_threshold")
        && let Some(threshold) = decoder.positive_integer(&node)
    {
        match u32::try_from(threshold) {
            Ok(threshold) => policy.crash_loop_threshold = threshold,
            Err(_) => decoder.at_value(&node, "is too large"),
        }
    }
    if let Some(node) = fields.take("crash_loop_window")
        && let Some(window) = decoder.positive_duration(&node)
    {
        policy.crash_loop_window = window;
    }
    policy
}
