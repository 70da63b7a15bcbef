//! Host bindings for the `ward:stage` world, generated from `wit/` by wasmtime's bindgen.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "stage",
    // `run` is called asynchronously so the wall-clock deadline also ends a stage that is
    // blocked in a host call (WASI poll, sleep); the contract's own imports stay synchronous.
    exports: { default: async },
    // A port call may wait for a peer; it waits as a future, so the deadline still applies,
    // and it may end the stage (a deadlock) with a trap.
    imports: {
        "ward:stage/ports.[method]input-port.recv": async | trappable,
        "ward:stage/ports.[method]output-port.send": async | trappable,
    },
    with: {
        "ward:stage/ports.input-port": super::ports::InputPort,
        "ward:stage/ports.output-port": super::ports::OutputPort,
        "ward:stage/gpu.buffer": super::gpu::BufferHandle,
        "ward:stage/gpu.module": super::gpu::ModuleHandle,
    },
});

pub use self::ward::stage::{context, gpu, ports, types, volumes};
