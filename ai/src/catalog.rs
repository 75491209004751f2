//! The built-in price catalog (`ai/catalog/prices.yaml`, compiled in) and the rules that find a
//! model's prices from the name the provider is asked for (pricing.md §4), with the profile's
//! `pricing:` laid over it.
//!
//! Matching is conservative on purpose: a name the rules do not resolve has no price, and the
//! caller treats that as unpriced (fail closed), never as free and never as a neighbour's price.

use std::collections::HashMap;

use serde::Deserialize;

use crate::cost::{Price, Prices};

const BUILTIN_YAML: &str = include_str!("../catalog/prices.yaml");

/// Prefixes a routing layer puts in front of a model id (`models/` is Gemini's REST spelling);
/// one is stripped before matching, nothing else about the name is rewritten.
const ROUTING_PREFIXES: [&str; 3] = ["models/", "anthropic/", "openai/"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Anthropic,
    #[serde(rename = "openai")]
    OpenAi,
    Gemini,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::OpenAi => "openai",
            Provider::Gemini => "gemini",
        }
    }

    /// `name` without this provider's documented snapshot suffix (Anthropic `-YYYYMMDD`, OpenAI
    /// `-YYYY-MM-DD`, Gemini `-NNN`), or `None` when it does not end with one.
    fn family_of_snapshot(self, name: &str) -> Option<&str> {
        let shape: &[u8] = match self {
            Provider::Anthropic => b"-dddddddd",
            Provider::OpenAi => b"-dddd-dd-dd",
            Provider::Gemini => b"-ddd",
        };
        let split = name.len().checked_sub(shape.len())?;
        let (family, suffix) = (name.get(..split)?, name.get(split..)?);
        let matches = suffix
            .bytes()
            .zip(shape)
            .all(|(byte, want)| if *want == b'd' { byte.is_ascii_digit() } else { byte == *want });
        (matches && !family.is_empty()).then_some(family)
    }
}

/// One model of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogModel {
    /// The provider's API id (the family alias where there is one).
    pub id: String,
    pub provider: Provider,
    /// Documented snapshot ids priced the same as `id`.
    pub aliases: Vec<String>,
    pub prices: Prices,
    /// Where the prices were read.
    pub source: String,
    /// `YYYY-MM-DD`: the date the source shows, or the date it was checked.
    pub as_of: String,
    /// How sure the figures are (undated page, third-party, ...).
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("the price catalog is not valid: {0}")]
    Yaml(String),
    #[error("the price catalog's {model}.{field}: {reason}")]
    Price { model: String, field: &'static str, reason: String },
    #[error("the price catalog's {model}: {reason}")]
    Entry { model: String, reason: String },
    #[error("the price catalog names {0} twice")]
    Duplicate(String),
}

/// The YAML shape, prices still as their decimal text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: Vec<EntryFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    id: String,
    provider: Provider,
    #[serde(default)]
    aliases: Vec<String>,
    input: String,
    output: String,
    cache_read: Option<String>,
    cache_write_5m: Option<String>,
    cache_write_1h: Option<String>,
    source: String,
    as_of: String,
    note: Option<String>,
}

impl EntryFile {
    fn into_model(self) -> Result<CatalogModel, CatalogError> {
        let price = |field: &'static str, text: &str| {
            Price::parse_dollars_per_mtok(text).map_err(|reason| CatalogError::Price {
                model: self.id.clone(),
                field,
                reason,
            })
        };
        let input = price("input", &self.input)?;
        // A cache price the provider does not have is the input price: never cheaper than
        // plain input for a count that should not be there.
        let or_input =
            |field: &'static str, text: &Option<String>| text.as_deref().map_or(Ok(input), |text| price(field, text));
        let prices = Prices {
            input,
            output: price("output", &self.output)?,
            cache_read: or_input("cache_read", &self.cache_read)?,
            cache_write_5m: or_input("cache_write_5m", &self.cache_write_5m)?,
            cache_write_1h: or_input("cache_write_1h", &self.cache_write_1h)?,
        };
        let entry_error = |reason: &str| CatalogError::Entry { model: self.id.clone(), reason: reason.to_owned() };
        if self.id.is_empty() || self.id != normalize(&self.id) {
            return Err(entry_error("the id must be a bare provider model id"));
        }
        if !self.source.starts_with("https://") || self.source.contains(char::is_whitespace) {
            return Err(entry_error("source: expected an https URL"));
        }
        if !is_date(&self.as_of) {
            return Err(entry_error("as_of: expected a date, YYYY-MM-DD"));
        }
        Ok(CatalogModel {
            id: self.id,
            provider: self.provider,
            aliases: self.aliases,
            prices,
            source: self.source,
            as_of: self.as_of,
            note: self.note,
        })
    }
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| if index == 4 || index == 7 { *byte == b'-' } else { byte.is_ascii_digit() });
    let number = |range: std::ops::Range<usize>| text.get(range).and_then(|part| part.parse::<u32>().ok()).unwrap_or(0);
    shape_ok && (1..=12).contains(&number(5..7)) && (1..=31).contains(&number(8..10))
}

