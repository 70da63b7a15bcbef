//! The service class user side of the adapter: C-ECHO to check a peer, and C-STORE to send
//! DICOM files to it (results back to the PACS).
//!
//! Files go out as they are stored: the data set bytes after the file meta group are sent
//! unchanged in the file's own transfer syntax, so compressed pixel data is never decoded
//! and the peer receives exactly what Ward holds. The one exception is a peer that refuses
//! explicit VR little endian for a SOP class: such files are re-encoded to implicit VR little
//! endian, the transfer syntax every peer must accept.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(test)]
use dicom_dictionary_std::tags;
use dicom_dictionary_std::uids;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::{FileMetaTable, InMemDicomObject};
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::client::{ClientAssociation, ClientAssociationOptions};
use dicom_ul::association::Error as UlError;
use dicom_ul::pdu::{
    AbortRQSource, AssociationRJ, AssociationRJResult, AssociationRJSource, PDataValue,
    PDataValueType, Pdu, MAXIMUM_PDU_SIZE, MINIMUM_PDU_SIZE,
};

use super::dimse;
use super::peer::{validate_ae_title, AeTitleError, Peer};

/// The largest PDU Ward offers to receive. Peers only send responses to an SCU, so this
/// mostly matters to peers that size their own PDUs by it; what Ward sends is sized by the
/// peer's limit.
pub const DEFAULT_MAX_PDU: u32 = 116_794;

/// Presentation context IDs are odd numbers in one byte (PS3.8 §9.3.2.2): at most 128.
const MAX_CONTEXTS: usize = 128;

/// A command set is a few hundred bytes; anything much larger is a broken or hostile peer.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// Below this the peer could not carry a C-STORE-RQ command in one PDU.
const MIN_PEER_PDU: u32 = 1024;

#[derive(Debug, Clone)]
pub struct ScuOptions {
    /// Ward's AE title in the association request.
    pub calling_ae: String,
    /// The largest PDU Ward accepts from the peer, clamped to what DICOM allows.
    pub max_pdu: u32,
    /// Limit for connecting and for each network read or write.
    pub timeout: Duration,
}

impl Default for ScuOptions {
    fn default() -> Self {
        ScuOptions {
            calling_ae: "WARD".into(),
            max_pdu: DEFAULT_MAX_PDU,
            timeout: Duration::from_secs(30),
        }
    }
}

/// An association-level failure: nothing more can be sent to the peer on this association.
#[derive(Debug, thiserror::Error)]
pub enum ScuError {
    #[error("{peer}: invalid {which} AE title: {source}")]
    AeTitle {
        peer: Peer,
        which: &'static str,
        source: AeTitleError,
    },
    #[error("{peer}: cannot resolve the host: {source}")]
    Resolve { peer: Peer, source: io::Error },
    #[error("{peer}: connection refused (nothing listens on that port)")]
    Refused { peer: Peer },
    #[error("{peer}: cannot connect: {source}")]
    Connect { peer: Peer, source: io::Error },
    #[error("{peer}: association rejected: {reason}")]
    Rejected { peer: Peer, reason: String },
    #[error("{peer}: the peer accepted none of the proposed presentation contexts: {proposed}")]
    NoContextAccepted { peer: Peer, proposed: String },
    #[error("{peer}: the association was aborted by {by} while {during}")]
    Aborted {
        peer: Peer,
        by: String,
        during: String,
    },
    #[error("{peer}: timed out after {timeout:?} while {during}")]
    Timeout {
        peer: Peer,
        during: String,
        timeout: Duration,
    },
    #[error("{peer}: the peer closed the connection while {during}")]
    Closed { peer: Peer, during: String },
    #[error("{peer}: network error while {during}: {message}")]
    Network {
        peer: Peer,
        during: String,
        message: String,
    },
    #[error("{peer}: protocol error while {during}: {message}")]
    Protocol {
        peer: Peer,
        during: String,
        message: String,
    },
    #[error("{peer}: C-ECHO answered with status {status:#06x} ({meaning})")]
    EchoStatus {
        peer: Peer,
        status: u16,
        meaning: String,
    },
}

impl ScuError {
    /// The peer the failed operation was talking to.
    pub fn peer(&self) -> &Peer {
        match self {
            ScuError::AeTitle { peer, .. }
            | ScuError::Resolve { peer, .. }
            | ScuError::Refused { peer }
            | ScuError::Connect { peer, .. }
            | ScuError::Rejected { peer, .. }
            | ScuError::NoContextAccepted { peer, .. }
            | ScuError::Aborted { peer, .. }
            | ScuError::Timeout { peer, .. }
            | ScuError::Closed { peer, .. }
            | ScuError::Network { peer, .. }
            | ScuError::Protocol { peer, .. }
            | ScuError::EchoStatus { peer, .. } => peer,
        }
    }
}

