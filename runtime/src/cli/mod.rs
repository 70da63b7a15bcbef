//! The command line: parsing, logging set-up, and exit codes.
//!
//! Exit codes: 0 success; 1 the job ran and failed (or was cancelled, or `ward job wait`
//! gave up at its `--timeout`); 2 the input was wrong (pipeline, component, payload,
//! arguments, a request the job service refused with a 4xx such as an unknown job) and
//! nothing ran; 3 the job service failed once a request was under way (it could not be
//! reached, the connection broke, it answered 5xx, or its answer could not be read).

/// Prints a line to stdout, ignoring a closed pipe (`ward run ... | head` must not panic).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod client;
mod cluster;
mod compile_child;
mod conformance;
mod convert;
mod dicom;
mod inspect;
mod key;
mod new;
mod node;
mod nvrtc_child;
mod progress;
mod publish;
mod pull;
mod registry_args;
mod run;
mod sample;
mod serve;
mod sign;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ward",
    version,
    about = "Run medical-imaging pipelines of sandboxed WebAssembly stages"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline once on a payload directory.
    Run(run::RunArgs),
    /// Check a pipeline file and its components without running anything.
    Validate(validate::ValidateArgs),
    /// Write a Ward pipeline file from another system's pipeline definition.
    #[command(subcommand)]
    Convert(convert::ConvertCommand),
    /// Show a component's imports, exports, size and digest, and whether it is a stage.
    Inspect(inspect::InspectArgs),
    /// Check a component before publishing it: world, imports, runs on sample payloads,
    /// determinism, payload untouched.
    Conformance(conformance::ConformanceArgs),
    /// Publish a component to an OCI registry: conformance, push, sign; prints REF@DIGEST.
    Publish(publish::PublishArgs),
    /// Fetch a registry component into the local store and verify it against trusted keys.
    Pull(pull::PullArgs),
    /// Sign a component manifest in a registry (cosign's key-based scheme).
    Sign(sign::SignArgs),
    /// Verify a registry component's digests and signature against public keys.
    Verify(sign::VerifyArgs),
    /// Signing keys for publishing components.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Measure compile, instantiate, pipeline and sandbox-vs-native figures.
    Bench(bench::BenchArgs),
    /// Write the start of something new: a stage crate.
    #[command(subcommand)]
    New(new::NewCommand),
    /// Write sample data.
    #[command(subcommand)]
    Sample(sample::SampleCommand),
    /// The DICOM adapter: listen (C-ECHO/C-STORE SCP), echo, send.
    #[command(subcommand)]
    Dicom(dicom::DicomCommand),
    /// The job service: REST API, queue, tenants, audit.
    Serve(serve::ServeArgs),
    /// The job service's audit trail: verify and head on its machine, list through its API.
    #[command(subcommand)]
    Audit(serve::AuditCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(serve::TokenCommand),
    /// Pipelines on a job service.
    Pipeline {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::PipelineCommand,
    },
    /// Payloads on a job service.
    Payload {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::PayloadCommand,
    },
    /// Named, immutable datasets on a job service (atlases, model weights).
    Dataset {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::DatasetCommand,
    },
    /// Jobs on a job service.
    Job {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::JobCommand,
    },
    /// Registry components pinned by a job service's stored pipelines.
    Component {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::ComponentCommand,
    },
    /// Results of jobs on a job service.
    Results {
        #[command(flatten)]
        connection: client::Connection,
        #[command(subcommand)]
        command: client::ResultsCommand,
    },
    /// Compiles one component for the host, under the limits the host set (internal).
    #[command(name = "__compile-component", hide = true)]
    CompileComponentChild(compile_child::CompileChildArgs),
    /// Ward on Kubernetes: its CRDs, its RBAC rules, the scale simulation.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// The node runtime of Ward on Kubernetes (one per node): claims WardJobs and runs them.
    Node(node::NodeArgs),
    /// One run of the segment stage or its native twin, counted by `ward bench --instructions`
    /// (internal).
    #[command(name = "__bench-segment-once", hide = true)]
    BenchSegmentOnce(bench::SegmentOnceArgs),
    /// The CUDA C compiler's child process, run by the host.
    #[command(name = "__nvrtc", hide = true)]
    NvrtcChild(nvrtc_child::NvrtcChildArgs),
}