fn normalize(model: &str) -> &str {
    ROUTING_PREFIXES.iter().find_map(|prefix| model.strip_prefix(prefix)).unwrap_or(model)
}

/// The catalog, with any profile overrides.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<CatalogModel>,
    /// Every id and alias, to its entry in `models`.
    by_name: HashMap<String, usize>,
    /// The profile's `pricing:`, keyed by upstream model.
    overrides: HashMap<String, Prices>,
}

impl Catalog {
    /// The catalog compiled into the binary.
    pub fn builtin() -> Result<Catalog, CatalogError> {
        Catalog::from_yaml(BUILTIN_YAML)
    }

    /// A catalog in the shape of `ai/catalog/prices.yaml`.
    pub fn from_yaml(text: &str) -> Result<Catalog, CatalogError> {
        let file: CatalogFile = serde_yaml_ng::from_str(text).map_err(|error| CatalogError::Yaml(error.to_string()))?;
        let mut models = Vec::with_capacity(file.models.len());
        let mut by_name = HashMap::new();
        for entry in file.models {
            let model = entry.into_model()?;
            for name in std::iter::once(&model.id).chain(&model.aliases) {
                if by_name.insert(name.clone(), models.len()).is_some() {
                    return Err(CatalogError::Duplicate(name.clone()));
                }
            }
            models.push(model);
        }
        Ok(Catalog { models, by_name, overrides: HashMap::new() })
    }

    /// The catalog's models, for listing (`GET /v1/models` matches them against glob routes).
    pub fn models(&self) -> impl Iterator<Item = &CatalogModel> {
        self.models.iter()
    }

    /// The profile's prices win over the catalog's. An override applies to the exact upstream
    /// model it names; one keyed by a catalog id also applies to that entry's snapshots.
    pub fn with_overrides(mut self, overrides: impl IntoIterator<Item = (String, Prices)>) -> Catalog {
        for (model, prices) in overrides {
            self.overrides.insert(normalize(&model).to_owned(), prices);
        }
        self
    }

    /// The prices of `upstream_model`, or `None` when it is not priced (the caller fails closed).
    ///
    /// In order (pricing.md §4): strip one routing prefix; an override for that exact name; an
    /// exact catalog id or alias (the only way a snapshot priced unlike its family is found);
    /// then, unless the name is a preview or experiment, the name without its provider's snapshot
    /// suffix, matched exactly again. There is no prefix matching, so `claude-sonnet-5-5-...`
    /// can never land on `claude-sonnet-5`.
    pub fn prices(&self, upstream_model: &str) -> Option<Prices> {
        let name = normalize(upstream_model);
        if let Some(prices) = self.overrides.get(name) {
            return Some(*prices);
        }
        if let Some(model) = self.by_name.get(name).and_then(|index| self.models.get(*index)) {
            return Some(self.prices_of(model));
        }
        // Previews and experiments have been priced unlike their GA model.
        if name.contains("preview") || name.contains("-exp") {
            return None;
        }
        [Provider::Anthropic, Provider::OpenAi, Provider::Gemini].into_iter().find_map(|provider| {
            let family = provider.family_of_snapshot(name)?;
            let model = self.by_name.get(family).and_then(|index| self.models.get(*index))?;
            (model.provider == provider).then(|| self.prices_of(model))
        })
    }

    fn prices_of(&self, model: &CatalogModel) -> Prices {
        self.overrides.get(&model.id).copied().unwrap_or(model.prices)
    }
}

#[cfg(test)]
mod tests;
