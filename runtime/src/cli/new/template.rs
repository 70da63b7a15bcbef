//! The files of a new stage crate: templates embedded in the binary, filled in with the
//! stage's name and the SDK's version.

use super::stage_name::StageName;
use super::{lockfile, sdk};

const CARGO_TOML: &str = include_str!("template/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("template/lib.rs.tmpl");
const PIPELINE: &str = include_str!("template/pipeline.yaml.tmpl");
const README: &str = include_str!("template/README.md.tmpl");
const GITIGNORE: &str = include_str!("template/gitignore.tmpl");
const NOTES: &str = include_str!("template/notes.txt.tmpl");

/// Where the SDK's copy goes inside the crate (its Cargo.toml names this path).
pub const SDK_DIR: &str = "vendor/ward-stage-sdk";

/// The test payload's stand-in for a DICOM file: the 128-byte preamble and `DICM`, which is
/// what the template stage looks for.
fn preamble_dcm() -> Vec<u8> {
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes
}

/// Every file of the crate, by path relative to its directory.
pub fn files(name: &StageName) -> Vec<(String, Vec<u8>)> {
    let notes = fill(NOTES, name, &[]);
    let preamble = preamble_dcm();
    let sizes = [
        ("notes_bytes", notes.len().to_string()),
        ("payload_bytes", (notes.len() + preamble.len()).to_string()),
    ];
    let mut files = vec![
        ("Cargo.toml".to_string(), fill(CARGO_TOML, name, &[])),
        ("Cargo.lock".to_string(), lockfile::for_stage(name.as_str())),
        ("src/lib.rs".to_string(), fill(LIB_RS, name, &[])),
        ("pipeline.yaml".to_string(), fill(PIPELINE, name, &[])),
        ("README.md".to_string(), fill(README, name, &sizes)),
        (".gitignore".to_string(), fill(GITIGNORE, name, &[])),
        ("test-payload/notes.txt".to_string(), notes),
    ]
    .into_iter()
    .map(|(path, text)| (path, text.into_bytes()))
    .collect::<Vec<_>>();
    files.push(("test-payload/scans/preamble.dcm".to_string(), preamble));
    for (path, text) in sdk::FILES {
        files.push((format!("{SDK_DIR}/{path}"), text.as_bytes().to_vec()));
    }
    files
}

/// Replaces `{{name}}`, `{{crate}}`, `{{sdk_version}}`, `{{contract}}` and `extra`.
fn fill(template: &str, name: &StageName, extra: &[(&str, String)]) -> String {
    let mut text = template
        .replace("{{name}}", name.as_str())
        .replace("{{crate}}", &name.crate_ident())
        .replace("{{sdk_version}}", sdk::version())
        .replace("{{contract}}", sdk::contract());
    for (key, value) in extra {
        text = text.replace(&format!("{{{{{key}}}}}"), value);
    }
    assert!(
        !text.contains("{{"),
        "a template placeholder is left unfilled"
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let name = StageName::parse("lung-nodules").unwrap();
        for (path, bytes) in files(&name) {
            if path.starts_with(SDK_DIR) || path.ends_with(".dcm") {
                continue;
            }
            let text = String::from_utf8(bytes).unwrap();
            assert!(!text.contains("{{"), "{path}: {text}");
        }
    }

    #[test]
    fn the_crate_names_itself_its_component_and_the_sdk_consistently() {
        let name = StageName::parse("lung-nodules").unwrap();
        let files = files(&name);
        let text = |wanted: &str| {
            let (_, bytes) = files.iter().find(|(p, _)| p == wanted).unwrap();
            String::from_utf8(bytes.clone()).unwrap()
        };
        let cargo = text("Cargo.toml");
        assert!(cargo.contains("name = \"lung-nodules\""));
        assert!(cargo.contains(&format!(
            "ward-stage-sdk = {{ path = \"{SDK_DIR}\", version = \"{}\" }}",
            sdk::version()
        )));
        let pipeline = text("pipeline.yaml");
        assert!(pipeline.contains("path: target/wasm32-wasip2/release/lung_nodules.wasm"));
        assert!(pipeline.contains("  - name: lung-nodules\n"));
        assert_eq!(
            text("vendor/ward-stage-sdk/wit/stage.wit"),
            include_str!("../../../../wit/stage.wit")
        );
        assert!(text("Cargo.lock").contains("name = \"lung-nodules\""));
    }
}
