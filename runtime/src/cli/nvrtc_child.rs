//! `ward __nvrtc`: the child process in which the host compiles a stage's CUDA C with NVRTC,
//! under the memory and time limits the host sets (gpu-host's `nvrtc::child`). CUDA C on
//! stdin, PTX on stdout. Hidden: the host runs it, people do not.

#[derive(clap::Args)]
pub struct NvrtcChildArgs {
    /// The virtual architecture to compile for (one of Ward's, e.g. compute_90).
    #[arg(long)]
    arch: Option<String>,
}

pub fn run(args: NvrtcChildArgs) -> anyhow::Result<i32> {
    Ok(gpu_host::nvrtc::child_main(args.arch.as_deref()))
}
