//! Tier levels, ordering and names.

use castellan_config::{Effect, Tier};

#[test]
fn tiers_have_the_contract_levels_and_names() {
    let cases = [
        (Tier::Anonymous, 10, "anonymous"),
        (Tier::Mcp, 20, "mcp"),
        (Tier::A2a, 30, "a2a"),
        (Tier::Service, 40, "service"),
        (Tier::User, 50, "user"),
        (Tier::Admin, 100, "admin"),
    ];
    for (tier, level, name) in cases {
        assert_eq!(tier.level(), level, "level of {name}");
        assert_eq!(tier.as_str(), name, "as_str of {name}");
        assert_eq!(tier.to_string(), name, "Display of {name}");
        assert_eq!(Tier::parse(name), Some(tier), "parse {name}");
        assert_eq!(name.parse::<Tier>(), Ok(tier), "FromStr {name}");
        let yaml = serde_yaml_ng::to_string(&tier).unwrap();
        assert_eq!(yaml.trim(), name, "serde name of {name}");
        assert_eq!(serde_yaml_ng::from_str::<Tier>(name).unwrap(), tier, "serde parse of {name}");
    }
}

#[test]
fn tiers_order_by_level() {
    for pair in Tier::ALL.windows(2) {
        assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        assert!(pair[0].level() < pair[1].level(), "levels of {} and {}", pair[0], pair[1]);
    }
    assert!(Tier::Admin >= Tier::User, "admin satisfies user");
    assert!(Tier::User >= Tier::User, "a tier satisfies itself");
    assert!(Tier::Service < Tier::User, "service does not satisfy user");
    assert_eq!(Tier::ALL.iter().max(), Some(&Tier::Admin), "admin is the top");
    assert_eq!(Tier::ALL.iter().min(), Some(&Tier::Anonymous), "anonymous is the floor");
}

#[test]
fn tier_names_are_exact() {
    for name in ["Admin", "ADMIN", " admin", "admin ", "", "root", "users"] {
        assert_eq!(Tier::parse(name), None, "parse {name:?}");
        let error = name.parse::<Tier>().unwrap_err();
        assert!(error.to_string().contains("expected one of anonymous, mcp, a2a, service, user, admin"), "{error}");
    }
}

#[test]
fn effects_have_lowercase_names() {
    assert_eq!(Effect::Allow.to_string(), "allow", "allow");
    assert_eq!(Effect::Deny.as_str(), "deny", "deny");
    assert_eq!(serde_yaml_ng::from_str::<Effect>("deny").unwrap(), Effect::Deny, "serde deny");
}
