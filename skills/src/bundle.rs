//! A skill's content in memory, content-addressed: every file's bytes and SHA-256, and one digest
//! over them all that a signature signs and a sync client checks.
//!
//! # The digest
//!
//! Over the skill's files (`SKILL.md` included, the root [`SIGNATURE_FILE`] not), sorted by path in
//! byte order of the UTF-8 path, the digest is
//!
//! ```text
//! "sha256:" + hex(SHA-256( for each file: PATH "\0" SIZE "\0" SHA256 "\n" ))
//! ```
//!
//! where `PATH` is the file's `/`-separated path relative to the skill folder, `SIZE` its length in
//! bytes in decimal (no leading zeros, `0` for an empty file), `SHA256` the lowercase hex SHA-256 of
//! its bytes, and `hex` lowercase. A path holds no NUL and a hash is 64 hex digits, so the text
//! splits one way only. For example the two files `SKILL.md` (46 bytes,
//! `---\nname: notes\ndescription: Keeps notes.\n---\n`) and `scripts/run.sh` (18 bytes,
//! `#!/bin/sh\necho hi\n`) hash
//!
//! ```text
//! SKILL.md\046\07694bb787b165eae245f7da7c48c46c18ba62cf3033fbe559ad0c0f845671f3c\n
//! scripts/run.sh\018\0299001868fb8c02fd431c336c6d058f5558c5dff5b5af5e6fe04b870a6a9cbba\n
//! ```
//!
//! (`\0` a NUL byte, `\n` a newline, nothing else between) to
//! `sha256:ab4d01070bb6f112a6d288bca80685dd3d6b66d758d43700388e3ea871854681`.

mod load;
mod path;

use std::fmt;

use sha2::{Digest, Sha256};

use crate::Problem;
use crate::folder::{MAX_FILE_BYTES, MAX_FILES, MAX_TOTAL_BYTES};
use crate::manifest::{Manifest, check_name, parse_skill_md};
use crate::signature::{SIGNATURE_FILE, Signature};

pub use load::load_dir;
pub use path::MAX_PATH_BYTES;
use path::{check_path, printable};

/// One file of a skill with its bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct BundleFile {
    /// The `/`-separated path relative to the skill folder, checked as `from_files` checks it.
    pub path: String,
    /// The file's content.
    pub bytes: Vec<u8>,
    /// The lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
}

impl BundleFile {
    /// The file's length in bytes, as the digest counts it.
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

impl fmt::Debug for BundleFile {
    // The bytes can be megabytes: a debug line shows what identifies them instead.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BundleFile")
            .field("path", &self.path)
            .field("size", &self.size())
            .field("sha256", &self.sha256)
            .finish()
    }
}

/// A checked skill in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    /// Parsed from the `SKILL.md` among `files`.
    pub manifest: Manifest,
    /// Every file, `SKILL.md` included and the signature file excluded, sorted by path (byte order).
    pub files: Vec<BundleFile>,
    /// [`digest_of`] over `files`.
    pub digest: String,
    /// The signature that came with the skill, not yet verified (see [`crate::verify`]).
    pub signature: Option<Signature>,
}

