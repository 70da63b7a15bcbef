//! The pipeline file as written: serde structures with source spans, before validation.
//!
//! The shape follows Clara Deploy's pipeline definition (api-version, name, parameters,
//! operators with input/output/requests) with `component:` in place of `container:`.

use marked_yaml::Spanned;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PipelineFile {
    pub api_version: Spanned<String>,
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Pipeline-wide parameter defaults, visible to every operator.
    #[serde(default)]
    pub parameters: HashMap<Spanned<String>, Spanned<String>>,
    /// Bytes all the job's port channels may hold at once (e.g. 256Mi); see `PortsBudget`.
    #[serde(default)]
    pub ports_budget: Option<Spanned<String>>,
    /// Models stages load by name through `wasi:nn` (`load-by-name`).
    #[serde(default)]
    pub models: Vec<Spanned<ModelDef>>,
    /// `false`: a running job of this pipeline is never ended to make room for a job of
    /// higher priority (the default is `true`).
    #[serde(default)]
    pub preemptible: Option<Spanned<String>>,
    pub operators: Vec<Spanned<OperatorDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ModelDef {
    /// The name stages load it by.
    pub name: Spanned<String>,
    /// The dataset (read-only volume) that holds the model file.
    pub dataset: Spanned<String>,
    /// The file within the dataset.
    pub path: Spanned<String>,
    /// `sha256:<hex>` of the file.
    pub digest: Spanned<String>,
    /// `cpu` (the default) or `gpu`.
    #[serde(default)]
    pub execution_target: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OperatorDef {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub component: Spanned<ComponentDef>,
    #[serde(default)]
    pub input: Vec<Spanned<InputDef>>,
    #[serde(default)]
    pub output: Vec<Spanned<OutputDef>>,
    /// Streaming ports: channels to and from stages that run at the same time.
    #[serde(default)]
    pub ports: Option<Spanned<PortsDef>>,
    #[serde(default)]
    pub requests: Option<Spanned<RequestsDef>>,
    /// Operator parameters, overriding the pipeline's.
    #[serde(default)]
    pub parameters: HashMap<Spanned<String>, Spanned<String>>,
    /// Environment variables the stage sees (it sees no others).
    #[serde(default)]
    pub env: HashMap<Spanned<String>, Spanned<String>>,
    /// Command-line arguments the stage sees (after the operator's name as argv[0]).
    #[serde(default)]
    pub args: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ComponentDef {
    /// A `.wasm` component file, relative to the pipeline file.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// A registry reference (`registry/name:tag`); needs `digest`.
    #[serde(default, rename = "ref")]
    pub reference: Option<Spanned<String>>,
    /// `sha256:<hex>`: the component must have exactly this digest.
    #[serde(default)]
    pub digest: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InputDef {
    /// The upstream operator; absent means the job's payload (unless `dataset` is given).
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    /// The upstream operator's output name; may be omitted when it has one output.
    #[serde(default)]
    pub name: Option<Spanned<String>>,
    /// A named dataset instead of an operator's output.
    #[serde(default)]
    pub dataset: Option<Spanned<String>>,
    /// Where the volume appears inside the stage.
    pub path: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutputDef {
    pub name: Spanned<String>,
    pub path: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RequestsDef {
    #[serde(default)]
    pub memory: Option<Spanned<String>>,
    #[serde(default)]
    pub cpu: Option<Spanned<String>>,
    #[serde(default)]
    pub gpu: Option<Spanned<String>>,
    /// GPU memory the stage may allocate (e.g. 2Gi).
    #[serde(default)]
    pub gpu_memory: Option<Spanned<String>>,
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// Bytes the stage may write to its results (e.g. 20Gi).
    #[serde(default)]
    pub disk: Option<Spanned<String>>,
    /// Files the stage may write to its results.
    #[serde(default)]
    pub files: Option<Spanned<String>>,
    /// `true`: the stage may use `wasi:nn` (inference on the host).
    #[serde(default)]
    pub inference: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PortsDef {
    #[serde(default, rename = "in")]
    pub inputs: Vec<Spanned<InPortDef>>,
    #[serde(default, rename = "out")]
    pub outputs: Vec<Spanned<OutPortDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct InPortDef {
    /// The port's name as this stage opens it.
    pub name: Spanned<String>,
    /// The operator that writes into it.
    pub from: Spanned<String>,
    /// The writer's output port; defaults to `name`.
    #[serde(default)]
    pub port: Option<Spanned<String>>,
    /// The message type this stage expects; must match the writer's when both are given.
    #[serde(default, rename = "type")]
    pub message_type: Option<Spanned<String>>,
    /// `true` on every entry of a port that several operators write into.
    #[serde(default)]
    pub fan_in: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OutPortDef {
    pub name: Spanned<String>,
    #[serde(default, rename = "type")]
    pub message_type: Option<Spanned<String>>,
    /// Messages a channel to one reader holds before `send` blocks.
    #[serde(default)]
    pub capacity: Option<Spanned<String>>,
    /// The largest message, e.g. 16Mi.
    #[serde(default)]
    pub max_message: Option<Spanned<String>>,
}
