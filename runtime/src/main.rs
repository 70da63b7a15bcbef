//! `ward`: run medical-imaging pipelines of sandboxed WebAssembly stages.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
