//! Host bindings for the `ward:stage` world, generated from `wit/` by wasmtime's bindgen.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stage",
    // `run` is called asynchronously so the wall-clock deadline also ends a stage that is
    // blocked in a host call (WASI poll, sleep); the contract's own imports stay synchronous.
    exports: { default: async },
    with: {
        "ward:stage/ports.input-port": super::unavailable::InputPortHandle,
        "ward:stage/ports.output-port": super::unavailable::OutputPortHandle,
        "ward:stage/gpu.buffer": super::unavailable::BufferHandle,
        "ward:stage/gpu.module": super::unavailable::ModuleHandle,
    },
});

pub use self::ward::stage::{context, gpu, ports, types, volumes};
