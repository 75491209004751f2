//! Validated names used by the profile: MCP server and provider names, the glob patterns RBAC rules
//! match tools with, and the model globs of routes, RBAC and budgets.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest server name; together with the character set it keeps `{server}__{tool}` unambiguous.
pub const SERVER_NAME_MAX_LEN: usize = 48;

/// The name of an MCP server: `[a-z0-9-]{1,48}`. It cannot contain `_`, so the `__` separator in
/// aggregated tool names always splits at the right place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerName(String);

impl ServerName {
    /// Parses a server name; the error says what is wrong in words an operator can act on.
    pub fn parse(name: &str) -> Result<ServerName, String> {
        check_lowercase_name("server", name, SERVER_NAME_MAX_LEN)?;
        Ok(ServerName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ServerName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        ServerName::parse(&name)
    }
}

impl From<ServerName> for String {
    fn from(name: ServerName) -> Self {
        name.0
    }
}

/// A glob over server or tool names where `*` matches any run of characters (including none) and
/// every other character matches itself, case-sensitively. There is deliberately no `?`, no classes and
/// no escaping: policy patterns should be readable at a glance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamePattern(String);

impl NamePattern {
    /// Parses a pattern; the only invalid pattern is the empty one, which would silently match nothing
    /// but the empty name.
    pub fn parse(pattern: &str) -> Result<NamePattern, String> {
        if pattern.is_empty() {
            return Err("a pattern must not be empty; use `*` to match every name".to_string());
        }
        Ok(NamePattern(pattern.to_string()))
    }

    /// The pattern that matches every name.
    pub fn any() -> NamePattern {
        NamePattern("*".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the whole of `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        let mut pieces = self.0.split('*');
        let head = pieces.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(head) else {
            return false;
        };
        // The last piece must sit at the very end; the ones between the stars are matched leftmost
        // first, which is enough for `*`-only globs and never backtracks.
        let Some(tail) = pieces.next_back() else {
            return rest.is_empty();
        };
        for middle in pieces {
            match rest.find(middle) {
                Some(start) => rest = &rest[start + middle.len()..],
                None => return false,
            }
        }
        rest.ends_with(tail)
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks `[a-z0-9-]{1,max_len}`, the alphabet of server, provider and budget names; `what` names
/// the kind of name in the message ("server", "provider", "budget").
pub(crate) fn check_lowercase_name(what: &str, name: &str, max_len: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("a {what} name must not be empty"));
    }
    if name.len() > max_len {
        return Err(format!("a {what} name has at most {max_len} characters"));
    }
    if !name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-') {
        return Err(format!("a {what} name may contain only lowercase letters a-z, digits and `-`"));
    }
    Ok(())
}

/// Whether the whole of `name` matches the model glob `pattern`: `*` matches any run of characters
/// (including none), `?` exactly one character, anything else itself, case-sensitively. The one
/// matcher of model routes (`models`), RBAC `models` and budget `models`.
///
/// Iterative with a single backtrack point (the last `*`), so it takes at most
/// `pattern.len() × name.len()` steps and never recurses.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let (mut p, mut n) = (0, 0);
    // After a `*`: where in the pattern to resume, and the name position it last stood for.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p + 1, n));
                p += 1;
            }
            Some(&wanted) if wanted == '?' || wanted == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and try again from there.
                Some((resume, swallowed)) => {
                    star = Some((resume, swallowed + 1));
                    p = resume;
                    n = swallowed + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&rest| rest == '*')
}

/// Whether `pattern` has a wildcard (`*` or `?`), i.e. is a glob rather than one exact model name.
pub fn is_model_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}
