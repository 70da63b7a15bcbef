//! The stage SDK carries the contract byte for byte and is versioned like it.

use crate::support::*;
use std::path::Path;

/// The files of `dir`, by relative path, with their bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                found.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

#[test]
fn the_sdk_carries_the_contract_byte_for_byte() {
    let root = repo_root();
    let contract = files_of(&root.join("wit"));
    let copy = files_of(&root.join("guests/sdk/wit"));
    let names =
        |files: &[(String, Vec<u8>)]| files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&copy),
        names(&contract),
        "guests/sdk/wit/ holds the files of wit/"
    );
    for ((name, theirs), (_, ours)) in contract.iter().zip(&copy) {
        assert!(
            theirs == ours,
            "guests/sdk/wit/{name} differs from wit/{name}: copy wit/ into guests/sdk/wit/"
        );
    }

    // The SDK's version is the contract's package version.
    let wit = std::fs::read_to_string(root.join("wit/stage.wit")).unwrap();
    let contract_version = wit
        .lines()
        .find_map(|l| l.strip_prefix("package ward:stage@"))
        .and_then(|v| v.strip_suffix(';'))
        .expect("wit/stage.wit declares package ward:stage@VERSION");
    let manifest = std::fs::read_to_string(root.join("guests/sdk/Cargo.toml")).unwrap();
    let sdk_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("guests/sdk/Cargo.toml has a version");
    assert_eq!(
        sdk_version, contract_version,
        "guests/sdk/Cargo.toml's version follows the contract's (wit/stage.wit)"
    );
}
