//! The storage SCP: accepts associations for the configured AE titles from the allowed
//! callers, answers C-ECHO, stores C-STORE instances into a payload per association, and
//! hands each complete payload to its route. Every connection runs on a thread of its own;
//! a bad peer ends only its own association. The accept loop does no more than count: a
//! connection over its limits ([`super::slots`]) is closed at once, and one that is let in
//! must send its whole A-ASSOCIATE-RQ within `request-timeout` before it may take an
//! association slot.

use super::config::{AdapterConfig, Assembly, Route};
use super::dimse::{self, status, Command};
use super::route::{payload_id, PayloadHandler};
use super::slots::{Connection, Slots};
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
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the SCP waits for the next PDU of an association before it aborts it.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest A-ASSOCIATE-RQ read: a request is a few hundred bytes per presentation
/// context, and this is what it may take of the kernel's receive buffer before it is read.
const MAX_REQUEST: u32 = 64 * 1024;

/// The running SCP.
pub struct Scp {
    config: AdapterConfig,
    storage: Storage,
    dispatcher: Arc<dyn PayloadHandler>,
    studies: StudyBuffers,
    slots: Arc<Slots>,
    refusals: RefusalLog,
    next_id: AtomicUsize,
}

/// Refused connections are logged at most once a second (with how many were not), so a
/// flood of connections cannot flood the log too.
#[derive(Default)]
struct RefusalLog {
    last: std::sync::Mutex<Option<(Instant, u64)>>,
}

