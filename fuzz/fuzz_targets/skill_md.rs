//! `castellan_skills::parse_skill_md` on any text, with or without a folder name.
//!
//! Checked, besides never panicking: an accepted manifest has a valid name (equal to the folder when
//! one is given) and a description of 1 to 1,024 characters; every refusal names at least one
//! problem, each on a line of the text (or the file as a whole).
#![no_main]

use arbitrary::Arbitrary;
use castellan_skills::{MAX_DESCRIPTION_LEN, check_name, parse_skill_md};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    text: &'a str,
    folder: Option<&'a str>,
}

fuzz_target!(|input: Input| {
    match parse_skill_md(input.text, "SKILL.md", input.folder) {
        Ok(manifest) => {
            assert!(check_name(&manifest.name).is_ok(), "{manifest:?}");
            if let Some(folder) = input.folder {
                assert_eq!(manifest.name, folder);
            }
            let length = manifest.description.chars().count();
            assert!(length >= 1 && length <= MAX_DESCRIPTION_LEN, "{manifest:?}");
        }
        Err(problems) => {
            assert!(!problems.is_empty());
            // YAML's line breaks: CR LF, a lone CR and LF (a lone CR starts a line, as in editors).
            let lines = input.text.replace("\r\n", "\n").split(['\r', '\n']).count().max(1) + 1;
            assert!(problems.iter().all(|problem| problem.line <= lines), "{problems:?}");
        }
    }
});
