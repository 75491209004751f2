//! The `server` and `database` sections.

use std::net::SocketAddr;

use super::scalars::{check_database_url, check_http_url, parse_origin};
use super::{Decoder, Node};
use crate::model::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_CALL_TIMEOUT, DEFAULT_DATABASE_URL, DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HEALTH_INTERVAL, DEFAULT_LISTEN, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
    DatabaseSettings, ServerSettings,
};
use crate::template::expand;

const SERVER_KEYS: &[&str] = &[
    "listen",
    "public_url",
    "max_body_bytes",
    "call_timeout",
    "drain_timeout",
    "allowed_origins",
    "allow_anonymous",
    "health_interval",
    "trusted_proxies",
    "tool_changes",
    "body_read_timeout",
    "max_sessions_per_principal",
];

pub(super) fn decode_server(decoder: &mut Decoder, node: Option<Node>) -> ServerSettings {
    let mut settings = ServerSettings {
        listen: DEFAULT_LISTEN.to_string(),
        public_url: String::new(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        call_timeout: DEFAULT_CALL_TIMEOUT,
        drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        allowed_origins: Vec::new(),
        allow_anonymous: false,
        health_interval: DEFAULT_HEALTH_INTERVAL,
        trusted_proxies: Vec::new(),
        tool_changes: crate::model::ToolChanges::Warn,
        body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        max_sessions_per_principal: DEFAULT_MAX_SESSIONS_PER_PRINCIPAL,
    };
    let fields = node.as_ref().and_then(|node| decoder.fields(node, SERVER_KEYS));
    if let Some(mut fields) = fields {
        if let Some(node) = fields.take("listen")
            && let Some(listen) = decode_listen(decoder, &node)
        {
            settings.listen = listen;
        }
        if let Some(node) = fields.take("public_url")
            && let Some(url) = decode_public_url(decoder, &node)
        {
            settings.public_url = url;
        }
        if let Some(node) = fields.take("max_body_bytes")
            && let Some(bytes) = decoder.positive_integer(&node)
        {
            match usize::try_from(bytes) {
                Ok(bytes) => settings.max_body_bytes = bytes,
                Err(_) => decoder.at_value(&node, "is too large for this machine"),
            }
        }
        if let Some(node) = fields.take("call_timeout")
            && let Some(timeout) = decoder.positive_duration(&node)
        {
            settings.call_timeout = timeout;
        }
        if let Some(node) = fields.take("drain_timeout")
            && let Some(timeout) = decoder.duration(&node)
        {
            settings.drain_timeout = timeout;
        }
        if let Some(node) = fields.take("body_read_timeout")
            && let Some(timeout) = decoder.positive_duration(&node)
        {
            settings.body_read_timeout = timeout;
        }
        if let Some(node) = fields.take("max_sessions_per_principal")
            && let Some(sessions) = decoder.positive_integer(&node)
        {
            match usize::try_from(sessions) {
                Ok(sessions) => settings.max_sessions_per_principal = sessions,
                Err(_) => decoder.at_value(&node, "is too large for this machine"),
            }
        }
        if let Some(node) = fields.take("health_interval")
            && let Some(interval) = decoder.positive_duration(&node)
        {
            settings.health_interval = interval;
        }
        if let Some(node) = fields.take("allow_anonymous")
            && let Some(allow) = decoder.boolean(&node)
        {
            settings.allow_anonymous = allow;
        }
        if let Some(node) = fields.take("tool_changes")
            && let Some(mode) = decoder.nonempty_plain(&node)
        {
            match mode.as_str() {
                "warn" => settings.tool_changes = crate::model::ToolChanges::Warn,
                "block" => settings.tool_changes = crate::model::ToolChanges::Block,
                _ => decoder.at_value(&node, "expected warn or block"),
            }
        }
        if let Some(node) = fields.take("trusted_proxies") {
            for item in decoder.items(&node).unwrap_or_default() {
                let Some(text) = decoder.nonempty_plain(&item) else { continue };
                if crate::model::parse_cidr(&text).is_some() {
                    settings.trusted_proxies.push(text);
                } else {
                    decoder.at_value(&item, "expected an address or a CIDR block, e.g. `10.0.0.0/8` or `::1`");
                }
            }
        }
        if let Some(node) = fields.take("allowed_origins") {
            settings.allowed_origins = decode_origins(decoder, &node);
        }
    }
    if settings.public_url.is_empty() {
        settings.public_url = crate::model::derived_public_url(&settings.listen);
    }
    settings
}

/// `listen`: kept as written even when it is not an address (the error names it).
fn decode_listen(decoder: &mut Decoder, node: &Node) -> Option<String> {
    let listen = decoder.nonempty_plain(node)?;
    if listen.parse::<SocketAddr>().is_err() {
        let shown = Decoder::shown(node);
        decoder.at_value(
            node,
            format!("{shown} is not a socket address; write IP:PORT, e.g. `127.0.0.1:8080` or `\"[::1]:8080\"`"),
        );
    }
    Some(listen)
}

/// `public_url`: an http(s) URL without query or fragment, kept without its trailing `/`.
fn decode_public_url(decoder: &mut Decoder, node: &Node) -> Option<String> {
    let url = decoder.nonempty_plain(node)?;
    match check_http_url(&url) {
        Ok(parsed) if parsed.rest.contains(['?', '#']) => {
            decoder.at_value(node, "the public URL must not have a query or fragment");
            None
        }
        Ok(_) => Some(url.trim_end_matches('/').to_string()),
        Err(reason) => {
            decoder.at_value(node, reason);
            None
        }
    }
}

fn decode_origins(decoder: &mut Decoder, node: &Node) -> Vec<String> {
    let mut origins = Vec::new();
    for item in decoder.items(node).unwrap_or_default() {
        let Some(text) = decoder.nonempty_plain(&item) else { continue };
        if text == "*" {
            decoder.at_value(&item, "a wildcard origin would let any web page call Castellan; list each origin");
            continue;
        }
        match parse_origin(&text) {
            Ok(origin) => origins.push(origin),
            Err(reason) => decoder.at_value(&item, reason),
        }
    }
    origins
}

pub(super) fn decode_database(decoder: &mut Decoder, node: Option<Node>) -> DatabaseSettings {
    let fields = node.as_ref().and_then(|node| decoder.fields(node, &["url"]));
    let url = fields.and_then(|mut fields| fields.take("url")).and_then(|node| {
        let url = decoder.nonempty_plain(&node)?;
        match check_database_url(&url) {
            Ok(()) => Some(url),
            Err(reason) => {
                decoder.at_value(&node, reason);
                None
            }
        }
    });
    // The default's only reference has a default of its own, so expanding it cannot fail.
    let url = url.unwrap_or_else(|| {
        expand(DEFAULT_DATABASE_URL, decoder.env())
            .ok()
            .and_then(|template| template.as_literal().map(str::to_string))
            .unwrap_or_default()
    });
    DatabaseSettings { url }
}
