"""Reference pixels of real DICOM files, decoded by pydicom (with pylibjpeg's codecs).

Usage: pydicom_reference.py OUT_DIR FILE...

For each FILE writes OUT_DIR/NAME.i32 (int32 little endian, frames x rows x columns, or
x 3 for colour) and an entry in OUT_DIR/summary.json: {"kind": "grey"|"rgb", "shape": [...]}
(and the transfer syntax) or {"error": "..."} when pydicom cannot decode it. Grey values are rescaled per frame
(RescaleSlope/Intercept, from the functional groups of an enhanced image where present) and
rounded; palette colour is looked up in the palette; YBR is converted to RGB, as a
radiology viewer shows them.
"""
import json
import os
import sys

import numpy as np
import pydicom
from pydicom.pixels import apply_color_lut


def rescale_of(ds, frame):
    """(slope, intercept) of a frame: per-frame group, shared group, then top level."""
    for groups in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence")):
        if not groups:
            continue
        item = groups[frame] if len(groups) > 1 else groups[0]
        seq = item.get("PixelValueTransformationSequence")
        if seq:
            t = seq[0]
            return float(t.get("RescaleSlope", 1) or 1), float(t.get("RescaleIntercept", 0) or 0)
    return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)


def main():
    out, files = sys.argv[1], sys.argv[2:]
    summary = {}
    for path in files:
        name = os.path.basename(path)
        try:
            ds = pydicom.dcmread(path)
            a = ds.pixel_array
        except Exception as e:  # pydicom's own refusal is the reference's answer
            summary[name] = {"error": f"{type(e).__name__}: {e}"}
            continue
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames == 1:
            a = a[None]
        pi = ds.PhotometricInterpretation
        if pi == "PALETTE COLOR":
            a = apply_color_lut(a, ds)
            kind = "rgb"
        elif int(ds.SamplesPerPixel) == 3:
            kind = "rgb"
        else:
            a = a.astype("float64")
            for k in range(frames):
                slope, intercept = rescale_of(ds, k)
                a[k] = a[k] * slope + intercept
            a = np.clip(np.round(a), -32768, 32767)
            kind = "grey"
        np.ascontiguousarray(a).astype("<i4").tofile(os.path.join(out, name + ".i32"))
        summary[name] = {
            "kind": kind,
            "shape": list(a.shape),
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
