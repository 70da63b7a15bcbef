//! Validation of streaming ports: each operator's declarations, the connections between
//! operators (writer exists, types agree, fan-in declared, every output read), and the sets
//! of port-connected stages, which must be able to run at the same time.

use super::error::Problem;
use super::file_model::{InPortDef, PortsDef};
use super::load::{check_identifier, Validator};
use super::model::*;
use super::quantity::{format_bytes, parse_bytes};
use marked_yaml::Spanned;
use std::collections::HashMap;

/// An input port entry as written, before its writer is resolved.
pub struct InPortDraft {
    name: String,
    writer: PortEnd,
    message_type: Option<String>,
    fan_in: bool,
    location: Location,
    from_location: Location,
}

impl Validator {
    /// Checks one operator's `ports:` and returns its input entries (resolved later, once
    /// every operator is known) and its output ports.
    pub(super) fn ports(
        &mut self,
        def: Option<&Spanned<PortsDef>>,
        op: &str,
    ) -> (Vec<InPortDraft>, Vec<PortOutSpec>) {
        let Some(def) = def else {
            return (Vec::new(), Vec::new());
        };
        let mut outputs: Vec<PortOutSpec> = Vec::new();
        for out in &def.outputs {
            self.port_name(&out.name, op, "output");
            if outputs.iter().any(|o| o.name == *out.name) {
                let loc = self.loc(&out.name);
                self.problem(
                    loc,
                    Some(op),
                    format!("two output ports are named '{}'", out.name.as_str()),
                );
            }
            let capacity = match &out.capacity {
                None => DEFAULT_PORT_CAPACITY,
                Some(c) => match c.parse::<u32>() {
                    Ok(n) if (1..=MAX_PORT_CAPACITY).contains(&n) => n,
                    _ => {
                        let loc = self.loc(c);
                        self.problem(
                            loc,
                            Some(op),
                            format!(
                                "port capacity '{}' must be a whole number from 1 to {MAX_PORT_CAPACITY}",
                                c.as_str()
                            ),
                        );
                        DEFAULT_PORT_CAPACITY
                    }
                },
            };
            // A port that names no max-message gets one that fits the budget.
            let default_max = DEFAULT_MAX_MESSAGE.min(self.ports_budget.bytes);
            let max_message = match &out.max_message {
                None => default_max,
                Some(m) => match parse_bytes(m) {
                    Ok(n) if n > 0 && n <= MAX_MAX_MESSAGE => n,
                    Ok(_) => {
                        let loc = self.loc(m);
                        self.problem(
                            loc,
                            Some(op),
                            format!(
                                "max-message '{}' must be above 0 and at most {}",
                                m.as_str(),
                                format_bytes(MAX_MAX_MESSAGE)
                            ),
                        );
                        default_max
                    }
                    Err(why) => {
                        let loc = self.loc(m);
                        self.problem(loc, Some(op), format!("max-message {why}"));
                        default_max
                    }
                },
            };
            if let Some(m) = out
                .max_message
                .as_ref()
                .filter(|_| max_message > self.ports_budget.bytes)
            {
                let loc = self.loc(m);
                let budget = self.ports_budget.clone();
                let (set, fix) = match &budget.location {
                    Some(at) => (format!("`ports-budget` at {at}"), "raise `ports-budget`"),
                    None => (
                        "the default; set `ports-budget` to change it".to_string(),
                        "set a larger top-level `ports-budget`",
                    ),
                };
                self.problem(
                    loc,
                    Some(op),
                    format!(
                        "output port '{}': max-message {} ({max_message} bytes) is more than the job's channel budget of {} ({} bytes; {set}), so such a message could never be buffered: {fix} or lower max-message",
                        out.name.as_str(),
                        format_bytes(max_message),
                        format_bytes(budget.bytes),
                        budget.bytes,
                    ),
                );
            }
            let loc = self.loc(&out.name);
            self.out_port_locations
                .insert((op.to_string(), out.name.to_string()), loc);
            outputs.push(PortOutSpec {
                name: out.name.to_string(),
                message_type: self.message_type(out.message_type.as_ref(), op),
                capacity,
                max_message,
                readers: Vec::new(),
            });
        }
        let inputs = def
            .inputs
            .iter()
            .map(|input| self.in_port(input, op))
            .collect();
        (inputs, outputs)
    }

