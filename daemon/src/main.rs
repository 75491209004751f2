//! The `castellan` binary: everything lives in the library so tests and integrators can reuse it.

fn main() -> std::process::ExitCode {
    castellan::run()
}