pub const EXIT_FAILED: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_SERVICE_FAILED: i32 = 3;

pub fn main() -> i32 {
    let cli = Cli::parse();
    // The long-running services say what they do (associations, payloads, jobs, exports);
    // one-shot commands only warn.
    let default_level = match &cli.command {
        Command::Serve(_)
        | Command::Node(_)
        | Command::Dicom(dicom::DicomCommand::Listen { .. }) => "info",
        _ => "warn",
    };
    init_tracing(cli.log_format, default_level);
    let result = match cli.command {
        Command::CompileComponentChild(args) => return compile_child::run(args),
        Command::Run(args) => run::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Convert(cmd) => convert::run(cmd),
        Command::Inspect(args) => inspect::run(args),
        Command::Sample(cmd) => sample::run(cmd),
        Command::New(cmd) => new::run(cmd),
        Command::Bench(args) => bench::run(args),
        Command::BenchSegmentOnce(args) => bench::segment_once(args),
        Command::Conformance(args) => conformance::run(args),
        Command::Publish(args) => publish::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Sign(args) => sign::run_sign(args),
        Command::Verify(args) => sign::run_verify(args),
        Command::Key(cmd) => key::run(cmd),
        Command::Dicom(cmd) => dicom::run(cmd),
        Command::Serve(args) => serve::serve(args),
        Command::Audit(cmd) => serve::audit(cmd),
        Command::Token(cmd) => serve::token(cmd),
        Command::Pipeline {
            connection,
            command,
        } => client::pipeline(&connection, command),
        Command::Payload {
            connection,
            command,
        } => client::payload(&connection, command),
        Command::Dataset {
            connection,
            command,
        } => client::dataset(&connection, command),
        Command::Job {
            connection,
            command,
        } => client::job(&connection, command),
        Command::Results {
            connection,
            command,
        } => client::results(&connection, command),
        Command::Component {
            connection,
            command,
        } => client::component(&connection, command),
        Command::NvrtcChild(args) => nvrtc_child::run(args),
        Command::Cluster(cmd) => cluster::run(cmd),
        Command::Node(args) => node::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<client::ServiceFailed>().is_some() {
                EXIT_SERVICE_FAILED
            } else {
                EXIT_BAD_INPUT
            }
        }
    }
}

/// Logs to stderr, filtered by `WARD_LOG` (e.g. `WARD_LOG=debug`, `WARD_LOG=ward::dicom=trace`)
/// or at `default_level`.
fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Text from a stage (its error, its stderr) made safe for a terminal: control characters
/// other than newline and tab are replaced, so a stage cannot drive the user's terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Parses `K=V` arguments.
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("'{text}' is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every command, subcommand and argument of `ward`, without help text.
    fn undocumented(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                missing.push(path.clone());
            }
            undocumented(sub, &path, missing);
        }
    }

    #[test]
    fn every_command_and_argument_has_help_text() {
        let mut cmd = super::Cli::command();
        // Built, so clap's own `help` subcommands and `--help`/`--version` are walked too.
        cmd.build();
        let mut missing = Vec::new();
        undocumented(&cmd, "ward", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
        let job = cmd.find_subcommand("job").expect("ward job");
        assert!(
            job.find_subcommand("wait").is_some(),
            "the walk reaches the client's commands"
        );
    }
    #[test]
    fn text_from_a_stage_cannot_drive_the_terminal() {
        let shown = super::printable("50% \u{1b}[2J\u{1b}]0;owned\u{7}done\r\nnext\tline\n");
        assert!(!shown
            .chars()
            .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\r'));
        assert!(shown.contains("50% ") && shown.contains("done") && shown.contains("next\tline\n"));
    }
}
