//! Tensors as a stage hands them over (dimensions, element type, little-endian bytes), and
//! the shapes a model's inputs and outputs declare. Every size is checked in integers that
//! cannot overflow before anything is copied into ONNX Runtime.

use crate::NnError;

/// Element types of `wasi:nn` tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElementType {
    F16,
    F32,
    F64,
    BF16,
    U8,
    I32,
    I64,
}

impl ElementType {
    pub fn size(self) -> u64 {
        match self {
            ElementType::U8 => 1,
            ElementType::F16 | ElementType::BF16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::F64 | ElementType::I64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElementType::F16 => "FP16",
            ElementType::F32 => "FP32",
            ElementType::F64 => "FP64",
            ElementType::BF16 => "BF16",
            ElementType::U8 => "U8",
            ElementType::I32 => "I32",
            ElementType::I64 => "I64",
        }
    }
}

/// A tensor held by the host for a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub dims: Vec<u32>,
    pub ty: ElementType,
    pub data: Vec<u8>,
}

/// `[1, 1, 64, 256, 256]`.
pub fn format_dims<T: std::fmt::Display>(dims: &[T]) -> String {
    let parts: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Bytes a tensor of `dims` and `ty` holds, or why it cannot exist.
pub fn tensor_bytes(dims: &[u32], ty: ElementType, limit: u64) -> Result<u64, NnError> {
    let shown = || format!("{} {}", format_dims(dims), ty.name());
    if dims.is_empty() || dims.len() > 8 {
        return Err(NnError::BadTensor {
            dims: shown(),
            why: format!("a tensor has 1 to 8 dimensions, not {}", dims.len()),
        });
    }
    if dims.contains(&0) {
        return Err(NnError::BadTensor {
            dims: shown(),
            why: "every dimension must be at least 1".into(),
        });
    }
    let bytes = dims
        .iter()
        .try_fold(ty.size(), |acc, &d| acc.checked_mul(u64::from(d)))
        .unwrap_or(u64::MAX);
    if bytes > limit {
        return Err(NnError::TensorTooLarge {
            dims: shown(),
            bytes,
            limit,
        });
    }
    Ok(bytes)
}

impl HostTensor {
    /// A tensor whose data is exactly what its dimensions and type say, within `limit` bytes.
    /// The dimensions are checked first, so a tensor claiming 4 GiB is refused by its claim.
    pub fn new(
        dims: Vec<u32>,
        ty: ElementType,
        data: Vec<u8>,
        limit: u64,
    ) -> Result<HostTensor, NnError> {
        let bytes = tensor_bytes(&dims, ty, limit)?;
        if data.len() as u64 != bytes {
            return Err(NnError::BadTensor {
                dims: format!("{} {}", format_dims(&dims), ty.name()),
                why: format!(
                    "its data is {} bytes, its dimensions need {bytes}",
                    data.len()
                ),
            });
        }
        Ok(HostTensor { dims, ty, data })
    }

    pub fn bytes(&self) -> u64 {
        self.data.len() as u64
    }
}

/// One input or output of a model: its name, element type and dimensions (`None` where the
/// model leaves a dimension free).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    /// `Err` holds the ONNX type name when it is one `wasi:nn` cannot carry.
    pub ty: Result<ElementType, String>,
    pub dims: Vec<Option<u64>>,
    /// The names of free dimensions, where the model gives them (`Z`, `batch`).
    pub symbols: Vec<String>,
}

impl TensorSpec {
    /// `FP32 [1, 1, Z, Y, X]`.
    pub fn describe(&self) -> String {
        let ty = match &self.ty {
            Ok(t) => t.name().to_string(),
            Err(t) => t.clone(),
        };
        let dims: Vec<String> = self
            .dims
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(n) => n.to_string(),
                None => match self.symbols.get(i).filter(|s| !s.is_empty()) {
                    Some(s) => s.clone(),
                    None => "?".into(),
                },
            })
            .collect();
        format!("{ty} [{}]", dims.join(", "))
    }

    /// Whether `t` fits: the same type and rank, every fixed dimension equal.
    pub fn accepts(&self, t: &HostTensor) -> bool {
        self.ty.as_ref().ok() == Some(&t.ty)
            && self.dims.len() == t.dims.len()
            && self
                .dims
                .iter()
                .zip(&t.dims)
                .all(|(want, &got)| want.is_none_or(|w| w == u64::from(got)))
    }
}

/// `FP32 [1, 1, 64, 256, 256]`.
pub fn describe_tensor(t: &HostTensor) -> String {
    format!("{} {}", t.ty.name(), format_dims(&t.dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_before_data() {
        // A claim of 4 GiB with four bytes of data is refused by the claim.
        let e = HostTensor::new(
            vec![1024, 1024, 1024],
            ElementType::F32,
            vec![0; 4],
            1 << 30,
        )
        .unwrap_err();
        assert!(
            matches!(e, NnError::TensorTooLarge { bytes, .. } if bytes == 4 << 30),
            "{e}"
        );
        // Dimensions whose product overflows u64 count as too large, not as wrapped.
        let e =
            HostTensor::new(vec![u32::MAX; 8], ElementType::I64, vec![], u64::MAX - 1).unwrap_err();
        assert!(matches!(e, NnError::TensorTooLarge { .. }), "{e}");
        let e = HostTensor::new(vec![2, 2], ElementType::F32, vec![0; 15], 1 << 20).unwrap_err();
        assert!(
            e.to_string().contains("15 bytes, its dimensions need 16"),
            "{e}"
        );
        assert!(HostTensor::new(vec![0], ElementType::U8, vec![], 10).is_err());
        assert!(HostTensor::new(vec![2, 2], ElementType::F32, vec![0; 16], 16).is_ok());
    }

    #[test]
    fn specs_accept_free_dimensions() {
        let spec = TensorSpec {
            name: "ct".into(),
            ty: Ok(ElementType::F32),
            dims: vec![Some(1), Some(1), None, None, None],
            symbols: vec![
                String::new(),
                String::new(),
                "Z".into(),
                "Y".into(),
                "X".into(),
            ],
        };
        assert_eq!(spec.describe(), "FP32 [1, 1, Z, Y, X]");
        let t = |dims: Vec<u32>, ty| {
            let n = dims.iter().product::<u32>() as usize * 4;
            HostTensor {
                dims,
                ty,
                data: vec![0; n],
            }
        };
        assert!(spec.accepts(&t(vec![1, 1, 4, 8, 8], ElementType::F32)));
        assert!(!spec.accepts(&t(vec![2, 1, 4, 8, 8], ElementType::F32)));
        assert!(!spec.accepts(&t(vec![1, 4, 8, 8], ElementType::F32)));
        assert!(!spec.accepts(&t(vec![1, 1, 4, 8, 8], ElementType::I32)));
    }
}
