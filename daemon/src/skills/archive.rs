//! A skill version as a tar.gz archive: one folder named after the skill holding its files, each
//! a regular file of mode 0644 dated at the publish time, in path order, so one version always
//! gives the same bytes. Reading an archive back ([`read`]) accepts only what such an archive
//! holds: regular files and folders under the one top folder, relative paths without `..`, within
//! the skill limits; everything else is refused before anything is written.

use std::io::Read;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Writes `files` (path, bytes) of skill `name` as a tar.gz.
pub fn write(name: &str, files: &[(String, Vec<u8>)], mtime: u64) -> Result<Vec<u8>, String> {
    let encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    builder.mode(tar::HeaderMode::Deterministic);
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, format!("{name}/{path}"), bytes.as_slice())
            .map_err(|error| format!("archiving {path}: {error}"))?;
    }
    let encoder = builder.into_inner().map_err(|error| format!("archiving: {error}"))?;
    encoder.finish().map_err(|error| format!("archiving: {error}"))
}

/// The files of skill `name` in `archive`, refused whole on anything an archive of [`write`]
/// would not hold. Sizes are bounded while reading, so a small archive cannot inflate without
/// limit.
pub fn read(name: &str, archive: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut entries = tar::Archive::new(GzDecoder::new(archive));
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let prefix = format!("{name}/");
    for entry in entries.entries().map_err(|error| format!("not a tar.gz archive: {error}"))? {
        let mut entry = entry.map_err(|error| format!("a broken archive entry: {error}"))?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8(raw).map_err(|_| "an archive path is not UTF-8".to_string())?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(format!("{path}: the archive holds something other than a regular file"));
        }
        let Some(relative) = path.strip_prefix(&prefix) else {
            return Err(format!("{path}: outside the skill's folder {name}/"));
        };
        let size = entry.header().size().map_err(|error| format!("{path}: {error}"))?;
        if size > castellan_skills::MAX_FILE_BYTES {
            return Err(format!(
                "{path}: {size} bytes; a file of a skill is at most {} MiB",
                castellan_skills::MAX_FILE_BYTES >> 20
            ));
        }
        total = total.saturating_add(size);
        if total > castellan_skills::MAX_TOTAL_BYTES || files.len() >= castellan_skills::MAX_FILES {
            return Err("the archive holds more than a skill may".to_string());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .by_ref()
            .take(castellan_skills::MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| format!("{path}: {error}"))?;
        if bytes.len() as u64 != size {
            return Err(format!("{path}: the entry's size does not match its header"));
        }
        files.push((relative.to_string(), bytes));
    }
    // The paths themselves (no `..`, no absolute or empty segments, no duplicates) are checked
    // by the bundle, which the caller builds from these.
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, Vec<u8>)> {
        vec![("SKILL.md".into(), b"---\nname: pdf\n---\n".to_vec()), ("scripts/run.py".into(), b"print(1)\n".to_vec())]
    }

    #[test]
    fn an_archive_reads_back_to_its_files_and_is_the_same_bytes_each_time() {
        let first = write("pdf", &files(), 1_700_000_000).unwrap();
        assert_eq!(first, write("pdf", &files(), 1_700_000_000).unwrap(), "deterministic");
        assert_eq!(read("pdf", &first).unwrap(), files());
    }

    #[test]
    fn entries_outside_the_folder_links_and_garbage_are_refused() {
        let other = write("other", &files(), 0).unwrap();
        assert!(read("pdf", &other).unwrap_err().contains("outside the skill's folder"));
        assert!(read("pdf", b"not gzip").is_err());
        // A symlink entry.
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "pdf/SKILL.md", "/etc/passwd").unwrap();
        let linked = builder.into_inner().unwrap().finish().unwrap();
        assert!(read("pdf", &linked).unwrap_err().contains("other than a regular file"));
    }

    /// A tar whose entry names are written raw (as a hostile archive would), past the checks
    /// `tar::Builder` makes on the way in.
    fn raw_archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        for (name, content) in entries {
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_size(content.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            header.set_cksum();
            builder.append(&header, *content).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn a_zip_slip_path_is_refused_before_anything_is_written() {
        let skill_md: &[u8] = b"---\nname: pdf\ndescription: d\n---\nBody\n";
        let fine = raw_archive(&[("pdf/SKILL.md", skill_md), ("pdf/scripts/run.sh", b"echo")]);
        assert!(castellan_skills::from_files("pdf", read("pdf", &fine).unwrap()).is_ok(), "the control case passes");
        for name in ["pdf/../evil.sh", "pdf/scripts/../../../etc/cron.d/x", "/etc/passwd", "pdf//x", "pdf/./x"] {
            let archive = raw_archive(&[("pdf/SKILL.md", skill_md), (name, b"evil")]);
            let refused = read("pdf", &archive).and_then(|files| {
                castellan_skills::from_files("pdf", files).map(|_| ()).map_err(|problems| format!("{problems:?}"))
            });
            assert!(refused.is_err(), "{name} must be refused");
        }
    }
}
