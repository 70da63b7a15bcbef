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
}

#[derive(Debug, thiserror::Error)]
pub enum DimseError {
    #[error("the command set cannot be read: {0}")]
    Read(String),
    #[error("the command set has no {0}")]
    Missing(&'static str),
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

fn u16_of(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u16> {
    obj.element(tag).ok().and_then(|e| e.to_int::<u16>().ok())
}

/// Reads a command set from its implicit VR little endian bytes.
pub fn decode(bytes: &[u8]) -> Result<Command, DimseError> {
    let obj = InMemDicomObject::read_dataset_with_ts(bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .map_err(|e| DimseError::Read(e.to_string()))?;
    let field = u16_of(&obj, tags::COMMAND_FIELD).ok_or(DimseError::Missing("Command Field"))?;
    Ok(Command {
        field,
        message_id: u16_of(&obj, tags::MESSAGE_ID).unwrap_or(0),
        responding_to: u16_of(&obj, tags::MESSAGE_ID_BEING_RESPONDED_TO),
        sop_class: text(&obj, tags::AFFECTED_SOP_CLASS_UID),
        sop_instance: text(&obj, tags::AFFECTED_SOP_INSTANCE_UID),
        has_data_set: u16_of(&obj, tags::COMMAND_DATA_SET_TYPE).is_some_and(|t| t != NO_DATA_SET),
        status: u16_of(&obj, tags::STATUS),
    })
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
    encode(vec![
        ui(tags::AFFECTED_SOP_CLASS_UID, &rq.sop_class),
        us(tags::COMMAND_FIELD, C_STORE_RSP),
        us(tags::MESSAGE_ID_BEING_RESPONDED_TO, rq.message_id),
        us(tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET),
        us(tags::STATUS, status),
        ui(tags::AFFECTED_SOP_INSTANCE_UID, &rq.sop_instance),
    ])
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
}