    fn in_port(&mut self, input: &Spanned<InPortDef>, op: &str) -> InPortDraft {
        self.port_name(&input.name, op, "input");
        let port = input.port.as_ref().unwrap_or(&input.name);
        let fan_in = match &input.fan_in {
            None => false,
            Some(f) => match f.as_str() {
                "true" => true,
                "false" => false,
                other => {
                    let loc = self.loc(f);
                    self.problem(
                        loc,
                        Some(op),
                        format!("fan-in '{other}' must be true or false"),
                    );
                    false
                }
            },
        };
        InPortDraft {
            name: input.name.to_string(),
            writer: PortEnd {
                stage: input.from.to_string(),
                port: port.to_string(),
            },
            message_type: self.message_type(input.message_type.as_ref(), op),
            fan_in,
            location: self.loc(input),
            from_location: self.loc(&input.from),
        }
    }

    /// The top-level `ports-budget`: the bytes every channel of the job may hold together.
    pub(super) fn ports_budget(&mut self, text: &Spanned<String>) -> PortsBudget {
        let loc = self.loc(text);
        match parse_bytes(text) {
            Ok(bytes) if bytes > 0 => PortsBudget {
                bytes,
                location: Some(loc),
            },
            Ok(_) => {
                self.problem(loc, None, "ports-budget must be above 0");
                PortsBudget::default()
            }
            Err(why) => {
                self.problem(loc, None, format!("ports-budget {why}"));
                PortsBudget::default()
            }
        }
    }

    fn port_name(&mut self, name: &Spanned<String>, op: &str, direction: &str) {
        if let Err(why) = check_identifier(name) {
            let loc = self.loc(name);
            self.problem(loc, Some(op), format!("{direction} port name {why}"));
        }
    }

    fn message_type(&mut self, t: Option<&Spanned<String>>, op: &str) -> Option<String> {
        let t = t?;
        let ok = !t.is_empty() && t.len() <= 128 && t.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            let loc = self.loc(t);
            self.problem(
                loc,
                Some(op),
                format!(
                    "port type '{}' must be 1-128 printable ASCII characters without spaces",
                    t.as_str()
                ),
            );
        }
        Some(t.to_string())
    }

    /// Resolves every input port's writer, merges fan-in entries, checks types, and fills
    /// in each output's readers; an output nobody reads is a mistake (its sends would fail).
    pub(super) fn connect_ports(
        &mut self,
        stages: &mut [StageSpec],
        drafts: Vec<(usize, Vec<InPortDraft>)>,
    ) {
        let out_locations = std::mem::take(&mut self.out_port_locations);
        let index: HashMap<String, usize> = stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        for (reader, entries) in drafts {
            let me = stages[reader].name.clone();
            let mut merged: Vec<(PortInSpec, bool, Location)> = Vec::new();
            for entry in entries {
                let Some(writer) = self.resolve_writer(&entry, &me, stages, &index) else {
                    continue;
                };
                let out = &mut stages[writer]
                    .ports_out
                    .iter_mut()
                    .find(|o| o.name == entry.writer.port)
                    .expect("resolved");
                if let (Some(theirs), Some(mine)) = (&out.message_type, &entry.message_type) {
                    if theirs != mine {
                        self.problem(
                            entry.location.clone(),
                            Some(&me),
                            format!(
                                "input port '{}' expects type '{mine}' but {} sends '{theirs}'",
                                entry.name, entry.writer
                            ),
                        );
                    }
                }
                let message_type = entry
                    .message_type
                    .clone()
                    .or_else(|| out.message_type.clone());
                out.readers.push(PortEnd {
                    stage: me.clone(),
                    port: entry.name.clone(),
                });
                match merged.iter_mut().find(|(p, _, _)| p.name == entry.name) {
                    Some((port, fan_in, first)) => {
                        if !(*fan_in && entry.fan_in) {
                            let writers: Vec<String> =
                                port.writers.iter().map(|w| w.stage.clone()).collect();
                            self.problem(
                                entry.location.clone(),
                                Some(&me),
                                format!(
                                    "input port '{}' has several writers ({}, {}; first at {first}); declare `fan-in: true` on each entry to merge them",
                                    entry.name,
                                    writers.join(", "),
                                    entry.writer.stage
                                ),
                            );
                        }
                        port.writers.push(entry.writer);
                    }
                    None => merged.push((
                        PortInSpec {
                            name: entry.name,
                            writers: vec![entry.writer],
                            message_type,
                        },
                        entry.fan_in,
                        entry.location,
                    )),
                }
            }
            stages[reader].ports_in = merged.into_iter().map(|(p, _, _)| p).collect();
        }
        for stage in stages.iter() {
            for out in stage.ports_out.iter().filter(|o| o.readers.is_empty()) {
                let loc = out_locations
                    .get(&(stage.name.clone(), out.name.clone()))
                    .cloned()
                    .unwrap_or_else(|| stage.location.clone());
                self.problem(
                    loc,
                    Some(&stage.name),
                    format!(
                        "output port '{}' is read by no operator (connect it with `ports: {{in: [{{name: ..., from: {}, port: {}}}]}}` or remove it)",
                        out.name, stage.name, out.name
                    ),
                );
            }
        }
    }

    fn resolve_writer(
        &mut self,
        entry: &InPortDraft,
        me: &str,
        stages: &[StageSpec],
        index: &HashMap<String, usize>,
    ) -> Option<usize> {
        let from = &entry.writer.stage;
        if from == me {
            self.problem(
                entry.from_location.clone(),
                Some(me),
                "an operator cannot read its own port",
            );
            return None;
        }
        let Some(&writer) = index.get(from) else {
            let mut known: Vec<&str> = stages
                .iter()
                .map(|s| s.name.as_str())
                .filter(|n| *n != me)
                .collect();
            known.sort();
            self.problem(
                entry.from_location.clone(),
                Some(me),
                format!(
                    "input port '{}' from unknown operator '{from}' (operators: {})",
                    entry.name,
                    known.join(", ")
                ),
            );
            return None;
        };
        let theirs = &stages[writer].ports_out;
        if !theirs.iter().any(|o| o.name == entry.writer.port) {
            let listed = if theirs.is_empty() {
                "it declares no output ports".to_string()
            } else {
                let names: Vec<&str> = theirs.iter().map(|o| o.name.as_str()).collect();
                format!("its output ports: {}", names.join(", "))
            };
            self.problem(
                entry.location.clone(),
                Some(me),
                format!(
                    "input port '{}' reads port '{}' of operator '{from}', which no one writes ({listed})",
                    entry.name, entry.writer.port
                ),
            );
            return None;
        }
        Some(writer)
    }
}

