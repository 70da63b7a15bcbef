//! Building a Multi-frame Grayscale Byte Secondary Capture (PS3.3 A.8.3) of a processed
//! cine or stack: 8-bit frames the PACS shows as a loop, in the source study, a new series,
//! referencing the source instances it was derived from.

use crate::elements::{code, encode_file, non_empty, patient_and_study, seq, str, us};
use crate::seg::Ids;
use crate::source::Source;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use imaging::Volume;

pub const MULTI_FRAME_GRAYSCALE_BYTE_SC: &str = "1.2.840.10008.5.1.4.1.1.7.2";

/// How the frames were made, for the instance's DerivationDescription.
pub struct Derivation<'a> {
    pub description: &'a str,
    /// FrameTime (ms) of a cine; none for a stack (10 frames a second, nominally).
    pub frame_time_ms: Option<f64>,
}

/// The frames of `volume` (z planes) as 8-bit grey, `low`..`high` mapped to 0..255.
pub fn to_bytes(volume: &Volume<i16>, low: f64, high: f64) -> Vec<u8> {
    let span = (high - low).max(1e-9);
    volume
        .data
        .iter()
        .map(|&v| ((v as f64 - low) / span * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// Encodes the instance. `pixels` holds the frames, 8-bit, x fastest.
pub fn build(
    volume: &Volume<i16>,
    pixels: Vec<u8>,
    source: &Source,
    derivation: &Derivation,
    ids: &Ids,
) -> Result<Vec<u8>, String> {
    let [nx, ny, nz] = volume.dims;
    if nx > u16::MAX as usize || ny > u16::MAX as usize {
        return Err(format!(
            "{nx}x{ny} pixels: DICOM rows and columns are at most 65535"
        ));
    }
    let mut o = InMemDicomObject::new_empty();
    patient_and_study(&mut o, source);
    str(
        &mut o,
        tags::SOP_CLASS_UID,
        VR::UI,
        MULTI_FRAME_GRAYSCALE_BYTE_SC,
    );
    str(
        &mut o,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        &ids.sop_instance_uid,
    );
    // General Series: the source's modality, a new series.
    str(
        &mut o,
        tags::MODALITY,
        VR::CS,
        non_empty(&source.modality, "OT"),
    );
    str(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &ids.series_instance_uid,
    );
    str(&mut o, tags::SERIES_NUMBER, VR::IS, "901");
    str(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Ward processed cine",
    );
    // SC Equipment: made on a workstation.
    str(&mut o, tags::CONVERSION_TYPE, VR::CS, "WSD");
    str(&mut o, tags::MANUFACTURER, VR::LO, "Ward");
    str(
        &mut o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
    // General Image.
    str(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    str(&mut o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\SECONDARY");
    str(
        &mut o,
        tags::DERIVATION_DESCRIPTION,
        VR::ST,
        derivation.description,
    );
    str(&mut o, tags::BURNED_IN_ANNOTATION, VR::CS, "NO");
    str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    // The source instances, each once, as the images this one derives from.
    let mut seen = std::collections::BTreeSet::new();
    let sources: Vec<InMemDicomObject> = source
        .sop_instance_uids
        .iter()
        .filter(|uid| seen.insert(uid.as_str()))
        .map(|uid| {
            let mut i = InMemDicomObject::new_empty();
            str(
                &mut i,
                tags::REFERENCED_SOP_CLASS_UID,
                VR::UI,
                &source.sop_class_uid,
            );
            str(&mut i, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid);
            seq(
                &mut i,
                tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                vec![code(
                    "121322",
                    "DCM",
                    "Source image for image processing operation",
                )],
            );
            i
        })
        .collect();
    seq(&mut o, tags::SOURCE_IMAGE_SEQUENCE, sources);
    // Image Pixel: 8-bit MONOCHROME2.
    us(&mut o, tags::SAMPLES_PER_PIXEL, 1);
    str(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    us(&mut o, tags::ROWS, ny as u16);
    us(&mut o, tags::COLUMNS, nx as u16);
    us(&mut o, tags::BITS_ALLOCATED, 8);
    us(&mut o, tags::BITS_STORED, 8);
    us(&mut o, tags::HIGH_BIT, 7);
    us(&mut o, tags::PIXEL_REPRESENTATION, 0);
    // Multi-frame and Cine: frames advance by FrameTime for a cine.
    str(&mut o, tags::NUMBER_OF_FRAMES, VR::IS, &nz.to_string());
    // A stack without a frame rate plays at a nominal 10 frames a second.
    let frame_time = derivation.frame_time_ms.unwrap_or(100.0);
    str(
        &mut o,
        tags::FRAME_TIME,
        VR::DS,
        &crate::seg::ds(frame_time),
    );
    o.put(DataElement::new(
        tags::FRAME_INCREMENT_POINTER,
        VR::AT,
        PrimitiveValue::from(tags::FRAME_TIME),
    ));
    let mut pixels = pixels;
    if pixels.len() % 2 == 1 {
        pixels.push(0);
    }
    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels),
    ));

    encode_file(o, MULTI_FRAME_GRAYSCALE_BYTE_SC, ids, "secondary capture")
}
