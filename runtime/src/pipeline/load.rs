//! Reading a pipeline file and turning it into a validated [`Pipeline`].
//!
//! Validation collects every problem it can find (not just the first), each with the
//! file:line:col where it was written and the operator's name.

use super::error::{PipelineError, Problem};
use super::file_model::{ComponentDef, InputDef, ModelDef, OperatorDef, PipelineFile, RequestsDef};
use super::graph::order_stages;
use super::located_yaml::{load_error_message, load_error_position};
use super::model::*;
use super::ports::{group_ports, InPortDraft};
use super::quantity::{parse_bytes, parse_duration};
use marked_yaml::{LoaderOptions, Spanned};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The pipeline file format versions this runtime reads.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1", "0.1.0"];

/// Reads and validates the pipeline file at `path`. Component paths are resolved against
/// the file's directory and must exist; whether they are valid components is checked by the
/// engine when it loads them (`Engine::load_component`, as `ward validate` and `ward run` do).
pub fn load(path: &Path) -> Result<Pipeline, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validates pipeline `text` as if read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Pipeline, PipelineError> {
    let mut v = Validator {
        file: path.to_path_buf(),
        base_dir: path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(".")),
        problems: Vec::new(),
        out_port_locations: HashMap::new(),
        ports_budget: PortsBudget::default(),
        block_starts: HashMap::new(),
    };
    let options = LoaderOptions::default().error_on_duplicate_keys(true);
    let node = marked_yaml::parse_yaml_with_options(0, text, options).map_err(|e| {
        let (line, column) = load_error_position(&e);
        PipelineError::Invalid(vec![Problem {
            location: v.at(line, column),
            operator: None,
            message: format!(
                "not valid YAML: {}",
                load_error_message(&e, "api-version, name, operators")
            ),
        }])
    })?;
    // A Clara Deploy definition fails on its first `container:`; say what to do with it.
    if let Some(version) = node.as_mapping().and_then(|m| m.get_scalar("api-version")) {
        if super::clara::is_clara_api_version(version.as_str()) {
            let (line, column) = super::locate::start_of(
                node.as_mapping().unwrap().get_node("api-version").unwrap(),
            );
            return Err(PipelineError::Invalid(vec![Problem {
                location: v.at(line, column),
                operator: None,
                message: format!(
                    "api-version '{}' is a Clara Deploy pipeline definition; convert it with `ward convert clara {}` (supported here: {})",
                    version.as_str(),
                    path.display(),
                    SUPPORTED_API_VERSIONS.join(", ")
                ),
            }]));
        }
    }
    let file: PipelineFile = super::locate::from_node(&node).map_err(|e| {
        PipelineError::Invalid(vec![Problem {
            location: v.at(e.line, e.column),
            operator: e.operator,
            message: e.message,
        }])
    })?;
    v.block_starts = super::locate::block_mapping_starts(&node, text);
    let pipeline = v.pipeline(file);
    match pipeline {
        Some(p) if v.problems.is_empty() => Ok(p),
        _ => {
            v.problems
                .sort_by_key(|p| (p.location.line, p.location.column));
            Err(PipelineError::Invalid(v.problems))
        }
    }
}

pub(super) struct Validator {
    file: PathBuf,
    base_dir: PathBuf,
    problems: Vec<Problem>,
    /// Where each (operator, output port) was declared.
    pub(super) out_port_locations: HashMap<(String, String), Location>,
    /// The job's channel budget, read before the operators' ports are checked against it.
    pub(super) ports_budget: PortsBudget,
    /// Where each block mapping is written, by the mark the parser gave it (see
    /// `locate::block_mapping_starts`).
    block_starts: HashMap<(usize, usize), (usize, usize)>,
}

/// What validation learnt of one operator before the graph is built.
struct Draft {
    /// Index of the operator in the file.
    index: usize,
    spec: StageSpec,
    /// Upstream operator names, with where each was written.
    from: Vec<(String, Location)>,
    /// Input port entries, resolved once every operator is known.
    ports_in: Vec<InPortDraft>,
}

