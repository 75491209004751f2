//! The AI provider gateway (issue 11). So far only cost arithmetic: prices and usage to integer
//! microdollars, exactly (docs/ai-gateway-notes/pricing.md).

pub mod cost;
