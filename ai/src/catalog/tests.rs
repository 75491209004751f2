//! Tests of the built-in catalog, its matching rules, overrides and exact cost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::*;
use crate::cost::{Usage, cost_microdollars};
use crate::format::WireFormat;
use crate::usage::from_response;

fn price(text: &str) -> Price {
    Price::parse_dollars_per_mtok(text).unwrap()
}

fn builtin() -> Catalog {
    Catalog::builtin().unwrap()
}

#[test]
fn the_embedded_catalog_parses_and_every_entry_has_a_source_and_a_date() {
    let catalog = builtin();
    let models: Vec<&CatalogModel> = catalog.models().collect();
    assert!(models.len() >= 30, "{} models", models.len());
    for model in &models {
        assert!(model.source.starts_with("https://"), "{}: source {}", model.id, model.source);
        assert!(is_date(&model.as_of), "{}: as_of {}", model.id, model.as_of);
        assert!(model.prices.output.0 > 0 && model.prices.input.0 > 0, "{}: priced", model.id);
    }
    for provider in [Provider::Anthropic, Provider::OpenAi, Provider::Gemini] {
        assert!(models.iter().any(|model| model.provider == provider), "{} has models", provider.as_str());
    }
}

#[test]
fn anthropic_cache_prices_keep_the_documented_multipliers() {
    // pricing.md §1.1: a 5-minute write is 1.25x input, a 1-hour write 2x, a read 0.1x, for
    // model listed but Haiku 3, whose page prices are rounded (0.30 and 0.03 against 0.3125 and
    // 0.025). The catalog stores absolute prices; this only checks the typing.
    let catalog = builtin();
    let checked =
        catalog.models().filter(|model| model.provider == Provider::Anthropic && model.id != "claude-3-haiku-20240307");
    for model in checked {
        let input = u128::from(model.prices.input.0);
        assert_eq!(u128::from(model.prices.cache_write_5m.0) * 100, input * 125, "{}: 5m write", model.id);
        assert_eq!(u128::from(model.prices.cache_write_1h.0), input * 2, "{}: 1h write", model.id);
        assert_eq!(u128::from(model.prices.cache_read.0) * 10, input, "{}: read", model.id);
    }
}

#[test]
fn names_resolve_by_the_aliasing_rules() {
    let catalog = builtin();
    // (asked, priced as, or None for unpriced)
    let cases: &[(&str, Option<&str>)] = &[
        ("claude-sonnet-4-5", Some("claude-sonnet-4-5")),
        ("claude-sonnet-4-5-20250929", Some("claude-sonnet-4-5")),
        ("claude-sonnet-4-20250514", Some("claude-sonnet-4-0")),
        ("claude-opus-4-0", Some("claude-opus-4-0")),
        ("anthropic/claude-haiku-4-5", Some("claude-haiku-4-5")),
        ("claude-haiku-4-5-20260101", Some("claude-haiku-4-5")),
        ("gpt-4o", Some("gpt-4o")),
        ("gpt-4o-2024-11-20", Some("gpt-4o")),
        ("gpt-4o-2024-05-13", Some("gpt-4o-2024-05-13")),
        ("openai/gpt-4.1-mini", Some("gpt-4.1-mini")),
        ("gpt-5-mini-2026-01-15", Some("gpt-5-mini")),
        ("models/gemini-2.5-flash", Some("gemini-2.5-flash")),
        ("gemini-2.0-flash-001", Some("gemini-2.0-flash")),
        ("gemini-2.0-flash-002", Some("gemini-2.0-flash")),
        // Conservative: no neighbours, no other provider's suffix, no previews, no -latest.
        ("claude-sonnet-4-5-5", None),
        ("claude-sonnet-4-5-2025092", None),
        ("claude-sonnet-4-5-2025-09-29", None),
        ("gpt-4o-20241120", None),
        ("gpt-4o-001", None),
        ("claude-sonnet-5-5-20261001", None),
        ("gemini-2.5-flash-preview-05-20", None),
        ("gemini-2.5-flash-preview-001", None),
        ("gemini-2.0-flash-exp", None),
        ("gemini-flash-latest", None),
        ("claude-3-7-sonnet-latest", None),
        ("gpt-4o-mini-realtime", None),
        ("GPT-4O", None),
        ("", None),
        ("-20250929", None),
        ("bedrock/claude-sonnet-4-5", None),
    ];
    for (asked, priced_as) in cases {
        let expected = priced_as.map(|id| catalog.models().find(|model| model.id == *id).unwrap().prices);
        assert_eq!(catalog.prices(asked), expected, "{asked:?} is priced as {priced_as:?}");
    }
}

