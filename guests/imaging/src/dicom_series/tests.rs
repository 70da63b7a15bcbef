//! Builds tiny CT series with dicom-object and reads them back.

use super::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::Path;

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

struct Slice<'a> {
    series: &'a str,
    instance: u32,
    z: f64,
    /// Stored values (PixelRepresentation 1), 4x4.
    stored: [i16; 16],
    spacing: Option<&'a str>,
    transfer_syntax: &'a str,
}

impl<'a> Slice<'a> {
    fn new(series: &'a str, instance: u32, z: f64) -> Self {
        let mut stored = [0i16; 16];
        for (i, v) in stored.iter_mut().enumerate() {
            // Distinct per slice and pixel; some below zero to exercise the sign.
            *v = (instance as i16) * 100 + i as i16 - 8;
        }
        Slice {
            series,
            instance,
            z,
            stored,
            spacing: Some("0.5\\0.75"),
            transfer_syntax: EXPLICIT_LE,
        }
    }
}

fn put(obj: &mut InMemDicomObject, tag: dicom_core::Tag, vr: VR, value: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
}

fn write(dir: &Path, name: &str, s: &Slice) {
    let sop = format!("1.2.3.4.{}.{}", s.series.len(), s.instance);
    let mut obj = InMemDicomObject::new_empty();
    put(&mut obj, tags::SOP_CLASS_UID, VR::UI, CT_IMAGE);
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop);
    put(&mut obj, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4");
    put(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, s.series);
    put(&mut obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.3.9");
    put(&mut obj, tags::MODALITY, VR::CS, "CT");
    put(&mut obj, tags::PATIENT_ID, VR::LO, "P1");
    put(&mut obj, tags::PATIENT_NAME, VR::PN, "Test^Phantom");
    put(
        &mut obj,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        "1\\0\\0\\0\\1\\0",
    );
    put(
        &mut obj,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        &format!("-10\\20\\{}", s.z),
    );
    if let Some(sp) = s.spacing {
        put(&mut obj, tags::PIXEL_SPACING, VR::DS, sp);
    }
    put(&mut obj, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
    put(&mut obj, tags::RESCALE_SLOPE, VR::DS, "1");
    put(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    for (tag, v) in [
        (tags::ROWS, 4u16),
        (tags::COLUMNS, 4),
        (tags::SAMPLES_PER_PIXEL, 1),
        (tags::BITS_ALLOCATED, 16),
        (tags::BITS_STORED, 16),
        (tags::HIGH_BIT, 15),
        (tags::PIXEL_REPRESENTATION, 1),
    ] {
        obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
    }
    let bytes: Vec<u8> = s.stored.iter().flat_map(|v| v.to_le_bytes()).collect();
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(bytes),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(CT_IMAGE)
        .media_storage_sop_instance_uid(sop)
        .transfer_syntax(s.transfer_syntax)
        .build()
        .unwrap();
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    obj.with_exact_meta(meta).write_to_file(path).unwrap();
}

fn read(dir: &Path, policy: BadFilePolicy, uid: Option<&str>) -> Result<SeriesVolume, DicomError> {
    let files = list_files(dir).unwrap();
    let options = ReadOptions {
        on_bad_file: policy,
        series_uid: uid.map(str::to_owned),
    };
    read_series(&files, &options, &mut Quiet)
}

#[test]
fn shuffled_slices_are_sorted_and_rescaled_to_hu() {
    let dir = tempfile::tempdir().unwrap();
    // File order (by name) is z = 5, -0, 2.5: reading must not trust it.
    write(dir.path(), "a/CT0001.dcm", &Slice::new("1.2.3.5", 3, 5.0));
    write(dir.path(), "a/CT0002.dcm", &Slice::new("1.2.3.5", 1, 0.0));
    write(dir.path(), "b/CT0003.dcm", &Slice::new("1.2.3.5", 2, 2.5));
    std::fs::write(dir.path().join("DICOMDIR"), b"not read").unwrap();

    let s = read(dir.path(), BadFilePolicy::Fail, None).unwrap();
    let v = &s.volume;
    assert_eq!(v.dims, [4, 4, 3]);
    assert_eq!(v.spacing, [0.75, 0.5, 2.5]);
    assert_eq!(v.origin, [-10.0, 20.0, 0.0]);
    assert_eq!(
        s.files,
        vec!["a/CT0002.dcm", "b/CT0003.dcm", "a/CT0001.dcm"]
    );
    assert_eq!(
        s.meta.sop_instance_uids,
        vec!["1.2.3.4.7.1", "1.2.3.4.7.2", "1.2.3.4.7.3"]
    );
    for k in 0..3 {
        let stored = Slice::new("", k as u32 + 1, 0.0).stored;
        for (i, &raw) in stored.iter().enumerate() {
            assert_eq!(v.data[k * 16 + i], raw - 1024, "slice {k} pixel {i}");
        }
    }
    assert_eq!(v.get(0, 0, 0), 100 - 8 - 1024);
    let extra = s.header_extra();
    assert_eq!(extra["patient_name"], "Test^Phantom");
    assert_eq!(extra["skipped_files"], serde_json::json!([]));
}

#[test]
fn bad_file_fails_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "CT0001.dcm", &Slice::new("1.2.3.5", 1, 0.0));
    write(dir.path(), "CT0002.dcm", &Slice::new("1.2.3.5", 2, 1.0));
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();

    let err = read(dir.path(), BadFilePolicy::Fail, None).unwrap_err();
    assert!(err.to_string().starts_with("notes.txt: "), "{err}");

    let s = read(dir.path(), BadFilePolicy::Skip, None).unwrap();
    assert_eq!(s.volume.dims, [4, 4, 2]);
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].file, "notes.txt");
}

