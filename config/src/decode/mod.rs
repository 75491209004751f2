//! Turns the YAML value tree into the typed [`Profile`](crate::Profile), collecting every problem with
//! its position instead of stopping at the first.
//!
//! We walk `serde_yaml_ng::Value` by hand rather than deriving `Deserialize` because serde stops at the
//! first error and knows nothing of our rules; an operator fixing a profile wants the whole list.

mod ai;
mod ai_costs;
mod extensions;
mod hooks;
mod identity;
mod jobs;
mod mcp;
mod observability;
mod rate_limits;
mod rbac;
mod scalars;
mod server;
mod skills;

use serde_yaml_ng::Value;

use crate::model::Profile;
use crate::positions::{Mark, PositionNode};
use crate::problem::{DOCUMENT_PATH, Problem};
use crate::template::{Template, TemplatePart, expand, shorten};

/// Enough to fix a profile in a few passes without flooding a terminal or a log.
const MAX_PROBLEMS: usize = 100;

/// The top-level sections the contract defines but this build does not enforce yet (none at the
/// moment). We refuse them because silently ignoring, say, `rate_limits` would let an operator believe
/// a policy is in force.
const UNSUPPORTED_SECTIONS: &[&str] = &[];

pub(crate) struct Decoder<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
}

/// A value in the document together with its key path and positions.
#[derive(Clone)]
pub(crate) struct Node<'v, 'p> {
    pub value: &'v Value,
    pub path: String,
    pub key_mark: Mark,
    pub value_mark: Mark,
    position: Option<&'p PositionNode>,
}

impl<'v, 'p> Node<'v, 'p> {
    pub fn root(value: &'v Value, position: &'p PositionNode) -> Self {
        Node {
            value,
            path: String::new(),
            key_mark: position.key,
            value_mark: position.value,
            position: Some(position),
        }
    }

    fn descend(&self, value: &'v Value, path: String, position: Option<&'p PositionNode>) -> Self {
        match position {
            Some(found) => Node { value, path, key_mark: found.key, value_mark: found.value, position },
            // Keys that came from a `<<` merge, or that the position parser saw differently, take the
            // enclosing node's position: approximate, never wrong about the file.
            None => Node { value, path, key_mark: self.value_mark, value_mark: self.value_mark, position: None },
        }
    }

    pub fn child(&self, key: &str, value: &'v Value) -> Self {
        let shown = shorten(key);
        let path = if self.path.is_empty() { shown } else { format!("{}.{shown}", self.path) };
        self.descend(value, path, self.position.and_then(|position| position.child_key(key)))
    }

    pub fn item(&self, index: usize, value: &'v Value) -> Self {
        let path = format!("{}[{index}]", self.path);
        self.descend(value, path, self.position.and_then(|position| position.child_index(index)))
    }
}

/// The keys of one mapping, after unknown keys have been reported.
pub(crate) struct Fields<'v, 'p> {
    entries: Vec<(String, Node<'v, 'p>)>,
}

impl<'v, 'p> Fields<'v, 'p> {
    /// Removes and returns the entry for `key`, so each key is decoded once.
    pub fn take(&mut self, key: &str) -> Option<Node<'v, 'p>> {
        let index = self.entries.iter().position(|(name, _)| name == key)?;
        Some(self.entries.swap_remove(index).1)
    }

    /// The keys not taken: known to the section, but not to the variant that was decoded.
    pub fn into_rest(self) -> Vec<(String, Node<'v, 'p>)> {
        self.entries
    }
}

/// Where a template may use placeholders.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholders {
    /// Plain settings: no secrets, no port.
    None,
    /// mcp_servers args, env, headers and url (secrets are refused in args by `decode_process`), and a
    /// provider's api_key and headers.
    Secrets,
    /// The same, in an entry with `port: auto`.
    SecretsAndPort,
}

impl<'a> Decoder<'a> {
    pub fn new(file: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Decoder { file, env, problems: Vec::new() }
    }

    pub fn into_problems(mut self) -> Vec<Problem> {
        // The note about more problems was pushed last and stays last: sections are decoded in a fixed
        // order, not in file order, so by its position it could sort anywhere.
        let note = if self.problems.len() > MAX_PROBLEMS { self.problems.pop() } else { None };
        self.problems.sort_by_key(|problem| (problem.line, problem.col));
        self.problems.extend(note);
        self.problems
    }