impl RefusalLog {
    fn note(&self, peer: SocketAddr, refusal: &super::slots::Refusal) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        match last.as_mut() {
            Some((at, unlogged)) if at.elapsed() < Duration::from_secs(1) => *unlogged += 1,
            _ => {
                let unlogged = last.map_or(0, |(_, n)| n);
                tracing::warn!(peer = %peer, also_refused = unlogged, "{refusal}");
                *last = Some((Instant::now(), 0));
            }
        }
    }
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
            slots: Slots::new(config.connection_limits()),
            refusals: RefusalLog::default(),
            config,
            studies: StudyBuffers::new(storage.clone()),
            storage,
            dispatcher,
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
            let socket = match socket {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors, most likely: give the others a moment to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            let Ok(peer) = socket.peer_addr() else {
                continue;
            };
            let slot = match self.slots.connect(peer.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    self.refusals.note(peer, &refusal);
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let scp = self.clone();
            let spawned = std::thread::Builder::new()
                .name("dicom-association".into())
                .spawn(move || scp.connection(socket, peer, slot));
            if let Err(e) = spawned {
                tracing::warn!(peer = %peer, error = %e, "cannot start a thread for a connection");
            }
        }
    }

    /// A new connection: once its whole request has arrived it takes an association slot
    /// (or is rejected as transient when none is free) and is served.
    fn connection(&self, socket: TcpStream, peer: SocketAddr, mut slot: Connection) {
        let timeout = self.slots.limits().request_timeout;
        match wait_for_request(&socket, timeout) {
            Ok(()) => {}
            // A probe of the port (a health check, a load balancer): nothing to report.
            Err(None) => return,
            Err(Some(why)) => {
                tracing::warn!(peer = %peer, reason = %why, "connection closed before an association was requested");
                return;
            }
        }
        if !slot.associate() {
            reject_busy(socket, peer);
            return;
        }
        self.association(socket, peer);
        drop(slot);
    }

    /// Studies quiet for their route's period become payloads and run.
    fn complete_quiet_studies(&self) {
        for study in self.studies.take_quiet() {
            match complete_study(&self.storage, &study.dir) {
                Ok(payload) => {
                    tracing::info!(study = %study.study, instances = study.instances, payload = %payload_id(&payload), called = %study.ae_title, "payload complete");
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

    fn association(&self, socket: TcpStream, peer: SocketAddr) {
        let access = RouteAccess {
            config: &self.config,
            peer: peer.ip(),
        };
        let mut options = ServerAssociationOptions::new()
            .ae_access_control(access)
            .ae_title(self.config.ae_title.as_str())
            .max_pdu_length(self.config.max_pdu)
            .read_timeout(self.slots.limits().request_timeout)
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
        tracing::info!(peer = %peer, calling = %calling, called = %called, "association opened");
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
                tracing::info!(instances = stored, duplicates, "association released");
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
                let studies: Vec<String> = incoming.studies.iter().cloned().collect();
                match incoming.complete(&self.storage) {
                    Ok(Some(payload)) => {
                        tracing::info!(study = %studies.join(","), instances = stored, payload = %payload_id(&payload), "payload complete");
                        if let Some(route) = self.config.route(&called) {
                            self.dispatcher.payload_complete(route, &payload, &calling);
                        }
                    }
                    Ok(None) => tracing::info!("no payload: the association stored no instances"),
                    Err(e) => tracing::error!(error = %e, "cannot complete the payload"),
                }
            }
            Err(why) => {
                let instances = incoming.stored;
                // Peer and calling AE again: the span is not there when only warnings are.
                if why.starts_with("aborted by the peer") {
                    tracing::info!(peer = %peer, calling = %calling, instances, reason = %why, "association aborted; what it sent is discarded");
                } else {
                    tracing::warn!(peer = %peer, calling = %calling, instances, reason = %why, "association aborted; what it sent is discarded");
                }
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
                                if command.len() + pv.data.len() > dimse::MAX_COMMAND_SET {
                                    let _ = send_abort(assoc);
                                    return Err(format!(
                                        "aborted: the command set is over the {} byte limit ({} bytes received)",
                                        dimse::MAX_COMMAND_SET,
                                        command.len() + pv.data.len()
                                    ));
                                }
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
                                        // A new request before the last one's data set
                                        // ended: the unfinished instance is dropped.
                                        if let Some((old, _, writer, _)) = pending.take() {
                                            tracing::warn!(sop_instance = %old.sop_instance, "a new C-STORE request arrived before this instance's data set ended; it is dropped");
                                            writer.map(InstanceWriter::abandon);
                                        }
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
                                let rsp = dimse::store_rsp_with_comment(cmd, status, &message);
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

/// Waits, at most `timeout` in all, until the whole A-ASSOCIATE-RQ of a new connection is
/// in the socket's receive buffer, without reading it (the association reads it then).
/// None: the peer closed the connection before sending anything.
fn wait_for_request(socket: &TcpStream, timeout: Duration) -> Result<(), Option<String>> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 6];
    let mut need = 6;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Some(format!(
                "no whole A-ASSOCIATE-RQ within {timeout:?} (request-timeout)"
            )));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| Some(e.to_string()))?;
        let n = match socket.peek(&mut buf) {
            Ok(0) if need == 6 && buf[0] == 0 => return Err(None),
            Ok(0) => return Err(Some("closed by the peer during its request".into())),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(Some(e.to_string())),
        };
        if n >= need {
            if need > 6 {
                return Ok(());
            }
            if buf[0] != 0x01 {
                return Err(Some(format!(
                    "the first PDU is of type 0x{:02x}, not an A-ASSOCIATE-RQ",
                    buf[0]
                )));
            }
            let len = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]);
            if len > MAX_REQUEST {
                return Err(Some(format!(
                    "the A-ASSOCIATE-RQ declares {len} bytes, over the {MAX_REQUEST} byte limit"
                )));
            }
            need = 6 + len as usize;
            buf.resize(need, 0);
            continue;
        }
        // Part of it is there: the rest follows soon from any real peer.
        std::thread::sleep(Duration::from_millis(2).min(left));
    }
}

/// Over `max-associations`: the association is rejected as transient (local limit
/// exceeded), so the caller may retry later.
fn reject_busy(mut socket: TcpStream, peer: SocketAddr) {
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
    tracing::warn!(peer = %peer, "association rejected: max-associations reached");
}
