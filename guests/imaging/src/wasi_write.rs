//! Writing a whole file in a few large WASI calls. Through `std::fs` a stage's write of a
//! large file becomes thousands of small stream writes (each a host call and a copy); a
//! positional `descriptor.write` takes 16 MiB per call. Used on wasm32-wasip2 only; any
//! failure falls back to `std::fs`.

use std::path::Path;
use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};

/// Bytes per host call: large enough that calls are few, small enough to stay well under
/// the host's argument bounds.
const CHUNK: usize = 16 << 20;

/// Writes `bytes` to the absolute `path`, which must lie in a preopened directory.
/// Returns false when it could not (the caller then uses `std::fs`).
pub fn write_whole_file(path: &Path, bytes: &[u8]) -> bool {
    let Some(text) = path.to_str() else {
        return false;
    };
    // The preopen with the longest matching prefix holds the file.
    let mut best: Option<(wasi::filesystem::types::Descriptor, String)> = None;
    for (dir, mount) in get_directories() {
        let mount = mount.trim_end_matches('/').to_string();
        let inside = text
            .strip_prefix(&mount)
            .is_some_and(|rest| rest.starts_with('/'));
        if inside && best.as_ref().is_none_or(|(_, m)| mount.len() > m.len()) {
            best = Some((dir, mount));
        }
    }
    let Some((dir, mount)) = best else {
        return false;
    };
    let relative = &text[mount.len() + 1..];
    let Ok(file) = dir.open_at(
        PathFlags::empty(),
        relative,
        OpenFlags::CREATE | OpenFlags::TRUNCATE,
        DescriptorFlags::WRITE,
    ) else {
        return false;
    };
    let mut offset = 0usize;
    while offset < bytes.len() {
        let end = (offset + CHUNK).min(bytes.len());
        match file.write(&bytes[offset..end], offset as u64) {
            Ok(0) | Err(_) => return false,
            Ok(n) => offset += n as usize,
        }
    }
    true
}
