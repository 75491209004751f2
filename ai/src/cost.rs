//! Cost in integer microdollars from a model's prices and a request's usage, with no floating
//! point anywhere: a price is read from its decimal text (dollars per million tokens) into
//! microdollars per million tokens, tokens times prices are summed exactly in `u128`, and the sum
//! is rounded once, half up, to whole microdollars.

/// The most decimal places a price may have: microdollars per million tokens are whole numbers.
const PRICE_DECIMALS: usize = 6;

/// One million: tokens per price unit, and microdollars per dollar.
const MILLION: u128 = 1_000_000;

/// A price in microdollars per million tokens (`$3/MTok` is `3_000_000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Price(pub u64);

impl Price {
    /// Reads a price written in dollars per million tokens (`"3"`, `"0.075"`, `"18.75"`): digits
    /// with at most six decimals, no sign, no exponent, at most a trillion dollars.
    pub fn parse_dollars_per_mtok(text: &str) -> Result<Price, String> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) || (text.contains('.') && fraction.is_empty()) {
            return Err(format!("{text:?} is not a price: write dollars per million tokens, e.g. 3 or 0.075"));
        }
        if fraction.len() > PRICE_DECIMALS {
            return Err(format!("{text:?} has more than {PRICE_DECIMALS} decimals"));
        }
        if whole.trim_start_matches('0').len() > 12 {
            return Err(format!("{text:?} is larger than any price"));
        }
        let whole: u64 = whole.parse().map_err(|_| format!("{text:?} is not a price"))?;
        let padded = format!("{fraction:0<PRICE_DECIMALS$}");
        let fraction: u64 = padded.parse().map_err(|_| format!("{text:?} is not a price"))?;
        Ok(Price(whole * 1_000_000 + fraction))
    }
}

/// The prices of one model. Cache writes and reads are priced apart from plain input (Anthropic
/// bills a 5-minute and a 1-hour cache write differently; others have one cached-input price).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    pub input: Price,
    pub output: Price,
    pub cache_write_5m: Price,
    pub cache_write_1h: Price,
    pub cache_read: Price,
}

/// The tokens of one request, each counted once: `input` excludes the cached and cache-written
/// tokens (a provider whose prompt count includes them is normalised before this), `output`
/// includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_read: u64,
}

/// The cost of `usage` at `prices`, in microdollars, rounded half up once.
pub fn cost_microdollars(prices: &Prices, usage: &Usage) -> u64 {
    let terms = [
        (usage.input, prices.input),
        (usage.output, prices.output),
        (usage.cache_write_5m, prices.cache_write_5m),
        (usage.cache_write_1h, prices.cache_write_1h),
        (usage.cache_read, prices.cache_read),
    ];
    // Tokens × microdollars per million tokens = millionths of a microdollar; five products of
    // two u64 fit a u128 many times over.
    let scaled: u128 = terms.iter().map(|(tokens, price)| u128::from(*tokens) * u128::from(price.0)).sum();
    u64::try_from((scaled + MILLION / 2) / MILLION).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use proptest::prelude::*;

    use super::*;

    fn price(text: &str) -> Price {
        Price::parse_dollars_per_mtok(text).unwrap()
    }

    fn sonnet() -> Prices {
        Prices {
            input: price("3"),
            output: price("15"),
            cache_write_5m: price("3.75"),
            cache_write_1h: price("6"),
            cache_read: price("0.30"),
        }
    }

    #[test]
    fn prices_are_read_exactly_from_their_decimal_text() {
        for (text, microdollars) in [
            ("3", 3_000_000),
            ("18.75", 18_750_000),
            ("0.075", 75_000),
            ("0.000001", 1),
            ("0", 0),
            ("007.5", 7_500_000),
        ] {
            assert_eq!(Price::parse_dollars_per_mtok(text), Ok(Price(microdollars)), "{text}");
        }
        for text in ["", ".5", "5.", "-1", "+1", "1e3", "1.0000001", "3 ", "1,5", "1.2.3", "9999999999999"] {
            assert!(Price::parse_dollars_per_mtok(text).is_err(), "{text:?} is refused");
        }
    }

    #[test]
    fn cost_counts_every_kind_of_token_at_its_own_price() {
        // 1,000 in at $3 and 500 out at $15: $0.003 + $0.0075.
        let plain = Usage { input: 1_000, output: 500, ..Usage::default() };
        assert_eq!(cost_microdollars(&sonnet(), &plain), 10_500);
        // 2,000 written to the 5-minute cache ($3.75), 1,000 to the 1-hour one ($6), 10,000 read ($0.30).
        let cached = Usage { cache_write_5m: 2_000, cache_write_1h: 1_000, cache_read: 10_000, ..plain };
        assert_eq!(cost_microdollars(&sonnet(), &cached), 10_500 + 7_500 + 6_000 + 3_000);
        assert_eq!(cost_microdollars(&sonnet(), &Usage::default()), 0, "no tokens, no cost");
    }

    #[test]
    fn the_sum_is_rounded_once_half_up() {
        let haiku = Prices { input: price("0.80"), output: price("4"), ..sonnet() };
        // One input token: 0.8 µ$ rounds to 1; rounding each term first would give other totals.
        assert_eq!(cost_microdollars(&haiku, &Usage { input: 1, ..Usage::default() }), 1);
        // 0.4 µ$ rounds down to 0.
        let cheap = Prices { input: price("0.4"), ..haiku };
        assert_eq!(cost_microdollars(&cheap, &Usage { input: 1, ..Usage::default() }), 0);
        // Three terms of 0.4 µ$ sum to 1.2 µ$: one microdollar, where per-term rounding gives 0.
        let thirds = Prices { input: price("0.4"), output: price("0.4"), cache_read: price("0.4"), ..haiku };
        assert_eq!(cost_microdollars(&thirds, &Usage { input: 1, output: 1, cache_read: 1, ..Usage::default() }), 1);
        // Exactly half: 0.5 µ$ rounds up.
        let half = Prices { input: price("0.5"), ..haiku };
        assert_eq!(cost_microdollars(&half, &Usage { input: 1, ..Usage::default() }), 1);
    }

    proptest! {
        /// Against a slow exact reference (whole millionths of a microdollar as a decimal string
        /// split by hand), for any tokens and prices a request could carry.
        #[test]
        fn cost_is_the_exact_sum_rounded_half_up(
            tokens in proptest::collection::vec(0u64..10_000_000_000, 5),
            micro in proptest::collection::vec(0u64..1_000_000_000_000, 5),
        ) {
            let prices = Prices {
                input: Price(micro[0]), output: Price(micro[1]), cache_write_5m: Price(micro[2]),
                cache_write_1h: Price(micro[3]), cache_read: Price(micro[4]),
            };
            let usage = Usage {
                input: tokens[0], output: tokens[1], cache_write_5m: tokens[2],
                cache_write_1h: tokens[3], cache_read: tokens[4],
            };
            let exact: u128 = tokens.iter().zip(&micro).map(|(t, p)| u128::from(*t) * u128::from(*p)).sum();
            let text = format!("{exact:07}");
            let (whole, fraction) = text.split_at(text.len() - 6);
            let rounded = whole.parse::<u128>().unwrap() + u128::from(fraction.as_bytes()[0] >= b'5');
            prop_assert_eq!(u128::from(cost_microdollars(&prices, &usage)), rounded.min(u128::from(u64::MAX)));
        }
    }
}