    pub fn env(&self) -> &'a dyn Fn(&str) -> Option<String> {
        self.env
    }

    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    pub fn report(&mut self, mark: Mark, path: &str, message: impl Into<String>) {
        if self.problems.len() > MAX_PROBLEMS {
            return;
        }
        let (path, message) = if self.problems.len() == MAX_PROBLEMS {
            (DOCUMENT_PATH.to_string(), format!("more than {MAX_PROBLEMS} problems; fix these and check again"))
        } else {
            let path = if path.is_empty() { DOCUMENT_PATH.to_string() } else { path.to_string() };
            (path, message.into())
        };
        self.problems.push(Problem { file: self.file.to_string(), line: mark.line, col: mark.col, path, message });
    }

    /// A problem with a value: points at the value.
    pub fn at_value(&mut self, node: &Node, message: impl Into<String>) {
        self.report(node.value_mark, &node.path, message);
    }

    /// A problem with a key (unknown, misplaced, conflicting): points at the key.
    pub fn at_key(&mut self, node: &Node, message: impl Into<String>) {
        self.report(node.key_mark, &node.path, message);
    }

    /// Reads a mapping, reporting keys not in `known`. A missing value (`section:` with nothing after
    /// it) counts as an empty mapping, so commenting out every entry of a section is not an error.
    pub fn fields<'v, 'p>(&mut self, node: &Node<'v, 'p>, known: &[&str]) -> Option<Fields<'v, 'p>> {
        let mapping = match node.value {
            Value::Mapping(mapping) => mapping,
            Value::Null => return Some(Fields { entries: Vec::new() }),
            other => {
                self.at_value(node, format!("expected a mapping, found {}", kind(other)));
                return None;
            }
        };
        let mut entries = Vec::new();
        for (key, value) in mapping {
            let Value::String(key) = key else {
                self.at_value(node, format!("keys must be strings, found {}", kind(key)));
                continue;
            };
            let child = node.child(key, value);
            if known.contains(&key.as_str()) {
                entries.push((key.clone(), child));
            } else {
                self.at_key(&child, unknown_key_message(key, known));
            }
        }
        Some(Fields { entries })
    }

    /// Reads a mapping whose keys are names chosen by the operator (servers, env, headers).
    pub fn entries<'v, 'p>(&mut self, node: &Node<'v, 'p>) -> Vec<(String, Node<'v, 'p>)> {
        match node.value {
            Value::Mapping(mapping) => mapping
                .iter()
                .filter_map(|(key, value)| match key {
                    Value::String(key) => Some((key.clone(), node.child(key, value))),
                    other => {
                        self.at_value(node, format!("keys must be strings, found {}", kind(other)));
                        None
                    }
                })
                .collect(),
            Value::Null => Vec::new(),
            other => {
                self.at_value(node, format!("expected a mapping, found {}", kind(other)));
                Vec::new()
            }
        }
    }

    /// Reads a list; `key: []` and a missing value are both empty.
    pub fn items<'v, 'p>(&mut self, node: &Node<'v, 'p>) -> Option<Vec<Node<'v, 'p>>> {
        match node.value {
            Value::Sequence(items) => {
                Some(items.iter().enumerate().map(|(index, item)| node.item(index, item)).collect())
            }
            Value::Null => Some(Vec::new()),
            other => {
                self.at_value(node, format!("expected a list, found {}", kind(other)));
                None
            }
        }
    }

    /// Reads a string scalar and expands it, allowing the given placeholders.
    pub fn template(&mut self, node: &Node, placeholders: Placeholders) -> Option<Template> {
        let Value::String(text) = node.value else {
            let hint = match node.value {
                Value::Number(_) | Value::Bool(_) => "; put it in quotes",
                _ => "",
            };
            self.at_value(node, format!("expected a string, found {}{hint}", kind(node.value)));
            return None;
        };
        let template = match expand(text, self.env) {
            Ok(template) => template,
            Err(errors) => {
                for error in errors {
                    self.at_value(node, error);
                }
                return None;
            }
        };
        let mut allowed = true;
        for part in template.parts() {
            match (part, placeholders) {
                (TemplatePart::Secret(name), Placeholders::None) => {
                    allowed = false;
                    self.at_value(
                        node,
                        format!(
                            "`${{secret:{name}}}` is not allowed here; secrets may appear only in the env, headers and url of an mcp_servers entry, the env of a command hook, an issuer's client_secret, a provider's api_key and headers, and jobs' credentials"
                        ),
                    );
                }
                (TemplatePart::Port, Placeholders::None | Placeholders::Secrets) => {
                    allowed = false;
                    self.at_value(
                        node,
                        "`${PORT}` may appear only in the args, env, headers and url of an mcp_servers entry with `port: auto`",
                    );
                }
                _ => {}
            }
        }
        allowed.then_some(template)
    }

    /// Reads a string scalar that may use `${VAR}` but no placeholders.
    pub fn plain(&mut self, node: &Node) -> Option<String> {
        // Only literals remain once secrets and the port were rejected.
        self.template(node, Placeholders::None)?.as_literal().map(str::to_string)
    }

    /// Describes a value for a message by what the file says, so an expanded environment value (which
    /// might be sensitive) is never echoed.
    pub fn shown(node: &Node) -> String {
        match node.value {
            Value::String(text) if text.contains("${") => format!("`{}` (after expansion)", shorten(text)),
            Value::String(text) => format!("`{}`", shorten(text)),
            Value::Number(number) => format!("`{number}`"),
            Value::Bool(flag) => format!("`{flag}`"),
            other => kind(other).to_string(),
        }
    }
}

