//! `ward __compile-component --out FILE`: the compiler child the host runs under a time
//! and memory bound (see `engine::compile_child`). Not for people: hidden from `--help`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CompileChildArgs {
    /// Where to write the compiled artefact (created; must not exist).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: CompileChildArgs) -> i32 {
    ward::engine::compile_child_main(&args.out)
}