/// How the peer took one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreResult {
    Stored,
    /// Stored, with a warning status (e.g. coerced data elements).
    Warning,
    /// Not stored: refused by the peer, or never sent (not DICOM, no accepted context).
    Failed,
}

/// What happened to one file of [`send_files`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    pub path: PathBuf,
    /// From the file meta information; `None` when the file could not be read as DICOM.
    pub sop_instance: Option<String>,
    /// The C-STORE-RSP status; `None` when the file was not sent.
    pub status: Option<u16>,
    pub result: StoreResult,
    pub message: String,
    /// Data set bytes sent.
    pub bytes: u64,
}

impl FileOutcome {
    /// The peer holds the instance: stored, possibly with a warning.
    pub fn is_success(&self) -> bool {
        self.result != StoreResult::Failed
    }

    fn failed(path: &Path, sop_instance: Option<String>, message: String) -> Self {
        FileOutcome {
            path: path.to_path_buf(),
            sop_instance,
            status: None,
            result: StoreResult::Failed,
            message,
            bytes: 0,
        }
    }
}

/// C-ECHO: opens an association, verifies the peer answers, releases. Returns the round
/// trip of the C-ECHO exchange itself (not counting the association set-up).
pub fn echo(opts: &ScuOptions, peer: &Peer) -> Result<Duration, ScuError> {
    let contexts = [(
        uids::VERIFICATION.to_string(),
        uids::IMPLICIT_VR_LITTLE_ENDIAN.to_string(),
    )];
    let mut link = Link::open(opts, peer, &contexts)?;
    let Some(pc) = link.context_for(uids::VERIFICATION, uids::IMPLICIT_VR_LITTLE_ENDIAN) else {
        return Err(link.abort(ScuError::NoContextAccepted {
            peer: peer.clone(),
            proposed: describe_contexts(&contexts),
        }));
    };
    let start = Instant::now();
    link.send_command(pc, dimse::echo_rq(1), "sending the C-ECHO-RQ")?;
    let during = "waiting for the C-ECHO-RSP";
    let (rsp, _) = link.receive_command(during)?;
    let round_trip = start.elapsed();
    if rsp.field != dimse::C_ECHO_RSP || rsp.responding_to != Some(1) {
        let message = format!(
            "expected a C-ECHO-RSP to message 1, got command {:#06x} answering {:?}",
            rsp.field, rsp.responding_to
        );
        let err = link.protocol(during, message);
        return Err(link.abort(err));
    }
    link.release();
    match rsp.status {
        Some(dimse::status::SUCCESS) => Ok(round_trip),
        Some(status) => Err(ScuError::EchoStatus {
            peer: peer.clone(),
            status,
            meaning: status_meaning(status).1.to_string(),
        }),
        None => Err(ScuError::Protocol {
            peer: peer.clone(),
            during: during.into(),
            message: "the C-ECHO-RSP has no status".into(),
        }),
    }
}

/// What the file meta information says about one file.
#[derive(Debug, Clone)]
struct FileMeta {
    sop_class: String,
    sop_instance: String,
    transfer_syntax: String,
}

/// C-STORE: sends every file on one association and records what the peer answered for
/// each. A file that is not DICOM, or whose SOP class and transfer syntax the peer did not
/// accept, is a failed [`FileOutcome`], not an error; `on_progress` sees each outcome as it
/// is known, in the order of `files`. An error means the association itself failed: the
/// outcomes reported to `on_progress` until then stand, the remaining files were not sent.
pub fn send_files(
    opts: &ScuOptions,
    peer: &Peer,
    files: &[PathBuf],
    mut on_progress: impl FnMut(&FileOutcome),
) -> Result<Vec<FileOutcome>, ScuError> {
    // Only the meta group of each file is read up front: it decides the presentation
    // contexts, and holding whole series in memory would not scale.
    let metas: Vec<Result<FileMeta, String>> = files.iter().map(|p| read_meta_of(p)).collect();
    let contexts = propose_contexts(&metas);

    let mut link = if contexts.is_empty() {
        None
    } else {
        match Link::open(opts, peer, &contexts) {
            Ok(link) => Some(link),
            // Rejected contexts fail their files, not the send: here that is all of them.
            Err(ScuError::NoContextAccepted { .. }) => None,
            Err(e) => return Err(e),
        }
    };

    let mut outcomes = Vec::with_capacity(files.len());
    let mut message_id: u16 = 0;
    for (path, meta) in files.iter().zip(&metas) {
        let outcome = match meta {
            Err(message) => FileOutcome::failed(path, None, message.clone()),
            Ok(meta) => match link.as_mut().and_then(|l| Some((l.route(meta)?, l))) {
                None => FileOutcome::failed(
                    path,
                    Some(meta.sop_instance.clone()),
                    not_accepted(meta, &contexts),
                ),
                Some(((pc, transcode), link)) => match load_data_set(path, meta, transcode) {
                    Err(message) => {
                        FileOutcome::failed(path, Some(meta.sop_instance.clone()), message)
                    }
                    Ok((bytes, start)) => {
                        message_id = message_id.wrapping_add(1);
                        link.store(pc, message_id, path, meta, &bytes[start..])?
                    }
                },
            },
        };
        on_progress(&outcome);
        outcomes.push(outcome);
    }
    if let Some(link) = link {
        link.release();
    }
    Ok(outcomes)
}

