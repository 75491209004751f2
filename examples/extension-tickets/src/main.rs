//! Castellan with the tickets extension built in. Linking the crate is what registers it.

use castellan_tickets as _;

fn main() -> std::process::ExitCode {
    castellan::run()
}
