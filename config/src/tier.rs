//! Permission tiers: the fixed ladder every principal stands on, ordered by level.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A principal's permission tier. A principal satisfies a required tier when its level is greater than
/// or equal to the required level, so comparisons (`>=`) are by level, never by declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// No credential; the floor (level 10).
    Anonymous,
    /// MCP servers calling back (level 20).
    Mcp,
    /// Agents calling through the agent-to-agent surface (level 30).
    A2a,
    /// Machine clients: client credentials, API keys of services (level 40).
    Service,
    /// People (level 50).
    User,
    /// Operators; implies every lower tier (level 100).
    Admin,
}

impl Tier {
    /// Every tier, lowest level first.
    pub const ALL: [Tier; 6] = [Tier::Anonymous, Tier::Mcp, Tier::A2a, Tier::Service, Tier::User, Tier::Admin];

    /// The numeric level from the contract; gaps leave room for tiers added later.
    pub fn level(self) -> u8 {
        match self {
            Tier::Anonymous => 10,
            Tier::Mcp => 20,
            Tier::A2a => 30,
            Tier::Service => 40,
            Tier::User => 50,
            Tier::Admin => 100,
        }
    }

    /// The lowercase name used in profiles, scopes and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Anonymous => "anonymous",
            Tier::Mcp => "mcp",
            Tier::A2a => "a2a",
            Tier::Service => "service",
            Tier::User => "user",
            Tier::Admin => "admin",
        }
    }

    /// Parses an exact lowercase tier name; anything else (including `Admin`) is `None`, because a
    /// tier is a security boundary and we do not guess.
    pub fn parse(name: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|tier| tier.as_str() == name)
    }
}

impl PartialOrd for Tier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tier {
    fn cmp(&self, other: &Self) -> Ordering {
        self.level().cmp(&other.level())
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a name that is not a tier; it lists the valid names so the message is actionable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier `{0}`; expected one of anonymous, mcp, a2a, service, user, admin")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Tier::parse(name).ok_or_else(|| UnknownTier(name.to_string()))
    }
}