impl Validator {
    fn at(&self, line: usize, column: usize) -> Location {
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    pub(super) fn loc<T>(&self, spanned: &Spanned<T>) -> Location {
        match spanned.span().start() {
            Some(m) => {
                let mark = (m.line(), m.column());
                let (line, column) = self.block_starts.get(&mark).copied().unwrap_or(mark);
                self.at(line, column)
            }
            None => self.at(1, 1),
        }
    }

    pub(super) fn problem(
        &mut self,
        location: Location,
        operator: Option<&str>,
        message: impl Into<String>,
    ) {
        self.problems.push(Problem {
            location,
            operator: operator.map(str::to_owned),
            message: message.into(),
        });
    }

    fn pipeline(&mut self, file: PipelineFile) -> Option<Pipeline> {
        if !SUPPORTED_API_VERSIONS.contains(&file.api_version.as_str()) {
            let loc = self.loc(&file.api_version);
            self.problem(
                loc,
                None,
                format!(
                    "api-version '{}' is not supported (supported: {})",
                    file.api_version.as_str(),
                    SUPPORTED_API_VERSIONS.join(", ")
                ),
            );
        }
        if let Err(why) = check_identifier(&file.name) {
            let loc = self.loc(&file.name);
            self.problem(loc, None, format!("pipeline name {why}"));
        }
        if file.operators.is_empty() {
            self.problem(self.at(1, 1), None, "the pipeline has no operators");
            return None;
        }
        let pipeline_params = self.string_map(&file.parameters, None, "parameter");
        let models = self.models(&file.models);
        if let Some(budget) = &file.ports_budget {
            self.ports_budget = self.ports_budget(budget);
        }
        let preemptible = match file.preemptible.as_ref().map(|p| p.as_str()) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                let loc = self.loc(file.preemptible.as_ref().expect("matched Some"));
                self.problem(
                    loc,
                    None,
                    format!("preemptible: '{other}' is not true or false"),
                );
                true
            }
        };

        let mut drafts: Vec<Draft> = Vec::new();
        let mut seen: HashMap<String, Location> = HashMap::new();
        for (index, op) in file.operators.iter().enumerate() {
            let loc = self.loc(&op.name);
            if let Some(first) = seen.get(op.name.as_str()) {
                let msg = format!("duplicate operator name (first defined at {first})");
                self.problem(loc.clone(), Some(op.name.as_str()), msg);
                continue;
            }
            seen.insert(op.name.to_string(), loc);
            drafts.push(self.operator(index, op, &pipeline_params));
        }

