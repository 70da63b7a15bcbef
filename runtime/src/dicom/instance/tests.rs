use super::*;
use crate::dicom::smoke::{largest_allocation, Mutator};
use std::io::Write as _;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT: &str = "1.2.840.10008.1.2.1";
const IMPLICIT: &str = "1.2.840.10008.1.2";
const BIG: &str = "1.2.840.10008.1.2.2";
const JPEG: &str = "1.2.840.10008.1.2.4.50";

fn padded(text: &str) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// One element: explicit (little or big endian) or implicit VR.
fn element(enc: Encoding, tag: (u16, u16), vr: &str, len: u32, value: &[u8]) -> Vec<u8> {
    let big = enc == Encoding::BigExplicit;
    let u16b = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend(u16b(tag.0));
    out.extend(u16b(tag.1));
    let vr_bytes: [u8; 2] = vr.as_bytes().try_into().unwrap();
    if enc == Encoding::Implicit || tag.0 == 0xFFFE {
        out.extend(u32b(len));
    } else if long_length(VR::from_binary(vr_bytes).unwrap()) {
        out.extend(vr_bytes);
        out.extend([0, 0]);
        out.extend(u32b(len));
    } else {
        out.extend(vr_bytes);
        out.extend(u16b(len as u16));
    }
    out.extend(value);
    out
}

fn el(enc: Encoding, tag: (u16, u16), vr: &str, value: &[u8]) -> Vec<u8> {
    element(enc, tag, vr, value.len() as u32, value)
}

/// A Part 10 file: preamble, `DICM`, the file meta group, then `data_set` as given.
fn part10(ts: &str, data_set: &[u8]) -> Vec<u8> {
    let e = Encoding::Explicit;
    let mut meta = Vec::new();
    meta.extend(el(e, (2, 1), "OB", &[0, 1]));
    meta.extend(el(e, (2, 2), "UI", &padded(CT)));
    meta.extend(el(e, (2, 3), "UI", &padded("1.2.3.4")));
    meta.extend(el(e, (2, 0x10), "UI", &padded(ts)));
    let mut out = vec![0u8; 128];
    out.extend(b"DICM");
    out.extend(el(e, (2, 0), "UL", &(meta.len() as u32).to_le_bytes()));
    out.extend(meta);
    out.extend(data_set);
    out
}

/// SOP class, instance, study, modality, a nested sequence (undefined lengths), a sequence
/// of defined length, then `pixels`.
fn data_set(enc: Encoding, pixels: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(el(enc, (8, 0x16), "UI", &padded(CT)));
    d.extend(el(enc, (8, 0x18), "UI", &padded("1.2.3.4")));
    d.extend(el(enc, (8, 0x60), "CS", b"CT"));
    let mut item = el(enc, (8, 0x1150), "UI", &padded(CT));
    item.extend(el(enc, (8, 0x1155), "UI", &padded("1.2.3.9")));
    // (0008,1115) undefined length, one item of undefined length.
    d.extend(element(enc, (8, 0x1115), "SQ", UNDEFINED, &[]));
    d.extend(element(enc, (0xFFFE, 0xE000), "UN", UNDEFINED, &[]));
    d.extend(&item);
    d.extend(element(enc, (0xFFFE, 0xE00D), "UN", 0, &[]));
    d.extend(element(enc, (0xFFFE, 0xE0DD), "UN", 0, &[]));
    // (0008,1140) of defined length, one item of defined length.
    let mut defined = element(enc, (0xFFFE, 0xE000), "UN", item.len() as u32, &[]);
    defined.extend(&item);
    d.extend(el(enc, (8, 0x1140), "SQ", &defined));
    d.extend(el(enc, (0x18, 0x50), "DS", b"2.5 "));
    d.extend(el(enc, (0x20, 0xD), "UI", &padded("1.2.3.100")));
    d.extend(el(enc, (0x28, 0x10), "US", &u16_bytes(enc, 4)));
    d.extend(pixels);
    d
}

fn u16_bytes(enc: Encoding, v: u16) -> [u8; 2] {
    if enc == Encoding::BigExplicit {
        v.to_be_bytes()
    } else {
        v.to_le_bytes()
    }
}

fn native_pixels(enc: Encoding) -> Vec<u8> {
    el(enc, (0x7FE0, 0x10), "OW", &[7u8; 32])
}

