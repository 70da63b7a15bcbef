//! Round trips, the exact layout, and malformed messages and streams.

use super::*;
use crate::raw_io::{self, VolumeHeader};
use crate::volume::Volume;

fn series() -> (Volume<i16>, VolumeHeader) {
    let data: Vec<i16> = (0..3 * 2 * 4).map(|i| (i as i16 - 10) * 1111).collect();
    let mut v = Volume::new([3, 2, 4], [0.7, 0.75, 2.5], [-100.5, 20.25, 7.0], data);
    v.orientation = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0];
    let mut header = VolumeHeader::of(&v);
    header
        .extra
        .insert("series_instance_uid".into(), serde_json::json!("1.2.3"));
    header.extra.insert(
        "sop_instance_uids".into(),
        serde_json::json!(["1.1", "1.2", "1.3", "1.4"]),
    );
    (v, header)
}

fn messages(v: &Volume<i16>, header: &VolumeHeader) -> Vec<Vec<u8>> {
    let [nx, ny, nz] = v.dims;
    let plane = nx * ny;
    let mut out = vec![encode_header(header).unwrap()];
    for k in 0..nz {
        out.push(encode_slice(k, nx, ny, &v.data[k * plane..(k + 1) * plane]).unwrap());
    }
    out
}

fn assemble(messages: &[Vec<u8>]) -> Result<(Volume<i16>, VolumeHeader), CtSliceError> {
    let mut it = messages.iter();
    let header = decode_header(it.next().ok_or(CtSliceError::NoHeader)?)?;
    let mut assembler = VolumeAssembler::new(header)?;
    for m in it {
        assembler.add(&decode_slice(m)?)?;
    }
    assembler.finish()
}

#[test]
fn slice_layout_is_exact() {
    let m = encode_slice(5, 2, 1, &[-2, 0x1234]).unwrap();
    assert_eq!(
        m,
        [
            b'W', b'C', b'T', b'S', 1, 2, 0, 0, // preamble
            5, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, // index, nx, ny
            0xfe, 0xff, 0x34, 0x12, // samples
        ]
    );
}

#[test]
fn header_layout_is_json_after_its_length() {
    let (_, header) = series();
    let m = encode_header(&header).unwrap();
    assert_eq!(&m[..8], b"WCTS\x01\x01\x00\x00");
    let len = u32::from_le_bytes([m[8], m[9], m[10], m[11]]) as usize;
    assert_eq!(m.len(), HEADER_PREFIX + len);
    let json: serde_json::Value = serde_json::from_slice(&m[HEADER_PREFIX..]).unwrap();
    assert_eq!(json["dims"], serde_json::json!([3, 2, 4]));
    assert_eq!(json["dtype"], "int16");
    assert_eq!(json["series_instance_uid"], "1.2.3");
}

#[test]
fn a_stream_round_trips_to_the_volume_and_its_header() {
    let (v, header) = series();
    let (back, back_header) = assemble(&messages(&v, &header)).unwrap();
    assert_eq!(back, v);
    assert_eq!(back_header, header);
}

#[test]
fn an_assembled_stream_writes_the_same_files_as_the_volume() {
    let (v, header) = series();
    let direct = tempfile::tempdir().unwrap();
    raw_io::write_volume(direct.path(), "volume", &v, header.extra.clone()).unwrap();
    let streamed = tempfile::tempdir().unwrap();
    let (back, back_header) = assemble(&messages(&v, &header)).unwrap();
    raw_io::write_volume(streamed.path(), "volume", &back, back_header.extra).unwrap();
    for file in ["volume.json", "volume.raw"] {
        let a = std::fs::read(direct.path().join(file)).unwrap();
        let b = std::fs::read(streamed.path().join(file)).unwrap();
        assert_eq!(a, b, "{file}");
    }
}

#[test]
fn smoothing_the_stream_equals_smoothing_the_volume() {
    use crate::smooth::{smooth_volume, SliceSmoother};
    let (v, header) = series();
    let [nx, ny, _] = v.dims;
    let input = messages(&v, &header);
    let mut output = vec![input[0].clone()];
    let mut smoother = SliceSmoother::new(nx, ny).unwrap();
    for m in &input[1..] {
        let slice = decode_slice(m).unwrap();
        if let Some((k, samples)) = smoother.push(&slice.samples).unwrap() {
            output.push(encode_slice(k, nx, ny, &samples).unwrap());
        }
    }
    let (k, samples) = smoother.finish().unwrap();
    output.push(encode_slice(k, nx, ny, &samples).unwrap());
    let (back, _) = assemble(&output).unwrap();
    assert_eq!(back, smooth_volume(&v));
}

#[test]
fn every_truncation_and_extension_is_an_error() {
    let (v, header) = series();
    for m in messages(&v, &header) {
        for len in 0..m.len() {
            let cut = &m[..len];
            assert!(decode_header(cut).is_err() && decode_slice(cut).is_err());
        }
        let mut long = m.clone();
        long.push(0);
        assert!(decode_header(&long).is_err() && decode_slice(&long).is_err());
    }
}