fn unknown_key_message(key: &str, known: &[&str]) -> String {
    // Sections we refuse are not suggested: naming them would invite a key that is then rejected.
    let suggested: Vec<&str> = known.iter().copied().filter(|name| !UNSUPPORTED_SECTIONS.contains(name)).collect();
    format!("unknown key `{}`; expected one of: {}", shorten(key), suggested.join(", "))
}

/// The YAML kind of a value, for "expected X, found Y" messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value (YAML tags are not supported)",
    }
}

/// The `secrets` section.
fn decode_secrets(decoder: &mut Decoder, node: Option<Node>) -> crate::model::SecretsSettings {
    use crate::model::{SecretValidation, SecretsSettings};
    let mut settings = SecretsSettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| decoder.fields(node, &["validation", "master_key_file"]))
    else {
        return settings;
    };
    if let Some(node) = fields.take("validation")
        && let Some(mode) = decoder.nonempty_plain(&node)
    {
        settings.validation = match mode.as_str() {
            "strict" => SecretValidation::Strict,
            "warn" => SecretValidation::Warn,
            "skip" => SecretValidation::Skip,
            _ => {
                decoder.at_value(&node, "expected strict, warn or skip");
                SecretValidation::Strict
            }
        };
    }
    if let Some(node) = fields.take("master_key_file")
        && let Some(path) = decoder.nonempty_plain(&node)
    {
        settings.master_key_file = Some(std::path::PathBuf::from(path));
    }
    settings
}

/// Decodes the whole document. The root must be a mapping of known sections.
pub(crate) fn decode_profile(decoder: &mut Decoder, root: &Node) -> Option<Profile> {
    if matches!(root.value, Value::Null) {
        decoder.at_value(root, "the profile is empty; see docs/profile.md for the sections it may have");
        return None;
    }
    let mut known = crate::BUILT_IN_SECTIONS.to_vec();
    known.extend_from_slice(UNSUPPORTED_SECTIONS);
    let installed = crate::extensions::installed();
    known.extend(installed.iter().map(|section| section.prefix.as_str()));
    let mut sections = decoder.fields(root, &known)?;
    for section in UNSUPPORTED_SECTIONS {
        if let Some(node) = sections.take(section) {
            decoder.at_key(&node, "section not supported by this build yet");
        }
    }
    let server = server::decode_server(decoder, sections.take("server"));
    let database = server::decode_database(decoder, sections.take("database"));
    let mcp_servers = mcp::decode_mcp_servers(decoder, sections.take("mcp_servers"));
    let rbac = rbac::decode_rbac(decoder, sections.take("rbac"));
    let identity = identity::decode_identity(decoder, sections.take("identity"));
    let secrets = decode_secrets(decoder, sections.take("secrets"));
    let rate_limits = rate_limits::decode_rate_limits(decoder, sections.take("rate_limits"));
    let hooks = hooks::decode_hooks(decoder, sections.take("hooks"));
    let metrics = observability::decode_metrics(decoder, sections.take("metrics"));
    let audit = observability::decode_audit(decoder, sections.take("audit"));
    let (providers, provider_names) = ai::decode_providers(decoder, sections.take("providers"));
    let models = ai::decode_models(decoder, sections.take("models"), &provider_names);
    let pricing = ai_costs::decode_pricing(decoder, sections.take("pricing"));
    let budgets = ai_costs::decode_budgets(decoder, sections.take("budgets"));
    let jobs = jobs::decode_jobs(decoder, sections.take("jobs"));
    let skills = skills::decode_skills(decoder, sections.take("skills"));
    let extensions = extensions::decode_extension_sections(decoder, &mut sections, installed);
    if decoder.has_problems() {
        return None;
    }
    Some(Profile {
        server,
        database,
        mcp_servers,
        rbac,
        identity,
        secrets,
        rate_limits,
        hooks,
        metrics,
        audit,
        providers,
        models,
        pricing,
        budgets,
        jobs,
        skills,
        extensions,
    })
}
