//! Where a field error in the pipeline file belongs.
//!
//! Serde reports a missing field, an unknown field or a value of the wrong type without a
//! place. The path serde took to it (recorded by `serde_path_to_error`) is followed here
//! through the YAML nodes, which keep their spans, to the element the error is in — the
//! operator by name, its output, input or port by number — and to the line and column where
//! that element, key or value is written.

use marked_yaml::types::{MarkedScalarNode, Node};
use serde::Deserialize;
use serde_path_to_error::Segment;

/// A field error, placed.
#[derive(Debug)]
pub(super) struct Located {
    pub line: usize,
    pub column: usize,
    /// The operator the error is in, when it is in one that has a name.
    pub operator: Option<String>,
    /// What went wrong, after the element it is in: "output 2: missing field `name`".
    pub message: String,
}

/// Deserializes `node` as `T`; an error is placed at the element it belongs to.
pub(super) fn from_node<'de, T: Deserialize<'de>>(node: &'de Node) -> Result<T, Located> {
    // `NodeDeserializer` is what `marked_yaml::from_node` runs; driving it through
    // `serde_path_to_error` keeps the path to the failing field.
    let deserializer = marked_yaml::spanned_serde::NodeDeserializer::new(node);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let segments: Vec<Segment> = e.path().iter().cloned().collect();
        locate(node, &segments, e.inner())
    })
}

/// Keys `Spanned<T>` adds to the path for its inner value; not part of the file.
fn is_spanned_inner(key: &str) -> bool {
    key.starts_with("$___::")
}

/// What kind of error serde reported, which decides where it is placed.
enum Kind {
    Missing,
    Unknown,
    Value,
}

fn locate(root: &Node, segments: &[Segment], error: &marked_yaml::Error) -> Located {
    let text = lowercase_first(&error.to_string());
    let kind = match error {
        marked_yaml::Error::UnknownFieldError(..) => Kind::Unknown,
        _ if text.starts_with("missing field") => Kind::Missing,
        _ => Kind::Value,
    };
    let mut walk = Walk::new(root);
    for segment in segments {
        if !walk.step(segment) {
            break;
        }
    }
    let (line, column) = match (error.start_mark(), &kind) {
        (Some(m), _) => (m.line(), m.column()),
        (None, Kind::Unknown | Kind::Value) => match (&kind, walk.last_key) {
            (Kind::Unknown, Some(key)) => position(key.span().start()),
            _ => start_of(walk.node),
        },
        (None, Kind::Missing) => start_of(walk.node),
    };
    let mut context = walk.context;
    // A wrong value is named by its key; a missing or unknown field names itself.
    if let (Kind::Value, Some(key)) = (&kind, walk.last_key) {
        context.push(format!("`{}`", key.as_str()));
    }
    Located {
        line,
        column,
        operator: walk.operator,
        message: if context.is_empty() {
            text
        } else {
            format!("{}: {text}", context.join(", "))
        },
    }
}

/// Following a serde path through the nodes.
struct Walk<'a> {
    node: &'a Node,
    /// The key that led to `node`, when a key did.
    last_key: Option<&'a MarkedScalarNode>,
    /// The keys and indices taken so far, without the `Spanned` ones.
    taken: Vec<Step>,
    operator: Option<String>,
    /// The elements the path is in, outermost first ("operator 3", "output 2").
    context: Vec<String>,
}

enum Step {
    Key(String),
    Index,
}

impl<'a> Walk<'a> {
    fn new(root: &'a Node) -> Self {
        Walk {
            node: root,
            last_key: None,
            taken: Vec::new(),
            operator: None,
            context: Vec::new(),
        }
    }

