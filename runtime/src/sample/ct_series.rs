//! Writes the [`phantom`](super::phantom) as a DICOM CT series, one Part 10
//! file per axial slice, Explicit VR Little Endian.
//!
//! The output is a pure function of [`CtSeriesOptions`]: dates are fixed and
//! UIDs are derived from the seed, so the same options give byte-identical
//! files (pipelines and their caches can be tested against them) while a
//! different seed gives a different study.

use std::path::{Path, PathBuf};

use dicom_core::value::C;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;
use sha2::{Digest, Sha256};

use super::phantom::Phantom;

/// Fixed UID identifying Ward as the writer of a file (random, generated once).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.204954129467483188632605172369101258611";
/// Implementation Version Name (SH, at most 16 characters).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("WARD_", env!("CARGO_PKG_VERSION"));

/// Stored pixel value = HU - RESCALE_INTERCEPT, the usual CT convention.
const RESCALE_INTERCEPT: i32 = -1024;
// Fixed so the output does not depend on the day it was generated.
const STUDY_DATE: &str = "20250101";
const STUDY_TIME: &str = "120000";

/// Geometry and identity of the generated series.
#[derive(Debug, Clone, PartialEq)]
pub struct CtSeriesOptions {
    /// Number of axial slices (files).
    pub slices: u32,
    /// Rows = columns of every slice.
    pub size: u32,
    /// Square field of view in mm; pixel spacing is `fov_mm / size`.
    pub fov_mm: f64,
    /// Slice thickness = spacing between slices, in mm.
    pub slice_thickness_mm: f64,
    /// Seed of every UID: same seed, same files.
    pub seed: String,
    /// What is imaged: [`Phantom::standard`] by default. Its noise, if any, is
    /// added per voxel after sampling the analytic HU at the voxel centre.
    pub phantom: Phantom,
}

impl Default for CtSeriesOptions {
    fn default() -> Self {
        Self {
            slices: 64,
            size: 256,
            fov_mm: 400.0,
            slice_thickness_mm: 2.5,
            seed: "ward-phantom".to_owned(),
            phantom: Phantom::standard(),
        }
    }
}

/// What was written, for the CLI to print (as text or JSON).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeriesSummary {
    /// One file per slice, in InstanceNumber order (increasing z).
    pub files: Vec<PathBuf>,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    pub pixel_spacing_mm: f64,
    pub slice_thickness_mm: f64,
    /// Columns, rows, slices.
    pub dims: [u32; 3],
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("invalid CT series options: {0}")]
    InvalidOptions(String),
    #[error("cannot create output directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the DICOM file meta group for {}: {source}", path.display())]
    Meta {
        path: PathBuf,
        source: dicom_object::WithMetaError,
    },
    #[error("cannot write DICOM file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: dicom_object::WriteError,
    },
}

/// Writes the series into `out_dir` (created if missing) as `CT000001.dcm`….
pub fn write_ct_series(
    out_dir: &Path,
    opts: &CtSeriesOptions,
) -> Result<SeriesSummary, SampleError> {
    write_ct_series_with_progress(out_dir, opts, &mut |_, _| {})
}

/// As [`write_ct_series`], calling `progress(done, total)` after each file.
pub fn write_ct_series_with_progress(
    out_dir: &Path,
    opts: &CtSeriesOptions,
    progress: &mut dyn FnMut(u32, u32),
) -> Result<SeriesSummary, SampleError> {
    validate(opts)?;
    std::fs::create_dir_all(out_dir).map_err(|source| SampleError::CreateDir {
        path: out_dir.to_owned(),
        source,
    })?;
    let study = uid(&opts.seed, "study", None);
    let series = uid(&opts.seed, "series", None);
    let frame = uid(&opts.seed, "frame-of-reference", None);
    let mut files = Vec::with_capacity(opts.slices as usize);
    for k in 0..opts.slices {
        let path = out_dir.join(format!("CT{:06}.dcm", k + 1));
        let obj = slice_object(opts, k, [&study, &series, &frame]);
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(IMPLEMENTATION_VERSION_NAME);
        // with_meta copies SOP Class/Instance UID into the meta group.
        let file = obj.with_meta(meta).map_err(|source| SampleError::Meta {
            path: path.clone(),
            source,
        })?;
        file.write_to_file(&path)
            .map_err(|source| SampleError::Write {
                path: path.clone(),
                source,
            })?;
        files.push(path);
        progress(k + 1, opts.slices);
    }
    Ok(SeriesSummary {
        files,
        study_instance_uid: study,
        series_instance_uid: series,
        frame_of_reference_uid: frame,
        pixel_spacing_mm: opts.fov_mm / f64::from(opts.size),
        slice_thickness_mm: opts.slice_thickness_mm,
        dims: [opts.size, opts.size, opts.slices],
    })
}

