//! Writes a synthetic CT series (a water cylinder holding two bone spheres) as DICOM files,
//! for trying the stages end to end:
//!
//!     cargo run -p imaging --example make_phantom -- OUT_DIR [NX NY NZ]
//!
//! Files are named in an order unrelated to slice position, stored values are unsigned with
//! RescaleIntercept -1024, and one non-image file (`README.txt`) sits beside them.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::PathBuf;

const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .ok_or("usage: make_phantom OUT_DIR [NX NY NZ]")?,
    );
    let n = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (nx, ny, nz) = (n(1, 64), n(2, 64), n(3, 40));
    let (sx, sy, sz) = (0.8, 0.8, 2.5);
    let origin = [-(nx as f64) * sx / 2.0, -(ny as f64) * sy / 2.0, -100.0];
    std::fs::create_dir_all(out.join("series"))?;
    std::fs::write(out.join("README.txt"), "synthetic phantom\n")?;
    // Sphere centres (mm, relative to the origin) and radii.
    let spheres = [([20.0, 25.0, 40.0], 8.0), ([32.0, 30.0, 60.0], 5.0)];
    for k in 0..nz {
        let mut stored = Vec::with_capacity(nx * ny);
        for j in 0..ny {
            for i in 0..nx {
                let p = [i as f64 * sx, j as f64 * sy, k as f64 * sz];
                let (cx, cy) = (nx as f64 * sx / 2.0, ny as f64 * sy / 2.0);
                let r_body = ((p[0] - cx).powi(2) + (p[1] - cy).powi(2)).sqrt();
                let mut hu: i32 = if r_body < cx * 0.85 { 0 } else { -1000 };
                for (c, r) in spheres {
                    let d2: f64 = (0..3).map(|a| (p[a] - c[a]).powi(2)).sum();
                    if d2 <= r * r {
                        hu = 1000;
                    }
                }
                stored.push((hu + 1024) as u16);
            }
        }
        // Name files in reverse-interleaved order so name order is not z order.
        let name = format!("series/IM{:04}.dcm", (k * 7919) % nz + 1);
        let sop = format!("1.2.826.0.1.3680043.9.7777.2.{k}");
        let mut o = InMemDicomObject::new_empty();
        let mut s = |tag, vr, v: &str| {
            o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        };
        s(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE);
        s(tags::SOP_INSTANCE_UID, VR::UI, &sop);
        s(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7777.1",
        );
        s(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7777.2",
        );
        s(
            tags::FRAME_OF_REFERENCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.9.7777.3",
        );
        s(tags::STUDY_DATE, VR::DA, "20240102");
        s(tags::STUDY_TIME, VR::TM, "101500");
        s(tags::MODALITY, VR::CS, "CT");
        s(tags::PATIENT_ID, VR::LO, "PHANTOM1");
        s(tags::PATIENT_NAME, VR::PN, "Phantom^Water");
        s(tags::SERIES_DESCRIPTION, VR::LO, "Synthetic phantom");
        s(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0");
        let z = origin[2] + k as f64 * sz;
        s(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            &format!("{}\\{}\\{}", origin[0], origin[1], z),
        );
        s(tags::PIXEL_SPACING, VR::DS, &format!("{sy}\\{sx}"));
        s(tags::SLICE_THICKNESS, VR::DS, &format!("{sz}"));
        s(tags::RESCALE_INTERCEPT, VR::DS, "-1024");
        s(tags::RESCALE_SLOPE, VR::DS, "1");
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
        for (tag, v) in [
            (tags::ROWS, ny as u16),
            (tags::COLUMNS, nx as u16),
            (tags::SAMPLES_PER_PIXEL, 1),
            (tags::BITS_ALLOCATED, 16),
            (tags::BITS_STORED, 12),
            (tags::HIGH_BIT, 11),
            (tags::PIXEL_REPRESENTATION, 0),
        ] {
            o.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
        }
        let bytes: Vec<u8> = stored.iter().flat_map(|v| v.to_le_bytes()).collect();
        o.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OW,
            PrimitiveValue::from(bytes),
        ));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(CT_IMAGE)
            .media_storage_sop_instance_uid(sop)
            .transfer_syntax("1.2.840.10008.1.2.1")
            .build()?;
        o.with_exact_meta(meta).write_to_file(out.join(name))?;
    }
    println!("wrote {nz} slices of {nx}x{ny} to {}", out.display());
    Ok(())
}
