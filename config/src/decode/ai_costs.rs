//! The `pricing` and `budgets` sections: dollar amounts read exactly (integer microdollars, never a
//! float), and the selectors that say which requests a budget counts.

use std::collections::{BTreeMap, BTreeSet};

use castellan_ai::cost::{Price, Prices};
use serde_yaml_ng::Value;

use super::ai::check_model_name;
use super::{Decoder, Node, kind};
use crate::ai::{BUDGET_NAME_MAX_LEN, BudgetPer, BudgetPeriod, BudgetSpec};
use crate::names::check_lowercase_name;
use crate::tier::Tier;

const PRICE_KEYS: &[&str] = &["input", "output", "cache_read", "cache_write", "cache_write_1h"];
const BUDGET_KEYS: &[&str] = &["name", "usd", "period", "per", "user", "tier", "api_key", "models"];

/// The decimal text of a dollar amount. YAML hands numbers over as f64 (the text is gone by then);
/// Rust's `{}` of an f64 is the shortest text that reads back as the same f64, so `0.075` stays
/// `"0.075"` and any amount written with up to 15 significant digits comes back as written. A
/// string (`"0.075"`, or `${VAR}`) is taken as it is after expansion.
fn dollar_text(decoder: &mut Decoder, node: &Node) -> Option<String> {
    let text = match node.value {
        Value::Number(number) => {
            if let Some(whole) = number.as_u64() {
                whole.to_string()
            } else if number.as_i64().is_some() {
                decoder.at_value(node, "must not be negative");
                return None;
            } else {
                match number.as_f64() {
                    Some(value) if value.is_nan() || value.is_infinite() => {
                        decoder.at_value(node, format!("`{number}` is not an amount of dollars"));
                        return None;
                    }
                    Some(value) if value < 0.0 => {
                        decoder.at_value(node, "must not be negative");
                        return None;
                    }
                    // `-0` prints with its sign; it is zero.
                    Some(0.0) => "0".to_string(),
                    Some(value) => format!("{value}"),
                    None => number.to_string(),
                }
            }
        }
        Value::String(_) => decoder.nonempty_plain(node)?,
        other => {
            decoder.at_value(node, format!("expected a number of dollars, found {}", kind(other)));
            return None;
        }
    };
    if text.starts_with('-') {
        decoder.at_value(node, "must not be negative");
        return None;
    }
    Some(text)
}

/// A price in dollars per million tokens: at most 6 decimals, zero allowed (free models exist).
fn decode_price(decoder: &mut Decoder, node: &Node) -> Option<Price> {
    let text = dollar_text(decoder, node)?;
    match Price::parse_dollars_per_mtok(&text) {
        Ok(price) => Some(price),
        Err(reason) => {
            decoder.at_value(node, reason);
            None
        }
    }
}

pub(super) fn decode_pricing(decoder: &mut Decoder, node: Option<Node>) -> BTreeMap<String, Prices> {
    let mut pricing = BTreeMap::new();
    let Some(node) = node else { return pricing };
    for (model, entry) in decoder.entries(&node) {
        let model_ok = match check_model_name(&model, false) {
            Ok(()) => true,
            Err(reason) => {
                decoder.at_key(&entry, format!("{reason}; pricing is keyed by the exact upstream model name"));
                false
            }
        };
        if let Some(prices) = decode_prices(decoder, &entry)
            && model_ok
        {
            pricing.insert(model, prices);
        }
    }
    pricing
}

/// One model's prices. `input` and `output` are required; `cache_read` and `cache_write` default to
/// the input price and `cache_write_1h` to `cache_write` (see docs/profile.md for why).
fn decode_prices(decoder: &mut Decoder, node: &Node) -> Option<Prices> {
    let mut fields = decoder.fields(node, PRICE_KEYS)?;
    let mut required = |decoder: &mut Decoder, key: &str| match fields.take(key) {
        Some(price) => decode_price(decoder, &price),
        None => {
            decoder.at_key(node, format!("needs `{key}`: US dollars per million tokens"));
            None
        }
    };
    let input = required(decoder, "input");
    let output = required(decoder, "output");
    let mut optional = |decoder: &mut Decoder, key: &str| fields.take(key).map(|price| decode_price(decoder, &price));
    let cache_read = optional(decoder, "cache_read");
    let cache_write = optional(decoder, "cache_write");
    let cache_write_1h = optional(decoder, "cache_write_1h");
    let input = input?;
    let cache_write_5m = cache_write.unwrap_or(Some(input))?;
    Some(Prices {
        input,
        output: output?,
        cache_read: cache_read.unwrap_or(Some(input))?,
        cache_write_5m,
        cache_write_1h: cache_write_1h.unwrap_or(Some(cache_write_5m))?,
    })
}

pub(super) fn decode_budgets(decoder: &mut Decoder, node: Option<Node>) -> Vec<BudgetSpec> {
    let mut budgets = Vec::new();
    let Some(node) = node else { return budgets };
    let mut names = BTreeSet::new();
    for item in decoder.items(&node).unwrap_or_default() {
        let Some((budget, name_node)) = decode_budget(decoder, &item) else { continue };
        // Errors and the budgets API cite the name, so two budgets with one name would be ambiguous.
        if !names.insert(budget.name.clone()) {
            decoder.at_value(&name_node, format!("another budget is already named `{}`", budget.name));
            continue;
        }
        budgets.push(budget);
    }
    budgets
}

