use super::*;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::symlink;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// Nests `depth` directories named `name` under `root` with *-at calls only (the full path
/// may be past PATH_MAX) and returns the deepest.
fn nest(root: &Path, name: &str, depth: usize) -> OwnedFd {
    let name = CString::new(name).unwrap();
    let mut dir = tree::open_root(root).unwrap();
    for _ in 0..depth {
        rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(0o755)).unwrap();
        dir = tree::open_dir_at(dir.as_fd(), &name).unwrap();
    }
    dir
}

/// Creates `name` in `dir` with `len` bytes.
fn write_at(dir: &OwnedFd, name: &str, len: usize) -> std::fs::File {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::CREATE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    let mut file = std::fs::File::from(fd);
    file.write_all(&vec![7u8; len]).unwrap();
    file
}

#[test]
fn a_tree_deeper_than_path_max_is_measured_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let name = "n".repeat(200);
    let bottom = nest(dir.path(), &name, 25);
    drop(write_at(&bottom, "big", 3 << 20));
    drop(bottom);
    // The full path is too long for any path-based call ...
    let full = (0..25).fold(dir.path().to_path_buf(), |p, _| p.join(&name));
    assert!(full.as_os_str().len() > 4096);
    assert_eq!(
        std::fs::metadata(full.join("big"))
            .unwrap_err()
            .raw_os_error(),
        Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
    );
    // ... but not for the walk.
    let usage = measure(dir.path()).unwrap();
    assert_eq!(usage.bytes, 3 << 20);
    assert_eq!(usage.entries, 26);
    clear_dir(dir.path()).unwrap();
    assert_eq!(measure(dir.path()).unwrap(), Usage::default());
    assert!(dir.path().is_dir(), "the root itself is kept");
}

#[test]
fn nesting_past_the_depth_limit_is_refused_and_still_removed() {
    let dir = tempfile::tempdir().unwrap();
    let bottom = nest(dir.path(), "d", MAX_DEPTH + 50);
    drop(write_at(&bottom, "f", 10));
    drop(bottom);
    match measure(dir.path()) {
        Err(WalkError::TooDeep { path, limit }) => {
            assert_eq!(limit, MAX_DEPTH);
            assert_eq!(path.components().count(), MAX_DEPTH + 1);
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
    assert!(matches!(
        remove_escaping_symlinks(dir.path()),
        Err(WalkError::TooDeep { .. })
    ));
    // Exactly at the limit is fine.
    let ok = tempfile::tempdir().unwrap();
    drop(write_at(&nest(ok.path(), "d", MAX_DEPTH), "f", 10));
    assert_eq!(measure(ok.path()).unwrap().entries, MAX_DEPTH as u64 + 1);
    // Removal hoists what lies deeper than it walks, and so removes it all.
    clear_dir(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn clear_dir_removes_links_without_following_them() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), b"x").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/f"), b"y").unwrap();
    symlink(outside.path(), dir.path().join("a/out")).unwrap();
    clear_dir(dir.path()).unwrap();
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(outside.path().join("keep").exists());
}

#[test]
fn the_walk_counts_entries_and_file_bytes_without_following_links() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/a"), [0u8; 1000]).unwrap();
    std::fs::write(dir.path().join("b"), [0u8; 24]).unwrap();
    symlink("/usr", dir.path().join("usr")).unwrap();
    assert_eq!(
        measure(dir.path()).unwrap(),
        Usage {
            bytes: 1024,
            entries: 4
        }
    );
    assert_eq!(usage(&[dir.path(), dir.path()]).entries, 8);
}

/// The digest is the one paths sorted as a whole give (so payload digests recorded before
/// the walk was descriptor-relative still match).
#[test]
fn the_tree_digest_is_in_sorted_path_order() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["a", "a/b", "a-c", "z"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    for (f, content) in [
        ("a/b/x", "1"),
        ("a.txt", "2"),
        ("a-c/y", "3"),
        ("a/0", "4"),
        ("z/q", "5"),
    ] {
        std::fs::write(dir.path().join(f), content).unwrap();
    }
    symlink("a.txt", dir.path().join("a/link")).unwrap();
    let mut paths = vec!["a/b/x", "a.txt", "a-c/y", "a/0", "z/q", "a/link"]
        .into_iter()
        .map(PathBuf::from)
        .collect::<Vec<_>>();
    paths.sort();
    let mut hasher = Sha256::new();
    for rel in &paths {
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update([0]);
        let path = dir.path().join(rel);
        if rel.ends_with("link") {
            hasher.update(b"symlink:a.txt");
        } else {
            let bytes = std::fs::read(&path).unwrap();
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
        hasher.update([0]);
    }
    let digest = tree_digest(dir.path()).unwrap();
    assert_eq!(
        digest.digest,
        format!("sha256:{}", hex::encode(hasher.finalize()))
    );
    assert_eq!((digest.files, digest.bytes), (5, 5));
}

#[test]
fn escaping_links_are_removed_and_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/data"), b"x").unwrap();
    symlink("../../../etc/passwd", dir.path().join("sub/out")).unwrap();
    symlink("data", dir.path().join("sub/in")).unwrap();
    let removed = remove_escaping_symlinks(dir.path()).unwrap();
    assert_eq!(removed, vec![(p("sub/out"), p("../../../etc/passwd"))]);
    assert!(std::fs::symlink_metadata(dir.path().join("sub/in")).is_ok());
    assert!(std::fs::symlink_metadata(dir.path().join("sub/out")).is_err());
}