#[test]
fn truncated_file_is_reported_in_the_second_pass() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "CT0001.dcm", &Slice::new("1.2.3.5", 1, 0.0));
    write(dir.path(), "CT0002.dcm", &Slice::new("1.2.3.5", 2, 1.0));
    let path = dir.path().join("CT0002.dcm");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let err = read(dir.path(), BadFilePolicy::Fail, None).unwrap_err();
    assert!(err.to_string().starts_with("CT0002.dcm: "), "{err}");
    let s = read(dir.path(), BadFilePolicy::Skip, None).unwrap();
    assert_eq!(s.volume.dims, [4, 4, 1]);
}

#[test]
fn missing_pixel_spacing_names_file_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Slice::new("1.2.3.5", 12, 0.0);
    s.spacing = None;
    write(dir.path(), "CT000012.dcm", &s);
    let err = read(dir.path(), BadFilePolicy::Fail, None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CT000012.dcm: missing (0028,0030) PixelSpacing"
    );
}

#[test]
fn largest_series_wins_unless_one_is_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x1.dcm", &Slice::new("1.2.3.5", 1, 0.0));
    write(dir.path(), "x2.dcm", &Slice::new("1.2.3.5", 2, 1.0));
    write(dir.path(), "y1.dcm", &Slice::new("1.2.3.66", 1, 0.0));
    let s = read(dir.path(), BadFilePolicy::Fail, None).unwrap();
    assert_eq!(s.meta.series_instance_uid, "1.2.3.5");
    assert_eq!(s.other_series.len(), 1);
    assert_eq!(s.other_series[0].files, vec!["y1.dcm"]);
    let s = read(dir.path(), BadFilePolicy::Fail, Some("1.2.3.66")).unwrap();
    assert_eq!(s.volume.dims, [4, 4, 1]);
    let err = read(dir.path(), BadFilePolicy::Fail, Some("9.9")).unwrap_err();
    assert!(matches!(err, DicomError::SeriesNotFound { .. }), "{err}");
}

#[test]
fn jpeg_ls_is_refused_with_its_transfer_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Slice::new("1.2.3.5", 1, 0.0);
    s.transfer_syntax = "1.2.840.10008.1.2.4.80";
    write(dir.path(), "ls.dcm", &s);
    let err = read(dir.path(), BadFilePolicy::Fail, None).unwrap_err();
    assert!(err.to_string().contains("1.2.840.10008.1.2.4.80"), "{err}");
}

#[test]
fn empty_and_gapped_series_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        read(dir.path(), BadFilePolicy::Fail, None),
        Err(DicomError::NoDicomFiles)
    ));
    write(dir.path(), "1.dcm", &Slice::new("1.2.3.5", 1, 0.0));
    write(dir.path(), "2.dcm", &Slice::new("1.2.3.5", 2, 1.0));
    write(dir.path(), "4.dcm", &Slice::new("1.2.3.5", 4, 3.0));
    let err = read(dir.path(), BadFilePolicy::Fail, None).unwrap_err();
    assert!(matches!(err, DicomError::NonUniformSpacing { .. }), "{err}");
}
