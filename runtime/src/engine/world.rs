//! What a component imports and exports, and whether that fits the `ward:stage/stage` world:
//! only granted imports, a compatible contract version, and the `run` export.

use serde::Serialize;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::Component;

/// The contract version this host implements (the `wit/` package version).
pub const CONTRACT_VERSION: (u64, u64, u64) = (0, 2, 0);
/// The same version as written in interface names (`ward:stage/ports@0.2.0`).
pub const CONTRACT_VERSION_TEXT: &str = "0.2.0";

/// The `wasi:nn` version this host implements (wit/deps/wasi-nn).
pub const WASI_NN_VERSION: &str = "0.2.0-rc-2024-10-28";

/// Interfaces a stage may import, by package prefix, with the versions granted.
const GRANTED_WASI: &[&str] = &[
    "wasi:io/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:random/",
    "wasi:cli/",
];

#[derive(Debug, Clone, Serialize)]
pub struct ComponentWorld {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl ComponentWorld {
    pub fn of(component: &Component, engine: &wasmtime::Engine) -> ComponentWorld {
        let ty = component.component_type();
        let describe = |name: &str, item: &ComponentItem| match item {
            ComponentItem::ComponentFunc(_) => format!("{name} (func)"),
            ComponentItem::ComponentInstance(_) => name.to_string(),
            ComponentItem::Type(_) => format!("{name} (type)"),
            ComponentItem::Resource(_) => format!("{name} (resource)"),
            _ => format!("{name} (other)"),
        };
        ComponentWorld {
            imports: ty
                .imports(engine)
                .map(|(n, i)| describe(n, &i.ty))
                .collect(),
            exports: ty
                .exports(engine)
                .map(|(n, i)| describe(n, &i.ty))
                .collect(),
        }
    }
}

impl ComponentWorld {
    /// The first `wasi:nn` interface the component imports: it needs `requests.inference`.
    pub fn inference_import(&self) -> Option<&str> {
        self.imports
            .iter()
            .map(String::as_str)
            .find(|i| i.starts_with("wasi:nn/"))
    }
}

/// Why a component does not fit the stage world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldMismatch {
    /// An import Ward does not grant; the reason says what kind.
    ForbiddenImport { import: String, why: String },
    /// No `run` function is exported.
    NoRun { exports: Vec<String> },
}

/// Checks the names of what `component` imports and exports. The types are checked when
/// the component is linked.
pub fn check_world(component: &Component, engine: &wasmtime::Engine) -> Result<(), WorldMismatch> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        check_import(name)?;
    }
    let has_run = ty
        .exports(engine)
        .any(|(name, item)| name == "run" && matches!(item.ty, ComponentItem::ComponentFunc(_)));
    if !has_run {
        return Err(WorldMismatch::NoRun {
            exports: ty.exports(engine).map(|(n, _)| n.to_string()).collect(),
        });
    }
    Ok(())
}

fn check_import(name: &str) -> Result<(), WorldMismatch> {
    let forbid = |why: String| {
        Err(WorldMismatch::ForbiddenImport {
            import: name.to_string(),
            why,
        })
    };
    let (path, version) = match name.split_once('@') {
        Some((p, v)) => (p, Some(v)),
        None => (name, None),
    };
    if let Some(iface) = path.strip_prefix("ward:stage/") {
        let Some(version) = version.and_then(parse_version) else {
            return forbid("ward:stage imports must carry a version".into());
        };
        let (major, minor, _) = CONTRACT_VERSION;
        let compatible = version.0 == major && (major > 0 || version.1 == minor);
        if !compatible {
            return forbid(format!(
                "the component was built against ward:stage@{}.{}.{}, this host implements {}.{}.{}",
                version.0, version.1, version.2, major, minor, CONTRACT_VERSION.2
            ));
        }
        if !["types", "context", "volumes", "ports", "gpu"].contains(&iface) {
            return forbid(format!("ward:stage has no interface '{iface}'"));
        }
        return Ok(());
    }
    if let Some(iface) = path.strip_prefix("wasi:nn/") {
        if version != Some(WASI_NN_VERSION) {
            return forbid(format!(
                "this host implements wasi:nn@{WASI_NN_VERSION}, not {}",
                version.unwrap_or("an unversioned wasi:nn")
            ));
        }
        if !["tensor", "graph", "inference", "errors"].contains(&iface) {
            return forbid(format!("wasi:nn has no interface '{iface}'"));
        }
        // Granted per stage: the job refuses a stage that has not declared it.
        return Ok(());
    }
    if path.starts_with("wasi:sockets/") {
        return forbid("stages have no network access".into());
    }
    if GRANTED_WASI.iter().any(|p| path.starts_with(p)) {
        return match version.and_then(parse_version) {
            Some((0, 2, _)) => Ok(()),
            _ => forbid("only WASI 0.2 (wasi:*@0.2.x) is provided".into()),
        };
    }
    forbid("it is not part of the ward:stage world".into())
}

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports() {
        assert!(check_import("ward:stage/context@0.2.0").is_ok());
        assert!(check_import("ward:stage/context@0.1.0").is_err());
        assert!(check_import("wasi:filesystem/types@0.2.3").is_ok());
        assert!(check_import("wasi:sockets/tcp@0.2.0").is_err());
        assert!(check_import("wasi:http/outgoing-handler@0.2.0").is_err());
        assert!(check_import("ward:stage/context@0.3.0").is_err());
        assert!(check_import("ward:stage/secrets@0.2.0").is_err());
        assert!(check_import("acme:evil/thing").is_err());
        assert!(check_import("wasi:cli/environment@0.3.0").is_err());
        assert!(check_import("wasi:nn/graph@0.2.0-rc-2024-10-28").is_ok());
        assert!(check_import("wasi:nn/graph@0.2.0-rc-2024-08-19").is_err());
        assert!(check_import("wasi:nn/training@0.2.0-rc-2024-10-28").is_err());
    }

    #[test]
    fn the_contract_version_is_the_wit_package_version() {
        assert_eq!(parse_version(CONTRACT_VERSION_TEXT), Some(CONTRACT_VERSION));
        let wit = include_str!("../../../wit/stage.wit");
        assert!(wit.contains(&format!("package ward:stage@{CONTRACT_VERSION_TEXT};")));
    }
}
