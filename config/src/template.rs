//! String templates. `${VAR}` reads the environment once, at load time; `${secret:NAME}` and `${PORT}`
//! stay placeholders until the moment of use, so a parsed profile never holds a secret value and the
//! port allocator can pick a port at spawn time.

use std::fmt;

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TemplatePart {
    /// Text used as is (environment variables are already expanded into it).
    Literal(String),
    /// `${secret:NAME}`: the value is read from the secret store when it is injected.
    Secret(String),
    /// `${PORT}`: the port allocated for a server with `port: auto`.
    Port,
}

/// A string that may still hold `${secret:NAME}` and `${PORT}` placeholders.
///
/// Invariant: no empty literal and no two adjacent literals, so equal texts compare equal (the
/// reconciler compares specs to decide what to restart).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Template(Vec<TemplatePart>);

/// Why a template could not be rendered. It names what is missing and never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("secret `{0}` is not set; set it with `castellan secrets set {0}`")]
    MissingSecret(String),
    #[error("`${{PORT}}` is used but no port was allocated")]
    MissingPort,
}

impl Template {
    /// A template holding only `text`, with no placeholders.
    pub fn literal(text: impl Into<String>) -> Template {
        Template::from_parts(vec![TemplatePart::Literal(text.into())])
    }

    /// Builds a template from parts, merging adjacent literals and dropping empty ones.
    pub fn from_parts(parts: impl IntoIterator<Item = TemplatePart>) -> Template {
        let mut template = Template::default();
        for part in parts {
            template.push(part);
        }
        template
    }

    fn push(&mut self, part: TemplatePart) {
        match part {
            TemplatePart::Literal(text) if text.is_empty() => {}
            TemplatePart::Literal(text) => match self.0.last_mut() {
                Some(TemplatePart::Literal(previous)) => previous.push_str(&text),
                _ => self.0.push(TemplatePart::Literal(text)),
            },
            other => self.0.push(other),
        }
    }

    pub fn parts(&self) -> &[TemplatePart] {
        &self.0
    }

    /// The secrets this template reads, in order of first use, each once.
    pub fn secret_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for part in &self.0 {
            if let TemplatePart::Secret(name) = part
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// True when there is nothing left to substitute.
    pub fn is_literal(&self) -> bool {
        self.0.iter().all(|part| matches!(part, TemplatePart::Literal(_)))
    }

    /// The text, when the template has no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [TemplatePart::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// True when the template holds `${PORT}`.
    pub fn uses_port(&self) -> bool {
        self.0.iter().any(|part| matches!(part, TemplatePart::Port))
    }

    /// Substitutes secrets and the port. The first missing one is the error.
    pub fn render(&self, secret: &dyn Fn(&str) -> Option<String>, port: Option<u16>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                TemplatePart::Literal(text) => out.push_str(text),
                TemplatePart::Secret(name) => {
                    out.push_str(&secret(name).ok_or_else(|| RenderError::MissingSecret(name.clone()))?)
                }
                TemplatePart::Port => out.push_str(&port.ok_or(RenderError::MissingPort)?.to_string()),
            }
        }
        Ok(out)
    }
}

/// Shows the placeholders, never their values; a literal `${` is shown escaped as `$${`.
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.0 {
            match part {
                TemplatePart::Literal(text) => f.write_str(&text.replace("${", "$${"))?,
                TemplatePart::Secret(name) => write!(f, "${{secret:{name}}}")?,
                TemplatePart::Port => f.write_str("${PORT}")?,
            }
        }
        Ok(())
    }
}

/// Expands `${VAR}` and `${VAR:-default}` from `env` and keeps `${secret:NAME}` and `${PORT}` as
/// placeholders. Expanded values are not scanned again, so an environment value can never smuggle in a
/// secret reference. Every problem in the text is returned, not only the first.
pub(crate) fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Template, Vec<String>> {
    let mut template = Template::default();
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        template.push(TemplatePart::Literal(rest[..dollar].to_string()));
        let after = &rest[dollar..];
        if let Some(escaped) = after.strip_prefix("$${") {
            template.push(TemplatePart::Literal("${".to_string()));
            rest = escaped;
        } else if let Some(opened) = after.strip_prefix("${") {
            let Some(close) = opened.find('}') else {
                errors.push("`${` is not closed; add `}`, or write `$${` for a literal `${`".to_string());
                rest = "";
                break;
            };
            match reference(&opened[..close], env) {
                Ok(part) => template.push(part),
                Err(error) => errors.push(error),
            }
            rest = &opened[close + 1..];
        } else {
            template.push(TemplatePart::Literal("$".to_string()));
            rest = &after[1..];
        }
    }
    template.push(TemplatePart::Literal(rest.to_string()));
    if errors.is_empty() { Ok(template) } else { Err(errors) }
}

/// Resolves the inside of one `${...}`.
fn reference(body: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<TemplatePart, String> {
    if body == "PORT" {
        return Ok(TemplatePart::Port);
    }
    if let Some(name) = body.strip_prefix("secret:") {
        if is_secret_name(name) {
            return Ok(TemplatePart::Secret(name.to_string()));
        }
        return Err(format!(
            "`${{secret:{}}}`: a secret name uses only letters, digits, `_`, `.` and `-`",
            shorten(name)
        ));
    }
    let (name, default) = match body.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (body, None),
    };
    if !is_env_var_name(name) {
        return Err(format!(
            "`${{{}}}` is not a valid reference; use `${{VAR}}`, `${{VAR:-default}}`, `${{secret:NAME}}` or `${{PORT}}`",
            shorten(body)
        ));
    }
    if name == "PORT" {
        return Err("`${PORT}` is the port allocated by `port: auto` and takes no default".to_string());
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(TemplatePart::Literal(default.to_string())),
        (Some(value), _) => Ok(TemplatePart::Literal(value)),
        (None, Some(default)) => Ok(TemplatePart::Literal(default.to_string())),
        (None, None) => {
            Err(format!("environment variable `{name}` is not set; set it, or write `${{{name}:-default}}`"))
        }
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: the names a POSIX shell accepts, so every one can be set from a shell.
pub(crate) fn is_env_var_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Whether `name` may be a secret name (`[A-Za-z0-9_.-]+`), the names `castellan secrets set` accepts.
pub fn is_secret_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

/// Keeps messages one readable line even when the input holds a huge token.
pub(crate) fn shorten(text: &str) -> String {
    const LIMIT: usize = 64;
    match text.char_indices().nth(LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}
