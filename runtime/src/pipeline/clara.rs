//! Clara Deploy pipeline definitions (api-version 0.4 and 0.5) turned into Ward pipeline
//! files, for `ward convert clara`.
//!
//! The shapes are close: a pipeline has a name and operators; an operator has inputs (`from`
//! an operator and its output `name`, or the payload), outputs (`name`, `path`) and
//! `requests`. What differs: a Clara operator runs a container image where a Ward stage runs a
//! WebAssembly component, so each image is mapped to a component file; `requests.memory` is
//! megabytes; `variables` (the container's environment) become the stage's parameters, except
//! Clara's own platform wiring; and services (an inference server beside the pipeline), the
//! container's command, image tags, pull secrets and the orchestrator have no Ward
//! equivalent. Each of those is reported as a warning at the line and column where it is
//! written; a file Ward cannot convert is refused with every problem, each located.

use super::error::{PipelineError, Problem};
use super::load::check_identifier;
use super::locate::start_of;
use super::located_yaml::{load_error_message, load_error_position};
use super::model::Location;
use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, Node};
use marked_yaml::LoaderOptions;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The Clara api-versions the converter reads.
pub fn is_clara_api_version(version: &str) -> bool {
    ["0.4", "0.5"]
        .iter()
        .any(|v| version == *v || version.starts_with(&format!("{v}.")))
}

/// How container images become component files.
#[derive(Debug, Clone, Default)]
pub struct ClaraOptions {
    /// `IMAGE` or `IMAGE:TAG` → the component path written for it, as given.
    pub components: Vec<(String, String)>,
    /// The directory written before a component named after its image (none: beside the
    /// pipeline file).
    pub components_dir: Option<String>,
}

/// A converted pipeline: the Ward pipeline file's text, and what did not carry over.
#[derive(Debug)]
pub struct Converted {
    pub yaml: String,
    pub warnings: Vec<Problem>,
}

/// The largest `requests.memory` a Ward stage can be given: a 32-bit wasm memory.
const MAX_MEMORY_MB: u64 = 4096;

/// Variables that are Clara's own wiring (service URIs, payload paths), not the operator's
/// settings.
fn is_platform_variable(name: &str) -> bool {
    name.starts_with("NVIDIA_") || name.starts_with("CLARA_")
}