/// Encapsulated: an empty offset table, two fragments, the delimiter.
fn fragments() -> Vec<u8> {
    let e = Encoding::Explicit;
    let mut p = element(e, (0x7FE0, 0x10), "OB", UNDEFINED, &[]);
    p.extend(element(e, (0xFFFE, 0xE000), "UN", 0, &[]));
    p.extend(element(
        e,
        (0xFFFE, 0xE000),
        "UN",
        6,
        &[0xFF, 0xD8, 1, 2, 0xFF, 0xD9],
    ));
    p.extend(element(e, (0xFFFE, 0xE000), "UN", 2, &[3, 4]));
    p.extend(element(e, (0xFFFE, 0xE0DD), "UN", 0, &[]));
    p
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn inspect(bytes: &[u8]) -> Result<InstanceFacts> {
    inspect_bytes(bytes)
}

/// A CT slice of Ward's in the encodings DCMTK converts it to (dcmconv, dcmcjpeg,
/// dcmcrle): also the fuzzing seeds.
const DCMTK_FILES: [(&str, &[u8]); 6] = [
    (
        "dcmtk explicit",
        include_bytes!("../../../../fuzz/seeds/stored_instance/ct-explicit.dcm"),
    ),
    (
        "dcmtk implicit",
        include_bytes!("../../../../fuzz/seeds/stored_instance/ct-implicit.dcm"),
    ),
    (
        "dcmtk big endian",
        include_bytes!("../../../../fuzz/seeds/stored_instance/ct-big-endian.dcm"),
    ),
    (
        "dcmtk deflated",
        include_bytes!("../../../../fuzz/seeds/stored_instance/ct-deflated.dcm"),
    ),
    (
        "dcmtk jpeg lossless",
        include_bytes!("../../../../fuzz/seeds/stored_instance/ct-jpeg-lossless.dcm"),
    ),
    (
        "dcmtk rle",
        include_bytes!("../../../../fuzz/seeds/stored_instance/ct-rle.dcm"),
    ),
];

#[test]
fn dcmtk_encodings_of_a_slice_all_give_its_facts() {
    let reference = inspect(DCMTK_FILES[0].1).unwrap();
    for (name, bytes) in DCMTK_FILES {
        let facts = inspect(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(facts.sop_instance, reference.sop_instance, "{name}");
        assert_eq!(facts.study_instance, reference.study_instance, "{name}");
        assert_eq!(facts.by_keyword("Rows"), Some("16"), "{name}");
        assert_eq!(facts.by_keyword("Modality"), Some("CT"), "{name}");
    }
}

/// The valid files of every encoding the walk knows.
fn valid_files() -> Vec<(&'static str, Vec<u8>)> {
    let ex = Encoding::Explicit;
    let dcmtk = DCMTK_FILES
        .iter()
        .map(|(name, bytes)| (*name, bytes.to_vec()));
    dcmtk
        .chain(vec![
            (
                "explicit",
                part10(EXPLICIT, &data_set(ex, &native_pixels(ex))),
            ),
            (
                "implicit",
                part10(
                    IMPLICIT,
                    &data_set(Encoding::Implicit, &native_pixels(Encoding::Implicit)),
                ),
            ),
            (
                "big endian",
                part10(
                    BIG,
                    &data_set(Encoding::BigExplicit, &native_pixels(Encoding::BigExplicit)),
                ),
            ),
            ("encapsulated", part10(JPEG, &data_set(ex, &fragments()))),
            (
                "deflated",
                part10(DEFLATED, &deflate(&data_set(ex, &native_pixels(ex)))),
            ),
        ])
        .collect()
}

#[test]
fn every_encoding_walks_to_its_end_and_gives_its_facts() {
    for (name, bytes) in valid_files().into_iter().skip(DCMTK_FILES.len()) {
        let facts = inspect(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(facts.sop_class, CT, "{name}");
        assert_eq!(facts.sop_instance, "1.2.3.4", "{name}");
        assert_eq!(facts.study_instance, "1.2.3.100", "{name}");
        assert_eq!(facts.media_sop_instance, "1.2.3.4", "{name}");
        assert_eq!(facts.by_keyword("Modality"), Some("CT"), "{name}");
        assert_eq!(facts.by_keyword("SliceThickness"), Some("2.5"), "{name}");
        assert_eq!(facts.by_keyword("Rows"), Some("4"), "{name}");
        // What is inside sequences is not a top-level attribute.
        assert_eq!(facts.by_keyword("ReferencedSOPInstanceUID"), None, "{name}");
    }
}

#[test]
fn a_file_and_its_bytes_give_the_same_facts() {
    let bytes = &valid_files()[0].1;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    assert_eq!(
        inspect_instance(file.path()).unwrap(),
        inspect_bytes(bytes).unwrap()
    );
}

#[test]
fn a_generated_ct_slice_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let series = crate::sample::ct_series::write_ct_series(
        dir.path(),
        &crate::sample::ct_series::CtSeriesOptions {
            slices: 1,
            size: 16,
            ..Default::default()
        },
    )
    .unwrap();
    let facts = inspect_instance(&series.files[0]).unwrap();
    assert_eq!(facts.sop_class, CT);
    assert_eq!(facts.transfer_syntax, EXPLICIT);
    assert_eq!(facts.by_keyword("Modality"), Some("CT"));
    assert!(!facts.study_instance.is_empty());
}

#[test]
fn a_length_past_the_end_is_refused_naming_the_tag_and_both_lengths() {
    let ex = Encoding::Explicit;
    // Pixel data declaring 4 GiB - 16 bytes, of which 32 arrived.
    let mut pixels = element(ex, (0x7FE0, 0x10), "OW", 0xFFFF_FFF0, &[]);
    pixels.extend([0u8; 32]);
    let bytes = part10(EXPLICIT, &data_set(ex, &pixels));
    let (result, largest) = largest_allocation(|| inspect(&bytes));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            InstanceRefusal::Overrun {
                tag: Tag(0x7FE0, 0x10),
                declared: 0xFFFF_FFF0,
                available: 32,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("(7FE0,0010)") && text.contains("4294967280") && text.contains("32"),
        "{text}"
    );
    assert!(largest < 1 << 20, "{largest} bytes allocated at once");

    // Inside an item: bounded by the item, not only by the file.
    let mut d = el(ex, (8, 0x16), "UI", &padded(CT));
    let inner = element(ex, (8, 0x1150), "UI", 200, &[b'1'; 8]);
    let mut seq = element(ex, (0xFFFE, 0xE000), "UN", inner.len() as u32, &[]);
    seq.extend(&inner);
    d.extend(el(ex, (8, 0x1140), "SQ", &seq));
    d.extend([0u8; 400]);
    let err = inspect(&part10(EXPLICIT, &d)).unwrap_err();
    assert!(
        matches!(
            err,
            InstanceRefusal::Overrun {
                tag: Tag(8, 0x1150),
                declared: 200,
                available: 8,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_deflated_data_set_is_bounded_by_what_it_inflates_to() {
    let ex = Encoding::Explicit;
    let mut pixels = element(ex, (0x7FE0, 0x10), "OB", 0xFFFF_FFF0, &[]);
    pixels.extend([0u8; 100]);
    let bytes = part10(DEFLATED, &deflate(&data_set(ex, &pixels)));
    let (result, largest) = largest_allocation(|| inspect(&bytes));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            InstanceRefusal::Overrun {
                tag: Tag(0x7FE0, 0x10),
                available: 100,
                ..
            }
        ),
        "{err}"
    );
    assert!(largest < 1 << 20, "{largest} bytes allocated at once");
    // Not deflate at all.
    let err = inspect(&part10(DEFLATED, &[0xFF; 64])).unwrap_err();
    assert!(
        matches!(
            err,
            InstanceRefusal::Io(_)
                | InstanceRefusal::Truncated(_)
                | InstanceRefusal::Malformed { .. }
        ),
        "{err}"
    );
}

#[test]
fn broken_structure_is_refused_with_where() {
    let ex = Encoding::Explicit;
    // Encapsulated pixel data without its delimiter.
    let mut cut = fragments();
    cut.truncate(cut.len() - 8);
    assert!(matches!(
        inspect(&part10(JPEG, &data_set(ex, &cut))).unwrap_err(),
        InstanceRefusal::Truncated(_)
    ));
    // Sequences nested past the depth limit.
    let mut deep = Vec::new();
    for _ in 0..MAX_DEPTH + 2 {
        deep.extend(element(ex, (8, 0x1115), "SQ", UNDEFINED, &[]));
        deep.extend(element(ex, (0xFFFE, 0xE000), "UN", UNDEFINED, &[]));
    }
    assert!(matches!(
        inspect(&part10(EXPLICIT, &deep)).unwrap_err(),
        InstanceRefusal::TooDeep
    ));
    // Not Part 10; no meta group length; a VR nobody defines.
    assert!(matches!(
        inspect(b"hello").unwrap_err(),
        InstanceRefusal::NotPart10
    ));
    let mut no_group = vec![0u8; 128];
    no_group.extend(b"DICM");
    no_group.extend(el(ex, (2, 0x10), "UI", &padded(EXPLICIT)));
    assert!(matches!(
        inspect(&no_group).unwrap_err(),
        InstanceRefusal::MetaGroup
    ));
    let mut bad_vr = el(ex, (8, 0x16), "UI", &padded(CT));
    bad_vr.extend([0x08, 0, 0x18, 0, b'Z', b'Z', 2, 0, b'1', 0]);
    assert!(matches!(
        inspect(&part10(EXPLICIT, &bad_vr)).unwrap_err(),
        InstanceRefusal::Malformed {
            tag: Tag(8, 0x18),
            ..
        }
    ));
}

/// Seeded mutations of every valid file: no panic, and never an allocation past a small
/// bound, whatever the lengths say.
#[test]
fn mutated_instances_never_panic_nor_allocate_what_they_declare() {
    let mut mutator = Mutator::new(0x5EED_1CE5);
    let mut refused = 0;
    let files = valid_files();
    for round in 0..6000 {
        let (name, original) = &files[round % files.len()];
        let mutant = mutator.mutate(original);
        let (result, largest) = largest_allocation(|| inspect_bytes(&mutant));
        refused += usize::from(result.is_err());
        assert!(
            largest < 1 << 20,
            "{name}, round {round}: {largest} bytes allocated at once"
        );
    }
    assert!(refused > 100, "the mutations are seen: {refused} refused");
}
