//! Where each frame of a file sits: from the enhanced functional groups (PS3.3 C.7.6.16),
//! per frame or shared, or from the classic top-level attributes.

use super::error::DicomError;
use super::fields::Fields;
use super::header::Geometry;
use crate::volume::{normal_of, AXIAL_ORIENTATION};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// One frame's place and value mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub geometry: Geometry,
    pub pixel_spacing: [f64; 2],
    pub orientation: [f64; 6],
    pub position: [f64; 3],
    pub slice_thickness: Option<f64>,
    pub rescale: Option<(f64, f64)>,
    pub stack: String,
}

/// The places of the file's `frames` frames, in frame order.
pub fn places(f: &Fields, frames: u32) -> Result<Vec<Place>, DicomError> {
    let per_frame = f.items(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let shared = f.items(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE).first();
    if per_frame.is_empty() && shared.is_none() {
        return classic(f, frames);
    }
    if !per_frame.is_empty() && per_frame.len() != frames as usize {
        return Err(f.invalid(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            "PerFrameFunctionalGroupsSequence",
            format!("{} items", per_frame.len()),
            &format!("NumberOfFrames is {frames}: one item per frame is needed"),
        ));
    }
    let fallback = stack_spacing(f);
    let mut out = Vec::with_capacity(frames as usize);
    for n in 0..frames as usize {
        let name = format!("{} frame {}", f.file, n + 1);
        // A functional group macro is looked for in the frame's item first, then the shared.
        let group = |seq: Tag| -> Option<Fields> {
            let item = per_frame
                .get(n)
                .and_then(|i| first_item(i, seq))
                .or_else(|| shared.and_then(|i| first_item(i, seq)))?;
            Some(Fields {
                obj: item,
                file: &name,
            })
        };
        let position = group(tags::PLANE_POSITION_SEQUENCE);
        let orientation = group(tags::PLANE_ORIENTATION_SEQUENCE);
        let measures = group(tags::PIXEL_MEASURES_SEQUENCE);
        let rescale = match group(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE) {
            Some(g) => Some((
                g.float_or(tags::RESCALE_SLOPE, "RescaleSlope", 1.0)?,
                g.float_or(tags::RESCALE_INTERCEPT, "RescaleIntercept", 0.0)?,
            )),
            None => None,
        };
        let stack = match group(tags::FRAME_CONTENT_SEQUENCE) {
            Some(g) => {
                let mut key = Vec::new();
                if let Some(id) = g.opt_str(tags::STACK_ID) {
                    key.push(format!("stack {id}"));
                }
                if let Some(t) = g.opt_int(tags::TEMPORAL_POSITION_INDEX) {
                    key.push(format!("time {t}"));
                }
                key.join(", ")
            }
            None => String::new(),
        };
        let thickness = measures
            .as_ref()
            .and_then(|m| m.opt_float(tags::SLICE_THICKNESS))
            .filter(|t| *t > 0.0);
        let place = match (position, orientation) {
            (None, None) => Place {
                geometry: Geometry::FrameStack,
                pixel_spacing: match &measures {
                    Some(m) if m.opt_str(tags::PIXEL_SPACING).is_some() => {
                        positive_spacing(m, tags::PIXEL_SPACING, "PixelSpacing")?
                    }
                    _ => fallback,
                },
                orientation: AXIAL_ORIENTATION,
                position: [0.0; 3],
                slice_thickness: thickness,
                rescale,
                stack,
            },
            (Some(p), Some(o)) => {
                let measures = measures.ok_or_else(|| DicomError::Missing {
                    file: name.clone(),
                    tag: tags::PIXEL_MEASURES_SEQUENCE,
                    name: "PixelMeasuresSequence",
                })?;
                Place {
                    geometry: Geometry::Patient,
                    pixel_spacing: positive_spacing(
                        &measures,
                        tags::PIXEL_SPACING,
                        "PixelSpacing",
                    )?,
                    orientation: orientation_of(&o)?,
                    position: p
                        .floats::<3>(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient")?,
                    slice_thickness: thickness,
                    rescale,
                    stack,
                }
            }
            (None, Some(_)) => {
                return Err(DicomError::Missing {
                    file: name,
                    tag: tags::PLANE_POSITION_SEQUENCE,
                    name: "PlanePositionSequence",
                })
            }
            (Some(_), None) => {
                return Err(DicomError::Missing {
                    file: name,
                    tag: tags::PLANE_ORIENTATION_SEQUENCE,
                    name: "PlaneOrientationSequence",
                })
            }
        };
        out.push(place);
    }
    // Frames of one file either all have a place in the patient or none has.
    if out.iter().any(|p| p.geometry == Geometry::Patient)
        && out.iter().any(|p| p.geometry == Geometry::FrameStack)
    {
        return Err(f.invalid(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            "PerFrameFunctionalGroupsSequence",
            "some frames without PlanePositionSequence",
            "every frame needs a position, or none",
        ));
    }
    Ok(out)
}

/// A file without functional groups: a classic single-frame image, or a multi-frame one
/// whose frames are a stack (evenly spaced along the normal when SpacingBetweenSlices says
/// so, else a frame stack).
fn classic(f: &Fields, frames: u32) -> Result<Vec<Place>, DicomError> {
    let has_place = f.opt_str(tags::IMAGE_POSITION_PATIENT).is_some()
        || f.opt_str(tags::IMAGE_ORIENTATION_PATIENT).is_some();
    let thickness = f
        .opt_float(tags::SLICE_THICKNESS)
        .filter(|t| t.is_finite() && *t > 0.0);
    if !has_place {
        let spacing = stack_spacing(f);
        return Ok((0..frames)
            .map(|_| Place {
                geometry: Geometry::FrameStack,
                pixel_spacing: spacing,
                orientation: AXIAL_ORIENTATION,
                position: [0.0; 3],
                slice_thickness: thickness,
                rescale: None,
                stack: String::new(),
            })
            .collect());
    }
    let spacing = positive_spacing(f, tags::PIXEL_SPACING, "PixelSpacing")?;
    let orientation = orientation_of(f)?;
    let position = f.floats::<3>(tags::IMAGE_POSITION_PATIENT, "ImagePositionPatient")?;
    let step = f
        .opt_float(tags::SPACING_BETWEEN_SLICES)
        .filter(|s| *s > 0.0);
    let geometry = if frames == 1 || step.is_some() {
        Geometry::Patient
    } else {
        // Several frames at one stated position (NM, legacy multi-frame): no patient grid.
        Geometry::FrameStack
    };
    let normal = normal_of(&orientation);
    Ok((0..frames)
        .map(|k| {
            let d = step.unwrap_or(0.0) * k as f64;
            Place {
                geometry,
                pixel_spacing: spacing,
                orientation,
                position: [
                    position[0] + d * normal[0],
                    position[1] + d * normal[1],
                    position[2] + d * normal[2],
                ],
                slice_thickness: thickness,
                rescale: None,
                stack: String::new(),
            }
        })
        .collect())
}

fn first_item(item: &InMemDicomObject, seq: Tag) -> Option<&InMemDicomObject> {
    item.get(seq)?.items()?.first()
}

fn positive_spacing(f: &Fields, tag: Tag, name: &'static str) -> Result<[f64; 2], DicomError> {
    let spacing = f.floats::<2>(tag, name)?;
    if spacing.iter().any(|&s| s <= 0.0) {
        return Err(f.invalid(
            tag,
            name,
            format!("{}\\{}", spacing[0], spacing[1]),
            "must be positive",
        ));
    }
    Ok(spacing)
}

fn orientation_of(f: &Fields) -> Result<[f64; 6], DicomError> {
    let orientation = f.floats::<6>(tags::IMAGE_ORIENTATION_PATIENT, "ImageOrientationPatient")?;
    let n = normal_of(&orientation);
    if (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]) < 0.5 {
        return Err(f.invalid(
            tags::IMAGE_ORIENTATION_PATIENT,
            "ImageOrientationPatient",
            format!("{orientation:?}"),
            "row and column directions are parallel",
        ));
    }
    Ok(orientation)
}

/// The in-plane spacing of a frame stack, [rows, columns] in mm: PixelSpacing, else
/// ImagerPixelSpacing (projection radiographs), else the first ultrasound region's physical
/// deltas when given in cm, else 1 mm (a grid with no stated size).
fn stack_spacing(f: &Fields) -> [f64; 2] {
    for (tag, name) in [
        (tags::PIXEL_SPACING, "PixelSpacing"),
        (tags::IMAGER_PIXEL_SPACING, "ImagerPixelSpacing"),
    ] {
        if let Ok(s) = positive_spacing(f, tag, name) {
            return s;
        }
    }
    if let Some(region) = f.items(tags::SEQUENCE_OF_ULTRASOUND_REGIONS).first() {
        let r = f.within(region);
        // PhysicalUnitsXDirection 3 = cm (PS3.3 C.8.5.5.1.15).
        if r.opt_int(tags::PHYSICAL_UNITS_X_DIRECTION) == Some(3) {
            if let (Some(dx), Some(dy)) = (
                r.opt_float(tags::PHYSICAL_DELTA_X),
                r.opt_float(tags::PHYSICAL_DELTA_Y),
            ) {
                if dx > 0.0 && dy > 0.0 {
                    return [dy.abs() * 10.0, dx.abs() * 10.0];
                }
            }
        }
    }
    [1.0, 1.0]
}
