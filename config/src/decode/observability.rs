//! The `metrics` and `audit` sections.

use super::{Decoder, Node};
use crate::model::{AuditSettings, MIN_AUDIT_MAX_FIELD_BYTES, MetricsSettings, MetricsToken};

pub(super) fn decode_metrics(decoder: &mut Decoder, node: Option<Node>) -> MetricsSettings {
    let mut settings = MetricsSettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| decoder.fields(node, &["token"])) else {
        return settings;
    };
    if let Some(node) = fields.take("token")
        && let Some(text) = decoder.nonempty_plain(&node)
    {
        // The message never shows the value: it is a credential (often from `${VAR}`).
        match MetricsToken::parse(&text) {
            Ok(token) => settings.token = Some(token),
            Err(reason) => decoder.at_value(&node, reason),
        }
    }
    settings
}

pub(super) fn decode_audit(decoder: &mut Decoder, node: Option<Node>) -> AuditSettings {
    let mut settings = AuditSettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| decoder.fields(node, &["max_field_bytes"])) else {
        return settings;
    };
    if let Some(node) = fields.take("max_field_bytes")
        && let Some(bytes) = decoder.positive_integer(&node)
    {
        match usize::try_from(bytes) {
            Ok(bytes) if bytes >= MIN_AUDIT_MAX_FIELD_BYTES => settings.max_field_bytes = bytes,
            Ok(_) => decoder.at_value(&node, format!("must be at least {MIN_AUDIT_MAX_FIELD_BYTES}")),
            Err(_) => decoder.at_value(&node, "is too large for this machine"),
        }
    }
    settings
}