#[test]
fn profile_overrides_win_for_their_model_and_its_snapshots() {
    let custom = Prices {
        input: price("2"),
        output: price("10"),
        cache_write_5m: price("2.5"),
        cache_write_1h: price("4"),
        cache_read: price("0.2"),
    };
    let catalog = builtin().with_overrides([
        ("claude-sonnet-4-5".to_owned(), custom),
        ("models/my-finetune".to_owned(), custom),
        ("gpt-4o-2024-11-20".to_owned(), custom),
    ]);
    let gpt_4o = builtin().prices("gpt-4o");
    let cases: &[(&str, Option<Prices>)] = &[
        ("claude-sonnet-4-5", Some(custom)),
        ("claude-sonnet-4-5-20250929", Some(custom)),
        ("my-finetune", Some(custom)),
        ("my-finetune-20250101", None),
        ("gpt-4o-2024-11-20", Some(custom)),
        ("gpt-4o", gpt_4o),
        ("gpt-4o-2024-08-06", gpt_4o),
    ];
    for (asked, expected) in cases {
        assert_eq!(catalog.prices(asked), *expected, "{asked}");
    }
}

#[test]
fn a_malformed_catalog_is_refused_with_the_entry_named() {
    let entry = |extra: &str| {
        format!(
            "models:\n  - {{ id: m, provider: anthropic, input: \"1\", output: \"2\", source: https://x.example, as_of: \"2026-01-02\"{extra} }}\n"
        )
    };
    assert!(Catalog::from_yaml(&entry("")).is_ok(), "the base entry is valid");
    // An unquoted price still reaches the parser as its text, never through a float.
    let unquoted = Catalog::from_yaml(&entry(", cache_read: 0.075")).unwrap();
    assert_eq!(unquoted.prices("m").unwrap().cache_read, Price(75_000), "read from the text");
    let cases = [
        (entry(", cache_read: \"0.1234567\""), "m.cache_read: \"0.1234567\" has more than 6 decimals"),
        (entry(", colour: red"), "unknown field"),
        (entry("").replace("https://x.example", "http://x.example"), "source: expected an https URL"),
        (entry("").replace("2026-01-02", "2026-13-02"), "as_of: expected a date"),
        (entry("").replace("provider: anthropic", "provider: mistral"), "unknown variant"),
        (entry(", aliases: [m]"), "names m twice"),
        (entry("").replace("id: m", "id: models/m"), "bare provider model id"),
    ];
    for (yaml, message) in cases {
        let error = Catalog::from_yaml(&yaml).unwrap_err().to_string();
        assert!(error.contains(message), "{yaml}: {error}");
    }
}

#[test]
fn a_missing_cache_price_costs_the_input_price() {
    let model = builtin().prices("gpt-4o-2024-05-13").unwrap();
    assert_eq!(
        (model.cache_read, model.cache_write_5m, model.cache_write_1h),
        (model.input, model.input, model.input),
        "no cheaper than input"
    );
}

#[test]
fn costs_from_real_usage_and_the_catalog_are_exact() {
    let catalog = builtin();
    // (what, model, format, response body, microdollars): pricing.md §3's worked checks, plus a
    // 1-hour cache write.
    let cases = [
        (
            "Sonnet 4.5: 1,234 in, 50,000 read, 2,000 written for 5 minutes, 567 out",
            "claude-sonnet-4-5-20250929",
            WireFormat::Messages,
            json!({"usage":{"input_tokens":1234,"output_tokens":567,"cache_creation_input_tokens":2000,"cache_read_input_tokens":50000,
                            "cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":0}}}),
            34_707,
        ),
        (
            // 3 x 5 + 1,000 x 6.25 + 4,000 x 10 + 120,000 x 0.5 + 2,345 x 25 = 158,890 µ$.
            "Opus 4.6 with both cache TTLs",
            "claude-opus-4-6",
            WireFormat::Messages,
            json!({"usage":{"input_tokens":3,"output_tokens":2345,"cache_creation_input_tokens":5000,"cache_read_input_tokens":120000,
                            "cache_creation":{"ephemeral_5m_input_tokens":1000,"ephemeral_1h_input_tokens":4000}}}),
            15 + 6_250 + 40_000 + 60_000 + 58_625,
        ),
        (
            "gpt-4o-mini: 10,001 prompt of which 2,048 cached, 333 out (1,546.35 rounds down)",
            "gpt-4o-mini-2024-07-18",
            WireFormat::ChatCompletions,
            json!({"usage":{"prompt_tokens":10001,"completion_tokens":333,"prompt_tokens_details":{"cached_tokens":2048}}}),
            1_546,
        ),
        (
            "Gemini 2.5 Pro: 11,500 prompt of which 10,000 cached, 1,000 candidates, 10,000 thoughts",
            "models/gemini-2.5-pro",
            WireFormat::Gemini,
            json!({"usageMetadata":{"promptTokenCount":11500,"candidatesTokenCount":1000,"cachedContentTokenCount":10000,"thoughtsTokenCount":10000}}),
            113_125,
        ),
    ];
    for (what, model, format, body, microdollars) in cases {
        let usage: Usage = from_response(format, &body).unwrap();
        let prices = catalog.prices(model).unwrap();
        assert_eq!(cost_microdollars(&prices, &usage), microdollars, "{what}");
    }
}