/// Resolves the link at `link` in `root`.
fn resolution(root: &Path, link: &str) -> Resolution {
    let fd = tree::open_root(root).unwrap();
    let target = std::fs::read_link(root.join(link)).unwrap();
    resolve(fd.as_fd(), Path::new(link), &target).unwrap()
}

/// A chain whose every link is harmless read on its own, and which yet leads out.
#[test]
fn a_chain_of_links_that_passes_a_lexical_check_still_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    symlink(".", root.join("a")).unwrap();
    symlink("a/..", root.join("l1")).unwrap();
    for i in 2..=6 {
        symlink(format!("l{}/..", i - 1), root.join(format!("l{i}"))).unwrap();
    }
    symlink("l6/etc/passwd", root.join("secret")).unwrap();
    assert_eq!(resolution(root, "a"), Resolution::Inside);
    for link in ["l1", "l2", "l6", "secret"] {
        assert!(
            matches!(resolution(root, link), Resolution::Escapes(_)),
            "{link}"
        );
    }
    let mut removed: Vec<_> = remove_escaping_symlinks(root)
        .unwrap()
        .into_iter()
        .map(|(l, _)| l)
        .collect();
    removed.sort();
    let mut expected: Vec<_> = (1..=6).map(|i| p(&format!("l{i}"))).collect();
    expected.push(p("secret"));
    assert_eq!(removed, expected);
    assert!(
        std::fs::symlink_metadata(root.join("a")).is_ok(),
        "a -> . stays"
    );
}

#[test]
fn links_are_judged_by_where_they_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("sub/deep")).unwrap();
    std::fs::write(root.join("file"), b"x").unwrap();
    let cases: &[(&str, &str, bool)] = &[
        // (link, target, escapes)
        ("up", "..", true),
        ("dot-up", "./..", true),
        ("abs", "/etc/passwd", true),
        ("abs-inside", "/file", true),
        ("self", "self", true),
        ("loop-a", "loop-b", true),
        ("loop-b", "loop-a", true),
        ("sub/to-file", "../file", false),
        ("sub/deep/climb", "../../sub/deep/../../file", false),
        ("sub/deep/out", "../../../x", true),
        ("to-sub", "sub", false),
        ("via-link", "to-sub/deep/../../file", false),
        ("via-link-out", "to-sub/../..", true),
        ("to-abs", "abs/x", true),
        ("dangling", "missing/../../../..", false),
        ("file-as-dir", "file/../..", false),
        ("trailing", "sub/", false),
    ];
    for (link, target, _) in cases {
        symlink(target, root.join(link)).unwrap();
    }
    for (link, target, escapes) in cases {
        let r = resolution(root, link);
        assert_eq!(
            matches!(r, Resolution::Escapes(_)),
            *escapes,
            "{link} -> {target}: {r:?}"
        );
    }
    assert_eq!(resolution(root, "dangling"), Resolution::Dangling);
    assert_eq!(resolution(root, "file-as-dir"), Resolution::Dangling);
    assert_eq!(
        resolution(root, "self"),
        Resolution::Escapes("it loops (too many links to follow)")
    );
    let removed = remove_escaping_symlinks(root).unwrap();
    assert_eq!(
        removed.len(),
        cases.iter().filter(|c| c.2).count(),
        "{removed:?}"
    );
    for (link, _, escapes) in cases {
        assert_eq!(
            std::fs::symlink_metadata(root.join(link)).is_ok(),
            !escapes,
            "{link}"
        );
    }
}

#[test]
fn a_deleted_file_still_held_open_is_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let canon = dir.path().canonicalize().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let root = tree::open_root(&dir.path().join("sub")).unwrap();
    let held = write_at(&root, "hidden", 3 << 20);
    let second = held.try_clone().unwrap();
    let elsewhere = write_at(&tree::open_root(other.path()).unwrap(), "x", 1 << 20);
    rustix::fs::unlinkat(&root, "hidden", AtFlags::empty()).unwrap();
    std::fs::remove_file(other.path().join("x")).unwrap();
    // Its directory may go too: the file is still attributed to the results.
    std::fs::remove_dir(dir.path().join("sub")).unwrap();
    drop(root);
    assert_eq!(measure(dir.path()).unwrap().bytes, 0, "no walk sees it");
    let found = held_deleted(std::slice::from_ref(&canon)).unwrap();
    assert_eq!(found.files, 1);
    assert!(found.bytes >= 3 << 20, "{found:?}");
    // A file still linked is the walk's to count, not this.
    let linked = write_at(&tree::open_root(dir.path()).unwrap(), "linked", 100);
    assert_eq!(held_deleted(std::slice::from_ref(&canon)).unwrap(), found);
    drop((held, second, elsewhere, linked));
    assert_eq!(
        held_deleted(std::slice::from_ref(&canon)).unwrap(),
        Held::default()
    );
}
