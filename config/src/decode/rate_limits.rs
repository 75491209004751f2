//! The `rate_limits` section: base rates per class, tier multipliers and the burst multiplier.

use serde_yaml_ng::Value;

use super::{Decoder, Node, kind};
use crate::model::{RateClass, RateLimitSettings};
use crate::tier::Tier;

/// The largest rate accepted, per second: beyond it a limit means nothing on one machine.
const MAX_RATE: f64 = 1_000_000.0;

pub(super) fn decode_rate_limits(decoder: &mut Decoder, node: Option<Node>) -> RateLimitSettings {
    let mut settings = RateLimitSettings::default();
    let Some(mut fields) =
        node.as_ref().and_then(|node| decoder.fields(node, &["burst_multiplier", "tier_multipliers", "per_second"]))
    else {
        return settings;
    };
    if let Some(node) = fields.take("burst_multiplier")
        && let Some(value) = positive_number(decoder, &node)
    {
        if value < 1.0 {
            decoder.at_value(&node, "the burst multiplier is at least 1 (the burst is rate × this)");
        } else {
            settings.burst_multiplier = value;
        }
    }
    if let Some(node) = fields.take("tier_multipliers") {
        for (name, value) in decoder.entries(&node) {
            let Some(tier) = Tier::parse(&name) else {
                let names: Vec<&str> = Tier::ALL.iter().map(|tier| tier.as_str()).collect();
                decoder.at_key(&value, format!("unknown tier; use one of {}", names.join(", ")));
                continue;
            };
            if let Some(multiplier) = positive_number(decoder, &value) {
                settings.tier_multipliers.insert(tier, multiplier);
            }
        }
    }
    if let Some(node) = fields.take("per_second") {
        for (name, value) in decoder.entries(&node) {
            let Some(class) = RateClass::ALL.into_iter().find(|class| class.as_str() == name) else {
                let names: Vec<&str> = RateClass::ALL.iter().map(|class| class.as_str()).collect();
                decoder.at_key(&value, format!("unknown class; use one of {}", names.join(", ")));
                continue;
            };
            if let Some(rate) = positive_number(decoder, &value) {
                settings.per_second.insert(class, rate);
            }
        }
    }
    settings
}

/// A finite number greater than zero and at most [`MAX_RATE`].
fn positive_number(decoder: &mut Decoder, node: &Node) -> Option<f64> {
    let number = match node.value {
        Value::Number(number) => number.as_f64(),
        other => {
            decoder.at_value(node, format!("expected a number, found {}", kind(other)));
            return None;
        }
    };
    match number {
        Some(value) if value.is_finite() && value > 0.0 && value <= MAX_RATE => Some(value),
        _ => {
            decoder.at_value(node, format!("expected a number greater than 0 and at most {MAX_RATE}"));
            None
        }
    }
}
