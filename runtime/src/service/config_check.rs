//! `ward serve --check`: what can be known of a service configuration without starting the
//! service. Beyond what [`ServeConfig::load`] checks, the files it names must exist and
//! parse (TLS certificate and key, audit key, tenants' trust keys, the registry configuration,
//! the hosted DICOM adapter's configuration), the
//! components directory must be one, the listen address must resolve, and every route of the
//! hosted adapter must fit the service (its exports, the pipelines its tenant has stored).
//! Nothing is bound, created or written.

use super::config::ServeConfig;
use super::db::Priority;
use crate::dicom::config::{AdapterConfig, Route};
use crate::pipeline::Location;
use std::net::ToSocketAddrs;
use std::path::Path;

/// Why `route` of the hosted DICOM adapter cannot run under this service's tenants.
pub fn route_misfit(config: &ServeConfig, route: &Route) -> Option<String> {
    let Some(name) = &route.tenant else {
        return Some("under ward serve every route names its tenant (`tenant:`)".into());
    };
    let Some(tenant) = config.tenant(name) else {
        return Some(format!("tenant '{name}' is not configured"));
    };
    // Jobs received by DIMSE run at `normal`.
    if tenant.max_priority < Priority::Normal {
        return Some(format!(
            "its jobs run at priority 'normal', above tenant '{name}''s max-priority 'lower'"
        ));
    }
    None
}

/// What `ward serve --check` found.
#[derive(Debug, Default)]
pub struct Checked {
    /// Why the service cannot start with it, one line each (`FILE:LINE:COL: message` where
    /// the problem was written); empty when it can.
    pub problems: Vec<String>,
    /// What is worth knowing but does not stop it (a route's pipeline not stored yet).
    pub notes: Vec<String>,
}

/// Checks the configuration at `path`.
pub fn check(path: &Path) -> Checked {
    let mut checked = Checked::default();
    checked.problems = problems(path, &mut checked.notes);
    checked
}

fn problems(path: &Path, notes: &mut Vec<String>) -> Vec<String> {
    let (config, problems) = match ServeConfig::read(path) {
        Ok(read) => read,
        Err(e) => return e.lines(),
    };
    let mut found: Vec<(Option<Location>, String)> = problems
        .found
        .into_iter()
        .map(|p| (Some(p.location), p.message))
        .collect();
    let l = &config.locations;
    if let Err(e) = config.listen.to_socket_addrs() {
        found.push((
            l.listen.clone(),
            format!(
                "listen '{}' is not an address to listen on: {e}",
                config.listen
            ),
        ));
    }
    if !config.components.is_dir() {
        found.push((
            l.components.clone(),
            format!(
                "components: {} is not a directory (pipelines take their components from it; build them with `cargo build --release --target wasm32-wasip2` in guests/, or copy them there)",
                config.components.display()
            ),
        ));
    }
    if config.state.exists() && !config.state.is_dir() {
        found.push((
            l.state.clone(),
            format!("state: {} is not a directory", config.state.display()),
        ));
    }
    if let Some((certificate, key)) = &config.tls {
        for (what, file, at) in [
            ("certificate", certificate, &l.tls_certificate),
            ("key", key, &l.tls_key),
        ] {
            if !file.is_file() {
                found.push((
                    at.clone(),
                    format!("tls {what}: {} is not a file", file.display()),
                ));
            }
        }
        if certificate.is_file() && key.is_file() {
            if let Err(why) = super::tls::acceptor(certificate, key) {
                found.push((l.tls_certificate.clone(), format!("tls: {why}")));
            }
        }
    }
    if let Some(key) = &config.audit_key_file {
        if let Err(e) = super::audit::read_key(key) {
            found.push((l.audit_key_file.clone(), format!("audit-key-file: {e}")));
        }
    }
    if let Some(file) = &config.registry_config {
        if let Err(e) = crate::registry::RegistryConfig::load(file) {
            found.push((l.registry_config.clone(), format!("registry.config: {e}")));
        }
    }
    if config.component_store.exists() && !config.component_store.is_dir() {
        found.push((
            l.component_store.clone(),
            format!(
                "registry.store: {} is not a directory (the store of verified registry components)",
                config.component_store.display()
            ),
        ));
    }
    let mut lines: Vec<String> = Vec::new();
    if let Some(adapter) = config.dicom.as_ref().filter(|a| !a.is_file()) {
        found.push((
            l.dicom.clone(),
            format!(
                "dicom: {} is not a file (the DICOM adapter's configuration)",
                adapter.display()
            ),
        ));
    }
    if let Some(adapter) = config.dicom.as_ref().filter(|a| a.is_file()) {
        match AdapterConfig::load(adapter) {
            // The adapter's own problems name its file.
            Err(e) => lines.extend(e.to_string().lines().map(str::to_owned)),
            Ok(adapter) => {
                for route in &adapter.routes {
                    if let Some(why) = route_misfit(&config, route) {
                        found.push((
                            l.dicom.clone(),
                            format!("the DICOM adapter's route {}: {why}", route.ae_title),
                        ));
                    }
                    for name in &route.pipeline_names {
                        if let Err(why) = crate::pipeline::check_identifier(name) {
                            found.push((
                                l.dicom.clone(),
                                format!(
                                    "the DICOM adapter's route {}: under ward serve its pipelines are names of the tenant's stored pipelines: {why}",
                                    route.ae_title
                                ),
                            ));
                        }
                    }
                    for why in stored_route_pipelines(&config, &adapter, route, notes) {
                        found.push((
                            l.dicom.clone(),
                            format!("the DICOM adapter's route {}: {why}", route.ae_title),
                        ));
                    }
                    if route.pipeline_names.is_empty() && !route.exports.is_empty() {
                        found.push((
                            l.dicom.clone(),
                            format!(
                                "the DICOM adapter's route {}: it exports results but runs no pipeline",
                                route.ae_title
                            ),
                        ));
                    }
                }
            }
        }
    }
    let mut located: Vec<(Location, String)> = Vec::new();
    for (at, message) in found {
        match at {
            Some(at) => located.push((at, message)),
            None => lines.push(format!("{}: {message}", path.display())),
        }
    }
    located.sort_by_key(|(at, _)| (at.line, at.column));
    let mut all: Vec<String> = located
        .into_iter()
        .map(|(at, message)| format!("{at}: {message}"))
        .collect();
    all.extend(lines);
    all
}