fn validate(o: &CtSeriesOptions) -> Result<(), SampleError> {
    let bad = |m: String| Err(SampleError::InvalidOptions(m));
    if o.slices == 0 {
        return bad("slices must be at least 1".into());
    }
    // Rows/Columns are US (16-bit).
    if o.size == 0 || o.size > u32::from(u16::MAX) {
        return bad(format!("size must be 1..=65535, got {}", o.size));
    }
    if !(o.fov_mm.is_finite() && o.fov_mm > 0.0) {
        return bad(format!("fov_mm must be positive, got {}", o.fov_mm));
    }
    if !(o.slice_thickness_mm.is_finite() && o.slice_thickness_mm > 0.0) {
        return bad(format!(
            "slice_thickness_mm must be positive, got {}",
            o.slice_thickness_mm
        ));
    }
    Ok(())
}

/// Patient position of the centre of the first voxel of slice `k`.
pub fn slice_origin_mm(opts: &CtSeriesOptions, k: u32) -> [f64; 3] {
    let spacing = opts.fov_mm / f64::from(opts.size);
    let xy0 = -opts.fov_mm / 2.0 + spacing / 2.0;
    let thk = opts.slice_thickness_mm;
    let z = -(f64::from(opts.slices) * thk) / 2.0 + (f64::from(k) + 0.5) * thk;
    [xy0, xy0, z]
}

/// Patient position of the centre of voxel (`col`, `row`, `slice`), 0-based:
/// the point whose phantom HU the series stores there. Columns run along +x,
/// rows along +y, slices along +z.
pub fn voxel_center_mm(opts: &CtSeriesOptions, col: u32, row: u32, slice: u32) -> [f64; 3] {
    let spacing = opts.fov_mm / f64::from(opts.size);
    let origin = slice_origin_mm(opts, slice);
    [
        origin[0] + f64::from(col) * spacing,
        origin[1] + f64::from(row) * spacing,
        origin[2],
    ]
}

/// The HU stored at voxel (`col`, `row`, `slice`): the phantom's analytic HU at
/// [`voxel_center_mm`] plus its noise for the voxel index
/// `(slice * size + row) * size + col`, rounded and kept within -1024…3071.
pub fn voxel_hu(opts: &CtSeriesOptions, col: u32, row: u32, slice: u32) -> i16 {
    let hu = opts.phantom.hu_at(voxel_center_mm(opts, col, row, slice));
    if opts.phantom.noise_hu <= 0.0 {
        return hu;
    }
    let n = u64::from(opts.size);
    let index = (u64::from(slice) * n + u64::from(row)) * n + u64::from(col);
    let noisy = (f64::from(hu) + opts.phantom.noise_at(index)).round();
    noisy.clamp(-1024.0, 3071.0) as i16
}

/// `2.25.<128-bit integer>` from sha256 of seed, role and slice index.
fn uid(seed: &str, role: &str, index: Option<u32>) -> String {
    let mut h = Sha256::new();
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    for part in [seed.as_bytes(), role.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    if let Some(i) = index {
        h.update(i.to_le_bytes());
    }
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.finalize()[..16]);
    // Mark it an RFC 9562 version-8 UUID, as PS3.5 B.2 expects of 2.25 UIDs;
    // the version bit also makes the integer non-zero (no leading zero),
    // and u128::MAX has 39 digits, so the UID is at most 44 characters.
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// Formats a Decimal String value, which may hold at most 16 characters.
fn ds(v: f64) -> String {
    let v = v + 0.0; // -0.0 becomes 0.0
    let s = v.to_string();
    if s.len() <= 16 {
        return s;
    }
    for prec in (0..=15).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        };
        if s.len() <= 16 {
            return if s == "-0" { "0".into() } else { s };
        }
    }
    format!("{v:.6E}")
}

fn ds_multi(vs: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(vs.iter().map(|&v| ds(v)).collect())
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) {
    obj.put(DataElement::new(tag, vr, value.into()));
}

