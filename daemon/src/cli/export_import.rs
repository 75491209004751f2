//! `castellan export [--out DIR]` and `castellan import DIR [--dry-run]`: policy, users and skills
//! as Markdown files with YAML frontmatter (see `crate::policy_files` and docs/export.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{GlobalArgs, apply_environment, load_profile};
use crate::app::ProfileSource;
use crate::policy_files::{FileProblem, export, import};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The folder to write: created if missing; an earlier export there is replaced (anything else
    /// in it, such as `.git`, is left alone).
    #[arg(long, value_name = "DIR", default_value = "castellan-export")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A folder `castellan export` wrote.
    pub dir: PathBuf,
    /// Print the changes and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run_export(global: &GlobalArgs, args: ExportArgs) -> Result<ExitCode, String> {
    let (profile, source) = load_profile(global)?;
    let (text, label) = match &source {
        ProfileSource::File(path) => (
            std::fs::read_to_string(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?,
            path.display().to_string(),
        ),
        ProfileSource::Embedded => {
            (castellan_config::DEFAULT_PROFILE_YAML.to_string(), "(embedded default profile)".to_string())
        }
    };
    let db = super::database::open_existing(global, &profile).await?;
    let users = castellan_schema::users::list(&db).await.map_err(|error| error.to_string())?;
    let skills = export::read_skills(&db).await?;
    let tree = export::build(&text, &label, &users, &skills)?;
    export::write(&args.out, &tree)?;
    for warning in &tree.warnings {
        eprintln!("warning: {warning}");
    }
    println!(
        "exported {} policy sections, {} users and {} skills to {}",
        tree.sections,
        tree.users,
        tree.skills,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn run_import(global: &GlobalArgs, args: ImportArgs) -> Result<ExitCode, String> {
    let prepared = match import::prepare(&args.dir, global.profile.as_deref()) {
        Ok(prepared) => prepared,
        Err(problems) => return Ok(refuse(&problems)),
    };
    let mut profile = prepared.merged.profile.clone();
    apply_environment(&mut profile);
    let db = super::database::open_existing(global, &profile).await?;
    let changes = match import::plan(&db, &prepared).await? {
        Ok(changes) => changes,
        Err(problems) => return Ok(refuse(&problems)),
    };
    for change in &changes {
        println!("{change}");
    }
    if args.dry_run {
        println!("{} changes; dry run: nothing was changed", changes.len());
        return Ok(ExitCode::SUCCESS);
    }
    import::apply(&db, &prepared).await?;
    println!("{} changes applied", changes.len());
    Ok(ExitCode::SUCCESS)
}

/// Prints every problem and says nothing was changed: exit 1.
fn refuse(problems: &[FileProblem]) -> ExitCode {
    for problem in problems {
        println!("{problem}");
    }
    eprintln!("castellan: import: {} problems; nothing was changed", problems.len());
    ExitCode::FAILURE
}
