//! Media types and annotation keys: the CNCF TAG-Runtime wasm OCI artifact layout, cosign's
//! signature layout, and Ward's own annotations.

/// The image manifest every Ward artifact is.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// The wasm layout's config blob.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The wasm layout's one layer: the component itself.
pub const WASM_LAYER: &str = "application/wasm";
/// The config of a cosign signature manifest (an ordinary image config).
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A cosign signature layer: the simple-signing payload that was signed.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation on a signature layer holding the base64 signature over its payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `ward conformance --json` report pushed beside a component.
pub const CONFORMANCE_REPORT: &str = "application/vnd.ward.conformance.report.v1+json";
/// The config of the manifest that carries a conformance report.
pub const CONFORMANCE_CONFIG: &str = "application/vnd.ward.conformance.config.v1+json";

/// The `ward:stage` contract version the component was published against.
pub const ANNOTATION_CONTRACT: &str = "dev.ward.stage.contract";
/// Who published it.
pub const ANNOTATION_VENDOR: &str = "org.opencontainers.image.vendor";
/// When it was published (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// The digest of the conformance report blob the component passed (absent when skipped).
pub const ANNOTATION_CONFORMANCE: &str = "dev.ward.conformance.digest";
/// "pass", or "skipped" when the publisher chose `--skip-conformance`.
pub const ANNOTATION_CONFORMANCE_VERDICT: &str = "dev.ward.conformance.verdict";
