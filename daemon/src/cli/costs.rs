//! `castellan costs`: spend from `ai_requests`, grouped by user, model, provider or UTC day.
//!
//! Money is stored and summed as integer microdollars and printed as USD with six decimals by
//! integer arithmetic, so what is shown is exactly what is stored. Requests whose model has no
//! price are counted as unpriced, never shown as $0. The JSON document and the `since` syntax are
//! shared with `GET /api/v1/costs`.

use std::process::ExitCode;

use castellan_schema::ai_requests::{CostGroup, CostsBy};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use serde_json::{Value, json};

use super::terminal::{escape, json_line, table};
use super::{GlobalArgs, load_profile};

/// The window `costs` reads when none is given.
pub(crate) const DEFAULT_SINCE: &str = "30d";

#[derive(Args, Debug)]
pub struct CostsArgs {
    /// What to group the spend by.
    #[arg(long, default_value = "user", value_parser = ["user", "model", "provider", "day"])]
    by: String,
    /// How far back to look: a duration (30d, 12h, 45m, 90s) or an RFC 3339 time.
    #[arg(long, default_value = DEFAULT_SINCE)]
    since: String,
    /// Only this user's requests.
    #[arg(long)]
    user: Option<String>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

pub async fn run(global: &GlobalArgs, args: CostsArgs) -> Result<ExitCode, String> {
    let by = CostsBy::parse(&args.by)
        .ok_or_else(|| format!("--by must be user, model, provider or day, not '{}'", args.by))?;
    let since = parse_since(&args.since, Utc::now()).map_err(|message| format!("--since: {message}"))?;
    let (profile, _) = load_profile(global)?;
    let db = super::database::open_existing(global, &profile).await?;
    let groups = castellan_schema::ai_requests::costs(&db, by, since, args.user.as_deref())
        .await
        .map_err(|error| error.to_string())?;
    if args.json {
        println!("{}", json_line(&costs_json(by, since, args.user.as_deref(), &groups)));
    } else if groups.is_empty() {
        println!("no AI requests since {}", rfc3339(since));
    } else {
        println!("spend by {} since {}", by.as_str(), rfc3339(since));
        print!("{}", costs_table(by, &groups));
    }
    Ok(ExitCode::SUCCESS)
}

/// The start of a window: `now` minus a duration (`30d`, `12h`, `45m`, `90s`), or an RFC 3339 time.
pub(crate) fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    const USE: &str = "use a duration (30d, 12h, 45m, 90s) or an RFC 3339 time (2026-12-01T00:00:00Z)";
    if let Some(lifetime) = super::admin::parse_lifetime(text) {
        return chrono::Duration::from_std(lifetime)
            .ok()
            .and_then(|duration| now.checked_sub_signed(duration))
            .ok_or_else(|| format!("the duration is too long; {USE}"));
    }
    DateTime::parse_from_rfc3339(text.trim())
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| format!("not a duration or a time; {USE}"))
}