/// Fills in `port_peers` for stages already in topological order, and checks that each set
/// of port-connected stages can run at once: none of them may wait for another's results
/// volume, directly or through stages outside the set, and the set is not too large.
pub fn group_ports(stages: &mut [StageSpec]) -> Result<(), Problem> {
    let n = stages.len();
    let index: HashMap<String, usize> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.clone(), i))
        .collect();
    // Union-find over port connections.
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, stage) in stages.iter().enumerate() {
        for port in &stage.ports_in {
            for w in &port.writers {
                if let Some(&j) = index.get(&w.stage) {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a] = b;
                }
            }
        }
    }
    let group: Vec<usize> = (0..n).map(|i| root(&mut parent, i)).collect();
    for i in 0..n {
        let members: Vec<usize> = (0..n).filter(|&j| group[j] == group[i]).collect();
        if members.len() > MAX_PORT_GROUP {
            let names: Vec<&str> = members.iter().map(|&j| stages[j].name.as_str()).collect();
            return Err(Problem {
                location: stages[i].location.clone(),
                operator: Some(stages[i].name.clone()),
                message: format!(
                    "{} operators are joined by ports ({}); at most {MAX_PORT_GROUP} may run together",
                    members.len(),
                    names.join(", ")
                ),
            });
        }
        stages[i].port_peers = members.into_iter().filter(|&j| j != i).collect();
    }
    // A stage that needs, through volumes, the end of a stage in its own port set would wait
    // forever: the set starts together.
    for i in 0..n {
        let mut seen = vec![false; n];
        let mut stack: Vec<usize> = stages[i].depends_on.clone();
        let mut via: Vec<Option<usize>> = vec![None; n];
        while let Some(d) = stack.pop() {
            if std::mem::replace(&mut seen[d], true) {
                continue;
            }
            if group[d] == group[i] {
                let mut chain = vec![stages[d].name.as_str()];
                let mut at = d;
                while let Some(next) = via[at] {
                    chain.push(stages[next].name.as_str());
                    at = next;
                }
                chain.push(stages[i].name.as_str());
                return Err(Problem {
                    location: stages[i].location.clone(),
                    operator: Some(stages[i].name.clone()),
                    message: format!(
                        "operators '{}' and '{}' are joined by ports and so run at the same time, but '{}' reads results that exist only once '{}' has ended ({})",
                        stages[d].name,
                        stages[i].name,
                        stages[i].name,
                        stages[d].name,
                        chain.join(" -> ")
                    ),
                });
            }
            for &u in &stages[d].depends_on {
                if !seen[u] {
                    via[u] = Some(d);
                    stack.push(u);
                }
            }
        }
    }
    Ok(())
}