impl Bundle {
    /// The bytes of all the files together.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(BundleFile::size).sum()
    }

    /// The file at `path`, if the skill has one.
    pub fn file(&self, path: &str) -> Option<&BundleFile> {
        let index = self.files.binary_search_by(|file| file.path.as_str().cmp(path)).ok()?;
        self.files.get(index)
    }
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest over files given as (path, size, lowercase hex SHA-256), in any order; see the module
/// doc for the definition.
pub fn digest_of<'a>(files: impl IntoIterator<Item = (&'a str, u64, &'a str)>) -> String {
    let mut files: Vec<(&str, u64, &str)> = files.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut hasher = Sha256::new();
    for (path, size, sha256) in files {
        hasher.update(path.as_bytes());
        hasher.update(b"\0");
        hasher.update(size.to_string().as_bytes());
        hasher.update(b"\0");
        hasher.update(sha256.as_bytes());
        hasher.update(b"\n");
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// A bundle received from elsewhere (an import folder, an archive, an upload) for the skill `name`.
/// Every path is checked: not empty, relative, `/`-separated, no empty, `.` or `..` segment, no
/// backslash, NUL or control character, inside at most 16 folders (as `check_dir` walks), no
/// duplicate, and not the signature file (a signature is passed separately, by setting
/// [`Bundle::signature`]). The count and size limits are those of `check_dir`, and `SKILL.md` must
/// parse with `name` as its folder's name. Problems name `NAME/PATH`.
pub fn from_files(name: &str, files: Vec<(String, Vec<u8>)>) -> Result<Bundle, Vec<Problem>> {
    let problem = |file: String, message: String| Problem { file, line: 0, message };
    if let Err(reason) = check_name(name) {
        return Err(vec![problem(printable(name), format!("is not a skill name: {reason}"))]);
    }
    if files.len() > MAX_FILES {
        return Err(vec![problem(
            name.to_string(),
            format!("holds {} files; a skill holds at most {MAX_FILES}", files.len()),
        )]);
    }
    let mut problems = Vec::new();
    let mut accepted = Vec::with_capacity(files.len());
    let mut total: u64 = 0;
    for (path, bytes) in files {
        let label = format!("{name}/{}", printable(&path));
        if let Err(reason) = check_path(&path) {
            problems.push(problem(label, reason));
        } else if path == SIGNATURE_FILE {
            problems.push(problem(label, "is the signature file; a signature is passed beside the files".into()));
        } else if bytes.len() as u64 > MAX_FILE_BYTES {
            problems.push(problem(label, too_big(bytes.len() as u64)));
        } else {
            total = total.saturating_add(bytes.len() as u64);
            accepted.push((path, bytes));
        }
    }
    if total > MAX_TOTAL_BYTES {
        problems.push(problem(
            name.to_string(),
            format!("holds {total} bytes; a skill holds at most {} MiB", MAX_TOTAL_BYTES >> 20),
        ));
    }
    accepted.sort_by(|a, b| a.0.cmp(&b.0));
    for pair in accepted.windows(2) {
        if let [first, second] = pair
            && first.0 == second.0
        {
            problems.push(problem(format!("{name}/{}", printable(&first.0)), "is given more than once".into()));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    assemble(name, name, accepted, None)
}

/// The message for a file over [`MAX_FILE_BYTES`], as `check_dir` words it.
fn too_big(size: u64) -> String {
    format!("is {size} bytes; a file of a skill is at most {} MiB", MAX_FILE_BYTES >> 20)
}

/// Builds the bundle from checked files sorted by path: parses `SKILL.md` from its bytes (so the
/// manifest is the one in the bundle) and hashes everything. `label` is what problems name the
/// skill folder; `folder_name` what the manifest's name must equal.
fn assemble(
    label: &str,
    folder_name: &str,
    files: Vec<(String, Vec<u8>)>,
    signature: Option<Signature>,
) -> Result<Bundle, Vec<Problem>> {
    let problem = |file: String, message: &str| vec![Problem { file, line: 0, message: message.to_string() }];
    let skill_md_label = format!("{label}/SKILL.md");
    let Some((_, skill_md)) = files.iter().find(|(path, _)| path == "SKILL.md") else {
        return Err(problem(label.to_string(), "has no SKILL.md"));
    };
    let Ok(text) = std::str::from_utf8(skill_md) else {
        return Err(problem(skill_md_label, "is not UTF-8 text"));
    };
    let manifest = parse_skill_md(text, &skill_md_label, Some(folder_name))?;
    let files: Vec<BundleFile> = files
        .into_iter()
        .map(|(path, bytes)| {
            let sha256 = sha256_hex(&bytes);
            BundleFile { path, bytes, sha256 }
        })
        .collect();
    let digest = digest_of(files.iter().map(|file| (file.path.as_str(), file.size(), file.sha256.as_str())));
    Ok(Bundle { manifest, files, digest, signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKILL_MD: &str = "---\nname: notes\ndescription: Keeps notes.\n---\n";

    fn files(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(path, text)| (path.to_string(), text.as_bytes().to_vec())).collect()
    }

    fn digest(pairs: &[(&str, &str)]) -> String {
        from_files("notes", files(pairs)).unwrap().digest
    }

    fn problems(pairs: Vec<(String, Vec<u8>)>) -> Vec<String> {
        from_files("notes", pairs).unwrap_err().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_digest_is_the_documented_example() {
        let bundle =
            from_files("notes", files(&[("scripts/run.sh", "#!/bin/sh\necho hi\n"), ("SKILL.md", SKILL_MD)])).unwrap();
        assert_eq!(bundle.digest, "sha256:ab4d01070bb6f112a6d288bca80685dd3d6b66d758d43700388e3ea871854681");
        assert_eq!(
            bundle.file("SKILL.md").map(|file| file.sha256.as_str()),
            Some("7694bb787b165eae245f7da7c48c46c18ba62cf3033fbe559ad0c0f845671f3c")
        );
        let paths: Vec<&str> = bundle.files.iter().map(|file| file.path.as_str()).collect();
        assert_eq!(paths, ["SKILL.md", "scripts/run.sh"], "sorted by path");
        assert_eq!(bundle.manifest.name, "notes");
        assert_eq!(bundle.total_bytes(), 46 + 18);
    }

    #[test]
    fn the_digest_does_not_depend_on_the_order_files_come_in() {
        let one = digest(&[("SKILL.md", SKILL_MD), ("a.md", "a"), ("b/c.md", "c")]);
        let other = digest(&[("b/c.md", "c"), ("SKILL.md", SKILL_MD), ("a.md", "a")]);
        assert_eq!(one, other);
        assert_eq!(one, digest(&[("SKILL.md", SKILL_MD), ("a.md", "a"), ("b/c.md", "c")]), "stable");
        let sha_a = sha256_hex(b"a");
        assert_eq!(
            digest_of([
                ("a.md", 1, sha_a.as_str()),
                ("SKILL.md", 46, "7694bb787b165eae245f7da7c48c46c18ba62cf3033fbe559ad0c0f845671f3c")
            ]),
            digest(&[("SKILL.md", SKILL_MD), ("a.md", "a")]),
            "digest_of sorts what it is given"
        );
    }

    #[test]
    fn any_change_to_the_content_changes_the_digest() {
        let base = digest(&[("SKILL.md", SKILL_MD), ("a.md", "alpha")]);
        let changes = [
            ("one byte changed", digest(&[("SKILL.md", SKILL_MD), ("a.md", "alphb")])),
            ("a file renamed", digest(&[("SKILL.md", SKILL_MD), ("b.md", "alpha")])),
            ("a file added", digest(&[("SKILL.md", SKILL_MD), ("a.md", "alpha"), ("c.md", "")])),
            ("a file removed", digest(&[("SKILL.md", SKILL_MD)])),
            ("a file moved", digest(&[("SKILL.md", SKILL_MD), ("x/a.md", "alpha")])),
        ];
        for (change, changed) in changes {
            assert_ne!(changed, base, "{change}");
        }
    }

    #[test]
    fn paths_that_could_escape_the_folder_are_refused_by_name() {
        for path in ["../x", "a/../../x", "/etc/passwd", "a\\b", "a//b", "./a", ""] {
            let mut pairs = files(&[("SKILL.md", SKILL_MD)]);
            pairs.push((path.to_string(), b"x".to_vec()));
            let found = problems(pairs);
            assert_eq!(found.len(), 1, "{path:?}: {found:?}");
            assert!(found[0].starts_with(&format!("notes/{path}: ")), "{path:?} is named: {found:?}");
        }
        let found = problems(files(&[("SKILL.md", SKILL_MD), ("a\nnotes/SKILL.md", "x")]));
        assert_eq!(found, ["notes/a\\nnotes/SKILL.md: holds a control character"], "a newline cannot forge a line");
    }

    #[test]
    fn duplicates_the_signature_file_and_a_missing_skill_md_are_refused() {
        assert_eq!(
            problems(files(&[("SKILL.md", SKILL_MD), ("a.md", "1"), ("a.md", "2")])),
            ["notes/a.md: is given more than once"]
        );
        assert_eq!(
            problems(files(&[("SKILL.md", SKILL_MD), (SIGNATURE_FILE, "{}")])),
            ["notes/.castellan-signature.json: is the signature file; a signature is passed beside the files"]
        );
        assert!(from_files("notes", files(&[("sub/.castellan-signature.json", "{}"), ("SKILL.md", SKILL_MD)])).is_ok());
        assert_eq!(problems(files(&[("README.md", "x")])), ["notes: has no SKILL.md"]);
        assert_eq!(problems(vec![("SKILL.md".into(), vec![0xff, 0xfe])]), ["notes/SKILL.md: is not UTF-8 text"]);
        assert_eq!(
            problems(files(&[("SKILL.md", "---\nname: other\ndescription: d\n---\n")])),
            ["notes/SKILL.md:2: name `other` must equal its folder's name `notes`"]
        );
        assert_eq!(
            from_files("../notes", files(&[("SKILL.md", SKILL_MD)])).unwrap_err()[0].to_string(),
            "../notes: is not a skill name: a skill name is lowercase letters, digits and `-`"
        );
    }

    #[test]
    fn the_count_and_size_limits_are_those_of_a_folder() {
        let mut big = files(&[("SKILL.md", SKILL_MD)]);
        big.push(("big.bin".into(), vec![0; MAX_FILE_BYTES as usize + 1]));
        assert_eq!(problems(big), ["notes/big.bin: is 10485761 bytes; a file of a skill is at most 10 MiB"]);

        let mut many = files(&[("SKILL.md", SKILL_MD)]);
        many.extend((0..MAX_FILES).map(|index| (format!("f{index}"), Vec::new())));
        assert_eq!(problems(many), ["notes: holds 1001 files; a skill holds at most 1000"]);

        let mut heavy = files(&[("SKILL.md", SKILL_MD)]);
        heavy.extend((0..5).map(|index| (format!("f{index}"), vec![0; MAX_FILE_BYTES as usize])));
        assert_eq!(problems(heavy), ["notes: holds 52428846 bytes; a skill holds at most 50 MiB"]);
    }
}
