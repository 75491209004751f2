//! Reading a request body as JSON while keeping the path of every value, so that a field the
//! translation does not map is refused by name (`messages[2].content[0].type: document`) instead of
//! being dropped.

use serde_json::{Map, Value};

use super::TranslateError;

pub(super) type Result<T> = std::result::Result<T, TranslateError>;

/// Why a key that no reader consumed is refused.
const NOT_MAPPED: &str = "this field has no equivalent in the wire format of the model's provider, so it cannot \
     be translated; remove it, or call a model served in this wire format";

pub(super) fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
    TranslateError::Unsupported { field: field.into(), reason: reason.into() }
}

pub(super) fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(message.into())
}

pub(super) fn parse_body(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|error| invalid(format!("the body is not JSON: {error}")))
}

pub(super) fn to_bytes(value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|error| invalid(format!("could not write JSON: {error}")))
}

/// `parent.key`, or `key` at the root.
pub(super) fn child_path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

pub(super) fn element_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn expect_string(path: &str, value: Value) -> Result<String> {
    match value {
        Value::String(text) => Ok(text),
        other => Err(invalid(format!("`{path}` must be a string, not {}", kind_of(&other)))),
    }
}

pub(super) fn expect_object(path: &str, value: Value) -> Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(invalid(format!("`{path}` must be an object, not {}", kind_of(&other)))),
    }
}

/// The elements of an array with their paths.
pub(super) fn expect_array(path: &str, value: Value) -> Result<Vec<(String, Value)>> {
    match value {
        Value::Array(items) => {
            Ok(items.into_iter().enumerate().map(|(index, item)| (element_path(path, index), item)).collect())
        }
        other => Err(invalid(format!("`{path}` must be an array, not {}", kind_of(&other)))),
    }
}

/// How keys are spelled: Gemini's proto3 JSON takes both `maxOutputTokens` and `max_output_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spelling {
    Exact,
    CamelOrSnake,
}

fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for character in camel.chars() {
        if character.is_ascii_uppercase() {
            out.push('_');
            out.push(character.to_ascii_lowercase());
        } else {
            out.push(character);
        }
    }
    out
}

/// One JSON object being read: every key is taken at most once, and [`Fields::finish`] refuses the
/// keys nobody took. A `null` value counts as absent (SDKs send `"tool_choice": null` and the like).
pub(super) struct Fields {
    path: String,
    map: Map<String, Value>,
    spelling: Spelling,
}

impl Fields {
    pub(super) fn new(path: String, value: Value, spelling: Spelling) -> Result<Fields> {
        let map = expect_object(if path.is_empty() { "the body" } else { &path }, value)?;
        Ok(Fields { path, map, spelling })
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    pub(super) fn path_of(&self, key: &str) -> String {
        child_path(&self.path, key)
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        let mut found = self.map.remove(key);
        if self.spelling == Spelling::CamelOrSnake {
            let snake = snake_case(key);
            if snake != key {
                let other = self.map.remove(&snake);
                if found.as_ref().is_none_or(Value::is_null) {
                    found = other;
                }
            }
        }
        found.filter(|value| !value.is_null())
    }

    /// Takes a key whose value the translation deliberately does not carry (documented per reader).
    pub(super) fn ignore(&mut self, key: &str) {
        let _ = self.take(key);
    }

    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>> {
        self.take(key).map(|value| expect_string(&self.path_of(key), value)).transpose()
    }

    pub(super) fn required(&mut self, key: &str) -> Result<Value> {
        self.take(key).ok_or_else(|| invalid(format!("`{}` is required", self.path_of(key))))
    }

    pub(super) fn required_string(&mut self, key: &str) -> Result<String> {
        let value = self.required(key)?;
        expect_string(&self.path_of(key), value)
    }

    pub(super) fn u64(&mut self, key: &str) -> Result<Option<u64>> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(format!("`{}` must be a non-negative integer", self.path_of(key)))),
        }
    }

    pub(super) fn f64(&mut self, key: &str) -> Result<Option<f64>> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => {
                value.as_f64().map(Some).ok_or_else(|| invalid(format!("`{}` must be a number", self.path_of(key))))
            }
        }
    }

    pub(super) fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(value) => {
                value.as_bool().map(Some).ok_or_else(|| invalid(format!("`{}` must be a boolean", self.path_of(key))))
            }
        }
    }

    pub(super) fn array(&mut self, key: &str) -> Result<Option<Vec<(String, Value)>>> {
        let path = self.path_of(key);
        self.take(key).map(|value| expect_array(&path, value)).transpose()
    }

    pub(super) fn object(&mut self, key: &str) -> Result<Option<Fields>> {
        let path = self.path_of(key);
        let spelling = self.spelling;
        self.take(key).map(|value| Fields::new(path, value, spelling)).transpose()
    }

    pub(super) fn strings(&mut self, key: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (path, value) in self.array(key)?.unwrap_or_default() {
            out.push(expect_string(&path, value)?);
        }
        Ok(out)
    }

    /// Takes `key` and refuses it unless `acceptable` holds: for fields whose default value has an
    /// equivalent (`n: 1`, `logprobs: false`) and whose other values do not.
    pub(super) fn accept_only(&mut self, key: &str, acceptable: impl Fn(&Value) -> bool, reason: &str) -> Result<()> {
        match self.take(key) {
            Some(value) if !acceptable(&value) => Err(unsupported(format!("{}: {value}", self.path_of(key)), reason)),
            _ => Ok(()),
        }
    }

    /// Refuses the first key nobody took (a `null` is absent: SDKs echo `"refusal": null` and the like).
    pub(super) fn finish(self) -> Result<()> {
        match self.map.iter().find(|(_, value)| !value.is_null()) {
            Some((key, _)) => Err(unsupported(child_path(&self.path, key), NOT_MAPPED)),
            None => Ok(()),
        }
    }
}

/// FNV-1a, for ids that must be stable for the same input (no randomness in this crate).
pub(super) fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(std::iter::once(&0xff)) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
