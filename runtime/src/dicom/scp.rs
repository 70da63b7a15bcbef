//! The storage SCP: accepts associations for the configured AE titles from the allowed
//! callers, answers C-ECHO, stores C-STORE instances into a payload per association, and
//! hands each complete payload to its route. Every association runs on a thread of its own;
//! a bad peer ends only its own association.

use super::config::{AdapterConfig, Assembly, Route};
use super::dimse::{self, status, Command};
use super::route::PayloadHandler;
use super::sop::{is_storage_class, ACCEPTED_SOP_CLASSES, ACCEPTED_TRANSFER_SYNTAXES};
use super::store::{InstanceWriter, Storage};
use super::studies::{complete_study, StudyBuffers};
use dicom_ul::association::server::{AccessControl, ServerAssociation, ServerAssociationOptions};
use dicom_ul::association::Association as _;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValue, PDataValueType, Pdu,
    UserIdentity,
};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long the SCP waits for the next PDU of an association before it aborts it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a caller may take to request its association: a connection that never speaks
/// gives its slot back soon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The running SCP.
pub struct Scp {
    config: AdapterConfig,
    storage: Storage,
    dispatcher: Arc<dyn PayloadHandler>,
    studies: StudyBuffers,
    active: AtomicUsize,
    next_id: AtomicUsize,
}

/// Who may open an association: a routed called AE title, from an allowed calling AE
/// title and address.
struct RouteAccess<'a> {
    config: &'a AdapterConfig,
    peer: IpAddr,
}