/// Microdollars as USD with exactly six decimals (`1500000` is `1.500000`), by integer arithmetic.
pub(crate) fn format_usd(microdollars: i64) -> String {
    let sign = if microdollars < 0 { "-" } else { "" };
    let magnitude = microdollars.unsigned_abs();
    format!("{sign}{}.{:06}", magnitude / 1_000_000, magnitude % 1_000_000)
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The sum of every group; its key is empty.
fn total(groups: &[CostGroup]) -> CostGroup {
    let mut total = CostGroup {
        key: String::new(),
        requests: 0,
        input_tokens: 0,
        output_tokens: 0,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_microdollars: 0,
        unpriced_requests: 0,
    };
    for group in groups {
        total.requests = total.requests.saturating_add(group.requests);
        total.input_tokens = total.input_tokens.saturating_add(group.input_tokens);
        total.output_tokens = total.output_tokens.saturating_add(group.output_tokens);
        total.cache_read_tokens = total.cache_read_tokens.saturating_add(group.cache_read_tokens);
        total.cache_write_tokens = total.cache_write_tokens.saturating_add(group.cache_write_tokens);
        total.cost_microdollars = total.cost_microdollars.saturating_add(group.cost_microdollars);
        total.unpriced_requests = total.unpriced_requests.saturating_add(group.unpriced_requests);
    }
    total
}

fn group_json(group: &CostGroup) -> Value {
    json!({
        "key": group.key,
        "requests": group.requests,
        "input_tokens": group.input_tokens,
        "output_tokens": group.output_tokens,
        "cache_read_tokens": group.cache_read_tokens,
        "cache_write_tokens": group.cache_write_tokens,
        "cost_microdollars": group.cost_microdollars,
        "cost_usd": known_cost(group).map(format_usd),
        "unpriced_requests": group.unpriced_requests,
    })
}

/// The document of `costs --json` and `GET /api/v1/costs`: the grouping, the window, every group
/// and their total. `cost_microdollars` sums the priced requests only; `cost_usd` is the same, as an
/// exact string, or `null` when nothing in the group is priced.
pub(crate) fn costs_json(by: CostsBy, since: DateTime<Utc>, user: Option<&str>, groups: &[CostGroup]) -> Value {
    let mut total = group_json(&total(groups));
    if let Some(fields) = total.as_object_mut() {
        fields.remove("key");
    }
    json!({
        "by": by.as_str(),
        "since": rfc3339(since),
        "user": user,
        "groups": groups.iter().map(group_json).collect::<Vec<_>>(),
        "total": total,
    })
}

/// The known cost, or `None` when it is zero only because nothing in the group is priced: never
/// `$0` for requests whose price is unknown.
fn known_cost(group: &CostGroup) -> Option<i64> {
    (group.cost_microdollars != 0 || group.unpriced_requests == 0).then_some(group.cost_microdollars)
}

/// The cost cell: the known cost, or `-` ([`known_cost`]).
fn cost_cell(group: &CostGroup) -> String {
    known_cost(group).map_or_else(|| "-".to_string(), |cost| format!("${}", format_usd(cost)))
}

fn costs_table(by: CostsBy, groups: &[CostGroup]) -> String {
    let key_title = by.as_str().to_uppercase();
    let header =
        [key_title.as_str(), "REQUESTS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE", "COST (USD)", "UNPRICED"];
    let line = |key: String, group: &CostGroup| {
        vec![
            key,
            group.requests.to_string(),
            group.input_tokens.to_string(),
            group.output_tokens.to_string(),
            group.cache_read_tokens.to_string(),
            group.cache_write_tokens.to_string(),
            cost_cell(group),
            group.unpriced_requests.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = groups
        .iter()
        // Stored text a client chose (user and model names): escaped before a terminal sees it.
        .map(|group| line(if group.key.is_empty() { "-".to_string() } else { escape(&group.key) }, group))
        .collect();
    rows.push(line("total".to_string(), &total(groups)));
    table(&header, &rows)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn group(key: &str, cost: i64, unpriced: i64) -> CostGroup {
        CostGroup {
            key: key.into(),
            requests: 2,
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 1,
            cost_microdollars: cost,
            unpriced_requests: unpriced,
        }
    }

    #[test]
    fn the_command_line_parses_with_defaults() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["castellan", "costs"]).expect("defaults");
        let crate::cli::Command::Costs(args) = cli.command else { panic!("not the costs command") };
        assert_eq!((args.by.as_str(), args.since.as_str(), args.user, args.json), ("user", "30d", None, false));
        let cli = crate::cli::Cli::try_parse_from([
            "castellan",
            "costs",
            "--by",
            "day",
            "--since",
            "7d",
            "--user",
            "alice",
            "--json",
        ])
        .expect("every option");
        let crate::cli::Command::Costs(args) = cli.command else { panic!("not the costs command") };
        assert_eq!(
            (args.by.as_str(), args.since.as_str(), args.user.as_deref(), args.json),
            ("day", "7d", Some("alice"), true)
        );
        assert!(crate::cli::Cli::try_parse_from(["castellan", "costs", "--by", "week"]).is_err(), "--by is checked");
    }

    #[test]
    fn usd_is_exact_with_six_decimals() {
        let cases = [
            (0, "0.000000"),
            (1, "0.000001"),
            (1_500_000, "1.500000"),
            (123_456_789, "123.456789"),
            (-2_000_001, "-2.000001"),
            (i64::MAX, "9223372036854.775807"),
            (i64::MIN, "-9223372036854.775808"),
        ];
        for (microdollars, expected) in cases {
            assert_eq!(format_usd(microdollars), expected, "{microdollars} microdollars");
        }
    }

    #[test]
    fn since_takes_durations_and_rfc3339() {
        let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).single().expect("a valid instant");
        let cases = [
            ("30d", Some(Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).single())),
            ("12h", Some(Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).single())),
            ("2026-12-01T00:00:00Z", Some(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single())),
            ("2026-12-01T02:00:00+02:00", Some(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single())),
            ("", None),
            ("30", None),
            ("yesterday", None),
            ("0d", None),
            ("99999999999999d", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_since(text, now).ok(), expected.flatten(), "{text:?}");
        }
    }

    #[test]
    fn unpriced_requests_are_a_count_never_zero_dollars() {
        let groups = [group("alice", 1_500_000, 0), group("bob", 0, 2), group("\u{1b}[2Jcarol", 0, 0)];
        let text = costs_table(CostsBy::User, &groups);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER"), "{text}");
        assert!(lines[1].contains("$1.500000") && lines[1].ends_with('0'), "{text}");
        assert!(lines[2].contains(" - ") && !lines[2].contains('$') && lines[2].ends_with('2'), "bob: {text}");
        assert!(lines[3].contains("$0.000000") && lines[3].contains("\\x1b"), "priced at zero, escaped: {text}");
        assert!(lines[4].starts_with("total") && lines[4].contains("$1.500000") && lines[4].ends_with('2'), "{text}");

        let document = costs_json(CostsBy::User, Utc.timestamp_opt(0, 0).single().expect("epoch"), None, &groups);
        assert_eq!(document["groups"][0]["cost_usd"], "1.500000");
        assert_eq!(document["groups"][1]["unpriced_requests"], 2);
        assert_eq!(document["groups"][1]["cost_usd"], Value::Null, "no price known: not $0");
        assert_eq!(document["groups"][2]["cost_usd"], "0.000000", "priced at zero is $0");
        assert_eq!(document["total"]["cost_microdollars"], 1_500_000);
        assert_eq!(document["total"]["requests"], 6);
        assert_eq!(document["since"], "1970-01-01T00:00:00Z");
    }
}