/// One presentation context per distinct (SOP class, transfer syntax), each offering only
/// that transfer syntax so that the peer cannot pick one that would force re-encoding. For
/// explicit VR little endian files, an implicit VR little endian context for the same class
/// is proposed too, as the fallback for peers that accept only the default transfer syntax.
fn propose_contexts(metas: &[Result<FileMeta, String>]) -> Vec<(String, String)> {
    let mut contexts: Vec<(String, String)> = Vec::new();
    let mut add = |class: &str, ts: &str| {
        if contexts.len() < MAX_CONTEXTS && !contexts.iter().any(|(c, t)| c == class && t == ts) {
            contexts.push((class.to_string(), ts.to_string()));
        }
    };
    // Native contexts first, so that fallbacks are what the 128-context limit drops.
    for m in metas.iter().flatten() {
        add(&m.sop_class, &m.transfer_syntax);
    }
    for m in metas.iter().flatten() {
        if m.transfer_syntax == uids::EXPLICIT_VR_LITTLE_ENDIAN {
            add(&m.sop_class, uids::IMPLICIT_VR_LITTLE_ENDIAN);
        }
    }
    contexts
}

fn ts_name(uid: &str) -> String {
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) => format!("{uid} ({})", ts.name()),
        None => uid.to_string(),
    }
}

