//! Element helpers and the modules every instance Ward writes shares.

use crate::source::Source;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// The character set (when a name is not ASCII), Patient and General Study modules:
/// repeated from the source so the new instance files with its study.
pub(crate) fn patient_and_study(o: &mut InMemDicomObject, source: &Source) {
    let non_ascii = [&source.patient_name, &source.study_description]
        .iter()
        .any(|s| !s.is_ascii());
    if non_ascii {
        str(o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    }
    str(o, tags::PATIENT_NAME, VR::PN, &source.patient_name);
    str(o, tags::PATIENT_ID, VR::LO, &source.patient_id);
    str(
        o,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &source.patient_birth_date,
    );
    str(o, tags::PATIENT_SEX, VR::CS, &source.patient_sex);
    str(
        o,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &source.study_instance_uid,
    );
    str(o, tags::STUDY_DATE, VR::DA, &source.study_date);
    str(o, tags::STUDY_TIME, VR::TM, &source.study_time);
    str(
        o,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &source.referring_physician_name,
    );
    str(o, tags::STUDY_ID, VR::SH, &source.study_id);
    str(o, tags::ACCESSION_NUMBER, VR::SH, &source.accession_number);
    if !source.study_description.is_empty() {
        str(
            o,
            tags::STUDY_DESCRIPTION,
            VR::LO,
            &source.study_description,
        );
    }
}

pub(crate) fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    let mut i = InMemDicomObject::new_empty();
    str(&mut i, tags::CODE_VALUE, VR::SH, value);
    str(&mut i, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
    str(&mut i, tags::CODE_MEANING, VR::LO, meaning);
    i
}

pub(crate) fn str(o: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    let v = if value.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(value)
    };
    o.put(DataElement::new(tag, vr, v));
}

pub(crate) fn us(o: &mut InMemDicomObject, tag: Tag, value: u16) {
    o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
}

pub(crate) fn seq(o: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    o.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

pub(crate) fn non_empty<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() {
        fallback
    } else {
        value
    }
}

/// `o` as a DICOM file of class `sop_class`, explicit VR little endian, with Ward's file
/// meta; `what` names the instance in errors.
pub(crate) fn encode_file(
    o: InMemDicomObject,
    sop_class: &str,
    ids: &crate::seg::Ids,
    what: &str,
) -> Result<Vec<u8>, String> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(ids.sop_instance_uid.as_str())
        .transfer_syntax(crate::seg::EXPLICIT_VR_LE)
        .implementation_class_uid(ids.implementation_class_uid.as_str())
        .implementation_version_name("WARD_0_1")
        .build()
        .map_err(|e| format!("file meta: {e}"))?;
    let mut bytes = Vec::new();
    o.with_exact_meta(meta)
        .write_all(&mut bytes)
        .map_err(|e| format!("encoding the {what}: {e}"))?;
    Ok(bytes)
}
