use super::*;
use crate::Metadata;

struct Fake {
    id: &'static str,
    name: &'static str,
    dependencies: &'static [&'static str],
    priority: i32,
}

impl Extension for Fake {
    fn metadata(&self) -> Metadata {
        Metadata { id: self.id, name: self.name, version: "1.0.0" }
    }
    fn dependencies(&self) -> &'static [&'static str] {
        self.dependencies
    }
    fn priority(&self) -> i32 {
        self.priority
    }
}

fn fake(id: &'static str, dependencies: &'static [&'static str], priority: i32) -> Box<dyn Extension> {
    Box::new(Fake { id, name: id, dependencies, priority })
}

/// A case's name, the extensions, and the start order or cycle expected.
type Case = (&'static str, Vec<Box<dyn Extension>>, Vec<&'static str>);

fn ids(extensions: Vec<Box<dyn Extension>>) -> Result<Vec<&'static str>, RegistryError> {
    order(extensions).map(|ordered| ordered.ids())
}

#[test]
fn dependencies_start_first_whatever_their_priority() {
    let cases: Vec<Case> = vec![
        ("none", vec![], vec![]),
        ("id order at equal priority", vec![fake("b", &[], 100), fake("a", &[], 100)], vec!["a", "b"]),
        ("lower priority first", vec![fake("a", &[], 100), fake("b", &[], 10)], vec!["b", "a"]),
        ("a dependency before a lower priority", vec![fake("a", &[], 100), fake("b", &["a"], 1)], vec!["a", "b"]),
        (
            "a diamond",
            vec![
                fake("top", &["left", "right"], 0),
                fake("left", &["base"], 50),
                fake("right", &["base"], 40),
                fake("base", &[], 100),
            ],
            vec!["base", "right", "left", "top"],
        ),
        ("a dependency named twice", vec![fake("b", &["a", "a"], 100), fake("a", &[], 100)], vec!["a", "b"]),
    ];
    for (name, extensions, expected) in cases {
        assert_eq!(ids(extensions), Ok(expected), "{name}");
    }
}

#[test]
fn a_missing_dependency_names_both_extensions() {
    let error = ids(vec![fake("tickets", &["crm"], 100)]).err();
    assert_eq!(
        error,
        Some(RegistryError::MissingDependency { extension: "tickets".to_string(), missing: "crm".to_string() })
    );
    let message = error.map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("\"tickets\"") && message.contains("\"crm\""), "{message}");
}

#[test]
fn a_cycle_is_refused_and_spelled_out() {
    let cases: Vec<Case> = vec![
        ("self", vec![fake("a", &["a"], 100)], vec!["a", "a"]),
        ("two", vec![fake("a", &["b"], 100), fake("b", &["a"], 100)], vec!["a", "b", "a"]),
        (
            "three, behind a healthy one",
            vec![
                fake("ok", &[], 100),
                fake("x", &["y"], 100),
                fake("y", &["z"], 100),
                fake("z", &["x"], 100),
                fake("w", &["x"], 1),
            ],
            vec!["x", "y", "z", "x"],
        ),
    ];
    for (name, extensions, cycle) in cases {
        let expected = RegistryError::DependencyCycle { cycle: cycle.iter().map(|id| id.to_string()).collect() };
        assert_eq!(ids(extensions), Err(expected), "{name}");
    }
}

#[test]
fn duplicate_and_invalid_ids_are_refused() {
    let duplicate = vec![
        Box::new(Fake { id: "tickets", name: "Zendesk tickets", dependencies: &[], priority: 1 }) as Box<dyn Extension>,
        Box::new(Fake { id: "tickets", name: "Jira tickets", dependencies: &[], priority: 2 }),
    ];
    assert_eq!(
        ids(duplicate),
        Err(RegistryError::DuplicateId {
            id: "tickets".to_string(),
            first: "Jira tickets".to_string(),
            second: "Zendesk tickets".to_string()
        })
    );
    let long: &'static str = Box::leak("a".repeat(65).into_boxed_str());
    for id in ["", "Tickets", "tick/ets", "-tickets", "tickets-", "tick ets", "../x", long] {
        let result = ids(vec![fake(id, &[], 100)]);
        assert!(matches!(result, Err(RegistryError::InvalidId { .. })), "{id:?} was accepted: {:?}", result.err());
    }
    assert_eq!(ids(vec![fake("tickets-2", &[], 100)]), Ok(vec!["tickets-2"]));
}