/// Converts the Clara pipeline definition `text`, read from `path`.
pub fn convert_clara(
    path: &Path,
    text: &str,
    options: &ClaraOptions,
) -> Result<Converted, PipelineError> {
    let mut r = Reader {
        file: path.to_path_buf(),
        options,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let root = marked_yaml::parse_yaml_with_options(
        0,
        text,
        LoaderOptions::default().error_on_duplicate_keys(true),
    )
    .map_err(|e| {
        let (line, column) = load_error_position(&e);
        PipelineError::Invalid(vec![Problem {
            location: Location {
                file: path.to_path_buf(),
                line,
                column,
            },
            operator: None,
            message: format!(
                "not valid YAML: {}",
                load_error_message(&e, "api-version, name, operators")
            ),
        }])
    })?;
    let yaml = r.pipeline(&root);
    if r.problems.is_empty() {
        r.warnings
            .sort_by_key(|p| (p.location.line, p.location.column));
        Ok(Converted {
            yaml: yaml.unwrap_or_default(),
            warnings: r.warnings,
        })
    } else {
        r.problems
            .sort_by_key(|p| (p.location.line, p.location.column));
        Err(PipelineError::Invalid(r.problems))
    }
}

struct Reader<'a> {
    file: PathBuf,
    options: &'a ClaraOptions,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

/// One Ward operator, as it will be written.
#[derive(Default)]
struct Operator {
    name: String,
    description: Option<String>,
    component: String,
    inputs: Vec<BTreeMap<&'static str, String>>,
    outputs: Vec<(String, String)>,
    requests: Vec<(&'static str, String)>,
    parameters: BTreeMap<String, String>,
}

impl Reader<'_> {
    fn at(&self, (line, column): (usize, usize)) -> Location {
        Location {
            file: self.file.clone(),
            line,
            column,
        }
    }

    fn node_at(&self, node: &Node) -> Location {
        self.at(start_of(node))
    }

    fn key_at(&self, key: &MarkedScalarNode) -> Location {
        let mark = key.span().start();
        self.at(mark.map_or((1, 1), |m| (m.line(), m.column())))
    }

    fn error(&mut self, location: Location, operator: Option<&str>, message: impl Into<String>) {
        self.problems.push(Problem {
            location,
            operator: operator.map(str::to_owned),
            message: message.into(),
        });
    }

    fn warn(&mut self, location: Location, operator: Option<&str>, message: impl Into<String>) {
        self.warnings.push(Problem {
            location,
            operator: operator.map(str::to_owned),
            message: message.into(),
        });
    }

    /// `node` as a mapping, or an error naming `what`.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        op: Option<&str>,
    ) -> Option<&'n MarkedMappingNode> {
        let m = node.as_mapping();
        if m.is_none() {
            let loc = self.node_at(node);
            self.error(loc, op, format!("{what} must be a mapping"));
        }
        m
    }

    /// `node` as a list, or an error naming `what`.
    fn list<'n>(&mut self, node: &'n Node, what: &str, op: Option<&str>) -> Option<&'n [Node]> {
        let s = node.as_sequence().map(|s| s.as_slice());
        if s.is_none() {
            let loc = self.node_at(node);
            self.error(loc, op, format!("{what} must be a list"));
        }
        s
    }

    /// `node` as a string, or an error naming `what`.
    fn string(&mut self, node: &Node, what: &str, op: Option<&str>) -> Option<String> {
        let s = node.as_scalar().map(|s| s.as_str().to_string());
        if s.is_none() {
            let loc = self.node_at(node);
            self.error(loc, op, format!("{what} must be a string"));
        }
        s
    }

    /// The value of required field `key` of `map`; missing, an error at the mapping.
    fn required<'n>(
        &mut self,
        map: &'n MarkedMappingNode,
        whole: &Node,
        key: &str,
        element: &str,
        op: Option<&str>,
    ) -> Option<&'n Node> {
        let v = map.get_node(key);
        if v.is_none() {
            let loc = self.node_at(whole);
            self.error(loc, op, format!("{element}missing field `{key}`"));
        }
        v
    }

    /// Warns of every key of `map` not in `known`: Ward does not know it, so it is dropped.
    fn unknown_keys(
        &mut self,
        map: &MarkedMappingNode,
        known: &[&str],
        element: &str,
        op: Option<&str>,
    ) {
        for (k, _) in map.iter() {
            if !known.contains(&k.as_str()) {
                let loc = self.key_at(k);
                self.warn(
                    loc,
                    op,
                    format!(
                        "{element}`{}` has no Ward equivalent (or is not a Clara 0.4/0.5 field); dropped",
                        k.as_str()
                    ),
                );
            }
        }
    }

    /// A Clara name as a Ward name: Clara's are case-insensitive, Ward's lower case.
    fn name(&mut self, node: &Node, what: &str, op: Option<&str>) -> Option<String> {
        let given = self.string(node, what, op)?;
        let name = given.to_ascii_lowercase();
        if let Err(why) = check_identifier(&name) {
            let loc = self.node_at(node);
            self.error(loc, op, format!("{what} {why}"));
            return None;
        }
        Some(name)
    }

    fn pipeline(&mut self, root: &Node) -> Option<String> {
        let map = self.mapping(root, "a Clara pipeline definition", None)?;
        self.unknown_keys(
            map,
            &[
                "api-version",
                "name",
                "description",
                "orchestrator",
                "pull-secrets",
                "parameters",
                "operators",
            ],
            "",
            None,
        );
        if let Some(v) = self.required(map, root, "api-version", "", None) {
            if let Some(version) = self.string(v, "api-version", None) {
                if !is_clara_api_version(&version) {
                    let loc = self.node_at(v);
                    self.error(
                        loc,
                        None,
                        format!("api-version '{version}': ward convert clara reads Clara 0.4 and 0.5 pipeline definitions"),
                    );
                }
            }
        }
        let name = self
            .required(map, root, "name", "", None)
            .and_then(|n| self.name(n, "pipeline name", None));
        let description = map
            .get_node("description")
            .and_then(|d| self.string(d, "description", None));
        for (key, why) in [
            ("orchestrator", "Ward schedules the stages itself"),
            ("pull-secrets", "Ward pulls no container images"),
            (
                "parameters",
                "Clara's template placeholders are not substituted by Ward; give the values in the file",
            ),
        ] {
            if let Some((k, _)) = map.iter().find(|(k, _)| k.as_str() == key) {
                let loc = self.key_at(k);
                self.warn(loc, None, format!("`{key}` has no Ward equivalent ({why}); dropped"));
            }
        }
        let operators = self
            .required(map, root, "operators", "", None)
            .and_then(|o| self.list(o, "operators", None));
        if operators.is_some_and(<[Node]>::is_empty) {
            let loc = self.node_at(root);
            self.error(loc, None, "the pipeline has no operators");
        }
        let operators = operators.unwrap_or_default();
        let converted: Vec<Operator> = operators
            .iter()
            .enumerate()
            .filter_map(|(i, op)| self.operator(i, op))
            .collect();
        let name = name?;
        Some(write_pipeline(&self.file, &name, description, &converted))
    }

    fn operator(&mut self, index: usize, node: &Node) -> Option<Operator> {
        let map = self.mapping(node, &format!("operator {}", index + 1), None)?;
        let Some(name) = map
            .get_node("name")
            .and_then(|n| self.name(n, "operator name", None))
        else {
            if map.get_node("name").is_none() {
                let loc = self.node_at(node);
                self.error(
                    loc,
                    None,
                    format!("operator {}: missing field `name`", index + 1),
                );
            }
            return None;
        };
        let op = Some(name.as_str());
        self.unknown_keys(
            map,
            &[
                "name",
                "description",
                "container",
                "input",
                "output",
                "requests",
                "services",
                "variables",
            ],
            "",
            op,
        );
        let mut out = Operator {
            name: name.clone(),
            description: map
                .get_node("description")
                .and_then(|d| self.string(d, "description", op)),
            ..Default::default()
        };
        if let Some(c) = self.required(map, node, "container", "", op) {
            out.component = self.container(c, &name).unwrap_or_default();
        }
        if let Some(list) = map
            .get_node("input")
            .and_then(|i| self.list(i, "input", op))
        {
            for (i, input) in list.iter().enumerate() {
                if let Some(converted) = self.input(i, input, &name) {
                    out.inputs.push(converted);
                }
            }
        }
        if let Some(list) = map
            .get_node("output")
            .and_then(|o| self.list(o, "output", op))
        {
            let several = list.len() > 1;
            for (i, output) in list.iter().enumerate() {
                if let Some(converted) = self.output(i, output, several, &name) {
                    out.outputs.push(converted);
                }
            }
        }
        if let Some(requests) = map.get_node("requests") {
            out.requests = self.requests(requests, &name);
        }
        if let Some(services) = map.get_node("services") {
            self.services(services, &name);
        }
        if let Some(variables) = map.get_node("variables") {
            out.parameters = self.variables(variables, &name);
        }
        Some(out)
    }

    /// The component path for a container, with a warning for what of it is not kept.
    fn container(&mut self, node: &Node, op: &str) -> Option<String> {
        let map = self.mapping(node, "container", Some(op))?;
        self.unknown_keys(map, &["image", "tag", "command"], "container: ", Some(op));
        let image = self
            .required(map, node, "image", "container: ", Some(op))
            .and_then(|i| self.string(i, "container image", Some(op)))?;
        let tag = map
            .get_node("tag")
            .and_then(|t| self.string(t, "container tag", Some(op)));
        if let Some((k, _)) = map.iter().find(|(k, _)| k.as_str() == "command") {
            let loc = self.key_at(k);
            self.warn(
                loc,
                Some(op),
                "container `command` has no Ward equivalent (a component's entry point is its stage export); dropped",
            );
        }
        let tagged = tag.as_ref().map(|t| format!("{image}:{t}"));
        let mapped = self
            .options
            .components
            .iter()
            .find(|(from, _)| *from == image || Some(from) == tagged.as_ref())
            .map(|(_, to)| to.clone());
        if let Some(path) = mapped {
            return Some(path);
        }
        // As cargo names the component a crate of that name builds.
        let last = image.rsplit('/').next().unwrap_or(&image);
        let file = format!("{}.wasm", last.to_ascii_lowercase().replace('-', "_"));
        let path = match &self.options.components_dir {
            Some(dir) => format!("{}/{file}", dir.trim_end_matches('/')),
            None => file,
        };
        let loc = self.node_at(map.get_node("image").unwrap_or(node));
        let tag_note = match &tag {
            Some(t) => format!("; its tag '{t}' is not kept, pin the component with `digest:`"),
            None => String::new(),
        };
        self.warn(
            loc,
            Some(op),
            format!("container image '{image}' became component '{path}' (the image's last path segment{tag_note}); map it with --component {image}=PATH"),
        );
        Some(path)
    }

    fn input(
        &mut self,
        index: usize,
        node: &Node,
        op: &str,
    ) -> Option<BTreeMap<&'static str, String>> {
        let element = format!("input {}: ", index + 1);
        let map = self.mapping(node, &format!("input {}", index + 1), Some(op))?;
        self.unknown_keys(map, &["from", "name", "path"], &element, Some(op));
        let mut out = BTreeMap::new();
        let path = self
            .required(map, node, "path", &element, Some(op))
            .and_then(|p| self.string(p, "input path", Some(op)));
        if let Some(from) = map.get_node("from") {
            out.insert("from", self.name(from, "input `from`", Some(op))?);
        }
        if let Some(name) = map.get_node("name") {
            out.insert("name", self.name(name, "input `name`", Some(op))?);
        }
        out.insert("path", path?);
        Some(out)
    }

    fn output(
        &mut self,
        index: usize,
        node: &Node,
        several: bool,
        op: &str,
    ) -> Option<(String, String)> {
        let element = format!("output {}: ", index + 1);
        let map = self.mapping(node, &format!("output {}", index + 1), Some(op))?;
        self.unknown_keys(map, &["name", "path"], &element, Some(op));
        let path = self
            .required(map, node, "path", &element, Some(op))
            .and_then(|p| self.string(p, "output path", Some(op)))?;
        let name = match map.get_node("name") {
            Some(n) => self.name(n, "output name", Some(op))?,
            None if several => {
                let loc = self.node_at(node);
                self.error(
                    loc,
                    Some(op),
                    format!("{element}missing field `name` (Clara needs it when an operator has several outputs)"),
                );
                return None;
            }
            // Clara lets the only output go unnamed; Ward names every output.
            None => {
                let last = path.rsplit('/').next().unwrap_or("").to_ascii_lowercase();
                if check_identifier(&last).is_ok() {
                    last
                } else {
                    "output".to_string()
                }
            }
        };
        Some((name, path))
    }

    fn requests(&mut self, node: &Node, op: &str) -> Vec<(&'static str, String)> {
        let Some(map) = self.mapping(node, "requests", Some(op)) else {
            return Vec::new();
        };
        self.unknown_keys(map, &["cpu", "gpu", "memory"], "requests: ", Some(op));
        let mut out = Vec::new();
        for (field, ward) in [("memory", "memory"), ("cpu", "cpu"), ("gpu", "gpu")] {
            let Some(v) = map.get_node(field) else {
                continue;
            };
            let Some(text) = self.string(v, &format!("requests.{field}"), Some(op)) else {
                continue;
            };
            let Ok(n) = text.parse::<u64>() else {
                let loc = self.node_at(v);
                self.error(
                    loc,
                    Some(op),
                    format!("requests.{field} '{text}' must be a whole number"),
                );
                continue;
            };
            if field == "gpu" && n > 0 {
                let loc = self.node_at(v);
                self.warn(
                    loc,
                    Some(op),
                    format!("requests.gpu {n} kept: Ward runs this stage only where its GPU host has a device; set 0 if the component does its work on the CPU"),
                );
            }
            if field != "memory" {
                out.push((ward, n.to_string()));
                continue;
            }
            // Clara's memory is megabytes.
            if n == 0 {
                let loc = self.node_at(v);
                self.error(loc, Some(op), "requests.memory must be above 0 (megabytes)");
            } else if n > MAX_MEMORY_MB {
                let loc = self.node_at(v);
                self.warn(
                    loc,
                    Some(op),
                    format!("requests.memory {n} MB is above the 4Gi a wasm stage can address; set to 4Gi"),
                );
                out.push((ward, "4Gi".into()));
            } else {
                out.push((ward, format!("{n}Mi")));
            }
        }
        out
    }

    fn services(&mut self, node: &Node, op: &str) {
        let Some(list) = self.list(node, "services", Some(op)) else {
            return;
        };
        for service in list {
            let loc = self.node_at(service);
            let map = service.as_mapping();
            let name = map
                .and_then(|m| m.get_scalar("name"))
                .map_or("(unnamed)", |n| n.as_str());
            let image = map
                .and_then(|m| m.get_mapping("container"))
                .and_then(|c| c.get_scalar("image"))
                .map(|i| format!(", image '{}'", i.as_str()))
                .unwrap_or_default();
            self.warn(
                loc,
                Some(op),
                format!("service '{name}'{image} has no Ward equivalent (a stage has no network and nothing runs beside it: the model runs inside the component); dropped"),
            );
        }
    }

    fn variables(&mut self, node: &Node, op: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(map) = self.mapping(node, "variables", Some(op)) else {
            return out;
        };
        for (k, v) in map.iter() {
            let Some(value) = self.string(v, &format!("variable `{}`", k.as_str()), Some(op))
            else {
                continue;
            };
            if is_platform_variable(k.as_str()) {
                let loc = self.key_at(k);
                self.warn(
                    loc,
                    Some(op),
                    format!(
                        "variable `{}` is Clara's own wiring, with no Ward equivalent; dropped",
                        k.as_str()
                    ),
                );
                continue;
            }
            out.insert(k.as_str().to_string(), value);
        }
        out
    }
}

