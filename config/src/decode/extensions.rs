//! Extensions' sections: converted to JSON, handed to their validators, and each problem reported
//! at the key it names.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::{Decoder, Fields, Node, kind};
use crate::extensions::ExtensionSection;

/// Deeper than any real settings; bounds the recursion of the conversion.
const MAX_DEPTH: usize = 64;

pub(super) fn decode_extension_sections(
    decoder: &mut Decoder,
    sections: &mut Fields,
    installed: &[ExtensionSection],
) -> BTreeMap<String, serde_json::Value> {
    let mut values = BTreeMap::new();
    for section in installed {
        let Some(node) = sections.take(&section.prefix) else { continue };
        let Some(value) = to_json(decoder, &node, 0) else { continue };
        for problem in (section.validate)(&value) {
            let at = locate(&node, &problem.path);
            decoder.at_value(&at, problem.message);
        }
        values.insert(section.prefix.clone(), value);
    }
    values
}

fn to_json(decoder: &mut Decoder, node: &Node, depth: usize) -> Option<serde_json::Value> {
    if depth > MAX_DEPTH {
        decoder.at_value(node, format!("is nested more than {MAX_DEPTH} levels deep"));
        return None;
    }
    Some(match node.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                integer.into()
            } else if let Some(integer) = number.as_u64() {
                integer.into()
            } else {
                match number.as_f64().and_then(serde_json::Number::from_f64) {
                    Some(number) => serde_json::Value::Number(number),
                    None => {
                        decoder.at_value(node, "is not a finite number");
                        return None;
                    }
                }
            }
        }
        Value::String(text) => serde_json::Value::String(text.clone()),
        Value::Sequence(items) => {
            let mut converted = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                converted.push(to_json(decoder, &node.item(index, item), depth + 1)?);
            }
            serde_json::Value::Array(converted)
        }
        Value::Mapping(mapping) => {
            let mut converted = serde_json::Map::new();
            for (key, value) in mapping {
                let Value::String(key) = key else {
                    decoder.at_value(node, format!("keys must be strings, found {}", kind(key)));
                    return None;
                };
                converted.insert(key.clone(), to_json(decoder, &node.child(key, value), depth + 1)?);
            }
            serde_json::Value::Object(converted)
        }
        Value::Tagged(_) => {
            decoder.at_value(node, "YAML tags are not supported");
            return None;
        }
    })
}

/// The node `path` names under `section` (`a.b[2].c`), or the deepest one that exists on the way.
fn locate<'v, 'p>(section: &Node<'v, 'p>, path: &str) -> Node<'v, 'p> {
    let mut current = section.clone();
    for segment in path.split('.').filter(|segment| !segment.is_empty()) {
        let (key, indexes) = match segment.find('[') {
            Some(open) => segment.split_at(open),
            None => (segment, ""),
        };
        if !key.is_empty() {
            let Value::Mapping(mapping) = current.value else { return current };
            let Some(value) = mapping.get(key) else { return current };
            current = current.child(key, value);
        }
        for index in indexes.split('[').filter_map(|part| part.strip_suffix(']')) {
            let (Ok(index), Value::Sequence(items)) = (index.parse::<usize>(), current.value) else { return current };
            let Some(item) = items.get(index) else { return current };
            current = current.item(index, item);
        }
    }
    current
}
