//! The daemon's process handling with real processes: the child supervisor and the command hook
//! runner (one test binary).

mod hook_command;
mod supervised_child;
mod support;
