//! The `identity` section: token lifetimes, client registration and federated issuers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::scalars::check_http_url;
use super::{Decoder, Node, Placeholders};
use crate::model::{ExternalIssuer, IdentitySettings};
use crate::tier::Tier;

const IDENTITY_KEYS: &[&str] = &[
    "access_token_ttl",
    "refresh_token_ttl",
    "grant_ttl",
    "session_ttl",
    "signing_key_rotation",
    "key_refetch_interval",
    "dynamic_registration",
    "max_dynamic_clients",
    "unused_dynamic_client_ttl",
    "client_metadata_documents",
    "allow_private_addresses",
    "extra_ca_file",
    "issuers",
];

const ISSUER_KEYS: &[&str] = &[
    "issuer",
    "audience",
    "algorithms",
    "subject_claim",
    "tier_claim",
    "tier_map",
    "default_tier",
    "scope_claim",
    "client_id",
    "client_secret",
    "display_name",
];

/// Asymmetric algorithms only: an HMAC algorithm would make the issuer's verification key a shared
/// secret, and `none` is never a signature.
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];

pub(super) fn decode_identity(decoder: &mut Decoder, node: Option<Node>) -> IdentitySettings {
    let mut settings = IdentitySettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| decoder.fields(node, IDENTITY_KEYS)) else {
        return settings;
    };
    let durations = [
        ("access_token_ttl", &mut settings.access_token_ttl),
        ("refresh_token_ttl", &mut settings.refresh_token_ttl),
        ("grant_ttl", &mut settings.grant_ttl),
        ("session_ttl", &mut settings.session_ttl),
        ("signing_key_rotation", &mut settings.signing_key_rotation),
        ("key_refetch_interval", &mut settings.key_refetch_interval),
        ("unused_dynamic_client_ttl", &mut settings.unused_dynamic_client_ttl),
    ];
    for (key, slot) in durations {
        if let Some(node) = fields.take(key)
            && let Some(duration) = decoder.positive_duration(&node)
        {
            *slot = duration;
        }
    }
    let flags = [
        ("dynamic_registration", &mut settings.dynamic_registration),
        ("client_metadata_documents", &mut settings.client_metadata_documents),
        ("allow_private_addresses", &mut settings.allow_private_addresses),
    ];
    for (key, slot) in flags {
        if let Some(node) = fields.take(key)
            && let Some(flag) = decoder.boolean(&node)
        {
            *slot = flag;
        }
    }
    if let Some(node) = fields.take("max_dynamic_clients")
        && let Some(count) = decoder.positive_integer(&node)
    {
        settings.max_dynamic_clients = count;
    }
    if let Some(node) = fields.take("extra_ca_file")
        && let Some(path) = decoder.nonempty_plain(&node)
    {
        settings.extra_ca_file = Some(PathBuf::from(path));
    }
    if let Some(node) = fields.take("issuers") {
        for item in decoder.items(&node).unwrap_or_default() {
            if let Some(issuer) = decode_issuer(decoder, &item) {
                if settings.issuers.iter().any(|known| known.issuer == issuer.issuer) {
                    decoder.at_value(&item, "this issuer is listed twice");
                    continue;
                }
                settings.issuers.push(issuer);
            }
        }
    }
    settings
}

fn decode_issuer(decoder: &mut Decoder, node: &Node) -> Option<ExternalIssuer> {
    let mut fields = decoder.fields(node, ISSUER_KEYS)?;
    let issuer = match fields.take("issuer") {
        Some(node) => {
            let text = decoder.nonempty_plain(&node)?;
            match check_http_url(&text) {
                Ok(parsed) if parsed.rest.contains(['?', '#']) => {
                    decoder.at_value(&node, "an issuer identifier has no query or fragment");
                    return None;
                }
                Ok(_) => text,
                Err(reason) => {
                    decoder.at_value(&node, reason);
                    return None;
                }
            }
        }
        None => {
            decoder.at_value(node, "an issuer needs `issuer` (its identifier, exactly as its tokens carry it)");
            return None;
        }
    };
    let audience = match fields.take("audience") {
        Some(node) => decoder.nonempty_plain(&node)?,
        None => {
            decoder.at_value(node, "an issuer needs `audience`: the `aud` its tokens carry for Castellan");
            return None;
        }
    };
    let mut algorithms = Vec::new();
    if let Some(node) = fields.take("algorithms") {
        for item in decoder.items(&node).unwrap_or_default() {
            let Some(name) = decoder.nonempty_plain(&item) else { continue };
            if ALGORITHMS.contains(&name.as_str()) {
                algorithms.push(name);
            } else {
                decoder.at_value(&item, format!("unsupported algorithm; use one of {}", ALGORITHMS.join(", ")));
            }
        }
    }
    if algorithms.is_empty() {
        algorithms.push("RS256".to_string());
    }
    let claim = |decoder: &mut Decoder, fields: &mut super::Fields, key: &str| {
        fields.take(key).and_then(|node| decoder.nonempty_plain(&node))
    };
    let subject_claim = claim(decoder, &mut fields, "subject_claim").unwrap_or_else(|| "sub".to_string());
    let scope_claim = claim(decoder, &mut fields, "scope_claim").unwrap_or_else(|| "scope".to_string());
    let tier_claim = claim(decoder, &mut fields, "tier_claim");
    let client_id = claim(decoder, &mut fields, "client_id");
    let mut tier_map = BTreeMap::new();
    if let Some(node) = fields.take("tier_map") {
        for (value, tier_node) in decoder.entries(&node) {
            if let Some(tier) = decode_tier(decoder, &tier_node) {
                tier_map.insert(value, tier);
            }
        }
    }
    let default_tier = fields.take("default_tier").and_then(|node| decode_tier(decoder, &node));
    let client_secret = fields.take("client_secret").and_then(|node| decoder.template(&node, Placeholders::Secrets));
    let display_name = claim(decoder, &mut fields, "display_name").unwrap_or_else(|| host_of(&issuer));
    if !tier_map.is_empty() && tier_claim.is_none() {
        decoder.at_value(node, "`tier_map` needs `tier_claim`: the claim whose values it maps");
    }
    Some(ExternalIssuer {
        issuer,
        audience,
        algorithms,
        subject_claim,
        tier_claim,
        tier_map,
        default_tier,
        scope_claim,
        client_id,
        client_secret,
        display_name,
    })
}

fn decode_tier(decoder: &mut Decoder, node: &Node) -> Option<Tier> {
    let name = decoder.nonempty_plain(node)?;
    match Tier::parse(&name) {
        Some(tier) => Some(tier),
        None => {
            let names: Vec<&str> = Tier::ALL.iter().map(|tier| tier.as_str()).collect();
            decoder.at_value(node, format!("unknown tier; use one of {}", names.join(", ")));
            None
        }
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest).to_string()
}
