//! DIMSE command sets (PS3.7 §9, §E): the C-ECHO and C-STORE requests and responses Ward
//! sends and answers, encoded as the standard requires (implicit VR little endian, with the
//! command group length first).

use dicom_core::{dicom_value, DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;

/// Command Field values.
pub const C_STORE_RQ: u16 = 0x0001;
pub const C_STORE_RSP: u16 = 0x8001;
pub const C_ECHO_RQ: u16 = 0x0030;
pub const C_ECHO_RSP: u16 = 0x8030;
/// Command Data Set Type: no data set follows the command.
pub const NO_DATA_SET: u16 = 0x0101;
/// Command Data Set Type: a data set follows.
pub const DATA_SET_PRESENT: u16 = 0x0000;

/// Status codes Ward sends (PS3.4 Annex B.2.3 for storage).
pub mod status {
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    /// Refused: out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: data set does not match SOP class.
    pub const DATA_SET_MISMATCH: u16 = 0xA900;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
    /// Warning: a duplicate SOP instance (the first copy is kept).
    pub const DUPLICATE_INSTANCE: u16 = 0x0111;
}

/// A command as read from the wire: the fields Ward acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Command {
    pub field: u16,
    pub message_id: u16,
    pub responding_to: Option<u16>,
    pub sop_class: String,
    pub sop_instance: String,
    pub has_data_set: bool,
    pub status: Option<u16>,
    /// Error Comment (0000,0902) of a response.
    pub error_comment: Option<String>,
}

/// The largest command set the SCP reads. Commands are a few hundred bytes (UIDs, a few
/// numbers); a peer that keeps sending command fragments past this is aborted.
pub const MAX_COMMAND_SET: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    #[error("the command set cannot be read: {0}")]
    Read(String),
    #[error("the command set has no {0}")]
    Missing(&'static str),
    #[error("command set element {tag} declares {declared} bytes, {available} remain (at byte {offset})")]
    Overrun {
        tag: dicom_core::Tag,
        offset: usize,
        declared: u64,
        available: usize,
    },
    #[error("command set element {tag} at byte {offset}: {what}")]
    Malformed {
        tag: dicom_core::Tag,
        offset: usize,
        what: &'static str,
    },
    #[error("the command set is over the {MAX_COMMAND_SET} byte limit")]
    TooLong,
}

/// Reads a command set from its implicit VR little endian bytes. Command sets are flat (no
/// sequences), so each element is a tag, a four-byte length and that many bytes; a length
/// past the end is refused before anything is read, and only the fields Ward acts on are
/// kept.
pub fn decode(bytes: &[u8]) -> Result<Command, DimseError> {
    if bytes.len() > MAX_COMMAND_SET {
        return Err(DimseError::TooLong);
    }
    if bytes.is_empty() {
        return Err(DimseError::Read("it is empty".into()));
    }
    let mut command = Command::default();
    let (mut field, mut data_set_type) = (None, None);
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 8) else {
            return Err(DimseError::Read(format!(
                "it ends inside an element header at byte {at}"
            )));
        };
        let le16 = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
        let tag = dicom_core::Tag(le16(0), le16(2));
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let value_at = at + 8;
        let available = bytes.len() - value_at;
        if u64::from(len) > available as u64 {
            return Err(DimseError::Overrun {
                tag,
                offset: at,
                declared: u64::from(len),
                available,
            });
        }
        let value = &bytes[value_at..value_at + len as usize];
        let malformed = |what| DimseError::Malformed {
            tag,
            offset: at,
            what,
        };
        let us = || -> Result<u16, DimseError> {
            <[u8; 2]>::try_from(value)
                .map(u16::from_le_bytes)
                .map_err(|_| malformed("a US value must be 2 bytes"))
        };
        let uid = || -> Result<String, DimseError> {
            if value.len() > 64 {
                return Err(malformed("a UID is at most 64 characters"));
            }
            Ok(String::from_utf8_lossy(value)
                .trim_end_matches(['\0', ' '])
                .to_string())
        };
        match tag {
            tags::COMMAND_FIELD => field = Some(us()?),
            tags::MESSAGE_ID => command.message_id = us()?,
            tags::MESSAGE_ID_BEING_RESPONDED_TO => command.responding_to = Some(us()?),
            tags::COMMAND_DATA_SET_TYPE => data_set_type = Some(us()?),
            tags::STATUS => command.status = Some(us()?),
            tags::AFFECTED_SOP_CLASS_UID => command.sop_class = uid()?,
            tags::AFFECTED_SOP_INSTANCE_UID => command.sop_instance = uid()?,
            tags::ERROR_COMMENT => {
                let text = String::from_utf8_lossy(value);
                let text = text.trim_end_matches(['\0', ' ']).trim();
                command.error_comment = (!text.is_empty()).then(|| text.to_string());
            }
            _ => {}
        }
        at = value_at + len as usize;
    }
    command.field = field.ok_or(DimseError::Missing("Command Field"))?;
    command.has_data_set = data_set_type.is_some_and(|t| t != NO_DATA_SET);
    Ok(command)
}

fn encode(elements: Vec<DataElement<InMemDicomObject>>) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter(elements);
    let mut out = Vec::with_capacity(128);
    obj.write_dataset_with_ts(&mut out, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .expect("writing a command set to memory cannot fail");
    out
}

fn ui(tag: dicom_core::Tag, uid: &str) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::UI, PrimitiveValue::from(uid))
}

fn us(tag: dicom_core::Tag, v: u16) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::US, dicom_value!(U16, [v]))
}