/// Checks a route's pipelines against those its tenant has stored, when the state database
/// exists (it is opened read-only): each export must name a stage and output of each of
/// them. A pipeline not stored yet is a note (pipelines are stored through the running
/// service, so a new node has none).
fn stored_route_pipelines(
    config: &ServeConfig,
    adapter: &AdapterConfig,
    route: &Route,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(tenant) = &route.tenant else {
        return problems;
    };
    if route.pipeline_names.is_empty() {
        return problems;
    }
    let database = config.state.join("ward.db");
    let at = format!("the DICOM adapter's route {}", route.ae_title);
    let stored = match read_stored(&database, tenant) {
        Ok(Some(stored)) => stored,
        Ok(None) => {
            notes.push(format!(
                "{at}: no state database yet at {}, so its pipelines {:?} are not checked against stored ones",
                database.display(),
                route.pipeline_names
            ));
            return problems;
        }
        Err(e) => {
            notes.push(format!(
                "{at}: cannot read {} ({e}), so its pipelines are not checked against stored ones",
                database.display()
            ));
            return problems;
        }
    };
    for name in &route.pipeline_names {
        let Some((_, yaml)) = stored.iter().rev().find(|(n, _)| n == name) else {
            notes.push(format!(
                "{at}: tenant '{tenant}' has no pipeline '{name}' stored yet; the route runs it once it is"
            ));
            continue;
        };
        let file = config.components.join(format!("{name}.yaml"));
        let pipeline = match crate::pipeline::parse(&file, yaml) {
            Ok(p) => p,
            Err(e) => {
                problems.push(format!(
                    "tenant '{tenant}''s stored pipeline '{name}' no longer loads: {}",
                    e.to_string().replace('\n', "; ")
                ));
                continue;
            }
        };
        for export in &route.exports {
            let stage = pipeline.stages.iter().find(|s| s.name == export.stage);
            let destination = &adapter.destinations[export.destination].name;
            match stage {
                None => problems.push(format!(
                    "export {}.{} to {destination}: pipeline '{name}' has no operator '{}'",
                    export.stage, export.output, export.stage
                )),
                Some(s) if !s.outputs.iter().any(|o| o.name == export.output) => {
                    problems.push(format!(
                        "export {}.{} to {destination}: operator '{}' of pipeline '{name}' has no output '{}'",
                        export.stage, export.output, export.stage, export.output
                    ))
                }
                Some(_) => {}
            }
        }
    }
    problems
}

/// The `(name, yaml)` of every pipeline `tenant` has stored, oldest version first; `None`
/// when there is no database. Read-only: the check changes nothing of a running service.
fn read_stored(
    database: &Path,
    tenant: &str,
) -> Result<Option<Vec<(String, String)>>, rusqlite::Error> {
    if !database.is_file() {
        return Ok(None);
    }
    let conn = rusqlite::Connection::open_with_flags(
        database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let mut stmt =
        conn.prepare("SELECT name, yaml FROM pipelines WHERE tenant = ?1 ORDER BY name, version")?;
    let rows = stmt.query_map([tenant], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Some(rows.collect::<Result<_, _>>()?))
}
