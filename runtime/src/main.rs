//! `ward`: run medical-imaging pipelines of sandboxed WebAssembly stages.

mod bench;
mod cli;
mod conformance;

fn main() {
    std::process::exit(cli::main());
}
