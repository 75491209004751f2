//! Loading a skill folder into a [`Bundle`]: `check_dir`, then every file's bytes read with a bound,
//! so a file that grows or is swapped after the walk cannot make the read unbounded or leave the
//! folder.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

use super::{Bundle, assemble, check_path, printable};
use crate::Problem;
use crate::folder::{MAX_FILE_BYTES, MAX_TOTAL_BYTES, check_dir};
use crate::signature::{MAX_SIGNATURE_FILE_BYTES, SIGNATURE_FILE, Signature};

/// Loads the skill folder `dir`: everything `check_dir` checks, then each file read, refused if it
/// changed size or kind since the walk. The root [`SIGNATURE_FILE`], if any, is read into
/// [`Bundle::signature`] (not verified) and is not one of the files. Problems name the file.
pub fn load_dir(dir: &Path) -> Result<Bundle, Vec<Problem>> {
    let skill = check_dir(dir)?;
    let label = dir.display().to_string();
    let mut problems = Vec::new();
    let mut files = Vec::with_capacity(skill.files.len());
    let mut total: u64 = 0;
    for file in &skill.files {
        let problem =
            |message: String| Problem { file: format!("{label}/{}", printable(&file.path)), line: 0, message };
        // The walk allows any name but `.`, `..` and ones with `\` or NUL; a bundle's paths are
        // the same wherever the bundle came from.
        if let Err(reason) = check_path(&file.path) {
            problems.push(problem(reason));
            continue;
        }
        let remaining = MAX_TOTAL_BYTES.saturating_sub(total);
        let bytes = match read_bounded(&dir.join(&file.path), MAX_FILE_BYTES.min(remaining)) {
            Ok(bytes) => bytes,
            Err(message) => {
                problems.push(problem(message));
                continue;
            }
        };
        let read = bytes.len() as u64;
        if read > MAX_FILE_BYTES {
            problems.push(problem(format!(
                "grew since it was checked past the limit: a file of a skill is at most {} MiB",
                MAX_FILE_BYTES >> 20
            )));
        } else if read > remaining {
            problems.push(problem(format!(
                "grew since it was checked and takes the skill past {} MiB in all",
                MAX_TOTAL_BYTES >> 20
            )));
            // Nothing more fits: the rest is not read.
            break;
        } else if read != file.size {
            problems.push(problem(format!("changed size since it was checked ({} bytes, now {read})", file.size)));
        } else {
            total += read;
            files.push((file.path.clone(), bytes));
        }
    }
    let signature = match read_signature(dir, &label) {
        Ok(signature) => signature,
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    assemble(&label, &skill.manifest.name, files, signature)
}

/// The root signature file, if there is one.
fn read_signature(dir: &Path, label: &str) -> Result<Option<Signature>, Problem> {
    let path = dir.join(SIGNATURE_FILE);
    let problem = |line: usize, message: String| Problem { file: format!("{label}/{SIGNATURE_FILE}"), line, message };
    match std::fs::symlink_metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(problem(0, format!("cannot be read: {error}"))),
        Ok(metadata) if !metadata.is_file() => {
            return Err(problem(0, "is not a regular file (a symlink is not followed)".into()));
        }
        Ok(_) => {}
    }
    let bytes = read_bounded(&path, MAX_SIGNATURE_FILE_BYTES).map_err(|message| problem(0, message))?;
    if bytes.len() as u64 > MAX_SIGNATURE_FILE_BYTES {
        return Err(problem(0, format!("is larger than {MAX_SIGNATURE_FILE_BYTES} bytes; it is not a signature")));
    }
    serde_json::from_slice::<Signature>(&bytes).map(Some).map_err(|error| {
        // serde_json's own message can repeat the file's text; the category and place suffice.
        let message = match error.classify() {
            serde_json::error::Category::Data => {
                "is not a signature: it holds {\"key\": \"ed25519:BASE64\", \"signature\": \"BASE64\"} and nothing else"
            }
            _ => "is not valid JSON",
        };
        problem(error.line(), message.to_string())
    })
}

/// Reads at most `limit + 1` bytes of the regular file at `path` (one more than allowed, so the
/// caller can tell a file that grew), refusing one that was swapped for a link or another kind of
/// file after the walk.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|error| format!("cannot be read: {error}"))?;
    let opened = file.metadata().map_err(|error| format!("cannot be read: {error}"))?;
    let on_disk = std::fs::symlink_metadata(path).map_err(|error| format!("cannot be read: {error}"))?;
    if !opened.is_file() || !same_file(&opened, &on_disk) {
        return Err("was replaced since it was checked; a skill holds only regular files".into());
    }
    let capacity = usize::try_from(opened.len().min(limit)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(|error| format!("cannot be read: {error}"))?;
    Ok(bytes)
}

/// Whether the opened file is the one now at its path: a symlink put there after the walk is
/// opened through, so its target differs from the link itself.
#[cfg(unix)]
fn same_file(opened: &Metadata, on_disk: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    opened.dev() == on_disk.dev() && opened.ino() == on_disk.ino()
}

