//! The stage SDK (`guests/sdk`) embedded in the `ward` binary, so that `ward new stage` can
//! write a copy of it into the new crate: the SDK is not published to a registry, and a crate
//! that carries it builds anywhere, offline included.

/// Every file of `guests/sdk`, by path relative to it. A unit test checks this list against
/// the directory, so a file added to the SDK cannot be left out of the copy.
pub const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../../guests/sdk/Cargo.toml"),
    ),
    (
        "src/alloc.rs",
        include_str!("../../../../guests/sdk/src/alloc.rs"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../../guests/sdk/src/lib.rs"),
    ),
    (
        "src/logging.rs",
        include_str!("../../../../guests/sdk/src/logging.rs"),
    ),
    (
        "src/nn.rs",
        include_str!("../../../../guests/sdk/src/nn.rs"),
    ),
    (
        "src/params.rs",
        include_str!("../../../../guests/sdk/src/params.rs"),
    ),
    (
        "src/streams.rs",
        include_str!("../../../../guests/sdk/src/streams.rs"),
    ),
    (
        "src/vols.rs",
        include_str!("../../../../guests/sdk/src/vols.rs"),
    ),
    (
        "wit/stage.wit",
        include_str!("../../../../guests/sdk/wit/stage.wit"),
    ),
    (
        "wit/deps/wasi-nn/nn.wit",
        include_str!("../../../../guests/sdk/wit/deps/wasi-nn/nn.wit"),
    ),
];

/// The SDK's package name, which stage crates depend on.
pub const PACKAGE: &str = "ward-stage-sdk";

fn file(path: &str) -> &'static str {
    FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
        .expect("the SDK file is embedded")
}

/// The SDK's version, from its Cargo.toml (the first `version` line is the package's).
pub fn version() -> &'static str {
    quoted_value(file("Cargo.toml"), "version = ").expect("the SDK's Cargo.toml has a version")
}

/// The contract the SDK is built against, e.g. `ward:stage@0.2.0`.
pub fn contract() -> &'static str {
    file("wit/stage.wit")
        .lines()
        .find_map(|line| line.strip_prefix("package "))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("the SDK's WIT declares its package")
}

fn quoted_value<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .and_then(|rest| rest.strip_prefix('"'))
        .and_then(|rest| rest.split('"').next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn files_under(root: &Path, dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_sdk_is_embedded() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../guests/sdk");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "runtime/src/cli/new/sdk.rs FILES");
    }

    #[test]
    fn the_sdk_version_is_the_contract_version() {
        let contract_version = contract().strip_prefix("ward:stage@").unwrap();
        assert_eq!(version(), contract_version, "guests/sdk/Cargo.toml version");
    }
}