/// Returns the budget and the node of its `name`, for the duplicate-name check.
fn decode_budget<'v, 'p>(decoder: &mut Decoder, node: &Node<'v, 'p>) -> Option<(BudgetSpec, Node<'v, 'p>)> {
    let mut fields = decoder.fields(node, BUDGET_KEYS)?;
    let name_node = fields.take("name");
    let name = match &name_node {
        Some(name_node) => decoder.nonempty_plain(name_node).filter(|name| {
            check_lowercase_name("budget", name, BUDGET_NAME_MAX_LEN)
                .map_err(|reason| decoder.at_value(name_node, reason))
                .is_ok()
        }),
        None => {
            decoder.at_value(node, "a budget needs `name`: errors and `GET /api/v1/budgets` cite it");
            None
        }
    };
    let usd = match fields.take("usd") {
        Some(usd_node) => decode_usd(decoder, &usd_node),
        None => {
            decoder.at_value(node, "a budget needs `usd`: the limit per period, in US dollars");
            None
        }
    };
    let period = match fields.take("period") {
        Some(period_node) => decode_period(decoder, &period_node),
        None => {
            decoder.at_value(node, "a budget needs `period`: day, week or month");
            None
        }
    };
    let user = fields.take("user").map(|user| decoder.nonempty_plain(&user));
    let tier = fields.take("tier").map(|tier| decode_tier(decoder, &tier));
    let api_key = fields.take("api_key").map(|key| decoder.nonempty_plain(&key));
    let models = fields.take("models").map(|models| decode_model_globs(decoder, &models));
    let per = fields.take("per").map(|per| decode_per(decoder, &per));
    let tier = valid_if_given(tier)?;
    let per = match per {
        Some(per) => Some(per?),
        None if tier.is_some() => Some(BudgetPer::User),
        None => None,
    };
    let budget = BudgetSpec {
        name: name?,
        usd_microdollars: usd?,
        period: period?,
        per,
        user: valid_if_given(user)?,
        tier,
        api_key: valid_if_given(api_key)?,
        models: models.unwrap_or(Some(Vec::new()))?,
    };
    Some((budget, name_node?))
}

/// An optional key after decoding: absent is fine (`Some(None)`), present but invalid is not (`None`).
fn valid_if_given<T>(decoded: Option<Option<T>>) -> Option<Option<T>> {
    match decoded {
        None => Some(None),
        Some(value) => value.map(Some),
    }
}

/// `usd`: dollars with at most 6 decimals, greater than zero, as integer microdollars.
fn decode_usd(decoder: &mut Decoder, node: &Node) -> Option<u64> {
    let text = dollar_text(decoder, node)?;
    // Dollars with six decimals are microdollars exactly as dollars per million tokens are
    // microdollars per million tokens: the same reading, with its bounds.
    match Price::parse_dollars_per_mtok(&text) {
        Ok(Price(0)) => {
            decoder.at_value(node, "must be greater than zero; to refuse every request use an RBAC deny rule");
            None
        }
        Ok(Price(microdollars)) => Some(microdollars),
        Err(_) => {
            let shown = Decoder::shown(node);
            decoder.at_value(
                node,
                format!(
                    "{shown} is not an amount of US dollars; write digits with at most 6 decimals, e.g. 50 or 12.5"
                ),
            );
            None
        }
    }
}

fn decode_period(decoder: &mut Decoder, node: &Node) -> Option<BudgetPeriod> {
    let text = decoder.nonempty_plain(node)?;
    let period = BudgetPeriod::ALL.into_iter().find(|period| period.as_str() == text);
    if period.is_none() {
        let shown = Decoder::shown(node);
        decoder.at_value(node, format!("{shown} is not a period; expected day, week or month (UTC)"));
    }
    period
}

fn decode_per(decoder: &mut Decoder, node: &Node) -> Option<BudgetPer> {
    let text = decoder.nonempty_plain(node)?;
    let per = [BudgetPer::User, BudgetPer::ApiKey].into_iter().find(|per| per.as_str() == text);
    if per.is_none() {
        let shown = Decoder::shown(node);
        decoder.at_value(node, format!("{shown} is not a pool; expected user or api_key"));
    }
    per
}

fn decode_tier(decoder: &mut Decoder, node: &Node) -> Option<Tier> {
    let text = decoder.nonempty_plain(node)?;
    text.parse::<Tier>().map_err(|error| decoder.at_value(node, error.to_string())).ok()
}

/// A non-empty list of model globs (budget and RBAC `models`).
pub(super) fn decode_model_globs(decoder: &mut Decoder, node: &Node) -> Option<Vec<String>> {
    decode_globs(decoder, node, "leave the key out to match every model", |text| check_model_name(text, true))
}

/// A non-empty list of globs, each held to `check`; `hint` ends the empty-list message.
pub(super) fn decode_globs(
    decoder: &mut Decoder,
    node: &Node,
    hint: &str,
    check: impl Fn(&str) -> Result<(), String>,
) -> Option<Vec<String>> {
    let items = decoder.items(node)?;
    if items.is_empty() {
        decoder.at_value(node, format!("an empty list matches nothing; {hint}"));
        return None;
    }
    let mut globs = Vec::new();
    let mut valid = true;
    for item in items {
        let Some(text) = decoder.nonempty_plain(&item) else {
            valid = false;
            continue;
        };
        match check(&text) {
            Ok(()) => globs.push(text),
            Err(reason) => {
                valid = false;
                decoder.at_value(&item, reason);
            }
        }
    }
    valid.then_some(globs)
}