#[cfg(not(unix))]
fn same_file(_opened: &Metadata, on_disk: &Metadata) -> bool {
    on_disk.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::sha256_hex;
    use crate::signature::{sign, write_signature};
    use crate::test_folder::TestFolder;

    const SKILL_MD: &str = "---\nname: release-notes\ndescription: Write release notes from the changelog.\n---\n";

    fn release_notes() -> TestFolder {
        let folder = TestFolder::new("release-notes");
        folder.write("SKILL.md", SKILL_MD);
        folder.write("scripts/collect.sh", "#!/bin/sh\ngit log --oneline\n");
        folder.write("references/style.md", "# Style\n");
        folder.write("assets/logo.bin", [0_u8, 159, 146, 150, 255]);
        folder
    }

    #[test]
    fn a_folder_loads_whole_with_every_file_hashed() {
        let folder = release_notes();
        let bundle = load_dir(folder.path()).unwrap();
        let listed: Vec<(&str, u64)> = bundle.files.iter().map(|file| (file.path.as_str(), file.size())).collect();
        assert_eq!(
            listed,
            [
                ("SKILL.md", SKILL_MD.len() as u64),
                ("assets/logo.bin", 5),
                ("references/style.md", 8),
                ("scripts/collect.sh", 28)
            ]
        );
        for file in &bundle.files {
            let on_disk = std::fs::read(folder.path().join(&file.path)).unwrap();
            assert_eq!(file.bytes, on_disk, "{}", file.path);
            assert_eq!(file.sha256, sha256_hex(&on_disk), "{}", file.path);
        }
        assert_eq!(
            bundle.file("scripts/collect.sh").map(|file| file.sha256.as_str()),
            Some("f73729f013811584a8316a8141b4a8c243a3bc998acd33377f5032f85f978ff4"),
            "the hash sha256sum gives"
        );
        assert_eq!(bundle.manifest.name, "release-notes");
        assert_eq!(bundle.signature, None);
    }

    #[test]
    fn the_same_content_loaded_or_received_has_the_same_digest() {
        let folder = release_notes();
        let loaded = load_dir(folder.path()).unwrap();
        let received = super::super::from_files(
            "release-notes",
            loaded.files.iter().map(|file| (file.path.clone(), file.bytes.clone())).collect(),
        )
        .unwrap();
        assert_eq!(received.digest, loaded.digest);
    }

    #[test]
    fn the_signature_file_is_read_beside_the_content_and_not_hashed() {
        let folder = release_notes();
        let unsigned = load_dir(folder.path()).unwrap();
        let signature = sign("release-notes", &unsigned.digest, &ed25519_dalek::SigningKey::from_bytes(&[1; 32]));
        write_signature(folder.path(), &signature).unwrap();
        let signed = load_dir(folder.path()).unwrap();
        assert_eq!(signed.digest, unsigned.digest, "the signature file is not content");
        assert_eq!(signed.files, unsigned.files);
        assert_eq!(signed.signature, Some(signature));
        assert!(signed.file(SIGNATURE_FILE).is_none());
    }

    #[test]
    fn a_bad_signature_file_is_named() {
        let label = |folder: &TestFolder| format!("{}/{SIGNATURE_FILE}", folder.path().display());
        let cases = [
            ("{\"key\": ", ":1: is not valid JSON"),
            (
                "{\n\"key\": \"ed25519:x\", \"signature\": \"y\", \"extra\": 1}",
                ":2: is not a signature: it holds {\"key\": \"ed25519:BASE64\", \"signature\": \"BASE64\"} and nothing else",
            ),
        ];
        for (text, expected) in cases {
            let folder = release_notes();
            folder.write(SIGNATURE_FILE, text);
            let problems: Vec<String> = load_dir(folder.path()).unwrap_err().iter().map(ToString::to_string).collect();
            assert_eq!(problems, [format!("{}{expected}", label(&folder))], "{text}");
        }
        let folder = release_notes();
        folder.write(SIGNATURE_FILE, " ".repeat(MAX_SIGNATURE_FILE_BYTES as usize + 1));
        let problems: Vec<String> = load_dir(folder.path()).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems, [format!("{}: is larger than 4096 bytes; it is not a signature", label(&folder))]);
    }

    #[test]
    fn a_file_over_the_limit_is_refused_by_name_without_being_read() {
        let folder = release_notes();
        let big = std::fs::File::create(folder.path().join("assets/big.bin")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let problems: Vec<String> = load_dir(folder.path()).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(
            problems,
            [format!(
                "{}/assets/big.bin: is 10485761 bytes; a file of a skill is at most 10 MiB",
                folder.path().display()
            )]
        );
    }

    #[test]
    fn a_file_that_changed_or_grew_after_the_walk_is_refused() {
        let folder = release_notes();
        let path = folder.path().join("references/style.md");
        assert!(read_bounded(&path, 3).unwrap().len() == 4, "one byte past the limit, no more");
        std::os::unix::fs::symlink("/etc/passwd", folder.path().join("link")).unwrap();
        assert_eq!(
            read_bounded(&folder.path().join("link"), 100),
            Err("was replaced since it was checked; a skill holds only regular files".into())
        );
    }
}
