//! Real OCI registries for the stage registry tests, and the independent clients the tests
//! read and write them with.
//!
//! A `Registry` is CNCF distribution (Debian's `docker-registry`) started as a child process
//! on a free port of 127.0.0.1, its storage in a temporary directory, killed when the test
//! ends. Two kinds: open (plain HTTP, no auth) and TLS with htpasswd basic auth (a test CA and
//! a leaf certificate for IP 127.0.0.1, made by openssl). The clients are skopeo and the
//! Python references of `runtime/tests/registry/` (`spec_push.py`, `cosign_check.py`), none of
//! which shares code with Ward.
//!
//! Tools are taken from /usr/bin by full path, never from PATH: another program of the same
//! name earlier on PATH would make a test talk to something it does not mean. python3 is the
//! one on PATH, as in the other tests: it is the one pip installed `cryptography` into.

use crate::dicom_scp::{free_port, Killed};
use crate::support::{repo_root, tempdir, Output};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DISTRIBUTION: &str = "/usr/bin/docker-registry";
const SKOPEO: &str = "/usr/bin/skopeo";
const HTPASSWD: &str = "/usr/bin/htpasswd";
const OPENSSL: &str = "/usr/bin/openssl";
/// The readiness probe: an HTTPS client that checks the registry's certificate against the
/// test CA, so "ready" also means "its TLS is what clients will see".
const CURL: &str = "/usr/bin/curl";

/// How long a registry may take to answer its first request (a loaded CI machine is slow).
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Fresh ports tried when another process takes the chosen one before the registry binds it.
const BIND_ATTEMPTS: usize = 5;

const USER: &str = "ward-test";
const PASSWORD: &str = "registry-password";

/// One running (or stopped) registry. Dropping it kills the registry, then removes its
/// storage.
pub struct Registry {
    // Declared first so it is dropped first: the registry dies before its files go.
    process: Option<Killed>,
    port: u16,
    tls: Option<Tls>,
    dir: tempfile::TempDir,
}

/// What the TLS registry's clients need to trust it.
struct Tls {
    ca: PathBuf,
    /// A directory holding `ca.crt`, as skopeo's `--cert-dir` wants it.
    cert_dir: PathBuf,
}

impl Registry {
    /// A registry over plain HTTP that anyone may push to.
    pub fn open() -> Registry {
        Registry::start(tempdir(), None)
    }

    /// A registry over HTTPS (a certificate for 127.0.0.1 from a test CA, see `ca_pem`) that
    /// answers only requests with basic auth of `credentials()`.
    pub fn with_auth_tls() -> Registry {
        let dir = tempdir();
        let tls = make_certificates(dir.path());
        let htpasswd = stdout_bytes(Command::new(HTPASSWD).args(["-Bbn", USER, PASSWORD]));
        std::fs::write(dir.path().join("htpasswd"), htpasswd).expect("writing htpasswd");
        Registry::start(dir, Some(tls))
    }

    fn start(dir: tempfile::TempDir, tls: Option<Tls>) -> Registry {
        let mut registry = Registry {
            process: None,
            port: 0,
            tls,
            dir,
        };
        for attempt in 1..=BIND_ATTEMPTS {
            registry.port = free_port();
            registry.write_config();
            match registry.launch() {
                Ok(()) => return registry,
                Err(Launch::PortTaken(_)) if attempt < BIND_ATTEMPTS => continue,
                Err(Launch::PortTaken(log) | Launch::Failed(log)) => {
                    panic!("{DISTRIBUTION} did not start:\n{log}")
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `127.0.0.1:PORT`, the registry's host as image references name it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The PEM file of the CA that signed the TLS registry's certificate.
    pub fn ca_pem(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|tls| tls.ca.clone())
    }

    /// The user name and password the auth registry accepts.
    pub fn credentials(&self) -> Option<(String, String)> {
        self.tls
            .as_ref()
            .map(|_| (USER.to_string(), PASSWORD.to_string()))
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kills the registry (SIGKILL, as a crash would); its port then refuses connections.
    /// Its storage stays for `restart`.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts the registry again on the same port with the same storage (stopping it first
    /// if it runs). Waits while another process holds the port, up to the deadline.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(Launch::PortTaken(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(Launch::PortTaken(log) | Launch::Failed(log)) => {
                    panic!("{DISTRIBUTION} did not restart on {}:\n{log}", self.host())
                }
            }
        }
    }

