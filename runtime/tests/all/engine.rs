//! The compiled-component cache: keyed by the component's digest and the engine, written by
//! the host itself, and replaced when damaged.

use crate::support::*;
use ward::engine::{Engine, EngineOptions};

fn engine_with_cache(dir: &std::path::Path) -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..EngineOptions::default()
    })
    .unwrap()
}

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for engine_dir in std::fs::read_dir(dir).unwrap().flatten() {
        for entry in std::fs::read_dir(engine_dir.path()).unwrap().flatten() {
            out.push(entry.path());
        }
    }
    out
}

#[test]
fn a_component_compiles_once_and_loads_from_the_cache_after() {
    let cache = tempdir();
    let component = component("misbehave");
    let first = engine_with_cache(cache.path())
        .load_component(&component, None)
        .unwrap();
    assert!(first.compile_time.is_some(), "the first load compiles");
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        name,
        format!("{}.cwasm", first.digest.trim_start_matches("sha256:")),
        "keyed by digest"
    );

    let second = engine_with_cache(cache.path())
        .load_component(&component, None)
        .unwrap();
    assert!(
        second.compile_time.is_none(),
        "a new engine loads it from the cache"
    );
    assert_eq!(second.digest, first.digest);
}

#[test]
fn a_damaged_cache_entry_is_recompiled_not_trusted() {
    let cache = tempdir();
    let component = component("misbehave");
    engine_with_cache(cache.path())
        .load_component(&component, None)
        .unwrap();
    let entry = cache_entries(cache.path()).pop().unwrap();
    std::fs::write(&entry, b"not compiled code").unwrap();
    let reloaded = engine_with_cache(cache.path())
        .load_component(&component, None)
        .unwrap();
    assert!(
        reloaded.compile_time.is_some(),
        "the damaged entry was not used"
    );
    assert!(
        std::fs::read(&entry).unwrap().len() > 1000,
        "and it was rewritten"
    );
}

#[test]
fn a_changed_file_is_read_again() {
    let dir = tempdir();
    let path = dir.path().join("stage.wasm");
    std::fs::copy(component("misbehave"), &path).unwrap();
    let a = engine().load_component(&path, None).unwrap();
    std::fs::copy(component("segment"), &path).unwrap();
    let b = engine().load_component(&path, None).unwrap();
    assert_ne!(
        a.digest, b.digest,
        "the replaced file is a different component"
    );
}
