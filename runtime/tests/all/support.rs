//! Shared set-up: the stage components (built once per test run), one engine with a shared
//! compile cache, temporary pipelines and payloads, and the `ward` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use ward::engine::{CompileLimits, Compiler, Engine, EngineOptions};
use ward::jobs::{new_job_id, run_job, JobRequest, JobSummary, NoObserver};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ is in the repository")
        .to_path_buf()
}

/// The compiled-component cache every test shares, so each component compiles once.
pub fn cache_dir() -> PathBuf {
    repo_root().join("target").join("ward-test-cache")
}

/// Builds every stage component (guests and conformance stages) once per test run, and
/// returns the directory holding the `.wasm` files.
pub fn components_dir() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let guests = repo_root().join("guests");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--workspace",
            ])
            .current_dir(&guests)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the stage components failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(guests.join("target/wasm32-wasip2/release"))
    });
    match built {
        Ok(dir) => dir,
        Err(e) => panic!("{e}"),
    }
}

/// The path of a built component, e.g. `component("segment")`.
pub fn component(name: &str) -> PathBuf {
    let path = components_dir().join(format!("{}.wasm", name.replace('-', "_")));
    if path.exists() {
        return path;
    }
    components_dir().join(format!("{name}.wasm"))
}

/// The `ward` binary under test as the compiler child: the test binary itself is not one.
pub fn test_compiler() -> Compiler {
    Compiler::Child {
        program: PathBuf::from(env!("CARGO_BIN_EXE_ward")),
        limits: CompileLimits::default(),
    }
}

/// Engine options for tests: the shared compile cache and the `ward` binary as compiler.
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        cache_dir: Some(cache_dir()),
        compiler: test_compiler(),
        ..EngineOptions::default()
    }
}

pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| Engine::new(engine_options()).expect("the engine starts"))
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ward-test-")
        .tempdir()
        .expect("a temporary directory")
}

/// Writes `yaml` as `pipeline.yaml` in `dir`, replacing `{components}` with the directory of
/// the built components.
pub fn write_pipeline(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("pipeline.yaml");
    let text = yaml.replace("{components}", &components_dir().display().to_string());
    std::fs::write(&path, text).expect("writing the pipeline");
    path
}

/// A pipeline of one `misbehave` stage with the given behaviour and requests.
pub fn misbehave_pipeline(dir: &Path, behaviour: &str, requests: &str) -> PathBuf {
    write_pipeline(
        dir,
        &format!(
            "api-version: 0.1
name: misbehave
operators:
  - name: victim
    component:
      path: {{components}}/misbehave.wasm
    parameters:
      behaviour: {behaviour}
    input:
      - path: /payload
    requests: {{{requests}}}
"
        ),
    )
}

/// Runs the pipeline at `pipeline` in-process on `payload`, with job parameters `params`.
pub fn run_pipeline(
    pipeline: &Path,
    payload: &Path,
    params: &[(&str, &str)],
) -> (JobSummary, tempfile::TempDir) {
    let jobs = tempdir();
    let request = JobRequest {
        pipeline: ward::pipeline::load(pipeline)
            .unwrap_or_else(|e| panic!("pipeline invalid:\n{e}")),
        payload: payload.to_path_buf(),
        job_dir: jobs.path().join("job"),
        job_id: new_job_id(),
        tenant: "test".into(),
        parameters: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        datasets: Default::default(),
        cpu_slots: 2,
        cancel: None,
        preempted: None,
    };
    let summary = run_job(engine(), &request, Arc::new(NoObserver))
        .unwrap_or_else(|e| panic!("job could not run: {e}"));
    (summary, jobs)
}

/// A payload directory holding one small text file.
pub fn small_payload() -> tempfile::TempDir {
    let dir = tempdir();
    std::fs::write(dir.path().join("notes.txt"), b"a payload file").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/data.bin"), [1u8, 2, 3, 4]).unwrap();
    dir
}

/// The `ward` binary with the shared compile cache.
pub fn ward() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ward"));
    cmd.env("WARD_CACHE_DIR", cache_dir());
    cmd
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_ward(args: &[&str]) -> Output {
    let out = ward().args(args).output().expect("the ward binary runs");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ward run PIPELINE --payload PAYLOAD EXTRA...`.
pub fn ward_run(pipeline: &Path, payload: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        pipeline.to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ward(&args)
}

/// DCMTK's dcmdump, which the tests use as the independent reader of DICOM files.
pub fn dcmdump(args: &[&str]) -> Output {
    let out = Command::new(dcmtk_tool("dcmdump"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("dcmdump is needed (apt-get install -y dcmtk): {e}"));
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `cmd` and returns its standard output; a failure shows its standard error.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?} does not start: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The path of DCMTK's `tool` (e.g. `storescp`), checked to be DCMTK's: other packages
/// install programs of the same names (pynetdicom's `storescp`, `storescu`, `echoscu` come
/// first on PATH where it is installed), and a test must talk to the peer it means. Looks in
/// `$DCMTK_BIN` (default `/usr/bin`, where Debian's dcmtk puts them); a missing or foreign
/// tool fails the test, never skips it.
pub fn dcmtk_tool(tool: &str) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static CHECKED: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let name = Path::new(tool)
        .file_name()
        .expect("a program name")
        .to_string_lossy()
        .into_owned();
    let checked = CHECKED.get_or_init(Default::default);
    if let Some(path) = checked.lock().unwrap().get(&name) {
        return path.clone();
    }
    let dir = std::env::var_os("DCMTK_BIN").unwrap_or_else(|| "/usr/bin".into());
    let path = Path::new(&dir).join(&name);
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} is needed: DCMTK's {name} (apt-get install -y dcmtk): {e}",
                path.display()
            )
        });
    let text = String::from_utf8_lossy(&version.stdout).to_lowercase();
    assert!(
        text.contains("dcmtk") || text.contains("offis"),
        "{} is not DCMTK's {name} (its --version says {:?}); install dcmtk or set DCMTK_BIN",
        path.display(),
        text.lines().next().unwrap_or("")
    );
    checked.lock().unwrap().insert(name, path.clone());
    path
}