impl AccessControl for RouteAccess<'_> {
    fn check_access(
        &self,
        _this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        let Some(route) = self.config.route(called_ae_title) else {
            tracing::warn!(called = called_ae_title, calling = calling_ae_title, peer = %self.peer, "association rejected: called AE title not routed");
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        };
        if !allowed(route, calling_ae_title.trim(), self.peer) {
            tracing::warn!(called = called_ae_title, calling = calling_ae_title, peer = %self.peer, "association rejected: caller not allowed");
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

fn allowed(route: &Route, calling: &str, peer: IpAddr) -> bool {
    (route.allow_calling.is_empty() || route.allow_calling.iter().any(|a| a == calling))
        && (route.allow_ips.is_empty() || route.allow_ips.contains(&peer))
}

impl Scp {
    pub fn new(
        config: AdapterConfig,
        storage: Storage,
        dispatcher: Arc<dyn PayloadHandler>,
    ) -> Scp {
        Scp {
            config,
            studies: StudyBuffers::new(storage.clone()),
            storage,
            dispatcher,
            active: AtomicUsize::new(0),
            next_id: AtomicUsize::new(0),
        }
    }

    /// Accepts associations on `listener` until `stop` is set (checked between
    /// connections).
    pub fn serve(self: &Arc<Self>, listener: TcpListener, stop: Arc<AtomicBool>) {
        if self
            .config
            .routes
            .iter()
            .any(|r| matches!(r.assembly, Assembly::Study { .. }))
        {
            let scp = self.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    scp.complete_quiet_studies();
                }
            });
        }
        for socket in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(socket) = socket else { continue };
            let _ = socket.set_nodelay(true);
            if self.active.fetch_add(1, Ordering::SeqCst) >= self.config.max_associations {
                self.active.fetch_sub(1, Ordering::SeqCst);
                reject_busy(socket);
                continue;
            }
            let scp = self.clone();
            let spawned = std::thread::Builder::new()
                .name("dicom-association".into())
                .spawn(move || {
                    scp.association(socket);
                    scp.active.fetch_sub(1, Ordering::SeqCst);
                });
            if spawned.is_err() {
                self.active.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// Studies quiet for their route's period become payloads and run.
    fn complete_quiet_studies(&self) {
        for study in self.studies.take_quiet() {
            match complete_study(&self.storage, &study.dir) {
                Ok(payload) => {
                    tracing::info!(payload = %payload.display(), called = %study.ae_title, "study complete");
                    if let Some(route) = self.config.route(&study.ae_title) {
                        self.dispatcher
                            .payload_complete(route, &payload, &study.calling);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, dir = %study.dir.display(), "cannot complete the study")
                }
            }
        }
    }

    fn association(&self, socket: TcpStream) {
        let Ok(peer) = socket.peer_addr() else { return };
        let access = RouteAccess {
            config: &self.config,
            peer: peer.ip(),
        };
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(access)
            .ae_title(self.config.ae_title.as_str())
            .max_pdu_length(self.config.max_pdu)
            .read_timeout(REQUEST_TIMEOUT)
            .write_timeout(READ_TIMEOUT);
        for (uid, _) in ACCEPTED_SOP_CLASSES {
            options = options.with_abstract_syntax(*uid);
        }
        for (uid, _) in ACCEPTED_TRANSFER_SYNTAXES {
            options = options.with_transfer_syntax(*uid);
        }
        let mut assoc = match options.establish(socket) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(peer = %peer, error = %e, "association not established");
                return;
            }
        };
        // Established: the longer wait between PDUs applies.
        let _ = assoc.inner_stream().set_read_timeout(Some(READ_TIMEOUT));
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        let id = format!(
            "{}-{n}",
            crate::jobs::new_job_id().trim_start_matches("job-")
        );
        let calling = assoc.peer_ae_title().trim().to_string();
        let called = assoc.called_ae_title().trim().to_string();
        let span = tracing::info_span!("association", id = %id, calling = %calling, called = %called, peer = %peer);
        let _span = span.enter();
        tracing::info!("association accepted");
        let mut incoming = match self.storage.begin(&id) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a payload; aborting the association");
                let _ = assoc.abort();
                return;
            }
        };
        // Whatever ends the association, what it was let write is settled.
        let _settled = Settled(&*self.dispatcher, id.clone());
        match self.receive(&mut assoc, &mut incoming) {
            Ok(()) => {
                let (stored, duplicates) = (incoming.stored, incoming.duplicates);
                let route = self.config.route(&called);
                if let Some(Assembly::Study { quiet }) = route.map(|r| &r.assembly) {
                    match self.studies.add(&called, *quiet, incoming.dir(), &calling) {
                        Ok(added) => {
                            tracing::info!(stored, added, "instances added to their studies")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot add the instances to their studies")
                        }
                    }
                    return;
                }
                match incoming.complete(&self.storage) {
                    Ok(Some(payload)) => {
                        tracing::info!(stored, duplicates, payload = %payload.display(), "payload complete");
                        if let Some(route) = self.config.route(&called) {
                            self.dispatcher.payload_complete(route, &payload, &calling);
                        }
                    }
                    Ok(None) => tracing::info!("association released with no instances"),
                    Err(e) => tracing::error!(error = %e, "cannot complete the payload"),
                }
            }
            Err(why) => {
                tracing::warn!(reason = %why, stored = incoming.stored, "association ended abnormally; what it sent is discarded");
                incoming.discard();
            }
        }
    }

    /// Serves one association until it is released (Ok) or aborted or broken (Err).
    fn receive(
        &self,
        assoc: &mut ServerAssociation<TcpStream>,
        incoming: &mut super::store::Incoming,
    ) -> Result<(), String> {
        let mut command: Vec<u8> = Vec::new();
        let mut pending: Option<(Command, u8, Option<InstanceWriter>, Option<(u16, String)>)> =
            None;
        loop {
            let pdu = assoc.receive().map_err(|e| format!("receiving: {e}"))?;
            quick_ack(assoc);
            match pdu {
                Pdu::PData { data } => {
                    for pv in data {
                        match pv.value_type {
                            PDataValueType::Command => {
                                command.extend_from_slice(&pv.data);
                                if !pv.is_last {
                                    continue;
                                }
                                let cmd = dimse::decode(&command).map_err(|e| {
                                    let _ = send_abort(assoc);
                                    e.to_string()
                                })?;
                                command.clear();
                                let pc = pv.presentation_context_id;
                                match cmd.field {
                                    dimse::C_ECHO_RQ => {
                                        respond(assoc, pc, dimse::echo_rsp(&cmd, status::SUCCESS))?
                                    }
                                    dimse::C_STORE_RQ if cmd.has_data_set => {
                                        pending = Some(self.begin_store(assoc, incoming, cmd, pc));
                                    }
                                    other => {
                                        let _ = send_abort(assoc);
                                        return Err(format!(
                                            "unsupported DIMSE command 0x{other:04x}"
                                        ));
                                    }
                                }
                            }
                            PDataValueType::Data => {
                                let Some((cmd, pc, writer, refusal)) = pending.as_mut() else {
                                    let _ = send_abort(assoc);
                                    return Err("a data set arrived without a command".into());
                                };
                                if let Some(w) = writer.as_mut() {
                                    let called = assoc.called_ae_title().trim().to_string();
                                    let admitted = self.dispatcher.admit(
                                        &called,
                                        &incoming.id,
                                        pv.data.len() as u64,
                                    );
                                    if let Err(r) = admitted.and_then(|()| w.write(&pv.data)) {
                                        writer.take().map(InstanceWriter::abandon);
                                        *refusal = Some((r.status, r.message));
                                    }
                                }
                                if !pv.is_last {
                                    continue;
                                }
                                let (status, message) = match (writer.take(), refusal.take()) {
                                    (_, Some(r)) => r,
                                    (Some(w), None) => match incoming.finish_instance(w) {
                                        Ok(()) => (status::SUCCESS, String::new()),
                                        Err(r) => (r.status, r.message),
                                    },
                                    (None, None) => (status::OUT_OF_RESOURCES, String::new()),
                                };
                                if status != status::SUCCESS {
                                    tracing::warn!(sop_instance = %cmd.sop_instance, status = format!("0x{status:04x}"), reason = %message, "instance refused");
                                }
                                let rsp = dimse::store_rsp(cmd, status);
                                let pc = *pc;
                                pending = None;
                                respond(assoc, pc, rsp)?;
                            }
                        }
                    }
                }
                Pdu::ReleaseRQ => {
                    if let Some((_, _, Some(w), _)) = pending.take() {
                        w.abandon();
                    }
                    assoc
                        .send(&Pdu::ReleaseRP)
                        .map_err(|e| format!("answering the release: {e}"))?;
                    return Ok(());
                }
                Pdu::AbortRQ { source } => {
                    if let Some((_, _, Some(w), _)) = pending.take() {
                        w.abandon();
                    }
                    return Err(format!("aborted by the peer ({source:?})"));
                }
                other => {
                    let _ = send_abort(assoc);
                    return Err(format!("unexpected PDU: {}", other.short_description()));
                }
            }
        }
    }

    /// Starts storing the instance of C-STORE request `cmd`, or records why it will be
    /// refused once its data set has arrived.
    fn begin_store(
        &self,
        assoc: &ServerAssociation<TcpStream>,
        incoming: &mut super::store::Incoming,
        cmd: Command,
        pc: u8,
    ) -> (Command, u8, Option<InstanceWriter>, Option<(u16, String)>) {
        let context = assoc
            .presentation_contexts()
            .iter()
            .find(|c| c.id == pc)
            .cloned();
        let refusal = match &context {
            None => Some((
                status::CANNOT_UNDERSTAND,
                format!("presentation context {pc} was not accepted"),
            )),
            Some(_) if !is_storage_class(&cmd.sop_class) => Some((
                status::SOP_CLASS_NOT_SUPPORTED,
                format!("SOP class {} is not stored here", cmd.sop_class),
            )),
            Some(c) if c.abstract_syntax.trim_end_matches('\0') != cmd.sop_class => Some((
                status::DATA_SET_MISMATCH,
                format!(
                    "SOP class {} sent on the context of {}",
                    cmd.sop_class, c.abstract_syntax
                ),
            )),
            Some(_) => None,
        };
        if let Some(r) = refusal {
            return (cmd, pc, None, Some(r));
        }
        let ts = context
            .expect("checked above")
            .transfer_syntax
            .trim_end_matches('\0')
            .to_string();
        match incoming.begin_instance(
            &cmd.sop_class,
            &cmd.sop_instance,
            &ts,
            self.config.max_instance,
        ) {
            Ok(w) => (cmd, pc, Some(w), None),
            Err(r) => (cmd, pc, None, Some((r.status, r.message))),
        }
    }
}