/// C-ECHO-RQ.
pub fn echo_rq(message_id: u16) -> Vec<u8> {
    encode(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
        us(tags::COMMAND_FIELD, C_ECHO_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
    ])
}

/// C-ECHO-RSP to request `rq`.
pub fn echo_rsp(rq: &Command, status: u16) -> Vec<u8> {
    encode(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, VERIFICATION),
        us(tags::COMMAND_FIELD, C_ECHO_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, rq.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
    ])
}

/// C-STORE-RQ for one instance; its data set follows.
pub fn store_rq(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    encode(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, sop_class),
        us(tags::COMMAND_FIELD, C_STORE_RQ),
        us(tags::MESSAGE_ID, message_id),
        us(tags::PRIORITY, 0),
        us(tags::COMMAND_DATA_SET_TYPE, DATA_SET_PRESENT),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, sop_instance),
    ])
}

/// C-STORE-RSP to request `rq`.
pub fn store_rsp(rq: &Command, status: u16) -> Vec<u8> {
    store_rsp_with_comment(rq, status, "")
}

/// C-STORE-RSP to request `rq`, with an Error Comment (0000,0902) when `comment` is not
/// empty (cut to the 64 characters an LO holds).
pub fn store_rsp_with_comment(rq: &Command, status: u16, comment: &str) -> Vec<u8> {
    let mut elements = vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, &rq.sop_class),
        us(tags::COMMAND_FIELD, C_STORE_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, rq.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, &rq.sop_instance),
    ];
    let comment: String = comment
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '\\')
        .take(64)
        .collect();
    if !comment.is_empty() {
        elements.push(DataElement::new(
            tags::ERROR_COMMENT,
            VR::LO,
            PrimitiveValue::from(comment),
        ));
    }
    encode(elements)
}

/// The Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_read_back_as_written() {
        let rq = decode(&store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4")).unwrap();
        assert_eq!(rq.field, C_STORE_RQ);
        assert_eq!(rq.message_id, 7);
        assert_eq!(rq.sop_class, "1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(rq.sop_instance, "1.2.3.4");
        assert!(rq.has_data_set);
        let rsp = decode(&store_rsp(&rq, status::SUCCESS)).unwrap();
        assert_eq!(
            (rsp.field, rsp.responding_to, rsp.status, rsp.has_data_set),
            (C_STORE_RSP, Some(7), Some(0), false)
        );
        let echo = decode(&echo_rq(3)).unwrap();
        assert_eq!(
            (echo.field, echo.sop_class.as_str()),
            (C_ECHO_RQ, VERIFICATION)
        );
        let echo_rsp = decode(&echo_rsp(&echo, status::SUCCESS)).unwrap();
        assert_eq!(echo_rsp.responding_to, Some(3));
        let refused = decode(&store_rsp_with_comment(
            &rq,
            status::CANNOT_UNDERSTAND,
            "(7FE0,0010) declares 4294967280 bytes, 100 remain",
        ))
        .unwrap();
        assert_eq!(
            refused.error_comment.as_deref(),
            Some("(7FE0,0010) declares 4294967280 bytes, 100 remain")
        );
    }

    #[test]
    fn the_group_length_comes_first_and_counts_the_rest() {
        let bytes = echo_rq(1);
        // (0000,0000) UL, length 4, value = bytes after this element.
        assert_eq!(&bytes[..8], &[0, 0, 0, 0, 4, 0, 0, 0]);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 12);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[1, 2, 3]).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn a_declared_length_past_the_end_is_refused_before_anything_is_read() {
        // (0000,0002) UI declaring 4 GiB - 1 bytes, then 6 bytes.
        let mut bytes = vec![0x00, 0x00, 0x02, 0x00, 0xFF, 0xFF, 0xFF, 0xFF];
        bytes.extend(b"1.2.3\0");
        let (result, largest) = crate::dicom::smoke::largest_allocation(|| decode(&bytes));
        let err = result.unwrap_err();
        assert!(
            matches!(
                err,
                DimseError::Overrun {
                    declared: 0xFFFF_FFFF,
                    available: 6,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("(0000,0002)"), "{err}");
        assert!(largest < 4096, "{largest} bytes allocated at once");
        assert!(matches!(
            decode(&vec![0u8; MAX_COMMAND_SET + 1]).unwrap_err(),
            DimseError::TooLong
        ));
        // A US of the wrong size names its tag.
        let odd = [0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 1, 0, 0, 0];
        assert!(matches!(
            decode(&odd).unwrap_err(),
            DimseError::Malformed { .. }
        ));
    }

    /// Seeded mutations of every command Ward exchanges: no panic, and no allocation
    /// bigger than the command itself.
    #[test]
    fn mutated_commands_never_panic_nor_allocate_what_they_declare() {
        let rq = decode(&store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4")).unwrap();
        let valid = [
            echo_rq(1),
            echo_rsp(&rq, status::SUCCESS),
            store_rq(7, "1.2.840.10008.5.1.4.1.1.2", "1.2.3.4"),
            store_rsp(&rq, status::CANNOT_UNDERSTAND),
        ];
        let mut mutator = crate::dicom::smoke::Mutator::new(0xD1A5E);
        let mut refused = 0;
        for round in 0..5000 {
            let mutant = mutator.mutate(&valid[round % valid.len()]);
            let (result, largest) = crate::dicom::smoke::largest_allocation(|| decode(&mutant));
            refused += usize::from(result.is_err());
            assert!(
                largest <= 4096,
                "round {round}: {largest} bytes allocated at once"
            );
        }
        assert!(refused > 500, "the mutations are seen: {refused} refused");
    }
}
