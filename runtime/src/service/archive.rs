//! Payload uploads and result downloads as tar archives. An upload is unpacked only as
//! regular files and directories under the target, with every path checked (no absolute
//! paths, no `..`, no links or devices) and the total size bounded while it is read,
//! extended headers included. Downloads are written as they are read, never whole.

use crate::service::storage::Reservation;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the upload is not a tar archive: {0}")]
    NotTar(String),
    #[error("entry '{0}' leaves the payload (absolute path or '..')")]
    Escapes(String),
    #[error("entry '{path}' is a {kind}; payloads hold regular files and directories only")]
    NotAFile { path: String, kind: String },
    #[error(
        "the upload is over the {limit} byte limit (max-upload or the tenant's storage quota)"
    )]
    TooLarge { limit: u64 },
    #[error(
        "an extended header (PAX or GNU long name) of {size} bytes is over the {limit} byte limit"
    )]
    ExtendedTooLarge { size: u64, limit: u64 },
    #[error(transparent)]
    OverQuota(#[from] crate::service::storage::OverQuota),
    #[error("the upload holds no files")]
    Empty,
    #[error("writing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What was unpacked.
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// The most bytes of one extended header (a PAX record set or a GNU long name): paths are
/// at most a few KiB, and these are read whole before the entry they describe.
pub const MAX_EXTENDED_HEADER: u64 = 64 * 1024;

/// Names and records that extended headers give the next entry.
#[derive(Default)]
struct Extended {
    path: Option<Vec<u8>>,
}

/// Reads extended header `entry` (size checked first, counted in `done`) and records what it
/// says of the next entry.
fn read_extended<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    next: &mut Extended,
    done: &mut Unpacked,
    limit: u64,
) -> Result<(), ArchiveError> {
    let kind = entry.header().entry_type();
    let size = entry
        .header()
        .entry_size()
        .map_err(|e| ArchiveError::NotTar(e.to_string()))?;
    if size > MAX_EXTENDED_HEADER {
        return Err(ArchiveError::ExtendedTooLarge {
            size,
            limit: MAX_EXTENDED_HEADER,
        });
    }
    done.bytes += size;
    if done.bytes > limit {
        return Err(ArchiveError::TooLarge { limit });
    }
    let bad = |e: std::io::Error| ArchiveError::NotTar(e.to_string());
    if kind.is_gnu_longname() {
        let mut name = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut name).map_err(bad)?;
        while name.last() == Some(&0) {
            name.pop();
        }
        next.path = Some(name);
    } else if kind.is_pax_local_extensions() {
        let records = entry.pax_extensions().map_err(bad)?.into_iter().flatten();
        for record in records {
            let record = record.map_err(bad)?;
            match record.key_bytes() {
                b"path" => next.path = Some(record.value_bytes().to_vec()),
                // The next entry's data would not be where its header says.
                b"size" => {
                    return Err(ArchiveError::NotTar(
                        "PAX size records are not accepted (entries over 8 GiB)".into(),
                    ))
                }
                _ => {}
            }
        }
    }
    // Global PAX records and GNU long link names change nothing that is kept.
    Ok(())
}

/// Unpacks the tar stream `from` into `dir`, at most `limit` bytes of file content and
/// extended headers.
pub fn unpack(from: impl Read, dir: &Path, limit: u64) -> Result<Unpacked, ArchiveError> {
    unpack_counted(from, dir, limit, None)
}