fn describe_contexts(contexts: &[(String, String)]) -> String {
    contexts
        .iter()
        .map(|(class, ts)| format!("SOP class {class} in {}", ts_name(ts)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn not_accepted(meta: &FileMeta, proposed: &[(String, String)]) -> String {
    let was_proposed = proposed
        .iter()
        .any(|(c, t)| *c == meta.sop_class && *t == meta.transfer_syntax);
    if was_proposed {
        format!(
            "the peer did not accept SOP class {} in transfer syntax {}",
            meta.sop_class,
            ts_name(&meta.transfer_syntax)
        )
    } else {
        format!(
            "SOP class {} in transfer syntax {} is beyond the {MAX_CONTEXTS} presentation \
             contexts one association can carry",
            meta.sop_class,
            ts_name(&meta.transfer_syntax)
        )
    }
}

/// Counts the bytes a reader hands out, to learn where the file meta group ends.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

const DICM: &[u8; 4] = b"DICM";

/// Reads the file meta information from the start of a file and returns it with the offset
/// of the data set that follows it. Accepts files with the 128-byte preamble and, as
/// dicom-object does, files that start directly with `DICM`.
fn read_meta(mut r: impl Read) -> Result<(FileMeta, u64), String> {
    let mut prefix = [0u8; 132];
    let mut n = 0;
    while n < prefix.len() {
        match r.read(&mut prefix[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    let (skip, start) = if n == 132 && &prefix[128..132] == DICM {
        (128, &prefix[128..132])
    } else if n >= 4 && &prefix[..4] == DICM {
        (0, &prefix[..n])
    } else {
        return Err("not a DICOM file: no `DICM` prefix after the 128-byte preamble".into());
    };
    let mut counting = Counting {
        inner: start.chain(r),
        count: 0,
    };
    let table = FileMetaTable::from_reader(&mut counting)
        .map_err(|e| format!("not a DICOM file: its file meta information is unreadable: {e}"))?;
    let clean = |s: &str| s.trim_end_matches(['\0', ' ']).to_string();
    let meta = FileMeta {
        sop_class: clean(table.media_storage_sop_class_uid()),
        sop_instance: clean(table.media_storage_sop_instance_uid()),
        transfer_syntax: clean(table.transfer_syntax()),
    };
    for (value, name) in [
        (&meta.sop_class, "Media Storage SOP Class UID"),
        (&meta.sop_instance, "Media Storage SOP Instance UID"),
        (&meta.transfer_syntax, "Transfer Syntax UID"),
    ] {
        if value.is_empty() {
            return Err(format!("the file meta information has no {name}"));
        }
    }
    Ok((meta, skip + counting.count))
}

fn read_meta_of(path: &Path) -> Result<FileMeta, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    read_meta(io::BufReader::new(file)).map(|(meta, _)| meta)
}

/// The bytes to send for a file and where its data set starts in them: the data set exactly
/// as stored, or re-encoded to implicit VR little endian when that is the only context the
/// peer accepted for it.
fn load_data_set(
    path: &Path,
    expected: &FileMeta,
    transcode: bool,
) -> Result<(Vec<u8>, usize), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let (meta, offset) = read_meta(&bytes[..])?;
    if meta.sop_class != expected.sop_class
        || meta.sop_instance != expected.sop_instance
        || meta.transfer_syntax != expected.transfer_syntax
    {
        return Err("the file changed while the association was negotiated".into());
    }
    // `offset` counts bytes read from `bytes`, so it is within it.
    let start = offset as usize;
    if start >= bytes.len() {
        return Err("no data set follows the file meta information".into());
    }
    if !transcode {
        return Ok((bytes, start));
    }
    let obj = InMemDicomObject::read_dataset_with_ts(
        &bytes[start..],
        &EXPLICIT_VR_LITTLE_ENDIAN.erased(),
    )
    .map_err(|e| format!("cannot read the data set to re-encode it: {e}"))?;
    let mut out = Vec::with_capacity(bytes.len());
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| format!("cannot re-encode the data set as implicit VR little endian: {e}"))?;
    Ok((out, 0))
}

/// PS3.7 Annex C and PS3.4 Annex B.2.3: how a C-STORE or C-ECHO status reads.
fn status_meaning(status: u16) -> (StoreResult, &'static str) {
    use StoreResult::*;
    match status {
        0x0000 => (Stored, "success"),
        0x0001 => (
            Warning,
            "warning: requested optional attributes are not supported",
        ),
        0x0107 => (Warning, "warning: attribute list error"),
        0x0116 => (Warning, "warning: attribute value out of range"),
        0xB000 => (Warning, "warning: coercion of data elements"),
        0xB006 => (Warning, "warning: elements discarded"),
        0xB007 => (Warning, "warning: data set does not match SOP class"),
        0xB000..=0xBFFF => (Warning, "warning"),
        // PS3.7 C.5.4 classes a duplicate as a failure, but the peer holds the instance (it
        // kept an earlier copy): for a sender, and for retries after a lost response, that is
        // delivered. Ward's own SCP answers duplicates this way.
        0x0111 => (Warning, "duplicate SOP instance: the peer already holds it"),
        0x0110 => (Failed, "failure: processing failure"),
        0x0117 => (Failed, "failure: invalid SOP instance"),
        0x0122 => (Failed, "refused: SOP class not supported"),
        0x0124 => (Failed, "refused: not authorized"),
        0x0210 => (Failed, "failure: duplicate invocation"),
        0x0211 => (Failed, "failure: unrecognized operation"),
        0x0212 => (Failed, "failure: mistyped argument"),
        0x0213 => (Failed, "failure: resource limitation"),
        0xA700..=0xA7FF => (Failed, "refused: out of resources"),
        0xA900..=0xA9FF => (Failed, "error: data set does not match SOP class"),
        0xC000..=0xCFFF => (Failed, "error: cannot understand"),
        0xFE00 => (Failed, "cancelled"),
        _ => (Failed, "failure"),
    }
}

fn describe_rejection(rj: &AssociationRJ) -> String {
    let result = match rj.result {
        AssociationRJResult::Permanent => "permanent",
        AssociationRJResult::Transient => "transient",
    };
    let by = match rj.source {
        AssociationRJSource::ServiceUser(_) => "the called application",
        AssociationRJSource::ServiceProviderASCE(_) => "the peer's ACSE service provider",
        AssociationRJSource::ServiceProviderPresentation(_) => {
            "the peer's presentation service provider"
        }
    };
    format!("{} ({result} rejection by {by})", rj.source)
}

fn describe_abort(source: &AbortRQSource) -> String {
    match source {
        AbortRQSource::ServiceUser => "the peer".into(),
        AbortRQSource::ServiceProvider(reason) => format!("the peer's service provider ({reason})"),
        AbortRQSource::Reserved => "the peer (reserved source)".into(),
    }
}

fn io_error(peer: &Peer, timeout: Duration, during: &str, e: &io::Error) -> ScuError {
    use io::ErrorKind::*;
    let during = during.to_string();
    let peer = peer.clone();
    match e.kind() {
        // A socket read or write timeout surfaces as WouldBlock on Unix.
        TimedOut | WouldBlock => ScuError::Timeout {
            peer,
            during,
            timeout,
        },
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            ScuError::Closed { peer, during }
        }
        _ => ScuError::Network {
            peer,
            during,
            message: e.to_string(),
        },
    }
}

fn ul_error(peer: &Peer, timeout: Duration, during: &str, e: UlError) -> ScuError {
    match e {
        UlError::ToAddress { source, .. } => ScuError::Resolve {
            peer: peer.clone(),
            source,
        },
        UlError::Connect { source, .. } => match source.kind() {
            io::ErrorKind::ConnectionRefused => ScuError::Refused { peer: peer.clone() },
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ScuError::Timeout {
                peer: peer.clone(),
                during: "connecting".into(),
                timeout,
            },
            _ => ScuError::Connect {
                peer: peer.clone(),
                source,
            },
        },
        UlError::Rejected { association_rj, .. } => ScuError::Rejected {
            peer: peer.clone(),
            reason: describe_rejection(&association_rj),
        },
        UlError::UnexpectedPdu { pdu, .. } => match *pdu {
            Pdu::AbortRQ { source } => ScuError::Aborted {
                peer: peer.clone(),
                by: describe_abort(&source),
                during: during.into(),
            },
            other => ScuError::Protocol {
                peer: peer.clone(),
                during: during.into(),
                message: format!("unexpected {}", other.short_description()),
            },
        },
        UlError::Aborted { .. } => ScuError::Aborted {
            peer: peer.clone(),
            by: "the peer".into(),
            during: during.into(),
        },
        UlError::ConnectionClosed { .. } => ScuError::Closed {
            peer: peer.clone(),
            during: during.into(),
        },
        other => {
            let mut chain = Vec::new();
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&other);
            while let Some(err) = cur {
                if let Some(io) = err.downcast_ref::<io::Error>() {
                    return io_error(peer, timeout, during, io);
                }
                chain.push(err.to_string());
                cur = err.source();
            }
            ScuError::Protocol {
                peer: peer.clone(),
                during: during.into(),
                message: chain.join(": "),
            }
        }
    }
}

/// An established association and what error reports need to name.
struct Link<'p> {
    assoc: ClientAssociation<TcpStream>,
    peer: &'p Peer,
    timeout: Duration,
    /// Bytes read from the peer and not yet parsed into a PDU (see `receive_pdu`).
    received: Vec<u8>,
}