/// A YAML scalar for `s`: plain when that reads back as the same string, quoted otherwise.
fn scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " -_./,()".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && !s.ends_with(' ')
        && !["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
            .contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        // A JSON string is a YAML double-quoted scalar.
        serde_json::to_string(s).unwrap_or_default()
    }
}

fn write_pipeline(
    source: &Path,
    name: &str,
    description: Option<String>,
    operators: &[Operator],
) -> String {
    let mut y = String::new();
    let file = source.file_name().map_or_else(
        || source.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let _ = writeln!(
        y,
        "# Converted from the Clara Deploy pipeline definition {file} by `ward convert clara`."
    );
    let _ = writeln!(y, "api-version: 0.1");
    let _ = writeln!(y, "name: {}", scalar(name));
    if let Some(d) = description {
        let _ = writeln!(y, "description: {}", scalar(&d));
    }
    let _ = writeln!(y, "operators:");
    for op in operators {
        let _ = writeln!(y, "  - name: {}", scalar(&op.name));
        if let Some(d) = &op.description {
            let _ = writeln!(y, "    description: {}", scalar(d));
        }
        let _ = writeln!(y, "    component:\n      path: {}", scalar(&op.component));
        if !op.inputs.is_empty() {
            let _ = writeln!(y, "    input:");
            for input in &op.inputs {
                let mut first = true;
                for key in ["from", "name", "path"] {
                    if let Some(v) = input.get(key) {
                        let lead = if first { "      - " } else { "        " };
                        let _ = writeln!(y, "{lead}{key}: {}", scalar(v));
                        first = false;
                    }
                }
            }
        }
        if !op.outputs.is_empty() {
            let _ = writeln!(y, "    output:");
            for (name, path) in &op.outputs {
                let _ = writeln!(
                    y,
                    "      - name: {}\n        path: {}",
                    scalar(name),
                    scalar(path)
                );
            }
        }
        if !op.requests.is_empty() {
            let _ = writeln!(y, "    requests:");
            for (k, v) in &op.requests {
                let _ = writeln!(y, "      {k}: {}", scalar(v));
            }
        }
        if !op.parameters.is_empty() {
            let _ = writeln!(y, "    parameters:");
            for (k, v) in &op.parameters {
                let _ = writeln!(y, "      {}: {}", scalar(k), scalar(v));
            }
        }
    }
    y
}