/// The data set of slice `k` (0-based), pixels sampled at voxel centres.
fn slice_object(
    opts: &CtSeriesOptions,
    k: u32,
    [study, series, frame]: [&str; 3],
) -> InMemDicomObject {
    let spacing = opts.fov_mm / f64::from(opts.size);
    let origin = slice_origin_mm(opts, k);
    let n = opts.size as usize;
    let mut pixels = Vec::with_capacity(n * n);
    for row in 0..opts.size {
        for col in 0..opts.size {
            // Rows run along +y, columns along +x (ImageOrientationPatient 1\0\0\0\1\0).
            let hu = voxel_hu(opts, col, row, k);
            pixels.push((i32::from(hu) - RESCALE_INTERCEPT) as u16);
        }
    }

    let mut o = InMemDicomObject::new_empty();
    let uid_s = |v: &str| PrimitiveValue::from(v);
    let cs = |v: &[&str]| PrimitiveValue::Strs(v.iter().map(|s| s.to_string()).collect());
    put(
        &mut o,
        tags::IMAGE_TYPE,
        VR::CS,
        cs(&["ORIGINAL", "PRIMARY", "AXIAL"]),
    );
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, uids::CT_IMAGE_STORAGE);
    put(
        &mut o,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        uid_s(&uid(&opts.seed, "sop-instance", Some(k))),
    );
    put(&mut o, tags::STUDY_DATE, VR::DA, STUDY_DATE);
    put(&mut o, tags::SERIES_DATE, VR::DA, STUDY_DATE);
    put(&mut o, tags::STUDY_TIME, VR::TM, STUDY_TIME);
    put(&mut o, tags::SERIES_TIME, VR::TM, STUDY_TIME);
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, "WARD0001");
    put(&mut o, tags::MODALITY, VR::CS, "CT");
    put(&mut o, tags::MANUFACTURER, VR::LO, "Ward");
    put(&mut o, tags::REFERRING_PHYSICIAN_NAME, VR::PN, ());
    put(
        &mut o,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "Ward analytic phantom",
    );
    put(&mut o, tags::PATIENT_NAME, VR::PN, "WARD^PHANTOM");
    put(&mut o, tags::PATIENT_ID, VR::LO, "WARD-PHANTOM-001");
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, "19700101");
    put(&mut o, tags::PATIENT_SEX, VR::CS, "O");
    put(
        &mut o,
        tags::SLICE_THICKNESS,
        VR::DS,
        ds(opts.slice_thickness_mm),
    );
    put(&mut o, tags::KVP, VR::DS, "120");
    put(
        &mut o,
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        ds(opts.slice_thickness_mm),
    );
    put(&mut o, tags::PATIENT_POSITION, VR::CS, "HFS");
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, uid_s(study));
    put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, uid_s(series));
    put(&mut o, tags::STUDY_ID, VR::SH, "1");
    put(&mut o, tags::SERIES_NUMBER, VR::IS, "1");
    put(&mut o, tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string());
    put(
        &mut o,
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        ds_multi(&origin),
    );
    put(
        &mut o,
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        ds_multi(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    );
    put(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, uid_s(frame));
    put(&mut o, tags::POSITION_REFERENCE_INDICATOR, VR::LO, ());
    put(&mut o, tags::SLICE_LOCATION, VR::DS, ds(origin[2]));
    put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, 1u16);
    put(
        &mut o,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put(&mut o, tags::ROWS, VR::US, opts.size as u16);
    put(&mut o, tags::COLUMNS, VR::US, opts.size as u16);
    put(
        &mut o,
        tags::PIXEL_SPACING,
        VR::DS,
        ds_multi(&[spacing, spacing]),
    );
    put(&mut o, tags::BITS_ALLOCATED, VR::US, 16u16);
    put(&mut o, tags::BITS_STORED, VR::US, 16u16);
    put(&mut o, tags::HIGH_BIT, VR::US, 15u16);
    put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, 1u16);
    put(&mut o, tags::WINDOW_CENTER, VR::DS, "40");
    put(&mut o, tags::WINDOW_WIDTH, VR::DS, "400");
    put(
        &mut o,
        tags::RESCALE_INTERCEPT,
        VR::DS,
        RESCALE_INTERCEPT.to_string(),
    );
    put(&mut o, tags::RESCALE_SLOPE, VR::DS, "1");
    put(&mut o, tags::RESCALE_TYPE, VR::LO, "HU");
    put(
        &mut o,
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(C::from_vec(pixels)),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::phantom::{hu_at, AIR_HU, SPHERES};
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    use dicom_core::header::Header;
    use dicom_object::{open_file, DefaultDicomObject, StandardDataDictionary};

    fn small() -> CtSeriesOptions {
        CtSeriesOptions {
            slices: 8,
            size: 64,
            ..CtSeriesOptions::default()
        }
    }

    fn text(obj: &DefaultDicomObject, tag: Tag) -> String {
        let s = obj.element(tag).unwrap().to_str().unwrap();
        s.trim_end_matches(['\0', ' ']).to_owned()
    }

    fn floats(obj: &DefaultDicomObject, tag: Tag) -> Vec<f64> {
        obj.element(tag).unwrap().to_multi_float64().unwrap()
    }

    /// HU of every pixel, row-major, applying the file's own rescale.
    fn hu_pixels(obj: &DefaultDicomObject) -> Vec<i32> {
        let slope = floats(obj, tags::RESCALE_SLOPE)[0];
        let icpt = floats(obj, tags::RESCALE_INTERCEPT)[0];
        let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        bytes
            .chunks_exact(2)
            .map(|b| (f64::from(i16::from_le_bytes([b[0], b[1]])) * slope + icpt) as i32)
            .collect()
    }

    fn is_valid_uid(u: &str) -> bool {
        u.len() <= 64
            && u.strip_prefix("2.25.").is_some_and(|d| {
                !d.is_empty() && !d.starts_with('0') && d.bytes().all(|c| c.is_ascii_digit())
            })
    }

    #[test]
    fn ds_fits_sixteen_chars() {
        assert_eq!(ds(2.5), "2.5");
        assert_eq!(ds(-0.0), "0");
        assert_eq!(ds(-199.21875), "-199.21875");
        for v in [400.0 / 3.0, -1.0 / 3.0, 123456.789012345678, 1e-12] {
            let s = ds(v);
            assert!(s.len() <= 16, "{s}");
            assert!(
                (s.parse::<f64>().unwrap() - v).abs() < 1e-9 * v.abs().max(1.0),
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_bad_options() {
        let dir = tempfile::tempdir().unwrap();
        for o in [
            CtSeriesOptions {
                slices: 0,
                ..small()
            },
            CtSeriesOptions {
                size: 70_000,
                ..small()
            },
            CtSeriesOptions {
                fov_mm: -1.0,
                ..small()
            },
            CtSeriesOptions {
                slice_thickness_mm: f64::NAN,
                ..small()
            },
        ] {
            let err = write_ct_series(dir.path(), &o).unwrap_err();
            assert!(matches!(err, SampleError::InvalidOptions(_)), "{err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn series_round_trips_through_dicom() {
        let dir = tempfile::tempdir().unwrap();
        let opts = small();
        let mut ticks = Vec::new();
        let sum = write_ct_series_with_progress(dir.path(), &opts, &mut |d, t| ticks.push((d, t)))
            .unwrap();
        assert_eq!(ticks, (1..=8).map(|d| (d, 8)).collect::<Vec<_>>());
        assert_eq!(sum.files.len(), 8);
        assert_eq!(sum.dims, [64, 64, 8]);
        assert_eq!(sum.pixel_spacing_mm, 6.25);
        for u in [
            &sum.study_instance_uid,
            &sum.series_instance_uid,
            &sum.frame_of_reference_uid,
        ] {
            assert!(is_valid_uid(u), "{u}");
        }

        let dict = StandardDataDictionary;
        let (mut sop_uids, mut bone_hits, mut air_sphere_hits) = (Vec::new(), 0, 0);
        for (k, path) in sum.files.iter().enumerate() {
            assert_eq!(
                path.file_name().unwrap(),
                format!("CT{:06}.dcm", k + 1).as_str()
            );
            let obj = open_file(path).unwrap();
            let meta = obj.meta();
            assert_eq!(meta.transfer_syntax(), uids::EXPLICIT_VR_LITTLE_ENDIAN);
            assert_eq!(meta.media_storage_sop_class_uid(), uids::CT_IMAGE_STORAGE);
            assert_eq!(meta.implementation_class_uid(), IMPLEMENTATION_CLASS_UID);
            let sop = text(&obj, tags::SOP_INSTANCE_UID);
            assert!(is_valid_uid(&sop), "{sop}");
            assert_eq!(meta.media_storage_sop_instance_uid(), sop);
            sop_uids.push(sop);
            assert_eq!(text(&obj, tags::SOP_CLASS_UID), uids::CT_IMAGE_STORAGE);
            assert_eq!(text(&obj, tags::STUDY_INSTANCE_UID), sum.study_instance_uid);
            assert_eq!(
                text(&obj, tags::SERIES_INSTANCE_UID),
                sum.series_instance_uid
            );
            assert_eq!(
                text(&obj, tags::FRAME_OF_REFERENCE_UID),
                sum.frame_of_reference_uid
            );
            assert_eq!(text(&obj, tags::INSTANCE_NUMBER), (k + 1).to_string());
            assert_eq!(text(&obj, tags::PATIENT_NAME), "WARD^PHANTOM");

            // Every element carries the VR the standard dictionary gives it.
            for e in obj.iter() {
                let want = dict.by_tag(e.tag()).map(|d| d.vr());
                let ok = match want {
                    Some(VirtualVr::Exact(vr)) => vr == e.vr(),
                    Some(VirtualVr::Px) => matches!(e.vr(), VR::OB | VR::OW),
                    _ => false,
                };
                assert!(
                    ok,
                    "{:?} has VR {:?}, dictionary says {want:?}",
                    e.tag(),
                    e.vr()
                );
            }

            // Geometry as specified: first voxel centre half a pixel in from the FOV edge.
            let pos = floats(&obj, tags::IMAGE_POSITION_PATIENT);
            let z = -(8.0 * 2.5) / 2.0 + (k as f64 + 0.5) * 2.5;
            assert_eq!(pos, vec![-200.0 + 3.125, -200.0 + 3.125, z]);
            assert_eq!(floats(&obj, tags::SLICE_LOCATION), vec![z]);
            assert_eq!(floats(&obj, tags::PIXEL_SPACING), vec![6.25, 6.25]);
            let rows = obj.element(tags::ROWS).unwrap().to_int::<usize>().unwrap();
            let cols = obj
                .element(tags::COLUMNS)
                .unwrap()
                .to_int::<usize>()
                .unwrap();
            assert_eq!((rows, cols), (64, 64));

            // Pixels equal the phantom at each voxel centre, located via the
            // file's own geometry (catches transposed or shifted pixels).
            let hu = hu_pixels(&obj);
            assert_eq!(hu.len(), rows * cols);
            for r in 0..rows {
                for c in 0..cols {
                    let p = [pos[0] + c as f64 * 6.25, pos[1] + r as f64 * 6.25, z];
                    assert_eq!(hu[r * cols + c], i32::from(hu_at(p)), "slice {k} r{r} c{c}");
                }
            }
            // Known points, independent of hu_at: the corner lies in air outside
            // the body, and the pixel nearest the bone centre (-60, 0) is bone.
            assert_eq!(hu[0], i32::from(AIR_HU));
            let bc = ((-60.0 - pos[0]) / 6.25).round() as usize;
            let br = ((0.0 - pos[1]) / 6.25).round() as usize;
            if hu[br * cols + bc] == 700 {
                bone_hits += 1;
            }
            air_sphere_hits += hu.iter().filter(|&&v| v == -800).count();
        }
        // Bone (r 25 mm at z 0) crosses all 8 slices (|z| <= 8.75); the air
        // sphere (z -20, r 15) reaches slices at z -8.75 and -6.25.
        assert_eq!(bone_hits, 8);
        assert!(air_sphere_hits > 0);
        assert!(SPHERES.iter().any(|s| s.name == "air" && s.hu == -800));
        sop_uids.sort();
        sop_uids.dedup();
        assert_eq!(sop_uids.len(), 8, "SOP Instance UIDs must be distinct");
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_study() {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let sa = write_ct_series(a.path(), &small()).unwrap();
        let sb = write_ct_series(b.path(), &small()).unwrap();
        let other = CtSeriesOptions {
            seed: "other".into(),
            ..small()
        };
        let sc = write_ct_series(c.path(), &other).unwrap();
        for (fa, fb) in sa.files.iter().zip(&sb.files) {
            assert_eq!(std::fs::read(fa).unwrap(), std::fs::read(fb).unwrap());
        }
        assert_eq!(sa.study_instance_uid, sb.study_instance_uid);
        assert_ne!(sa.study_instance_uid, sc.study_instance_uid);
        assert_ne!(sa.series_instance_uid, sc.series_instance_uid);
        assert_ne!(
            std::fs::read(&sa.files[0]).unwrap(),
            std::fs::read(&sc.files[0]).unwrap()
        );
    }

    #[test]
    fn varied_series_stores_the_phantom_at_voxel_centres() {
        let dir = tempfile::tempdir().unwrap();
        let clean = Phantom {
            noise_hu: 0.0,
            ..Phantom::varied(11)
        };
        let opts = CtSeriesOptions {
            slices: 6,
            size: 48,
            fov_mm: 330.0,
            slice_thickness_mm: 3.5,
            phantom: clean.clone(),
            ..CtSeriesOptions::default()
        };
        let sum = write_ct_series(dir.path(), &opts).unwrap();
        let mut labels = [0usize; 4];
        for (k, path) in sum.files.iter().enumerate() {
            let obj = open_file(path).unwrap();
            let pos = floats(&obj, tags::IMAGE_POSITION_PATIENT);
            let sp = floats(&obj, tags::PIXEL_SPACING)[0];
            let hu = hu_pixels(&obj);
            for r in 0..48u32 {
                for c in 0..48u32 {
                    let p = voxel_center_mm(&opts, c, r, k as u32);
                    let from_file = [
                        pos[0] + f64::from(c) * sp,
                        pos[1] + f64::from(r) * sp,
                        pos[2],
                    ];
                    for i in 0..3 {
                        assert!((p[i] - from_file[i]).abs() < 1e-9, "{p:?} {from_file:?}");
                    }
                    assert_eq!(hu[(r * 48 + c) as usize], i32::from(clean.hu_at(p)));
                    labels[usize::from(clean.label_at(p))] += 1;
                }
            }
        }
        assert!(labels[0] > 0 && labels[1] > 0, "{labels:?}");

        // With noise: the same series plus a deterministic per-voxel draw.
        let noisy = CtSeriesOptions {
            phantom: Phantom {
                noise_hu: 7.0,
                noise_seed: 5,
                ..clean
            },
            ..opts.clone()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sa = write_ct_series(a.path(), &noisy).unwrap();
        let sb = write_ct_series(b.path(), &noisy).unwrap();
        assert_eq!(
            std::fs::read(&sa.files[2]).unwrap(),
            std::fs::read(&sb.files[2]).unwrap()
        );
        let obj = open_file(&sa.files[2]).unwrap();
        let hu = hu_pixels(&obj);
        let mut diff = 0.0;
        for r in 0..48u32 {
            for c in 0..48u32 {
                let v = hu[(r * 48 + c) as usize];
                assert_eq!(v, i32::from(voxel_hu(&noisy, c, r, 2)));
                let clean_hu = noisy.phantom.hu_at(voxel_center_mm(&noisy, c, r, 2));
                diff += (f64::from(v) - f64::from(clean_hu)).powi(2);
            }
        }
        let sd = (diff / (48.0 * 48.0)).sqrt();
        assert!((sd - 7.0).abs() < 1.0, "{sd}");
    }

    /// DCMTK must parse every file without a warning or error, both in the
    /// default mode and with `+E` (diagnostics to stderr). Skipped when
    /// `dcmdump` is not installed, except under CI (`CI` set), where that fails.
    #[test]
    fn dcmdump_accepts_every_file() {
        let found = std::process::Command::new("dcmdump")
            .arg("--version")
            .output();
        if found.is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "dcmdump (DCMTK) is needed under CI: apt-get install -y dcmtk"
            );
            eprintln!("dcmdump not on PATH; skipping DCMTK check");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let sum = write_ct_series(dir.path(), &small()).unwrap();
        for f in &sum.files {
            for args in [&["+E"][..], &[][..]] {
                let out = std::process::Command::new("dcmdump")
                    .args(args)
                    .arg(f)
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    out.status.success(),
                    "dcmdump {args:?} {}: {stderr}",
                    f.display()
                );
                let bad: Vec<_> = stderr
                    .lines()
                    .filter(|l| l.contains("W:") || l.contains("E:"))
                    .collect();
                assert!(bad.is_empty(), "dcmdump {args:?} {}: {bad:?}", f.display());
            }
        }
    }
}
