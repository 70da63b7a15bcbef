//! Writes small ONNX models (the protobuf `ModelProto`) from a list of nodes: the models the
//! tests and benchmarks feed the host (an adder, a chain of matrix products long enough to
//! meet a deadline, an operator no runtime has), without a Python toolchain.

/// A free or fixed dimension.
#[derive(Debug, Clone)]
pub enum Dim {
    Fixed(u64),
    Free(&'static str),
}

/// A graph input or output: name and FP32 shape.
#[derive(Debug, Clone)]
pub struct Io {
    pub name: String,
    pub dims: Vec<Dim>,
}

/// One operator.
#[derive(Debug, Clone)]
pub struct Node {
    pub op: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

/// A constant FP32 tensor of the graph.
#[derive(Debug, Clone)]
pub struct Initializer {
    pub name: String,
    pub dims: Vec<u64>,
    pub values: Vec<f32>,
}

/// An ONNX model of one graph, opset 17, FP32 inputs and outputs.
#[derive(Debug, Clone, Default)]
pub struct OnnxModel {
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub nodes: Vec<Node>,
    pub initializers: Vec<Initializer>,
}

const FLOAT: u64 = 1;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn value_info(io: &Io) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in &io.dims {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(n) => field_varint(&mut dim, 1, *n),
            Dim::Free(s) => field_bytes(&mut dim, 2, s.as_bytes()),
        }
        field_bytes(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    field_varint(&mut tensor_type, 1, FLOAT);
    field_bytes(&mut tensor_type, 2, &shape);
    let mut ty = Vec::new();
    field_bytes(&mut ty, 1, &tensor_type);
    let mut info = Vec::new();
    field_bytes(&mut info, 1, io.name.as_bytes());
    field_bytes(&mut info, 2, &ty);
    info
}

impl OnnxModel {
    /// The model file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut graph = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut node = Vec::new();
            for input in &n.inputs {
                field_bytes(&mut node, 1, input.as_bytes());
            }
            for output in &n.outputs {
                field_bytes(&mut node, 2, output.as_bytes());
            }
            field_bytes(&mut node, 3, format!("n{i}").as_bytes());
            field_bytes(&mut node, 4, n.op.as_bytes());
            field_bytes(&mut graph, 1, &node);
        }
        field_bytes(&mut graph, 2, b"ward-test");
        for init in &self.initializers {
            let mut t = Vec::new();
            for d in &init.dims {
                field_varint(&mut t, 1, *d);
            }
            field_varint(&mut t, 2, FLOAT);
            field_bytes(&mut t, 8, init.name.as_bytes());
            let raw: Vec<u8> = init.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            field_bytes(&mut t, 9, &raw);
            field_bytes(&mut graph, 5, &t);
        }
        for io in &self.inputs {
            field_bytes(&mut graph, 11, &value_info(io));
        }
        for io in &self.outputs {
            field_bytes(&mut graph, 12, &value_info(io));
        }
        let mut model = Vec::new();
        field_varint(&mut model, 1, 8); // ir_version
        field_bytes(&mut model, 2, b"ward");
        field_bytes(&mut model, 7, &graph);
        let mut opset = Vec::new();
        field_bytes(&mut opset, 1, b"");
        field_varint(&mut opset, 2, 17);
        field_bytes(&mut model, 8, &opset);
        model
    }

    /// `y = x + b` on FP32 `[1, n]`, with `b = [1, 2, …, n]`.
    pub fn adder(n: u64) -> OnnxModel {
        OnnxModel {
            inputs: vec![Io {
                name: "x".into(),
                dims: vec![Dim::Fixed(1), Dim::Fixed(n)],
            }],
            outputs: vec![Io {
                name: "y".into(),
                dims: vec![Dim::Fixed(1), Dim::Fixed(n)],
            }],
            nodes: vec![Node {
                op: "Add".into(),
                inputs: vec!["x".into(), "b".into()],
                outputs: vec!["y".into()],
            }],
            initializers: vec![Initializer {
                name: "b".into(),
                dims: vec![1, n],
                values: (1..=n).map(|v| v as f32).collect(),
            }],
        }
    }

    /// `steps` products of the `[rows, n]` input (rows free) with a constant `[n, n]` matrix:
    /// rows·n²·steps multiply-adds, and `steps` points where ONNX Runtime can stop.
    pub fn matmul_chain(n: u64, steps: usize) -> OnnxModel {
        let mut nodes = Vec::with_capacity(steps);
        for i in 0..steps {
            let input = if i == 0 {
                "x".to_string()
            } else {
                format!("t{i}")
            };
            let output = if i + 1 == steps {
                "y".to_string()
            } else {
                format!("t{}", i + 1)
            };
            nodes.push(Node {
                op: "MatMul".into(),
                inputs: vec![input, "w".into()],
                outputs: vec![output],
            });
        }
        // Scaled so repeated products stay finite.
        let scale = 1.0 / n as f32;
        OnnxModel {
            inputs: vec![Io {
                name: "x".into(),
                dims: vec![Dim::Free("rows"), Dim::Fixed(n)],
            }],
            outputs: vec![Io {
                name: "y".into(),
                dims: vec![Dim::Free("rows"), Dim::Fixed(n)],
            }],
            nodes,
            initializers: vec![Initializer {
                name: "w".into(),
                dims: vec![n, n],
                values: vec![scale; (n * n) as usize],
            }],
        }
    }

    /// One node of an operator no ONNX Runtime implements.
    pub fn unknown_operator() -> OnnxModel {
        let mut m = OnnxModel::adder(4);
        m.nodes[0].op = "WardNoSuchOperator".into();
        m.nodes[0].inputs.truncate(1);
        m
    }
}