    /// Takes one step of the path; false when the nodes cannot follow it.
    fn step(&mut self, segment: &Segment) -> bool {
        match segment {
            Segment::Map { key } if is_spanned_inner(key) => true,
            Segment::Map { key } => {
                let Some(map) = self.node.as_mapping() else {
                    return false;
                };
                let Some((k, v)) = map.iter().find(|(k, _)| k.as_str() == key) else {
                    return false;
                };
                self.enter_key(k, v);
                true
            }
            Segment::Seq { index } => {
                let Some(item) = self.node.as_sequence().and_then(|s| s.get(*index)) else {
                    return false;
                };
                self.node = item;
                self.last_key = None;
                self.taken.push(Step::Index);
                self.name_element(*index);
                true
            }
            // A map key serde did not record (the keys of `parameters`, `env`): the entry
            // whose value is not a plain string is the one a string map refused.
            Segment::Unknown => {
                let Some(map) = self.node.as_mapping() else {
                    return false;
                };
                let Some((k, v)) = map.iter().find(|(_, v)| v.as_scalar().is_none()) else {
                    return false;
                };
                self.enter_key(k, v);
                true
            }
            Segment::Enum { .. } => false,
        }
    }

    fn enter_key(&mut self, key: &'a MarkedScalarNode, value: &'a Node) {
        self.node = value;
        self.last_key = Some(key);
        self.taken.push(Step::Key(key.as_str().to_string()));
        // Keys that are elements of an operator rather than fields of one.
        if let [Step::Key(ops), Step::Index, Step::Key(k)] = self.taken.as_slice() {
            if ops == "operators" && matches!(k.as_str(), "component" | "requests" | "ports") {
                self.context.push(k.clone());
                self.last_key = None;
            }
        }
    }

    /// Names the element at sequence index `index`, from where the path is.
    fn name_element(&mut self, index: usize) {
        let keys: Vec<&str> = self
            .taken
            .iter()
            .filter_map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Index => None,
            })
            .collect();
        let number = index + 1;
        match keys.as_slice() {
            ["operators"] => {
                let name = self
                    .node
                    .as_mapping()
                    .and_then(|m| m.get_scalar("name"))
                    .map(|n| n.as_str().to_string());
                match name {
                    Some(name) => self.operator = Some(name),
                    None => self.context.push(format!("operator {number}")),
                }
            }
            ["operators", "output"] => self.context.push(format!("output {number}")),
            ["operators", "input"] => self.context.push(format!("input {number}")),
            ["operators", "ports", "in"] => {
                self.context.pop();
                self.context.push(format!("input port {number}"))
            }
            ["operators", "ports", "out"] => {
                self.context.pop();
                self.context.push(format!("output port {number}"))
            }
            ["operators", "args"] => self.context.push(format!("argument {number}")),
            _ => self.context.push(format!("item {number}")),
        }
    }
}

fn position(mark: Option<&marked_yaml::Marker>) -> (usize, usize) {
    mark.map_or((1, 1), |m| (m.line(), m.column()))
}

/// Where a node is written. A block mapping's own mark is where the parser saw its first
/// key end, so a mapping is placed at its first key instead, a sequence at its first item.
pub(super) fn start_of(node: &Node) -> (usize, usize) {
    match node {
        Node::Mapping(m) => match m.iter().next() {
            Some((k, _)) => position(k.span().start()),
            None => position(m.span().start()),
        },
        Node::Sequence(s) => match s.first() {
            Some(item) => start_of(item),
            None => position(s.span().start()),
        },
        Node::Scalar(s) => position(s.span().start()),
    }
}

/// For every block mapping in `root`, its parser mark (where the parser saw the end of its
/// first key, the `:`) and where it is written (its first key), so that an element located by
/// its span is placed where a reader looks for it.
pub(super) fn block_mapping_starts(
    root: &Node,
    text: &str,
) -> std::collections::HashMap<(usize, usize), (usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = std::collections::HashMap::new();
    let mut todo = vec![root];
    while let Some(node) = todo.pop() {
        match node {
            Node::Mapping(m) => {
                if let Some(mark) = m.span().start() {
                    if chars.get(mark.character()) == Some(&':') {
                        out.insert((mark.line(), mark.column()), start_of(node));
                    }
                }
                todo.extend(m.values());
            }
            Node::Sequence(s) => todo.extend(s.iter()),
            Node::Scalar(_) => {}
        }
    }
    out
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
