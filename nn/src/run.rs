//! An inference runs on a thread of its own, off the stage's thread, so the stage's
//! deadline can end it: the stage awaits the answer, and when the stage is stopped (its
//! future dropped) ONNX Runtime is told to terminate, which it does between two operators.

use crate::model::Model;
use crate::tensor::HostTensor;
use crate::NnError;
use ort::session::RunOptions;
use std::sync::Arc;

/// Tells ONNX Runtime to stop the inference when the awaiting future is dropped unanswered.
struct TerminateOnDrop {
    options: Arc<RunOptions>,
    answered: bool,
}

impl Drop for TerminateOnDrop {
    fn drop(&mut self) {
        if !self.answered {
            if let Err(e) = self.options.terminate() {
                tracing::warn!(error = %e, "cannot tell ONNX Runtime to stop an inference");
            }
        }
    }
}

/// Runs `model` on `inputs` on its own thread and awaits the answer.
pub async fn infer(
    model: Arc<Model>,
    inputs: Vec<(String, HostTensor)>,
    max_output: u64,
) -> Result<Vec<(String, HostTensor)>, NnError> {
    // Checked here too, so a wrong shape is answered without a thread.
    model.check_inputs(&inputs)?;
    let failed = |why: String| NnError::Run {
        model: model.name.clone(),
        why,
    };
    let options = Arc::new(RunOptions::new().map_err(|e| failed(e.to_string()))?);
    let (answer, answered) = tokio::sync::oneshot::channel();
    let (m, o) = (model.clone(), options.clone());
    std::thread::Builder::new()
        .name("ward-inference".into())
        .spawn(move || {
            let _ = answer.send(m.run_blocking(inputs, &o, max_output));
        })
        .map_err(|e| failed(format!("cannot start the inference thread: {e}")))?;
    let mut guard = TerminateOnDrop {
        options,
        answered: false,
    };
    let result = answered.await;
    guard.answered = true;
    result.unwrap_or_else(|_| {
        Err(failed(
            "the inference thread ended without an answer".into(),
        ))
    })
}