/// Tells the payload handler an association has ended, when dropped.
struct Settled<'a>(&'a dyn PayloadHandler, String);

impl Drop for Settled<'_> {
    fn drop(&mut self) {
        self.0.association_ended(&self.1);
    }
}

/// Acknowledges what was read at once. Senders that leave Nagle's algorithm on (DCMTK as
/// Debian builds it) hold a PDU's second write until the first is acknowledged, and Linux
/// delays that ACK by 40 ms: once per instance without this.
fn quick_ack(assoc: &mut ServerAssociation<TcpStream>) {
    #[cfg(target_os = "linux")]
    let _ = rustix::net::sockopt::set_tcp_quickack(&*assoc.inner_stream(), true);
}

fn respond(
    assoc: &mut ServerAssociation<TcpStream>,
    pc: u8,
    command: Vec<u8>,
) -> Result<(), String> {
    assoc
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        })
        .map_err(|e| format!("sending a response: {e}"))
}

fn send_abort(assoc: &mut ServerAssociation<TcpStream>) -> Result<(), String> {
    assoc
        .send(&Pdu::AbortRQ {
            source: dicom_ul::pdu::AbortRQSource::ServiceProvider(
                dicom_ul::pdu::AbortRQServiceProviderReason::ReasonNotSpecified,
            ),
        })
        .map_err(|e| e.to_string())
}

/// Over `max-associations`: the association is rejected as transient (local limit
/// exceeded), so the caller may retry later.
fn reject_busy(mut socket: TcpStream) {
    let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
    // The request must be read before it is answered.
    let mut buf = vec![0u8; 64 * 1024];
    let _ = std::io::Read::read(&mut socket, &mut buf);
    let pdu = Pdu::AssociationRJ(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut out = Vec::new();
    if dicom_ul::pdu::write_pdu(&mut out, &pdu).is_ok() {
        let _ = std::io::Write::write_all(&mut socket, &out);
    }
    tracing::warn!("association rejected: max-associations reached");
}
