//! `register_extension!` in a binary of its own: what the linker collected is what `discover` orders.

use castellan_extension::{Extension, Metadata, discover, register_extension};

struct Crm;

impl Extension for Crm {
    fn metadata(&self) -> Metadata {
        Metadata { id: "crm", name: "CRM", version: "2.1.0" }
    }
}

struct Tickets;

impl Extension for Tickets {
    fn metadata(&self) -> Metadata {
        Metadata { id: "tickets", name: "Tickets", version: "1.0.0" }
    }
    fn dependencies(&self) -> &'static [&'static str] {
        &["crm"]
    }
    // A lower priority than the dependency's: the dependency still starts first.
    fn priority(&self) -> i32 {
        1
    }
}

register_extension!(Tickets);
register_extension!(Crm);

#[test]
fn registered_extensions_are_discovered_in_dependency_order() {
    let ordered = discover().map_err(|error| error.to_string());
    assert_eq!(ordered.as_ref().map(|ordered| ordered.ids()), Ok(vec!["crm", "tickets"]));
    let versions: Vec<String> = ordered
        .map(|ordered| ordered.iter().map(|extension| extension.metadata().version.to_string()).collect())
        .unwrap_or_default();
    assert_eq!(versions, ["2.1.0", "1.0.0"]);
}