    /// The file this registry keeps blob `digest` in (distribution's filesystem layout), for
    /// tests that make it serve other bytes than it was given.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256: digest");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// The options `spec_push.py` and `cosign_check.py push-signature` take to reach this
    /// registry: `--registry HOST` and `--insecure`, or `--ca CA --user U --password P`.
    pub fn script_args(&self) -> Vec<String> {
        let mut args = vec!["--registry".to_string(), self.host()];
        match (&self.tls, self.credentials()) {
            (Some(tls), Some((user, password))) => args.extend([
                "--ca".to_string(),
                tls.ca.display().to_string(),
                "--user".to_string(),
                user,
                "--password".to_string(),
                password,
            ]),
            _ => args.push("--insecure".to_string()),
        }
        args
    }

    /// skopeo's options for reading from this registry, with `prefix` before each (`""` for
    /// `inspect`, `"src-"` for `copy`): `--tls-verify=false`, or `--cert-dir` and `--creds`.
    pub fn skopeo_args(&self, prefix: &str) -> Vec<String> {
        match (&self.tls, self.credentials()) {
            (Some(tls), Some((user, password))) => vec![
                format!("--{prefix}cert-dir"),
                tls.cert_dir.display().to_string(),
                format!("--{prefix}creds"),
                format!("{user}:{password}"),
            ],
            _ => vec![format!("--{prefix}tls-verify=false")],
        }
    }

    /// `skopeo inspect --raw docker://HOST/REFERENCE` (REFERENCE `repo:tag` or
    /// `repo@sha256:...`): the manifest's bytes exactly as the registry serves them.
    pub fn skopeo_manifest(&self, reference: &str) -> Vec<u8> {
        self.skopeo_inspect(reference, &["--raw"])
    }

    /// `skopeo inspect --raw --config`: the bytes of the manifest's config blob.
    pub fn skopeo_config(&self, reference: &str) -> Vec<u8> {
        self.skopeo_inspect(reference, &["--raw", "--config"])
    }

    fn skopeo_inspect(&self, reference: &str, flags: &[&str]) -> Vec<u8> {
        stdout_bytes(
            Command::new(SKOPEO)
                .arg("inspect")
                .args(flags)
                .args(self.skopeo_args(""))
                .arg(format!("docker://{}/{reference}", self.host())),
        )
    }