        // Outputs of every operator, to check `from`/`name` pairs.
        let outputs: HashMap<String, Vec<String>> = drafts
            .iter()
            .map(|d| {
                (
                    d.spec.name.clone(),
                    d.spec.outputs.iter().map(|o| o.name.clone()).collect(),
                )
            })
            .collect();
        for draft in drafts.iter_mut() {
            self.resolve_inputs(draft, &file.operators[draft.index], &outputs);
        }
        let port_drafts: Vec<(usize, Vec<InPortDraft>)> = drafts
            .iter_mut()
            .enumerate()
            .map(|(i, d)| (i, std::mem::take(&mut d.ports_in)))
            .collect();
        let (mut specs, froms): (Vec<StageSpec>, Vec<_>) =
            drafts.into_iter().map(|d| (d.spec, d.from)).unzip();
        self.connect_ports(&mut specs, port_drafts);
        let problems_before_graph = self.problems.len();
        let stages = order_stages(specs.into_iter().zip(froms).collect())
            .and_then(|mut stages| group_ports(&mut stages).map(|()| stages));
        match stages {
            Ok(stages) if problems_before_graph == self.problems.len() => Some(Pipeline {
                name: file.name.to_string(),
                description: file.description.clone(),
                file: self.file.clone(),
                stages,
                ports_budget: self.ports_budget.clone(),
                models,
                preemptible,
            }),
            Ok(_) => None,
            Err(cycle) => {
                self.problems.push(cycle);
                None
            }
        }
    }

    fn string_map(
        &mut self,
        map: &HashMap<Spanned<String>, Spanned<String>>,
        operator: Option<&str>,
        what: &str,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in map {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                let loc = self.loc(k);
                self.problem(
                    loc,
                    operator,
                    format!("{what} name '{}' is not valid", k.as_str()),
                );
            }
            out.insert(k.to_string(), v.to_string());
        }
        out
    }

    fn operator(
        &mut self,
        index: usize,
        op: &Spanned<OperatorDef>,
        pipeline_params: &BTreeMap<String, String>,
    ) -> Draft {
        let name = op.name.to_string();
        if let Err(why) = check_identifier(&op.name) {
            let loc = self.loc(&op.name);
            self.problem(loc, Some(&name), format!("operator name {why}"));
        }
        let component = self.component(&op.component, &name);
        let mut parameters = pipeline_params.clone();
        parameters.extend(self.string_map(&op.parameters, Some(&name), "parameter"));
        let env = self.string_map(&op.env, Some(&name), "environment variable");
        let requests = match &op.requests {
            Some(r) => self.requests(r, &name),
            None => Requests::default(),
        };

        let mut guest_paths: HashMap<String, Location> = HashMap::new();
        let mut outputs = Vec::new();
        for out in &op.output {
            if let Err(why) = check_identifier(&out.name) {
                let loc = self.loc(&out.name);
                self.problem(loc, Some(&name), format!("output name {why}"));
            }
            if outputs.iter().any(|o: &OutputSpec| o.name == *out.name) {
                let loc = self.loc(&out.name);
                self.problem(
                    loc,
                    Some(&name),
                    format!("two outputs are named '{}'", out.name.as_str()),
                );
            }
            self.guest_path(&out.path, &name, &mut guest_paths);
            outputs.push(OutputSpec {
                name: out.name.to_string(),
                guest_path: out.path.to_string(),
            });
        }
        if outputs.is_empty() {
            outputs.push(OutputSpec {
                name: "results".into(),
                guest_path: "/results".into(),
            });
        }
        for input in &op.input {
            self.guest_path(&input.path, &name, &mut guest_paths);
        }
        let (ports_in, ports_out) = self.ports(op.ports.as_ref(), &name);
        Draft {
            index,
            spec: StageSpec {
                name,
                description: op.description.clone(),
                location: self.loc(&op.name),
                component,
                inputs: Vec::new(),
                outputs,
                requests,
                parameters,
                env,
                args: op.args.iter().map(|a| a.to_string()).collect(),
                depends_on: Vec::new(),
                ports_in: Vec::new(),
                ports_out,
                port_peers: Vec::new(),
            },
            from: Vec::new(),
            ports_in,
        }
    }

    fn component(&mut self, def: &Spanned<ComponentDef>, op: &str) -> ComponentRef {
        let location = self.loc(def);
        let mut path = PathBuf::new();
        match (&def.path, &def.reference) {
            (Some(p), None) => {
                path = self.base_dir.join(p.as_str());
                if !path.is_file() {
                    let loc = self.loc(p);
                    self.problem(
                        loc,
                        Some(op),
                        format!(
                            "component file '{}' does not exist (resolved to {})",
                            p.as_str(),
                            path.display()
                        ),
                    );
                }
            }
            (None, Some(r)) => {
                if let Err(why) = check_reference(r.as_str()) {
                    let loc = self.loc(r);
                    self.problem(
                        loc,
                        Some(op),
                        format!("component ref '{}': {why}", r.as_str()),
                    );
                }
            }
            (Some(_), Some(r)) => {
                let loc = self.loc(r);
                self.problem(
                    loc,
                    Some(op),
                    "component has both `path` and `ref`: give one",
                );
            }
            (None, None) => {
                self.problem(
                    location.clone(),
                    Some(op),
                    "component needs `path:` (a .wasm component file) or `ref:` (a registry component)",
                );
            }
        }
        let digest = def.digest.as_ref().map(|d| {
            if !is_sha256_digest(d) {
                let loc = self.loc(d);
                self.problem(
                    loc,
                    Some(op),
                    format!(
                        "digest '{}' must be 'sha256:' followed by 64 lowercase hex digits",
                        d.as_str()
                    ),
                );
            }
            d.to_string()
        });
        match &def.reference {
            Some(r) => ComponentRef {
                path,
                digest: None,
                registry: Some(RegistryComponent {
                    reference: r.to_string(),
                    manifest_digest: digest,
                    origin: None,
                }),
                location,
            },
            None => ComponentRef {
                path,
                digest,
                registry: None,
                location,
            },
        }
    }

    fn models(&mut self, defs: &[Spanned<ModelDef>]) -> Vec<ModelSpec> {
        let mut out: Vec<ModelSpec> = Vec::new();
        for def in defs {
            let name = def.name.as_str();
            let problems = self.problems.len();
            if let Err(why) = check_identifier(name) {
                let loc = self.loc(&def.name);
                self.problem(loc, None, format!("model name {why}"));
            }
            if let Some(first) = out.iter().find(|m| m.name == name) {
                let loc = self.loc(&def.name);
                let msg = format!(
                    "model '{name}' is declared twice (first at {})",
                    first.location
                );
                self.problem(loc, None, msg);
            }
            if let Err(why) = check_identifier(def.dataset.as_str()) {
                let loc = self.loc(&def.dataset);
                self.problem(loc, None, format!("model '{name}': dataset name {why}"));
            }
            let path = def.path.as_str();
            let bad_path = path.is_empty()
                || path.starts_with('/')
                || path
                    .split('/')
                    .any(|part| part == ".." || part == "." || part.is_empty());
            if bad_path {
                let loc = self.loc(&def.path);
                self.problem(
                    loc,
                    None,
                    format!("model '{name}': path '{path}' must be a relative path inside the dataset (no '..', '.', or leading '/')"),
                );
            }
            let digest = def.digest.as_str();
            let hex = digest.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64
                || !hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                let loc = self.loc(&def.digest);
                self.problem(
                    loc,
                    None,
                    format!("model '{name}': digest '{digest}' must be sha256: and 64 lowercase hex digits"),
                );
            }
            let target = def
                .execution_target
                .as_ref()
                .map_or("cpu", |t| t.as_str())
                .to_string();
            if !["cpu", "gpu"].contains(&target.as_str()) {
                let loc = self.loc(def.execution_target.as_ref().expect("given"));
                self.problem(
                    loc,
                    None,
                    format!("model '{name}': execution-target '{target}' must be cpu or gpu"),
                );
            }
            if self.problems.len() == problems {
                out.push(ModelSpec {
                    name: name.to_string(),
                    dataset: def.dataset.to_string(),
                    path: path.to_string(),
                    digest: digest.to_string(),
                    target,
                    location: self.loc(&def.name),
                });
            }
        }
        out
    }

    fn requests(&mut self, r: &Spanned<RequestsDef>, op: &str) -> Requests {
        let mut out = Requests::default();
        if let Some(m) = &r.memory {
            match parse_bytes(m) {
                Ok(bytes) if bytes < (1 << 20) => {
                    let loc = self.loc(m);
                    self.problem(
                        loc,
                        Some(op),
                        format!("requests.memory '{}' is below the 1Mi minimum", m.as_str()),
                    );
                }
                Ok(bytes) if bytes > MAX_MEMORY => {
                    let loc = self.loc(m);
                    self.problem(
                        loc,
                        Some(op),
                        format!(
                            "requests.memory '{}' is above the 4Gi a 32-bit wasm memory can hold",
                            m.as_str()
                        ),
                    );
                }
                Ok(bytes) => out.memory_bytes = bytes,
                Err(why) => {
                    let loc = self.loc(m);
                    self.problem(loc, Some(op), format!("requests.memory {why}"));
                }
            }
        }
        if let Some(d) = &r.disk {
            match parse_bytes(d) {
                Ok(bytes) if bytes > 0 => out.disk_bytes = bytes,
                Ok(_) => {
                    let loc = self.loc(d);
                    self.problem(loc, Some(op), "requests.disk must be above 0");
                }
                Err(why) => {
                    let loc = self.loc(d);
                    self.problem(loc, Some(op), format!("requests.disk {why}"));
                }
            }
        }
        if let Some(g) = &r.gpu_memory {
            match parse_bytes(g) {
                Ok(bytes) => out.gpu_memory_bytes = bytes,
                Err(why) => {
                    let loc = self.loc(g);
                    self.problem(loc, Some(op), format!("requests.gpu-memory {why}"));
                }
            }
        }
        if let Some(i) = &r.inference {
            match i.as_str() {
                "true" => out.inference = true,
                "false" => out.inference = false,
                other => {
                    let loc = self.loc(i);
                    self.problem(
                        loc,
                        Some(op),
                        format!("requests.inference '{other}' must be true or false"),
                    );
                }
            }
        }
        if let Some(f) = &r.files {
            match f.parse::<u64>() {
                Ok(n) if n > 0 => out.files = n,
                _ => {
                    let loc = self.loc(f);
                    self.problem(
                        loc,
                        Some(op),
                        format!(
                            "requests.files '{}' must be a whole number above 0",
                            f.as_str()
                        ),
                    );
                }
            }
        }
        if let Some(t) = &r.timeout {
            match parse_duration(t) {
                Ok(d) if d.is_zero() || d > MAX_TIMEOUT => {
                    let loc = self.loc(t);
                    self.problem(
                        loc,
                        Some(op),
                        format!(
                            "requests.timeout '{}' must be above 0 and at most 24h",
                            t.as_str()
                        ),
                    );
                }
                Ok(d) => out.timeout = d,
                Err(why) => {
                    let loc = self.loc(t);
                    self.problem(loc, Some(op), format!("requests.timeout {why}"));
                }
            }
        }
        for (field, value, min, target) in [
            ("cpu", &r.cpu, 1, &mut out.cpu),
            ("gpu", &r.gpu, 0, &mut out.gpu),
        ] {
            if let Some(v) = value {
                match v.parse::<u32>() {
                    Ok(n) if n >= min && n <= 1024 => *target = n,
                    _ => {
                        let loc = self.loc(v);
                        self.problem(
                            loc,
                            Some(op),
                            format!(
                                "requests.{field} '{}' must be a whole number from {min} to 1024",
                                v.as_str()
                            ),
                        );
                    }
                }
            }
        }
        out
    }

    fn guest_path(
        &mut self,
        path: &Spanned<String>,
        op: &str,
        seen: &mut HashMap<String, Location>,
    ) {
        let loc = self.loc(path);
        if let Err(why) = check_guest_path(path) {
            self.problem(loc, Some(op), format!("path '{}' {why}", path.as_str()));
            return;
        }
        if let Some(first) = seen.get(path.as_str()) {
            let msg = format!(
                "path '{}' is mounted twice (also at {first})",
                path.as_str()
            );
            self.problem(loc, Some(op), msg);
            return;
        }
        // One volume inside another would hide part of it behind the other.
        let nested = seen.iter().find(|(other, _)| {
            path.starts_with(&format!("{other}/"))
                || other.starts_with(&format!("{}/", path.as_str()))
        });
        if let Some((other, at)) = nested {
            let msg = format!(
                "path '{}' and '{other}' (at {at}) are nested; mount volumes side by side",
                path.as_str()
            );
            self.problem(loc, Some(op), msg);
            return;
        }
        seen.insert(path.to_string(), loc);
    }

    fn resolve_inputs(
        &mut self,
        draft: &mut Draft,
        op: &Spanned<OperatorDef>,
        outputs: &HashMap<String, Vec<String>>,
    ) {
        let me = draft.spec.name.clone();
        let mut names: HashSet<String> =
            draft.spec.outputs.iter().map(|o| o.name.clone()).collect();
        for input in &op.input {
            let Some(mut spec) = self.input(input, &me, outputs, &mut draft.from) else {
                continue;
            };
            // A volume is named after the upstream output; when that name is taken in this
            // stage, it is qualified with the upstream operator's name.
            if names.contains(&spec.name) {
                if let InputSource::Stage { stage, output } = &spec.source {
                    spec.name = format!("{stage}.{output}");
                }
            }
            if !names.insert(spec.name.clone()) {
                let loc = self.loc(input);
                self.problem(
                    loc,
                    Some(&me),
                    format!("volume '{}' is mounted twice in this operator", spec.name),
                );
            }
            draft.spec.inputs.push(spec);
        }
    }

    fn input(
        &mut self,
        input: &Spanned<InputDef>,
        me: &str,
        outputs: &HashMap<String, Vec<String>>,
        from_list: &mut Vec<(String, Location)>,
    ) -> Option<InputSpec> {
        let guest_path = input.path.to_string();
        match (&input.from, &input.dataset) {
            (Some(_), Some(d)) => {
                let loc = self.loc(d);
                self.problem(
                    loc,
                    Some(me),
                    "an input has either `from` (an operator) or `dataset`, not both",
                );
                None
            }
            (None, Some(d)) => {
                if let Some(name) = &input.name {
                    let loc = self.loc(name);
                    self.problem(
                        loc,
                        Some(me),
                        "`name` picks an operator's output; an input with `dataset` takes none",
                    );
                }
                if let Err(why) = check_identifier(d) {
                    let loc = self.loc(d);
                    self.problem(loc, Some(me), format!("dataset name {why}"));
                }
                Some(InputSpec {
                    name: d.to_string(),
                    source: InputSource::Dataset {
                        name: d.to_string(),
                    },
                    guest_path,
                })
            }
            (None, None) => {
                if let Some(name) = &input.name {
                    // Without `from` this would silently mount the payload.
                    let loc = self.loc(name);
                    self.problem(
                        loc,
                        Some(me),
                        format!("`name: {}` without `from`: say which operator's output this is (an input with neither `from` nor `dataset` is the payload)", name.as_str()),
                    );
                    return None;
                }
                Some(InputSpec {
                    name: "payload".into(),
                    source: InputSource::Payload,
                    guest_path,
                })
            }
            (Some(from), None) => {
                let loc = self.loc(from);
                if from.as_str() == me {
                    self.problem(loc, Some(me), "an operator cannot read its own output");
                    return None;
                }
                let Some(theirs) = outputs.get(from.as_str()) else {
                    let mut known: Vec<&str> = outputs
                        .keys()
                        .map(String::as_str)
                        .filter(|n| *n != me)
                        .collect();
                    known.sort();
                    self.problem(
                        loc,
                        Some(me),
                        format!(
                            "input from unknown operator '{}' (operators: {})",
                            from.as_str(),
                            known.join(", ")
                        ),
                    );
                    return None;
                };
                let output = match &input.name {
                    Some(n) if theirs.iter().any(|o| o == n.as_str()) => n.to_string(),
                    Some(n) => {
                        let loc = self.loc(n);
                        self.problem(
                            loc,
                            Some(me),
                            format!(
                                "operator '{}' has no output '{}' (outputs: {})",
                                from.as_str(),
                                n.as_str(),
                                theirs.join(", ")
                            ),
                        );
                        return None;
                    }
                    None if theirs.len() == 1 => theirs[0].clone(),
                    None => {
                        self.problem(
                            loc,
                            Some(me),
                            format!(
                                "operator '{}' has several outputs ({}): name one with `name:`",
                                from.as_str(),
                                theirs.join(", ")
                            ),
                        );
                        return None;
                    }
                };
                from_list.push((from.to_string(), loc));
                Some(InputSpec {
                    name: output.clone(),
                    source: InputSource::Stage {
                        stage: from.to_string(),
                        output,
                    },
                    guest_path,
                })
            }
        }
    }
}

