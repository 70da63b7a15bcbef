//! Building a DICOM Segmentation (SEG) instance, BINARY, one segment per label.
//!
//! Frames are ordered segment by segment, and within a segment by slice position; only the
//! slices where a segment is present get a frame. Every attribute is derived from the
//! inputs, so equal inputs give equal bytes.

use crate::elements::{code, encode_file, non_empty, patient_and_study, seq, str, us};
use crate::source::Source;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use imaging::Volume;

pub const SEG_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// The date written where DICOM requires one but the source had none. A fixed value,
/// because outputs must not depend on the time of the run.
const FALLBACK_DATE: &str = "19700101";
const FALLBACK_TIME: &str = "000000";

/// One segment written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SegmentInfo {
    pub segment_number: u16,
    pub label: String,
    pub frames: usize,
    /// Slice indices (k) with a frame.
    pub slices: Vec<usize>,
}

/// Everything that identifies the new instance.
pub struct Ids {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    pub dimension_organization_uid: String,
    pub implementation_class_uid: String,
}

/// The encoded file and the segments it holds.
pub type Built = (Vec<u8>, Vec<SegmentInfo>);

/// Builds the SEG for labels `1..=segments` of `labels`, segment `s` labelled `names[s - 1]`
/// where the labels name it (`Component s` where not). Returns None when no segment has a
/// voxel (a SEG needs at least one frame).
pub fn build(
    labels: &Volume<u16>,
    source: &Source,
    segments: u16,
    names: &[String],
    ids: &Ids,
) -> Result<Option<Built>, String> {
    let [nx, ny, nz] = labels.dims;
    let n_seg = segments as usize;
    let plane = nx * ny;

    // Which slices hold which segment, in one pass.
    let mut present = vec![false; nz * (n_seg + 1)];
    for k in 0..nz {
        for &l in &labels.data[k * plane..(k + 1) * plane] {
            if l != 0 && (l as usize) <= n_seg {
                present[k * (n_seg + 1) + l as usize] = true;
            }
        }
    }
    let mut infos = Vec::new();
    let mut frames: Vec<(u16, usize)> = Vec::new();
    for s in 1..=segments {
        let slices: Vec<usize> = (0..nz)
            .filter(|&k| present[k * (n_seg + 1) + s as usize])
            .collect();
        if slices.is_empty() {
            continue;
        }
        frames.extend(slices.iter().map(|&k| (s, k)));
        infos.push(SegmentInfo {
            segment_number: s,
            label: names
                .get(usize::from(s) - 1)
                .cloned()
                .unwrap_or_else(|| format!("Component {s}")),
            frames: slices.len(),
            slices,
        });
    }
    if frames.is_empty() {
        return Ok(None);
    }

    // BINARY pixel data: 1 bit per pixel, frames packed back to back, first pixel in the
    // least significant bit.
    let mut bits = vec![0u8; (frames.len() * plane).div_ceil(8).next_multiple_of(2)];
    for (f, &(s, k)) in frames.iter().enumerate() {
        let base = f * plane;
        for (p, &l) in labels.data[k * plane..(k + 1) * plane].iter().enumerate() {
            if l == s {
                let b = base + p;
                bits[b / 8] |= 1 << (b % 8);
            }
        }
    }

    let mut o = InMemDicomObject::new_empty();
    patient_and_study(&mut o, source);
    // SOP Common.
    str(&mut o, tags::SOP_CLASS_UID, VR::UI, SEG_STORAGE);
    str(
        &mut o,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        &ids.sop_instance_uid,
    );
    // Segmentation Series, Frame of Reference, Equipment.
    str(&mut o, tags::MODALITY, VR::CS, "SEG");
    str(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &ids.series_instance_uid,
    );
    str(&mut o, tags::SERIES_NUMBER, VR::IS, "900");
    str(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Ward segmentation",
    );
    str(
        &mut o,
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        &source.frame_of_reference_uid,
    );
    str(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    str(&mut o, tags::MANUFACTURER, VR::LO, "Ward");
    str(
        &mut o,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        "ward dicom-writer",
    );
    str(&mut o, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    str(
        &mut o,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
    // Segmentation Image and Multi-frame Functional Groups.
    let date = non_empty(&source.study_date, FALLBACK_DATE);
    let time = non_empty(&source.study_time, FALLBACK_TIME);
    str(&mut o, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
    str(&mut o, tags::INSTANCE_NUMBER, VR::IS, "1");
    str(&mut o, tags::CONTENT_DATE, VR::DA, date);
    str(&mut o, tags::CONTENT_TIME, VR::TM, time);
    str(&mut o, tags::CONTENT_LABEL, VR::CS, "SEGMENTATION");
    str(
        &mut o,
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        "Threshold and connected components",
    );
    str(&mut o, tags::CONTENT_CREATOR_NAME, VR::PN, "");
    us(&mut o, tags::SAMPLES_PER_PIXEL, 1);
    str(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    str(
        &mut o,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        &frames.len().to_string(),
    );
    us(&mut o, tags::ROWS, ny as u16);
    us(&mut o, tags::COLUMNS, nx as u16);
    us(&mut o, tags::BITS_ALLOCATED, 1);
    us(&mut o, tags::BITS_STORED, 1);
    us(&mut o, tags::HIGH_BIT, 0);
    us(&mut o, tags::PIXEL_REPRESENTATION, 0);
    str(&mut o, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    str(&mut o, tags::SEGMENTATION_TYPE, VR::CS, "BINARY");

    seq(
        &mut o,
        tags::SEGMENT_SEQUENCE,
        infos.iter().map(segment_item).collect(),
    );
    seq(
        &mut o,
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![{
            let mut i = InMemDicomObject::new_empty();
            str(
                &mut i,
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                &ids.dimension_organization_uid,
            );
            i
        }],
    );
    let dim = |pointer: Tag, group: Tag, desc: &str| {
        let mut i = InMemDicomObject::new_empty();
        str(
            &mut i,
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            &ids.dimension_organization_uid,
        );
        i.put(DataElement::new(
            tags::DIMENSION_INDEX_POINTER,
            VR::AT,
            PrimitiveValue::from(pointer),
        ));
        i.put(DataElement::new(
            tags::FUNCTIONAL_GROUP_POINTER,
            VR::AT,
            PrimitiveValue::from(group),
        ));
        str(&mut i, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, desc);
        i
    };
    seq(
        &mut o,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "ReferencedSegmentNumber",
            ),
            dim(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "ImagePositionPatient",
            ),
        ],
    );

    // Shared: pixel measures and orientation.
    let mut shared = InMemDicomObject::new_empty();
    let mut measures = InMemDicomObject::new_empty();
    let [sx, sy, sz] = labels.spacing;
    str(
        &mut measures,
        tags::PIXEL_SPACING,
        VR::DS,
        &format!("{}\\{}", ds(sy), ds(sx)),
    );
    str(&mut measures, tags::SLICE_THICKNESS, VR::DS, &ds(sz));
    str(&mut measures, tags::SPACING_BETWEEN_SLICES, VR::DS, &ds(sz));
    seq(&mut shared, tags::PIXEL_MEASURES_SEQUENCE, vec![measures]);
    let mut orient = InMemDicomObject::new_empty();
    let iop: Vec<String> = labels.orientation.iter().map(|&v| ds(v)).collect();
    str(
        &mut orient,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        &iop.join("\\"),
    );
    seq(&mut shared, tags::PLANE_ORIENTATION_SEQUENCE, vec![orient]);
    seq(
        &mut o,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    );

    // Per frame: derivation, frame content, position, segment.
    let per_frame = frames
        .iter()
        .map(|&(s, k)| frame_item(labels, source, s, k))
        .collect();
    seq(
        &mut o,
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    );

    // Common Instance Reference: the source instances the frames derive from.
    // Frames of one multi-frame source share its instance: each instance is listed once.
    let mut referenced: Vec<usize> = frames.iter().map(|&(_, k)| k).collect();
    referenced.sort_unstable();
    let mut seen = std::collections::BTreeSet::new();
    referenced.retain(|&k| seen.insert(source.sop_instance_uids[k].as_str()));
    let mut series = InMemDicomObject::new_empty();
    str(
        &mut series,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &source.series_instance_uid,
    );
    seq(
        &mut series,
        tags::REFERENCED_INSTANCE_SEQUENCE,
        referenced.iter().map(|&k| sop_ref(source, k)).collect(),
    );
    seq(&mut o, tags::REFERENCED_SERIES_SEQUENCE, vec![series]);

    o.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(bits),
    ));

    let bytes = encode_file(o, SEG_STORAGE, ids, "SEG")?;
    Ok(Some((bytes, infos)))
}

fn segment_item(info: &SegmentInfo) -> InMemDicomObject {
    let mut i = InMemDicomObject::new_empty();
    us(&mut i, tags::SEGMENT_NUMBER, info.segment_number);
    str(&mut i, tags::SEGMENT_LABEL, VR::LO, &info.label);
    str(&mut i, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC");
    str(
        &mut i,
        tags::SEGMENT_ALGORITHM_NAME,
        VR::LO,
        "Ward threshold and connected components",
    );
    // SNOMED CT "Tissue" for both: a threshold segmentation does not know the anatomy.
    seq(
        &mut i,
        tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
        vec![code("85756007", "SCT", "Tissue")],
    );
    seq(
        &mut i,
        tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
        vec![code("85756007", "SCT", "Tissue")],
    );
    i
}

fn frame_item(labels: &Volume<u16>, source: &Source, segment: u16, k: usize) -> InMemDicomObject {
    let mut item = InMemDicomObject::new_empty();

    let mut derivation = InMemDicomObject::new_empty();
    let mut src = sop_ref(source, k);
    // A slice read from a multi-frame source is one frame of its instance.
    if let Some(frame) = source.frame_numbers.get(k) {
        str(
            &mut src,
            tags::REFERENCED_FRAME_NUMBER,
            VR::IS,
            &frame.to_string(),
        );
    }
    seq(
        &mut src,
        tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
        vec![code(
            "121322",
            "DCM",
            "Source image for image processing operation",
        )],
    );
    seq(&mut derivation, tags::SOURCE_IMAGE_SEQUENCE, vec![src]);
    seq(
        &mut derivation,
        tags::DERIVATION_CODE_SEQUENCE,
        vec![code("113076", "DCM", "Segmentation")],
    );
    seq(&mut item, tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]);

    let mut content = InMemDicomObject::new_empty();
    content.put(DataElement::new(
        tags::DIMENSION_INDEX_VALUES,
        VR::UL,
        PrimitiveValue::from([segment as u32, k as u32 + 1]),
    ));
    seq(&mut item, tags::FRAME_CONTENT_SEQUENCE, vec![content]);

    let mut position = InMemDicomObject::new_empty();
    let p = labels.to_patient([0.0, 0.0, k as f64]);
    str(
        &mut position,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &format!("{}\\{}\\{}", ds(p[0]), ds(p[1]), ds(p[2])),
    );
    seq(&mut item, tags::PLANE_POSITION_SEQUENCE, vec![position]);

    let mut ident = InMemDicomObject::new_empty();
    us(&mut ident, tags::REFERENCED_SEGMENT_NUMBER, segment);
    seq(
        &mut item,
        tags::SEGMENT_IDENTIFICATION_SEQUENCE,
        vec![ident],
    );
    item
}

fn sop_ref(source: &Source, k: usize) -> InMemDicomObject {
    let mut i = InMemDicomObject::new_empty();
    str(
        &mut i,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        &source.sop_class_uid,
    );
    str(
        &mut i,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &source.sop_instance_uids[k],
    );
    i
}

/// A decimal string of at most 16 characters (the DS limit), as precise as fits.
pub fn ds(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    for decimals in (0..=6).rev() {
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        let s = if s == "-0" { "0".to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.6e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(nz: usize) -> Source {
        serde_json::from_value(serde_json::json!({
            "study_instance_uid": "1.2.3.4",
            "series_instance_uid": "1.2.3.5",
            "frame_of_reference_uid": "1.2.3.9",
            "patient_id": "P1",
            "patient_name": "Test^Phantom",
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
            "sop_instance_uids": (0..nz).map(|k| format!("1.2.3.5.{k}")).collect::<Vec<_>>(),
            "study_date": "20240102",
        }))
        .unwrap()
    }

    fn ids() -> Ids {
        Ids {
            series_instance_uid: crate::uid::derive(&[b"s"]),
            sop_instance_uid: crate::uid::derive(&[b"i"]),
            dimension_organization_uid: crate::uid::derive(&[b"d"]),
            implementation_class_uid: crate::uid::derive(&[b"c"]),
        }
    }

    #[test]
    fn seg_has_one_frame_per_slice_with_the_segment_and_is_reproducible() {
        let mut labels = Volume::new(
            [5, 3, 4],
            [0.7, 0.7, 2.0],
            [-5.0, 3.0, 10.0],
            vec![0u16; 60],
        );
        labels.set(0, 0, 1, 1);
        labels.set(4, 2, 1, 1);
        labels.set(1, 1, 2, 1);
        labels.set(2, 2, 3, 2);
        labels.set(3, 0, 0, 3); // beyond `segments`
        let src = source(4);
        let (bytes, infos) = build(&labels, &src, 2, &[], &ids()).unwrap().unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].slices, vec![1, 2]);
        assert_eq!(infos[1].slices, vec![3]);
        assert_eq!(infos[0].label, "Component 1");
        let (again, _) = build(&labels, &src, 2, &[], &ids()).unwrap().unwrap();
        let named = ["bone".to_string()];
        let (_, infos) = build(&labels, &src, 2, &named, &ids()).unwrap().unwrap();
        assert_eq!(infos[0].label, "bone", "a named label");
        assert_eq!(infos[1].label, "Component 2", "an unnamed one");
        assert_eq!(bytes, again);

        if let Ok(path) = std::env::var("WARD_SEG_DUMP") {
            std::fs::write(path, &bytes).unwrap();
        }
        let obj = dicom_object::from_reader(&bytes[128..]).unwrap();
        let frames = obj
            .element(tags::NUMBER_OF_FRAMES)
            .unwrap()
            .to_str()
            .unwrap();
        assert_eq!(frames.trim(), "3");
        let px = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        // 3 frames x 15 pixels = 45 bits -> 6 bytes, padded to even.
        assert_eq!(px.len(), 6);
        // Frame 0 (segment 1, slice 1): pixels 0 and 14.
        assert_eq!(px[0] & 1, 1);
        assert_eq!((px[1] >> 6) & 1, 1);
        // Frame 2 (segment 2, slice 3): pixel (2, 2) = 12, bit 30 + 12 = 42.
        assert_eq!((px[5] >> 2) & 1, 1);
        let total: u32 = px.iter().map(|b| b.count_ones()).sum();
        assert_eq!(total, 4);
    }

    #[test]
    fn no_labelled_voxels_gives_no_seg() {
        let labels = Volume::new([2, 2, 1], [1.0; 3], [0.0; 3], vec![0u16; 4]);
        assert!(build(&labels, &source(1), 8, &[], &ids())
            .unwrap()
            .is_none());
    }

    #[test]
    fn decimal_strings_fit_16_characters() {
        assert_eq!(ds(0.5), "0.5");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(-123.456789123), "-123.456789");
        assert!(ds(-123456789.123456789).len() <= 16);
        assert_eq!(ds(2.0), "2");
    }
}