impl<'p> Link<'p> {
    fn open(
        opts: &ScuOptions,
        peer: &'p Peer,
        contexts: &[(String, String)],
    ) -> Result<Self, ScuError> {
        for (title, which) in [(&opts.calling_ae, "calling"), (&peer.ae_title, "called")] {
            validate_ae_title(title).map_err(|source| ScuError::AeTitle {
                peer: peer.clone(),
                which,
                source,
            })?;
        }
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title(opts.calling_ae.trim())
            .called_ae_title(peer.ae_title.trim())
            .max_pdu_length(opts.max_pdu.clamp(MINIMUM_PDU_SIZE, MAXIMUM_PDU_SIZE))
            .connection_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .write_timeout(opts.timeout);
        for (class, ts) in contexts {
            options = options.with_presentation_context(class.as_str(), vec![ts.as_str()]);
        }
        let during = "requesting the association";
        let mut assoc =
            options
                .establish((peer.host.as_str(), peer.port))
                .map_err(|e| match e {
                    UlError::NoAcceptedPresentationContexts { .. } => ScuError::NoContextAccepted {
                        peer: peer.clone(),
                        proposed: describe_contexts(contexts),
                    },
                    e => ul_error(peer, opts.timeout, during, e),
                })?;
        // Each C-STORE waits for its response: without NODELAY, Nagle's algorithm holds back
        // the last, short PDU of a data set until the peer's delayed ACK.
        if let Err(e) = assoc.inner_stream().set_nodelay(true) {
            tracing::debug!("{peer}: cannot set TCP_NODELAY: {e}");
        }
        let link = Link {
            assoc,
            peer,
            timeout: opts.timeout,
            received: Vec::new(),
        };
        // The P-DATA writer needs room for its headers in every PDU; a peer announcing less
        // than a command set needs cannot be served.
        let peer_max = link.assoc.acceptor_max_pdu_length();
        if peer_max < MIN_PEER_PDU {
            let message = format!(
                "the peer accepts PDUs of at most {peer_max} bytes, too few for DIMSE messages"
            );
            let err = link.protocol(during, message);
            return Err(link.abort(err));
        }
        Ok(link)
    }

