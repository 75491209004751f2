//! A Castellan binary with one extension, `tickets`, that depends on `crm`, which is not built in:
//! `serve` must refuse to start, naming both, before it binds or creates anything.

use castellan::extension::{Extension, Metadata, register_extension};

struct Tickets;

impl Extension for Tickets {
    fn metadata(&self) -> Metadata {
        Metadata { id: "tickets", name: "Tickets", version: "1.0.0" }
    }
    fn dependencies(&self) -> &'static [&'static str] {
        &["crm"]
    }
}

register_extension!(Tickets);

fn main() -> std::process::ExitCode {
    castellan::run()
}
