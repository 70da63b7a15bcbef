//! `ward serve --check`: what can be known of a service configuration without starting the
//! service. Beyond what [`ServeConfig::load`] checks, the files it names must exist and
//! parse (TLS certificate and key, audit key, the hosted DICOM adapter's configuration), the
//! components directory must be one, the listen address must resolve, and every route of the
//! hosted adapter must fit the service. Nothing is bound, created or written.

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

/// Every problem with the configuration at `path`, one line each (`FILE:LINE:COL:
/// message` where the problem was written); empty when the service can start with it.
pub fn check(path: &Path) -> Vec<String> {
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
