//! The compiled-component cache: keyed by the component's digest and the engine, written by
//! the host itself, and replaced when damaged.

use crate::support::*;
use std::time::Duration;
use ward::engine::{CompileLimits, Compiler, ComponentError, Engine, EngineOptions};

fn engine_with_cache(dir: &std::path::Path) -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..engine_options()
    })
    .unwrap()
}

fn engine_compiling_under(dir: &std::path::Path, limits: CompileLimits) -> Engine {
    Engine::new(EngineOptions {
        cache_dir: Some(dir.to_path_buf()),
        compiler: Compiler::Child {
            program: env!("CARGO_BIN_EXE_ward").into(),
            limits,
        },
        ..engine_options()
    })
    .unwrap()
}

/// Files in the cache that are not finished entries (an interrupted compile's leftovers).
fn leftovers(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    cache_entries(dir)
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "cwasm"))
        .collect()
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

#[test]
fn a_compile_past_its_time_limit_is_stopped_and_the_component_refused_naming_the_limit() {
    let cache = tempdir();
    let limits = CompileLimits {
        timeout: Duration::from_millis(1),
        ..CompileLimits::default()
    };
    let refused = engine_compiling_under(cache.path(), limits)
        .load_component(&component("segment"), None)
        .err()
        .expect("no compile finishes in a millisecond");
    assert!(
        matches!(refused, ComponentError::CompileLimit { .. }),
        "{refused}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("segment.wasm") && text.contains("compile time limit of 0.001s"),
        "{text}"
    );
    assert!(
        cache_entries(cache.path()).is_empty(),
        "nothing half-compiled is kept"
    );
    // The host is unaffected: the same cache compiles it under the default limits.
    let loaded = engine_with_cache(cache.path())
        .load_component(&component("segment"), None)
        .unwrap();
    assert!(loaded.compile_time.is_some());
}

#[test]
fn a_compile_past_its_memory_limit_is_stopped_and_the_component_refused_naming_the_limit() {
    let cache = tempdir();
    let limits = CompileLimits {
        memory: 24 << 20,
        ..CompileLimits::default()
    };
    let refused = engine_compiling_under(cache.path(), limits)
        .load_component(&component("segment"), None)
        .err()
        .expect("Cranelift needs more than 24 MiB for a stage");
    let text = refused.to_string();
    assert!(
        matches!(refused, ComponentError::CompileLimit { .. })
            && text.contains("compile memory limit of 25165824 bytes"),
        "{text}"
    );
    assert!(
        leftovers(cache.path()).is_empty(),
        "{:?}",
        leftovers(cache.path())
    );
}

#[test]
fn an_invalid_component_is_refused_with_the_compilers_reason() {
    let dir = tempdir();
    let path = dir.path().join("broken.wasm");
    // The component header, then a section that is not one.
    std::fs::write(&path, b"\0asm\x0d\x00\x01\x00\xff\xff\xff").unwrap();
    let refused = engine_with_cache(dir.path())
        .load_component(&path, None)
        .err()
        .expect("not a component");
    assert!(
        matches!(refused, ComponentError::Invalid { .. }),
        "{refused}"
    );
}

#[test]
fn the_compile_cache_keeps_to_its_size_bound_least_recently_used_first() {
    let cache = tempdir();
    let bounded = || {
        Engine::new(EngineOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            cache_max_bytes: 1,
            ..engine_options()
        })
        .unwrap()
    };
    let first = bounded()
        .load_component(&component("misbehave"), None)
        .unwrap();
    let second = bounded()
        .load_component(&component("segment"), None)
        .unwrap();
    let names: Vec<String> = cache_entries(cache.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![format!(
            "{}.cwasm",
            second.digest.trim_start_matches("sha256:")
        )],
        "the older entry ({}) was evicted",
        first.digest
    );
}