/// As `unpack`; every byte of content is reserved in `quota` (when given) before it is
/// written.
pub fn unpack_counted(
    from: impl Read,
    dir: &Path,
    limit: u64,
    mut quota: Option<&mut Reservation>,
) -> Result<Unpacked, ArchiveError> {
    let mut archive = tar::Archive::new(from);
    let mut done = Unpacked { files: 0, bytes: 0 };
    let mut stored = 0u64;
    // Raw entries: the extended headers are read here, bounded, rather than whole by the
    // tar crate.
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::NotTar(e.to_string()))?
        .raw(true);
    let mut extended = Extended::default();
    let mut buf = vec![0u8; 1 << 16];
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::NotTar(e.to_string()))?;
        let kind = entry.header().entry_type();
        if kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions()
        {
            read_extended(&mut entry, &mut extended, &mut done, limit)?;
            continue;
        }
        let raw = match std::mem::take(&mut extended).path {
            Some(bytes) => PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()),
            None => entry
                .path()
                .map_err(|e| ArchiveError::NotTar(e.to_string()))?
                .into_owned(),
        };
        let shown = raw.display().to_string();
        if raw.as_os_str().is_empty() {
            return Err(ArchiveError::NotTar(format!(
                "the entry at byte {} has no name",
                entry.raw_header_position()
            )));
        }
        let Some(relative) = safe_relative(&raw) else {
            if kind.is_dir() && raw.components().all(|c| matches!(c, Component::CurDir)) {
                continue;
            }
            return Err(ArchiveError::Escapes(shown));
        };
        let target = dir.join(&relative);
        let io = |source| ArchiveError::Io {
            path: target.clone(),
            source,
        };
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io)?;
            continue;
        }
        if !kind.is_file() {
            return Err(ArchiveError::NotAFile {
                path: shown,
                kind: format!("{kind:?}").to_lowercase(),
            });
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let mut out = std::fs::File::create(&target).map_err(io)?;
        loop {
            let n = entry.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            done.bytes += n as u64;
            if done.bytes > limit {
                return Err(ArchiveError::TooLarge { limit });
            }
            if let Some(q) = quota.as_deref_mut() {
                q.grow(n as u64).map_err(ArchiveError::OverQuota)?;
            }
            stored += n as u64;
            out.write_all(&buf[..n]).map_err(io)?;
        }
        out.sync_all().map_err(io)?;
        done.files += 1;
    }
    if done.files == 0 {
        return Err(ArchiveError::Empty);
    }
    // What is recorded is what is on disk: the files' content.
    done.bytes = stored;
    Ok(done)
}

/// A tar archive of everything under `dir` (regular files and directories), in memory.
pub fn pack(dir: &Path) -> std::io::Result<Vec<u8>> {
    pack_to(dir, Vec::new())
}

