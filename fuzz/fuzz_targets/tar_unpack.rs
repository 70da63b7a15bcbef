//! Payload archives: any bytes must unpack under the target within the limit or fail with
//! a clear error, never a panic, an escape or a write past the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Memory-backed where there is one: every unpacked file is synced.
    let shm = std::path::Path::new("/dev/shm");
    let base = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
    let dir = base.join(format!("ward-fuzz-tar-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if let Ok(done) = ward::service::archive::unpack(data, &dir, 1 << 20) {
        assert!(done.bytes <= 1 << 20);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