    fn context_for(&self, class: &str, ts: &str) -> Option<u8> {
        self.assoc
            .presentation_contexts()
            .iter()
            .find(|pc| pc.abstract_syntax == class && pc.transfer_syntax == ts)
            .map(|pc| pc.id)
    }

    /// The accepted context a file goes through, and whether it must be re-encoded.
    fn route(&self, meta: &FileMeta) -> Option<(u8, bool)> {
        if let Some(pc) = self.context_for(&meta.sop_class, &meta.transfer_syntax) {
            return Some((pc, false));
        }
        if meta.transfer_syntax == uids::EXPLICIT_VR_LITTLE_ENDIAN {
            let pc = self.context_for(&meta.sop_class, uids::IMPLICIT_VR_LITTLE_ENDIAN)?;
            return Some((pc, true));
        }
        None
    }

    fn protocol(&self, during: &str, message: String) -> ScuError {
        ScuError::Protocol {
            peer: self.peer.clone(),
            during: during.into(),
            message,
        }
    }

    /// Ends the association after a failure: A-ABORT is the only way out that the peer
    /// understands mid-transfer. The peer may be gone already, so its own failure is moot.
    fn abort(self, err: ScuError) -> ScuError {
        let _ = self.assoc.abort();
        err
    }

    fn ul(&self, during: &str, e: UlError) -> ScuError {
        ul_error(self.peer, self.timeout, during, e)
    }

    /// A failed write often means the peer aborted: its A-ABORT may be waiting to be read,
    /// and it explains the failure better than the broken pipe does.
    fn after_write_failure(&mut self, during: &str, err: ScuError) -> ScuError {
        if matches!(err, ScuError::Timeout { .. }) {
            return err;
        }
        match self.receive_pdu(during) {
            Ok(Pdu::AbortRQ { source }) => ScuError::Aborted {
                peer: self.peer.clone(),
                by: describe_abort(&source),
                during: during.into(),
            },
            _ => err,
        }
    }

