//! A WASI command component (it exports `wasi:cli/run`, not `run`): Ward must refuse it
//! as a stage when it is loaded, naming what it exports.

fn main() {
    println!("hello from a component that is not a Ward stage");
}
