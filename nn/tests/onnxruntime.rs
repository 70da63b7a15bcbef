//! The inference host against the real ONNX Runtime library that `WARD_ONNXRUNTIME` names
//! (`.ci/run` installs the onnxruntime wheel and sets it; a run without it fails here, it is
//! not skipped).

use std::sync::Arc;
use std::time::{Duration, Instant};
use ward_nn::onnx_builder::OnnxModel;
use ward_nn::{
    infer, library_from_env, onnxruntime, ElementType, HostTensor, LoadOptions, Model, ModelCache,
    ModelKey, NnError, OnnxRuntime, Target,
};

fn runtime() -> &'static OnnxRuntime {
    let library =
        library_from_env().expect("WARD_ONNXRUNTIME must name libonnxruntime.so (.ci/run sets it)");
    onnxruntime(Some(&library)).expect("ONNX Runtime loads")
}

fn options() -> LoadOptions {
    LoadOptions {
        max_model_bytes: 64 << 20,
        threads: 1,
        gpu_memory: 0,
    }
}

fn f32_tensor(dims: Vec<u32>, values: &[f32]) -> HostTensor {
    let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    HostTensor::new(dims, ElementType::F32, data, 1 << 30).unwrap()
}

fn f32_values(t: &HostTensor) -> Vec<f32> {
    t.data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_model_runs_and_answers_its_outputs() {
    let model = Model::load(
        runtime(),
        "adder",
        &OnnxModel::adder(4).to_bytes(),
        Target::Cpu,
        &options(),
    )
    .unwrap();
    assert_eq!(model.inputs[0].describe(), "FP32 [1, 4]");
    let out = block_on(infer(
        Arc::new(model),
        vec![(
            "x".into(),
            f32_tensor(vec![1, 4], &[10.0, 20.0, 30.0, 40.0]),
        )],
        1 << 20,
    ))
    .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, "y");
    assert_eq!(out[0].1.dims, [1, 4]);
    assert_eq!(f32_values(&out[0].1), [11.0, 22.0, 33.0, 44.0]);
}

#[test]
fn bad_models_are_errors_that_name_them() {
    let rt = runtime();
    let e = Model::load(
        rt,
        "organs",
        b"this is not a model",
        Target::Cpu,
        &options(),
    )
    .unwrap_err();
    assert!(
        matches!(e, NnError::NotOnnx { .. } | NnError::Load { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("model 'organs'"), "{e}");

    let e = Model::load(
        rt,
        "odd",
        &OnnxModel::unknown_operator().to_bytes(),
        Target::Cpu,
        &options(),
    )
    .unwrap_err();
    assert!(matches!(e, NnError::UnsupportedOperator { .. }), "{e}");
    assert!(e.to_string().contains("WardNoSuchOperator"), "{e}");

    let big = OnnxModel::adder(1 << 16).to_bytes();
    let small_limit = LoadOptions {
        max_model_bytes: 1 << 16,
        ..options()
    };
    let e = Model::load(rt, "big", &big, Target::Cpu, &small_limit).unwrap_err();
    assert!(matches!(e, NnError::ModelTooLarge { .. }), "{e}");

    // The library this test loads is the CPU one: a GPU target is refused, clearly.
    let gpu = LoadOptions {
        gpu_memory: 1 << 30,
        ..options()
    };
    match Model::load(
        rt,
        "adder",
        &OnnxModel::adder(4).to_bytes(),
        Target::Gpu,
        &gpu,
    ) {
        Err(e @ NnError::Target { .. }) => {
            assert!(e.to_string().contains("execution-target cpu"), "{e}")
        }
        Err(e) => panic!("unexpected error: {e}"),
        Ok(_) => eprintln!("this ONNX Runtime has a CUDA execution provider and a device"),
    }
    let e = Model::load(
        rt,
        "adder",
        &big,
        Target::Gpu,
        &LoadOptions {
            gpu_memory: 1024,
            ..options()
        },
    )
    .unwrap_err();
    assert!(matches!(e, NnError::GpuQuota { .. }), "{e}");
}

#[test]
fn wrong_tensors_are_refused_naming_input_and_shape() {
    let model = Arc::new(
        Model::load(
            runtime(),
            "adder",
            &OnnxModel::adder(4).to_bytes(),
            Target::Cpu,
            &options(),
        )
        .unwrap(),
    );
    let e = block_on(infer(
        model.clone(),
        vec![("x".into(), f32_tensor(vec![1, 5], &[0.0; 5]))],
        1 << 20,
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "model 'adder': input 'x' expects FP32 [1, 4], got FP32 [1, 5]"
    );
    let e = block_on(infer(
        model.clone(),
        vec![("z".into(), f32_tensor(vec![1, 4], &[0.0; 4]))],
        1 << 20,
    ))
    .unwrap_err();
    assert!(matches!(e, NnError::UnknownInput { .. }), "{e}");
    let e = block_on(infer(model.clone(), vec![], 1 << 20)).unwrap_err();
    assert!(matches!(e, NnError::MissingInput { .. }), "{e}");
    // An output over the limit is not copied out.
    let e = block_on(infer(
        model,
        vec![("x".into(), f32_tensor(vec![1, 4], &[0.0; 4]))],
        8,
    ))
    .unwrap_err();
    assert!(matches!(e, NnError::TensorTooLarge { .. }), "{e}");
}

#[test]
fn a_dropped_inference_is_terminated() {
    // 2000 products of [1024, 1024] by [1024, 1024]: minutes of work on one thread.
    let model = Arc::new(
        Model::load(
            runtime(),
            "chain",
            &OnnxModel::matmul_chain(1024, 2000).to_bytes(),
            Target::Cpu,
            &options(),
        )
        .unwrap(),
    );
    assert_eq!(model.inputs[0].describe(), "FP32 [rows, 1024]");
    let x = f32_tensor(vec![1024, 1024], &vec![1.0; 1024 * 1024]);
    let started = Instant::now();
    let r = block_on(async {
        tokio::time::timeout(
            Duration::from_millis(300),
            infer(model.clone(), vec![("x".into(), x)], 1 << 30),
        )
        .await
    });
    assert!(r.is_err(), "the inference should still have been running");
    // The session serves one inference at a time: a one-row run of the same model answers
    // only once the stopped one has let it go, which it does when ONNX Runtime terminates
    // it (between two products), not after the minutes the whole chain takes.
    let one_row = f32_tensor(vec![1, 1024], &vec![1.0; 1024]);
    let out = block_on(infer(model, vec![("x".into(), one_row)], 1 << 30)).unwrap();
    assert_eq!(out[0].1.dims, [1, 1024]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "the stopped inference held the model for {took:?}"
    );
    eprintln!("stopped and reused in {took:?}");
}

#[test]
fn the_cache_loads_a_model_once() {
    let cache = ModelCache::new();
    let bytes = OnnxModel::adder(4).to_bytes();
    let key = ModelKey {
        digest: ward_nn::digest_of(&bytes),
        target: Target::Cpu,
    };
    let a = cache
        .get_or_load(key.clone(), || {
            Model::load(runtime(), "adder", &bytes, Target::Cpu, &options())
        })
        .unwrap();
    let b = cache.get_or_load(key, || panic!("loaded twice")).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.loads(), 1);
}
