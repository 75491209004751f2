//! A minimal zip writer for the Claude Code marketplace's `archive` plugin sources: entries
//! stored (no compression: skills are small text, and stored entries keep the writer to a few
//! lines), CRC-32 from `crc32fast`, a fixed date, so one version always gives the same bytes.

/// 1980-01-01 00:00 in MS-DOS time and date, the earliest a zip can say.
const DOS_TIME: u16 = 0;
const DOS_DATE: u16 = (1 << 5) | 1;

/// Writes `files` (path, bytes) as a zip. Paths must be relative and `/`-separated (the
/// caller's are checked skill paths). Fails past the zip32 limits.
pub fn write(files: &[(String, Vec<u8>)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (path, bytes) in files {
        let offset = u32::try_from(out.len()).map_err(|_| "the archive is over 4 GiB".to_string())?;
        let size = u32::try_from(bytes.len()).map_err(|_| format!("{path} is over 4 GiB"))?;
        let name_len = u16::try_from(path.len()).map_err(|_| format!("{path}: the name is too long"))?;
        let crc = crc32fast::hash(bytes);
        // Local file header.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0x0800u16.to_le_bytes()); // flags: UTF-8 names
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&DOS_TIME.to_le_bytes());
        out.extend_from_slice(&DOS_DATE.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(bytes);
        // Its central directory entry.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&0x0314u16.to_le_bytes()); // made by: Unix, 2.0
        central.extend_from_slice(&20u16.to_le_bytes());
        central.extend_from_slice(&0x0800u16.to_le_bytes());
        central.extend_from_slice(&0u16.to_le_bytes());
        central.extend_from_slice(&DOS_TIME.to_le_bytes());
        central.extend_from_slice(&DOS_DATE.to_le_bytes());
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 8]); // extra, comment, disk number, internal attributes
        central.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes()); // a regular file, 0644
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(path.as_bytes());
    }
    let entries = u16::try_from(files.len()).map_err(|_| "too many files for a zip".to_string())?;
    let central_offset = u32::try_from(out.len()).map_err(|_| "the archive is over 4 GiB".to_string())?;
    let central_size = u32::try_from(central.len()).map_err(|_| "the archive is over 4 GiB".to_string())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&entries.to_le_bytes());
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zip_has_its_entries_headers_and_the_end_record_where_readers_look() {
        let files = vec![("a/SKILL.md".to_string(), b"hello".to_vec()), ("b.txt".to_string(), Vec::new())];
        let zip = write(&files).unwrap();
        assert_eq!(&zip[..4], b"PK\x03\x04");
        let end = zip.len() - 22;
        assert_eq!(&zip[end..end + 4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([zip[end + 10], zip[end + 11]]), 2, "two entries");
        let central = u32::from_le_bytes([zip[end + 16], zip[end + 17], zip[end + 18], zip[end + 19]]) as usize;
        assert_eq!(&zip[central..central + 4], b"PK\x01\x02");
        assert_eq!(u32::from_le_bytes([zip[14], zip[15], zip[16], zip[17]]), crc32fast::hash(b"hello"));
        assert_eq!(zip, write(&files).unwrap(), "deterministic");
    }
}