/// Names become directory names on the host, so they are kept to a safe alphabet.
pub(crate) fn check_identifier(name: &str) -> Result<(), String> {
    let ok_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' || c == '.');
    if !ok_start || !ok_rest || name.len() > 63 || name.contains("..") {
        return Err(format!(
            "'{name}' must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
        ));
    }
    Ok(())
}

fn check_guest_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
        return Err("must be absolute (start with '/')");
    }
    if path == "/" {
        return Err("cannot be the root '/'");
    }
    if path.ends_with('/')
        || path
            .split('/')
            .skip(1)
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err("must be a plain path without '.', '..', '//' or a trailing '/'");
    }
    Ok(())
}

fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// Whether `reference` names a component in a registry: `host[:port]/repository[:tag]`, the
/// host written out (no implicit Docker Hub) and no digest inside (that is `digest:`).
fn check_reference(reference: &str) -> Result<(), String> {
    if reference.contains('@') {
        return Err("give the digest as `digest:`, not after '@'".to_string());
    }
    let Some((host, rest)) = reference.split_once('/') else {
        return Err(
            "must be registry/repository[:tag], e.g. registry.example/vendor/segment:1.0"
                .to_string(),
        );
    };
    if !(host.contains('.') || host.contains(':') || host == "localhost") || rest.is_empty() {
        return Err(format!("'{host}' is not a registry host: write the registry out, e.g. registry.example/{reference}"));
    }
    reference
        .parse::<oci_client::Reference>()
        .map(|_| ())
        .map_err(|e| format!("not a valid OCI reference: {e}"))
}
