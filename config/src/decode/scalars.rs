//! Scalar settings: durations, counts, flags, URLs and origins, each read from a node with the problem
//! reported at the value.

use std::time::Duration;

use serde_yaml_ng::Value;

use super::{Decoder, Node, kind};
use crate::template::Template;

/// The longest duration accepted (one year). Larger values are surely mistakes, and keeping them bounded
/// means `Instant + duration` can never overflow in the code that uses them.
const MAX_DURATION_MILLIS: u64 = 365 * 24 * 3_600_000;

const DURATION_FORMAT: &str =
    "write a whole number followed by ms, s, m, h or d (e.g. `500ms`, `2s`, `5m`, `1h`, `30d`), or a number of seconds";

impl Decoder<'_> {
    /// A duration: `500ms`, `2s`, `5m`, `1h`, or an integer number of seconds.
    pub fn duration(&mut self, node: &Node) -> Option<Duration> {
        let parsed = match node.value {
            Value::Number(number) => match number.as_u64() {
                Some(seconds) => seconds
                    .checked_mul(1000)
                    .filter(|millis| *millis <= MAX_DURATION_MILLIS)
                    .map(Duration::from_millis)
                    .ok_or_else(|| "is longer than one year (8760h)".to_string()),
                None => Err(format!("is not a duration; {DURATION_FORMAT}")),
            },
            Value::String(_) => parse_duration(&self.plain(node)?),
            other => Err(format!("is {}, not a duration; {DURATION_FORMAT}", kind(other))),
        };
        match parsed {
            Ok(duration) => Some(duration),
            Err(reason) => {
                let shown = Self::shown(node);
                self.at_value(node, format!("{shown} {reason}"));
                None
            }
        }
    }

    /// A duration greater than zero, for timeouts and backoff where zero would spin or fail at once.
    pub fn positive_duration(&mut self, node: &Node) -> Option<Duration> {
        let duration = self.duration(node)?;
        if duration.is_zero() {
            self.at_value(node, "must be greater than zero");
            return None;
        }
        Some(duration)
    }

    /// A whole number from 1 up; strings are accepted so that `${VAR}` can supply it.
    pub fn positive_integer(&mut self, node: &Node) -> Option<u64> {
        let parsed = match node.value {
            Value::Number(number) => number.as_u64(),
            Value::String(_) => {
                let text = self.plain(node)?;
                if text.bytes().all(|byte| byte.is_ascii_digit()) { text.parse().ok() } else { None }
            }
            _ => None,
        };
        match parsed {
            Some(0) => self.at_value(node, "must be greater than zero"),
            Some(number) => return Some(number),
            None => {
                let shown = Self::shown(node);
                self.at_value(node, format!("{shown} is not a whole number"));
            }
        }
        None
    }

    /// `true` or `false`; the strings are accepted so that `${VAR}` can supply them.
    pub fn boolean(&mut self, node: &Node) -> Option<bool> {
        match node.value {
            Value::Bool(flag) => Some(*flag),
            Value::String(_) => match self.plain(node)?.as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => {
                    let shown = Self::shown(node);
                    self.at_value(node, format!("{shown} is not `true` or `false`"));
                    None
                }
            },
            other => {
                self.at_value(node, format!("expected `true` or `false`, found {}", kind(other)));
                None
            }
        }
    }

    /// A string with `${VAR}` expanded that must not end up empty.
    pub fn nonempty_plain(&mut self, node: &Node) -> Option<String> {
        let text = self.plain(node)?;
        if text.is_empty() {
            self.at_value(node, "must not be empty");
            return None;
        }
        Some(text)
    }
}

/// Parses `<digits><unit>` with unit `ms`, `s`, `m`, `h` or `d`; bare digits are seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" | "" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("is not a duration; {DURATION_FORMAT}")),
    };
    if digits.is_empty() {
        return Err(format!("is not a duration; {DURATION_FORMAT}"));
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|amount| amount.checked_mul(millis_per_unit))
        .filter(|millis| *millis <= MAX_DURATION_MILLIS)
        .map(Duration::from_millis)
        .ok_or_else(|| "is longer than one year (8760h)".to_string())
}

/// The parts of an `http(s)://` URL that we check.
pub(crate) struct HttpUrl<'t> {
    /// Everything after the authority: path, query and fragment.
    pub rest: &'t str,
}

/// Checks that `text` is an absolute http or https URL with a host and, if given, a valid port.
pub(crate) fn check_http_url(text: &str) -> Result<HttpUrl<'_>, String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL must not contain spaces or control characters".to_string());
    }
    let scheme_ok = |scheme: &str| scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let Some((_, after_scheme)) = text.split_once("://").filter(|(scheme, _)| scheme_ok(scheme)) else {
        return Err("must be an http:// or https:// URL".to_string());
    };
    let authority_end = after_scheme.find(['/', '?', '#']).unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_end);
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(bracketed) = host_and_port.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err("unexpected text after the IPv6 address".to_string()),
            },
            None => return Err("an IPv6 address must be closed with `]`".to_string()),
        }
    } else {
        match host_and_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_and_port, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host".to_string());
    }
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|byte| byte.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err("the port must be a number from 0 to 65535".to_string());
    }
    Ok(HttpUrl { rest })
}

/// Checks an upstream URL template. Placeholders are stood in for by plausible values, so a secret in
/// the query or `${PORT}` after the host passes while a malformed scheme or host does not.
pub(crate) fn check_url_template(template: &Template) -> Result<(), String> {
    let stand_in = template.render(&|_| Some("secret".to_string()), Some(1)).unwrap_or_default();
    check_http_url(&stand_in).map(|_| ())
}

/// Normalises an `Origin` value: lowercase `scheme://host[:port]`, nothing after.
pub(crate) fn parse_origin(text: &str) -> Result<String, String> {
    let url = check_http_url(text)?;
    if !url.rest.is_empty() {
        return Err("an origin is `scheme://host[:port]` with no path, query or trailing `/`".to_string());
    }
    if text.contains('@') {
        return Err("an origin has no user name or password".to_string());
    }
    Ok(text.to_ascii_lowercase())
}

/// `sqlite:...` or `postgres://...`; the daemon's database layer reads the rest.
pub(crate) fn check_database_url(text: &str) -> Result<(), String> {
    let known = ["sqlite:", "postgres://", "postgresql://"];
    match known.iter().find_map(|scheme| text.strip_prefix(scheme)) {
        Some(rest) if !rest.is_empty() => Ok(()),
        _ => Err("expected `sqlite://PATH` or `postgres://USER@HOST:PORT/DATABASE`".to_string()),
    }
}

/// An HTTP header name (an RFC 9110 token).
pub(crate) fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}