    fn send_command(&mut self, pc: u8, command: Vec<u8>, during: &str) -> Result<(), ScuError> {
        let pdu = Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Command,
                is_last: true,
                data: command,
            }],
        };
        if let Err(e) = self.assoc.send(&pdu) {
            let err = self.ul(during, e);
            let err = self.after_write_failure(during, err);
            return Err(self.abort_in_place(err));
        }
        Ok(())
    }

    /// Sends a data set in P-DATA fragments of the peer's maximum PDU length.
    fn send_data_set(&mut self, pc: u8, data: &[u8], during: &str) -> Result<(), ScuError> {
        // One write_all per writer: dicom-ul's PDataWriter reports a zero-length write when a
        // new write starts on an exactly full PDU, which write_all would take for an error.
        let mut writer = self.assoc.send_pdata(pc);
        let result = match writer.write_all(data) {
            Ok(()) => writer.finish(),
            // Dropping the writer would try to send what it still holds, on a connection
            // that just failed (and, after a timeout, wait as long again).
            Err(e) => {
                writer.abandon();
                Err(e)
            }
        };
        if let Err(e) = result {
            let err = io_error(self.peer, self.timeout, during, &e);
            let err = self.after_write_failure(during, err);
            return Err(self.abort_in_place(err));
        }
        Ok(())
    }

    /// Sends A-ABORT without giving up the association value (the caller returns the error
    /// and drops the link, which closes the socket). Not to a peer that stopped reading or
    /// is gone: the write would only wait out the timeout again.
    fn abort_in_place(&mut self, err: ScuError) -> ScuError {
        if !matches!(
            err,
            ScuError::Timeout { .. } | ScuError::Closed { .. } | ScuError::Aborted { .. }
        ) {
            let _ = self.assoc.send(&Pdu::AbortRQ {
                source: AbortRQSource::ServiceUser,
            });
        }
        err
    }

    /// Reads one PDU. dicom-ul's own receive would do, but a response has to be acknowledged
    /// as soon as its first part arrives: peers that leave Nagle's algorithm on (DCMTK as
    /// Debian builds it) write the PDU header and the command in two writes and hold the
    /// second until the first is acknowledged, and Linux delays that ACK by 40 ms, once per
    /// C-STORE. Setting TCP_QUICKACK after a read that emptied the socket sends the pending
    /// ACK at once; the kernel only does that when it has no unread data, hence this loop.
    fn receive_pdu(&mut self, during: &str) -> Result<Pdu, ScuError> {
        let max = self.assoc.requestor_max_pdu_length();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let mut rest = &self.received[..];
            match dicom_ul::read_pdu(&mut rest, max, true) {
                Ok(Some(pdu)) => {
                    let used = self.received.len() - rest.len();
                    self.received.drain(..used);
                    return Ok(pdu);
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(self.protocol(during, format!("unreadable PDU from the peer: {e}")))
                }
            }
            let stream = self.assoc.inner_stream();
            let n = match stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(ScuError::Closed {
                        peer: self.peer.clone(),
                        during: during.into(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(self.peer, self.timeout, during, &e)),
            };
            self.received.extend_from_slice(&chunk[..n]);
            #[cfg(target_os = "linux")]
            if let Err(e) = rustix::net::sockopt::set_tcp_quickack(&*stream, true) {
                tracing::debug!("{}: cannot set TCP_QUICKACK: {e}", self.peer);
            }
        }
    }

    /// Receives one complete command set (possibly spread over several P-DATA PDUs).
    fn receive_command(&mut self, during: &str) -> Result<(dimse::Command, Vec<u8>), ScuError> {
        let mut bytes = Vec::new();
        loop {
            let pdu = match self.receive_pdu(during) {
                Ok(pdu) => pdu,
                Err(err) => return Err(self.abort_in_place(err)),
            };
            let values = match pdu {
                Pdu::PData { data } => data,
                Pdu::AbortRQ { source } => {
                    return Err(ScuError::Aborted {
                        peer: self.peer.clone(),
                        by: describe_abort(&source),
                        during: during.into(),
                    })
                }
                other => {
                    let message = format!("unexpected {}", other.short_description());
                    let err = self.protocol(during, message);
                    return Err(self.abort_in_place(err));
                }
            };
            for value in values {
                if value.value_type != PDataValueType::Command {
                    let err = self.protocol(
                        during,
                        "a data set arrived where a command was expected".into(),
                    );
                    return Err(self.abort_in_place(err));
                }
                bytes.extend_from_slice(&value.data);
                if bytes.len() > MAX_COMMAND_BYTES {
                    let message = format!("a command set of more than {MAX_COMMAND_BYTES} bytes");
                    let err = self.protocol(during, message);
                    return Err(self.abort_in_place(err));
                }
                if value.is_last {
                    return match dimse::decode(&bytes) {
                        Ok(command) => Ok((command, bytes)),
                        Err(e) => {
                            let err = self.protocol(during, e.to_string());
                            Err(self.abort_in_place(err))
                        }
                    };
                }
            }
        }
    }

    /// One C-STORE: request, data set, response.
    fn store(
        &mut self,
        pc: u8,
        message_id: u16,
        path: &Path,
        meta: &FileMeta,
        data: &[u8],
    ) -> Result<FileOutcome, ScuError> {
        let instance = &meta.sop_instance;
        let rq = dimse::store_rq(message_id, &meta.sop_class, instance);
        self.send_command(pc, rq, &format!("sending the C-STORE-RQ for {instance}"))?;
        self.send_data_set(
            pc,
            data,
            &format!("sending the data set of {}", path.display()),
        )?;
        let during = format!("waiting for the C-STORE-RSP for {instance}");
        let (rsp, _) = self.receive_command(&during)?;
        if rsp.field != dimse::C_STORE_RSP || rsp.responding_to != Some(message_id) {
            let message = format!(
                "expected a C-STORE-RSP to message {message_id}, got command {:#06x} answering {:?}",
                rsp.field, rsp.responding_to
            );
            let err = self.protocol(&during, message);
            return Err(self.abort_in_place(err));
        }
        let Some(status) = rsp.status else {
            let err = self.protocol(&during, "the C-STORE-RSP has no status".into());
            return Err(self.abort_in_place(err));
        };
        let (result, meaning) = status_meaning(status);
        let message = match rsp.error_comment.as_deref() {
            Some(comment) => format!("{meaning} ({status:#06x}): {comment}"),
            None if status == dimse::status::SUCCESS => meaning.to_string(),
            None => format!("{meaning} ({status:#06x})"),
        };
        Ok(FileOutcome {
            path: path.to_path_buf(),
            sop_instance: Some(instance.clone()),
            status: Some(status),
            result,
            message,
            bytes: data.len() as u64,
        })
    }

    /// A-RELEASE. Every store was confirmed by its own response, so a peer that botches the
    /// release changes nothing about what it holds: that is logged, not reported.
    fn release(self) {
        let peer = self.peer;
        if let Err(e) = self.assoc.release() {
            tracing::warn!("{peer}: the association release failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(class: &str, ts: &str) -> Result<FileMeta, String> {
        Ok(FileMeta {
            sop_class: class.into(),
            sop_instance: "1.2.3".into(),
            transfer_syntax: ts.into(),
        })
    }

    #[test]
    fn one_context_per_class_and_syntax_with_an_implicit_fallback_for_explicit() {
        let ct = uids::CT_IMAGE_STORAGE;
        let mr = uids::MR_IMAGE_STORAGE;
        let metas = vec![
            meta(ct, uids::EXPLICIT_VR_LITTLE_ENDIAN),
            meta(ct, uids::EXPLICIT_VR_LITTLE_ENDIAN),
            Err("not DICOM".into()),
            meta(mr, uids::JPEG_BASELINE8_BIT),
            meta(mr, uids::IMPLICIT_VR_LITTLE_ENDIAN),
        ];
        let contexts = propose_contexts(&metas);
        let expected: Vec<(String, String)> = [
            (ct, uids::EXPLICIT_VR_LITTLE_ENDIAN),
            (mr, uids::JPEG_BASELINE8_BIT),
            (mr, uids::IMPLICIT_VR_LITTLE_ENDIAN),
            (ct, uids::IMPLICIT_VR_LITTLE_ENDIAN),
        ]
        .iter()
        .map(|(c, t)| (c.to_string(), t.to_string()))
        .collect();
        assert_eq!(contexts, expected);
    }

    #[test]
    fn contexts_stop_at_128() {
        let metas: Vec<_> = (0..200)
            .map(|i| meta(&format!("1.2.3.{i}"), uids::EXPLICIT_VR_LITTLE_ENDIAN))
            .collect();
        let contexts = propose_contexts(&metas);
        assert_eq!(contexts.len(), MAX_CONTEXTS);
        assert!(contexts
            .iter()
            .all(|(_, ts)| ts == uids::EXPLICIT_VR_LITTLE_ENDIAN));
    }

    #[test]
    fn meta_and_data_set_offset() {
        let dir = tempfile::tempdir().unwrap();
        let series = crate::sample::ct_series::write_ct_series(
            dir.path(),
            &crate::sample::ct_series::CtSeriesOptions {
                slices: 1,
                size: 8,
                ..Default::default()
            },
        )
        .unwrap();
        let bytes = std::fs::read(&series.files[0]).unwrap();
        let (meta, offset) = read_meta(&bytes[..]).unwrap();
        assert_eq!(meta.sop_class, uids::CT_IMAGE_STORAGE);
        assert_eq!(meta.transfer_syntax, uids::EXPLICIT_VR_LITTLE_ENDIAN);
        // The data set starts with the first element after group 0002.
        let rest = &bytes[offset as usize..];
        assert_ne!(&rest[..2], &[0x02, 0x00]);
        let obj = InMemDicomObject::read_dataset_with_ts(rest, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        assert_eq!(
            obj.element(tags::SOP_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap(),
            meta.sop_instance
        );
        // Without the preamble, too.
        let (again, offset2) = read_meta(&bytes[128..]).unwrap();
        assert_eq!(
            (again.sop_instance, offset2),
            (meta.sop_instance, offset - 128)
        );
    }

    #[test]
    fn not_dicom_is_an_error_not_a_panic() {
        for junk in [&b""[..], b"DICM", b"hello", &[0u8; 200], &[b'D'; 131]] {
            assert!(read_meta(junk).is_err());
        }
        let mut truncated = vec![0u8; 128];
        truncated.extend_from_slice(b"DICM\x02\x00\x00\x00UL\x04\x00");
        assert!(read_meta(&truncated[..]).is_err());
    }

    #[test]
    fn statuses() {
        assert_eq!(status_meaning(0).0, StoreResult::Stored);
        assert_eq!(status_meaning(0xB000).0, StoreResult::Warning);
        assert_eq!(status_meaning(0xB123).0, StoreResult::Warning);
        assert_eq!(status_meaning(0xA701).0, StoreResult::Failed);
        assert_eq!(status_meaning(0xC123).0, StoreResult::Failed);
        assert_eq!(status_meaning(0x0111).0, StoreResult::Warning);
    }
}
