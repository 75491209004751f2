//! `castellan skills check DIR...`: the Agent Skills format, checked with one line per problem.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum SkillsCommand {
    /// Check skill folders (each with a SKILL.md): exit 0 if every one is valid, else 1 and one
    /// `FILE:LINE: problem` line per problem.
    Check {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

pub fn check(dirs: &[PathBuf]) -> ExitCode {
    let mut all_valid = true;
    for dir in dirs {
        match castellan_skills::check_dir(dir) {
            Ok(skill) => println!(
                "{}: ok ({}, {} files, {} bytes)",
                dir.display(),
                skill.manifest.name,
                skill.files.len(),
                skill.total_bytes()
            ),
            Err(problems) => {
                all_valid = false;
                for problem in problems {
                    println!("{problem}");
                }
            }
        }
    }
    if all_valid { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