#[test]
fn corrupted_bytes_never_panic() {
    let (v, header) = series();
    let mut state = 0x1234_5678_9abc_def1u64;
    for m in messages(&v, &header) {
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bad = m.clone();
            let at = (state as usize) % bad.len();
            bad[at] ^= (state >> 32) as u8 | 1;
            let _ = decode_header(&bad);
            let _ = decode_slice(&bad);
        }
    }
}

#[test]
fn preamble_errors_name_what_is_wrong() {
    let good = encode_slice(0, 1, 1, &[7]).unwrap();
    let with = |at: usize, byte: u8| {
        let mut m = good.clone();
        m[at] = byte;
        decode_slice(&m).unwrap_err()
    };
    assert!(matches!(with(0, b'X'), CtSliceError::Magic { .. }));
    assert_eq!(
        with(4, 2),
        CtSliceError::Version {
            found: 2,
            expected: 1
        }
    );
    assert_eq!(with(5, 9), CtSliceError::Kind { found: 9 });
    assert_eq!(with(6, 1), CtSliceError::Reserved { found: 1 });
    assert_eq!(
        decode_slice(&good[..good.len() - 1]).unwrap_err(),
        CtSliceError::Length {
            part: "slice",
            found: 21,
            expected: 22
        }
    );
    // A huge declared shape is a length error, not an allocation.
    let mut huge = good.clone();
    huge[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode_slice(&huge).unwrap_err(),
        CtSliceError::Length { .. }
    ));
}

#[test]
fn header_errors() {
    let (v, mut header) = series();
    let slice = encode_slice(3, 3, 2, &v.data[..6]).unwrap();
    assert_eq!(
        decode_header(&slice).unwrap_err(),
        CtSliceError::SliceBeforeHeader { index: 3 }
    );
    let good = encode_header(&header).unwrap();
    assert_eq!(
        decode_slice(&good).unwrap_err(),
        CtSliceError::UnexpectedHeader
    );

    let mut not_json = good.clone();
    not_json[HEADER_PREFIX] = b'[';
    assert!(matches!(
        decode_header(&not_json).unwrap_err(),
        CtSliceError::HeaderJson(_)
    ));

    header.dtype = "uint16".into();
    assert_eq!(
        encode_header(&header).unwrap_err(),
        CtSliceError::Dtype("uint16".into())
    );
    // A header written by another encoder is checked on the way in as well.
    let json = serde_json::to_vec(&header).unwrap();
    let mut m = good[..8].to_vec();
    m.extend_from_slice(&(json.len() as u32).to_le_bytes());
    m.extend_from_slice(&json);
    assert_eq!(
        decode_header(&m).unwrap_err(),
        CtSliceError::Dtype("uint16".into())
    );

    header.dtype = "int16".into();
    header.dims = [3, 0, 4];
    assert!(matches!(
        encode_header(&header).unwrap_err(),
        CtSliceError::Geometry(_)
    ));
}

#[test]
fn stream_errors_name_the_slice() {
    let (v, header) = series();
    let good = messages(&v, &header);

    let missing = assemble(&good[..good.len() - 1]).unwrap_err();
    assert_eq!(
        missing,
        CtSliceError::Missing {
            received: 3,
            expected: 4
        }
    );
    assert!(
        missing.to_string().contains("slice 3 is missing"),
        "{missing}"
    );

    let mut swapped = good.clone();
    swapped.swap(2, 3);
    assert_eq!(
        assemble(&swapped).unwrap_err(),
        CtSliceError::OutOfOrder {
            expected: 1,
            found: 2
        }
    );

    let mut repeated = good.clone();
    repeated[2] = good[1].clone();
    assert_eq!(
        assemble(&repeated).unwrap_err(),
        CtSliceError::OutOfOrder {
            expected: 1,
            found: 0
        }
    );

    let mut extra = good.clone();
    extra.push(encode_slice(4, 3, 2, &[0; 6]).unwrap());
    assert_eq!(
        assemble(&extra).unwrap_err(),
        CtSliceError::Extra {
            index: 4,
            slices: 4
        }
    );

    let mut wrong_size = good.clone();
    wrong_size[2] = encode_slice(1, 2, 3, &[0; 6]).unwrap();
    assert_eq!(
        assemble(&wrong_size).unwrap_err(),
        CtSliceError::Shape {
            index: 1,
            found_nx: 2,
            found_ny: 3,
            nx: 3,
            ny: 2
        }
    );

    let mut second_header = good.clone();
    second_header[2] = good[0].clone();
    assert_eq!(
        assemble(&second_header).unwrap_err(),
        CtSliceError::UnexpectedHeader
    );

    assert_eq!(assemble(&[]).unwrap_err(), CtSliceError::NoHeader);
}

#[test]
fn a_header_too_large_to_hold_is_an_error() {
    let (_, mut header) = series();
    header.dims = [u32::MAX as usize, u32::MAX as usize, 3];
    let err = VolumeAssembler::new(header).unwrap_err();
    assert!(matches!(err, CtSliceError::VolumeTooLarge { .. }), "{err}");
}

#[test]
fn encode_checks_the_sample_count() {
    assert_eq!(
        encode_slice(0, 3, 2, &[0; 5]).unwrap_err(),
        CtSliceError::Samples {
            samples: 5,
            nx: 3,
            ny: 2
        }
    );
}