    /// The bytes of blob `digest` of the image `reference`, copied out by skopeo (its `dir:`
    /// transport writes each blob as a file named by its hex digest).
    pub fn skopeo_blob(&self, reference: &str, digest: &str) -> Vec<u8> {
        let out = tempdir();
        let copy = out.path().join("image");
        stdout_bytes(
            Command::new(SKOPEO)
                // Reading into a directory checks no signatures: that is what the tests do.
                .args(["--insecure-policy", "copy", "--quiet"])
                .args(self.skopeo_args("src-"))
                .arg(format!("docker://{}/{reference}", self.host()))
                .arg(format!("dir:{}", copy.display())),
        );
        let hex = digest.strip_prefix("sha256:").expect("a sha256: digest");
        let path = copy.join(hex);
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("skopeo copied no blob {digest} ({}): {e}", path.display()))
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let mut config = format!(
            "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {host}
  secret: ward-test-secret
",
            storage = yaml_string(&d.join("storage").display().to_string()),
            host = self.host(),
        );
        if self.tls.is_some() {
            config.push_str(&format!(
                "  tls:
    certificate: {cert}
    key: {key}
auth:
  htpasswd:
    realm: ward-test
    path: {htpasswd}
",
                cert = yaml_string(&d.join("tls/registry.pem").display().to_string()),
                key = yaml_string(&d.join("tls/registry.key").display().to_string()),
                htpasswd = yaml_string(&d.join("htpasswd").display().to_string()),
            ));
        }
        std::fs::write(self.config_path(), config).expect("writing the registry's config");
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.yml")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// Starts the registry and waits for the positive signal that it serves: its log says it
    /// listens on our port (so the answer is not from another process that took the port)
    /// and GET /v2/ answers 200 (open) or 401 (auth) over the expected scheme.
    fn launch(&mut self) -> Result<(), Launch> {
        // Appended to: a restarted registry's log keeps what the earlier run said.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the registry's log");
        let start_of_run = log.metadata().map(|m| m.len()).unwrap_or(0) as usize;
        let child = Command::new(DISTRIBUTION)
            .arg("serve")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log, twice"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{DISTRIBUTION} is needed (apt-get install -y docker-registry): {e}")
            });
        let mut child = Killed(child);
        let listening = format!("listening on {}", self.host());
        let expected = if self.is_tls() { "401" } else { "200" };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let said = self.log_since(start_of_run);
            if let Some(status) = child.0.try_wait().expect("the registry's status") {
                let said = format!("it exited ({status}) saying:\n{said}");
                return Err(if said.contains("address already in use") {
                    Launch::PortTaken(said)
                } else {
                    Launch::Failed(said)
                });
            }
            if said.contains(&listening) && self.probe() == expected {
                self.process = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Launch::Failed(format!(
                    "GET {}/v2/ did not answer {expected} within {READY_DEADLINE:?} \
                     (last: {:?}); its log:\n{said}",
                    self.url(),
                    self.probe()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_since(&self, offset: usize) -> String {
        let bytes = std::fs::read(self.log_path()).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(offset..).unwrap_or_default()).into_owned()
    }

    /// The HTTP status of GET /v2/ as curl sees it ("000" when there is no answer).
    fn probe(&self) -> String {
        let mut curl = Command::new(CURL);
        curl.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ]);
        if let Some(tls) = &self.tls {
            curl.arg("--cacert").arg(&tls.ca);
        }
        let out = curl
            .arg(format!("{}/v2/", self.url()))
            .output()
            .unwrap_or_else(|e| panic!("{CURL} is needed (apt-get install -y curl): {e}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

enum Launch {
    /// Another process bound the port first; the registry's log says so.
    PortTaken(String),
    Failed(String),
}

/// Ward's registry configuration naming `registries`: plain HTTP allowed for an open one;
/// the CA and credentials of a TLS one.
pub fn registry_config_yaml(registries: &[&Registry]) -> String {
    let mut yaml = String::from("registries:\n");
    for registry in registries {
        yaml.push_str(&format!("  {}:\n", yaml_string(&registry.host())));
        match (registry.ca_pem(), registry.credentials()) {
            (Some(ca), Some((user, password))) => yaml.push_str(&format!(
                "    ca: {}\n    username: {}\n    password: {}\n",
                yaml_string(&ca.display().to_string()),
                yaml_string(&user),
                yaml_string(&password)
            )),
            _ => yaml.push_str("    insecure: true\n"),
        }
    }
    yaml
}

/// Writes `registry_config_yaml(registries)` as `registries.yaml` in `dir`.
pub fn write_registry_config(dir: &Path, registries: &[&Registry]) -> PathBuf {
    let path = dir.join("registries.yaml");
    std::fs::write(&path, registry_config_yaml(registries)).expect("writing registries.yaml");
    path
}

/// A double-quoted YAML scalar: JSON's string syntax is YAML's double-quoted one.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// Makes `dir/tls/`: a CA (`ca.pem`) and the registry's certificate for IP 127.0.0.1 signed
/// by it (`registry.pem`, `registry.key`), and skopeo's cert dir (`certs/ca.crt`). A CA and
/// a leaf rather than one self-signed certificate: rustls refuses a CA certificate used as
/// a server's.
fn make_certificates(dir: &Path) -> Tls {
    let tls = dir.join("tls");
    let cert_dir = dir.join("certs");
    std::fs::create_dir_all(&tls).expect("creating tls/");
    std::fs::create_dir_all(&cert_dir).expect("creating certs/");
    let p256 = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    stdout_bytes(
        Command::new(OPENSSL)
            .args(["req", "-x509", "-days", "2", "-subj", "/CN=Ward test CA"])
            .args(p256)
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(tls.join("ca.key"))
            .arg("-out")
            .arg(tls.join("ca.pem")),
    );
    stdout_bytes(
        Command::new(OPENSSL)
            .args(["req", "-new", "-subj", "/CN=127.0.0.1"])
            .args(p256)
            .arg("-keyout")
            .arg(tls.join("registry.key"))
            .arg("-out")
            .arg(tls.join("registry.csr")),
    );
    let extensions = tls.join("registry.ext");
    std::fs::write(
        &extensions,
        "subjectAltName = IP:127.0.0.1
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
",
    )
    .expect("writing registry.ext");
    stdout_bytes(
        Command::new(OPENSSL)
            .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
            .arg("-in")
            .arg(tls.join("registry.csr"))
            .arg("-CA")
            .arg(tls.join("ca.pem"))
            .arg("-CAkey")
            .arg(tls.join("ca.key"))
            .arg("-extfile")
            .arg(&extensions)
            .arg("-out")
            .arg(tls.join("registry.pem")),
    );
    std::fs::copy(tls.join("ca.pem"), cert_dir.join("ca.crt")).expect("copying ca.crt");
    Tls {
        ca: tls.join("ca.pem"),
        cert_dir,
    }
}

/// Runs `cmd`, returning its standard output; a failure names the command and shows its
/// standard error.
fn stdout_bytes(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?} does not start: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn output_of(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?} does not start: {e}", cmd.get_program()));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `python3 runtime/tests/registry/SCRIPT`, for arguments of the test's own.
pub fn registry_script(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("runtime/tests/registry").join(script));
    cmd
}

/// Runs `spec_push.py` with this registry's connection options and `args`.
pub fn run_spec_push(registry: &Registry, args: &[&str]) -> Output {
    output_of(
        registry_script("spec_push.py")
            .args(registry.script_args())
            .args(args),
    )
}

/// Pushes `wasm` as `repo:tag` with the reference pusher (`extra`: more of its options,
/// e.g. `--annotation K=V`, `--export NAME`); returns the manifest's digest.
pub fn spec_push(
    registry: &Registry,
    repo: &str,
    tag: &str,
    wasm: &Path,
    extra: &[&str],
) -> String {
    let wasm = wasm.to_str().expect("a UTF-8 path");
    let mut args = vec!["--repo", repo, "--tag", tag, "--wasm", wasm];
    args.extend_from_slice(extra);
    let out = run_spec_push(registry, &args);
    assert_eq!(out.code, 0, "spec_push.py {args:?} failed: {}", out.stderr);
    checked_digest(&out.stdout, "spec_push.py")
}

/// Makes a cosign key pair `dir/NAME.key` (PKCS#8 PEM) and `dir/NAME.pub`; returns both.
pub fn cosign_genkey(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    stdout_bytes(
        registry_script("cosign_check.py")
            .args(["genkey", "--out"])
            .arg(&prefix),
    );
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// Signs `digest` (a manifest of `repo`) with `key` as cosign does and pushes the signature
/// as tag `sha256-HEX.sig` (`extra`: e.g. `--append`, `--payload-digest D`); returns the
/// signature manifest's digest.
pub fn push_signature(
    registry: &Registry,
    repo: &str,
    digest: &str,
    key: &Path,
    extra: &[&str],
) -> String {
    let out = output_of(
        registry_script("cosign_check.py")
            .arg("push-signature")
            .args(registry.script_args())
            .args(["--repo", repo, "--digest", digest, "--key"])
            .arg(key)
            .args(extra),
    );
    assert_eq!(out.code, 0, "push-signature failed: {}", out.stderr);
    checked_digest(&out.stdout, "cosign_check.py push-signature")
}

/// `cosign_check.py verify`: whether `signature_b64` is `public_key`'s signature over
/// `payload`, a simple-signing payload (naming `digest` when given).
pub fn cosign_verify(
    public_key: &Path,
    payload: &Path,
    signature_b64: &str,
    digest: Option<&str>,
) -> Output {
    let mut cmd = registry_script("cosign_check.py");
    cmd.arg("verify")
        .arg("--pub")
        .arg(public_key)
        .arg("--payload")
        .arg(payload)
        .args(["--signature-b64", signature_b64]);
    if let Some(digest) = digest {
        cmd.args(["--digest", digest]);
    }
    output_of(&mut cmd)
}

/// The tag cosign stores the signatures of manifest `digest` under: `sha256-HEX.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replacen(':', "-", 1))
}

/// `sha256:HEX` of `bytes`, as OCI digests are written.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes `dir/NAME.wasm`: the 8-byte header of a WebAssembly component (magic, version 0xd,
/// layer 1) and no sections. Enough for pushing and pulling; not a component that runs.
pub fn minimal_component(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, b"\0asm\x0d\x00\x01\x00").expect("writing the component");
    path
}

fn checked_digest(stdout: &str, what: &str) -> String {
    let digest = stdout.trim();
    assert!(
        digest.len() == 71 && digest.starts_with("sha256:"),
        "{what} printed {stdout:?}, not a sha256: digest"
    );
    digest.to_string()
}