/// Writes a tar archive of everything under `dir` to `out` as it goes.
pub fn pack_to<W: Write>(dir: &Path, out: W) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tar::{EntryType, Header};

    /// An archive of `entries`: (type, name, content).
    fn archive(entries: &[(EntryType, &str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, data) in entries {
            let mut h = Header::new_ustar();
            h.set_entry_type(*kind);
            h.set_path(name).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, &data[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn unpacked(tar: &[u8], limit: u64) -> (Result<Unpacked, ArchiveError>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (unpack(tar, dir.path(), limit), dir)
    }

    fn pax(records: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in records {
            let body = format!(" {k}={v}\n");
            // The length counts its own digits.
            let mut n = body.len() + 1;
            while format!("{n}{body}").len() != n {
                n += 1;
            }
            out.extend_from_slice(format!("{n}{body}").as_bytes());
        }
        out
    }

    #[test]
    fn long_names_from_gnu_and_pax_headers_are_used() {
        let long = format!("{}/file.bin", "d".repeat(150));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
        let tar = b.into_inner().unwrap();
        let (done, dir) = unpacked(&tar, 1 << 20);
        assert_eq!(done.unwrap().bytes, 3);
        assert_eq!(std::fs::read(dir.path().join(&long)).unwrap(), b"abc");

        let tar = archive(&[
            (
                EntryType::XHeader,
                "pax",
                pax(&[("path", "from-pax.txt"), ("mtime", "1.5")]),
            ),
            (EntryType::Regular, "short", b"xy".to_vec()),
        ]);
        let (done, dir) = unpacked(&tar, 1 << 20);
        assert_eq!(done.unwrap().files, 1);
        assert!(dir.path().join("from-pax.txt").is_file());
        // A PAX path is checked like any other.
        let tar = archive(&[
            (EntryType::XHeader, "pax", pax(&[("path", "../../out")])),
            (EntryType::Regular, "short", b"xy".to_vec()),
        ]);
        assert!(matches!(
            unpacked(&tar, 1 << 20).0,
            Err(ArchiveError::Escapes(_))
        ));
    }

    #[test]
    fn extended_headers_are_bounded_and_counted() {
        for kind in [
            EntryType::XHeader,
            EntryType::GNULongName,
            EntryType::XGlobalHeader,
        ] {
            let tar = archive(&[
                (kind, "ext", vec![b'a'; MAX_EXTENDED_HEADER as usize + 1]),
                (EntryType::Regular, "f", b"x".to_vec()),
            ]);
            let (done, _dir) = unpacked(&tar, 1 << 30);
            assert!(
                matches!(done, Err(ArchiveError::ExtendedTooLarge { .. })),
                "{kind:?}: {:?}",
                done.err()
            );
        }
        // Within its bound, an extended header still counts in the upload's limit.
        let tar = archive(&[
            (EntryType::GNULongName, "ext", vec![b'a'; 60 * 1024]),
            (EntryType::Regular, "f", b"x".to_vec()),
        ]);
        assert!(matches!(
            unpacked(&tar, 10 * 1024).0,
            Err(ArchiveError::TooLarge { .. })
        ));
        let tar = archive(&[
            (EntryType::XHeader, "pax", pax(&[("size", "99999999999")])),
            (EntryType::Regular, "f", b"x".to_vec()),
        ]);
        assert!(unpacked(&tar, 1 << 20).0.is_err(), "a PAX size is refused");
    }

    #[test]
    fn every_byte_written_is_reserved_first() {
        let ledger = crate::service::storage::StorageLedger::default();
        let tar = archive(&[(EntryType::Regular, "f", vec![1; 5000])]);
        let dir = tempfile::tempdir().unwrap();
        let mut small = ledger.reserve("t", 4000);
        assert!(matches!(
            unpack_counted(&tar[..], dir.path(), 1 << 20, Some(&mut small)),
            Err(ArchiveError::OverQuota(_))
        ));
        let mut enough = ledger.reserve("t", 5000);
        let done = unpack_counted(&tar[..], dir.path(), 1 << 20, Some(&mut enough)).unwrap();
        assert_eq!((done.bytes, enough.held()), (5000, 5000));
    }

    #[test]
    fn a_download_holds_what_was_uploaded() {
        let tar = archive(&[
            (EntryType::Directory, "d", Vec::new()),
            (EntryType::Regular, "d/a.bin", vec![7; 70_000]),
            (EntryType::Regular, "b.txt", b"b".to_vec()),
        ]);
        let (done, dir) = unpacked(&tar, 1 << 20);
        assert_eq!(done.unwrap().files, 2);
        let mut chunks = Vec::new();
        pack_to(dir.path(), &mut chunks).unwrap();
        let (again, copy) = unpacked(&chunks, 1 << 20);
        assert_eq!(again.unwrap().bytes, 70_001);
        assert_eq!(
            std::fs::read(copy.path().join("d/a.bin")).unwrap(),
            vec![7; 70_000]
        );
    }

    /// A deterministic mutation smoke test (the `tar_unpack` fuzz target runs the same
    /// unpacker coverage-guided): valid archives with bytes flipped, inserted, deleted and
    /// cut never panic and never write past the limit.
    #[test]
    fn mutated_archives_never_panic() {
        let long = format!("{}/f", "n".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = Header::new_gnu();
        h.set_size(10);
        h.set_mode(0o644);
        b.append_data(&mut h, &long, &[5u8; 10][..]).unwrap();
        let gnu = b.into_inner().unwrap();
        let seeds = [
            gnu,
            archive(&[
                (EntryType::XHeader, "pax", pax(&[("path", "p/q.txt")])),
                (EntryType::Regular, "q", vec![3; 700]),
                (EntryType::Directory, "e", Vec::new()),
                (EntryType::Regular, "e/f", b"f".to_vec()),
            ]),
        ];
        let mut rng = crate::service::mutation::XorShift::new(0x7a2_5eed);
        // Memory-backed where there is one: every unpacked file is synced.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        for round in 0..2000 {
            let mut tar = seeds[round % seeds.len()].clone();
            rng.mutate(&mut tar);
            let target = dir.path().join(round.to_string());
            std::fs::create_dir(&target).unwrap();
            if let Ok(done) = unpack(&tar[..], &target, 4096) {
                assert!(done.bytes <= 4096);
            }
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
}
