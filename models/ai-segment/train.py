#!/usr/bin/env python3
"""Trains the small 3D U-Net of examples/ct-ai-segmentation on varied Ward phantoms.

Steps: build/locate `ward`, write varied CT series with `ward sample ct --vary SEED`
(cached under $WARD_AI_CACHE, default ~/.cache/ward-ai-segment), read them with pydicom,
compute the truth labels at the voxel centres from each series' phantom.json, train on
the CPU with a fixed seed, export ONNX (input `ct` [1,1,Z,Y,X] = HU/1000, output
`logits` [1,4,Z,Y,X]) and evaluate it with onnxruntime on held-out seeds and on the
standard phantom.

    python3 models/ai-segment/train.py [--ward PATH] [--out PATH] [--minutes M]
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pydicom
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "examples/ct-ai-segmentation/model/ai-segment.onnx"
SEED = 20250101
CLASSES = ["background", "bone", "contrast", "lesion"]
LABEL_OF = {"bone": 1, "contrast": 2, "lesion": 3}
TRAIN_SEEDS = range(0, 48)
HELDOUT_SEEDS = range(1000, 1012)
# The lesion's HU range in `ward sample ct --vary` (Phantom::varied).
LESION_HU = (40.0, 120.0)
CROP = (16, 48, 48)  # z, y, x; multiples of 4, within the smallest series
BATCH = 2


# ---------------------------------------------------------------- data


def series_geometry(seed):
    """Size, slices, fov and thickness of the series of `seed` (deterministic)."""
    r = random.Random(seed * 7919 + 17)
    return {
        "size": r.choice([96, 128, 160, 192, 256]),
        "slices": r.randint(24, 48),
        "fov": r.choice([300, 330, 360, 390, 420]),
        "thickness": r.choice([2.5, 3.0, 3.5, 4.0]),
    }


def write_series(ward, seed, cache, vary=True):
    g = series_geometry(seed) if vary else {"size": 256, "slices": 64, "fov": 400, "thickness": 2.5}
    name = (f"vary{seed}" if vary else "standard") + "-{size}-{slices}-{fov}-{thickness}".format(**g)
    out = cache / name
    done = out / ".complete"
    if not done.exists():
        if out.exists():
            shutil.rmtree(out)
        cmd = [str(ward), "sample", "ct", "--out", str(out), "--size", str(g["size"]),
               "--slices", str(g["slices"]), "--fov", str(g["fov"]), "--thickness", str(g["thickness"])]
        if vary:
            cmd += ["--vary", str(seed)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        done.write_text("")
    return out


def read_volume(d):
    """HU volume [Z, Y, X] (float32) and the voxel-centre coordinates from the DICOM headers."""
    slices = [pydicom.dcmread(p) for p in sorted(Path(d).glob("*.dcm"))]
    slices.sort(key=lambda s: float(s.ImagePositionPatient[2]))
    hu = np.stack([s.pixel_array.astype(np.float32) * float(s.RescaleSlope) + float(s.RescaleIntercept)
                   for s in slices])
    ipp = np.array([[float(v) for v in s.ImagePositionPatient] for s in slices])
    ps = [float(v) for v in slices[0].PixelSpacing]  # row spacing (y), column spacing (x)
    return hu, ipp, ps


def voxel_centres(size, slices, fov_mm, thk):
    """x (cols), y (rows), z (slices) of the voxel centres, as ward's voxel_center_mm."""
    spacing = fov_mm / size
    xy0 = -fov_mm / 2.0 + spacing / 2.0
    xy = np.array([xy0 + c * spacing for c in range(size)])
    z = np.array([-(slices * thk) / 2.0 + (k + 0.5) * thk for k in range(slices)])
    return xy, xy, z


def truth_labels(meta):
    """Labels [Z, Y, X] (uint8) at the voxel centres, as Phantom::label_at."""
    ph = meta["phantom"]
    xs, ys, zs = voxel_centres(meta["size"], meta["slices"], meta["fov_mm"], meta["slice_thickness_mm"])
    z, y, x = np.meshgrid(zs, ys, xs, indexing="ij")
    a, b = ph["body_semi_axes_mm"]
    body = (x / a) ** 2 + (y / b) ** 2 <= 1.0
    lab = np.zeros(x.shape, np.uint8)
    for s in ph["spheres"]:  # later spheres override earlier ones
        c, r = s["center_mm"], s["radius_mm"]
        d2 = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
        lab[(d2 <= r * r) & body] = LABEL_OF.get(s["name"], 0)
    return lab, (xs, ys, zs)


def load_case(d):
    hu, ipp, ps = read_volume(d)
    meta = json.loads((Path(d) / "phantom.json").read_text())
    lab, (xs, ys, zs) = truth_labels(meta)
    # The DICOM geometry agrees with the one recomputed from phantom.json.
    assert np.allclose(ipp[:, 2], zs, atol=1e-6) and np.allclose(ipp[0, :2], [xs[0], ys[0]], atol=1e-6)
    assert np.allclose(ps, [xs[1] - xs[0]] * 2, atol=1e-9)
    assert hu.shape == lab.shape
    return hu, lab


def standard_truth(hu_shape):
    """Truth of the standard phantom (256x256x64, fov 400, 2.5 mm), from ward's constants."""
    meta = {
        "size": 256, "slices": 64, "fov_mm": 400.0, "slice_thickness_mm": 2.5,
        "phantom": {
            "body_semi_axes_mm": [150.0, 110.0],
            "spheres": [
                {"name": "bone", "center_mm": [-60.0, 0.0, 0.0], "radius_mm": 25.0},
                {"name": "contrast", "center_mm": [50.0, 20.0, 0.0], "radius_mm": 18.0},
                {"name": "lesion", "center_mm": [20.0, -50.0, 10.0], "radius_mm": 12.0},
                {"name": "air", "center_mm": [40.0, 60.0, -20.0], "radius_mm": 15.0},
            ],
        },
    }
    lab, _ = truth_labels(meta)
    assert lab.shape == hu_shape
    return lab


def to_input(hu):
    """The model's input: HU clipped to [-1024, 3071], divided by 1000."""
    return (np.clip(hu, -1024.0, 3071.0) / 1000.0).astype(np.float32)


# ---------------------------------------------------------------- model


def conv(i, o, k=3):
    return nn.Sequential(nn.Conv3d(i, o, k, padding=k // 2), nn.ReLU(inplace=True))


class UNet3D(nn.Module):
    """Three resolutions (full, 1/2, 1/4): input sides must be multiples of 4."""

    def __init__(self, c1=8, c2=16, c3=32):
        super().__init__()
        # Two input channels: the HU scaled as given, and a soft-tissue window of it (HU / 100,
        # clipped to ±1) computed inside the network, in which the lesion's 40-120 HU over
        # water stands out as much as bone does in the first.
        self.enc1 = conv(2, c1)
        self.enc2 = nn.Sequential(conv(c1, c2), conv(c2, c2))
        self.bottom = nn.Sequential(conv(c2, c3), conv(c3, c3))
        self.up2 = nn.ConvTranspose3d(c3, c2, 2, stride=2)
        self.dec2 = nn.Sequential(conv(2 * c2, c2), conv(c2, c2))
        self.up1 = nn.ConvTranspose3d(c2, c1, 2, stride=2)
        # The full-resolution decoder also sees the input itself, so a voxel's own HU decides
        # its class at a structure's edge rather than the smoothed HU around it.
        self.dec1 = conv(2 * c1 + 2, c1)
        # The head sees each voxel's own two input channels beside the decoder's features, so
        # a structure's edge is decided by the voxel's HU, not by the smoothed HU around it.
        self.head = nn.Conv3d(c1 + 2, len(CLASSES), 1)
        self.pool = nn.MaxPool3d(2)
        self.threshold_init()

    @torch.no_grad()
    def threshold_init(self):
        """Starts the first layer as steep ramps of a lightly smoothed HU at thresholds
        between the classes' HU ranges (in HU/1000), which training then refines: the
        input's small lesion contrast (0.04) would otherwise take long to be found."""
        conv0 = self.enc1[0]
        thresholds = [-0.5, 0.015, 0.03, 0.16, 0.19, 0.44, 0.47, 1.1][: conv0.out_channels]
        k = 25.0
        kernel = torch.full((3, 3, 3), 0.5 / 27)
        kernel[1, 1, 1] += 0.5
        for c, t in enumerate(thresholds):
            conv0.weight[c, 0] = k * kernel
            conv0.bias[c] = -k * t

    def forward(self, ct):
        x = torch.cat([ct, torch.clamp(ct * 10.0, -1.0, 1.0)], 1)
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottom(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1, x], 1))
        return self.head(torch.cat([d1, x], 1))


# ---------------------------------------------------------------- training


def random_crop(rng, hu, lab):
    Z, Y, X = hu.shape
    cz, cy, cx = CROP
    fg = None
    if rng.random() < 0.7:
        # Centre the crop on a random voxel of a random structure present.
        present = [c for c in (1, 2, 3) if (lab == c).any()]
        if present:
            pts = np.argwhere(lab == rng.choice(present))
            fg = pts[rng.randrange(len(pts))]
    if fg is None:
        z0, y0, x0 = rng.randint(0, Z - cz), rng.randint(0, Y - cy), rng.randint(0, X - cx)
    else:
        z0 = min(max(fg[0] - cz // 2 + rng.randint(-cz // 4, cz // 4), 0), Z - cz)
        y0 = min(max(fg[1] - cy // 2 + rng.randint(-cy // 4, cy // 4), 0), Y - cy)
        x0 = min(max(fg[2] - cx // 2 + rng.randint(-cx // 4, cx // 4), 0), X - cx)
    h = hu[z0:z0 + cz, y0:y0 + cy, x0:x0 + cx]
    lb = lab[z0:z0 + cz, y0:y0 + cy, x0:x0 + cx]
    # The lesion is the faintest structure (40-120 HU over water's 0): half the crops that
    # hold one give it another HU of its range, so faint lesions are as common as bright.
    lesion = lb == 3
    if lesion.any() and rng.random() < 0.5:
        h = h.astype(np.float32, copy=True)
        h[lesion] += rng.uniform(*LESION_HU) - float(h[lesion].mean())
    # Flips keep the phantom a phantom (spheres stay spheres).
    for ax in range(3):
        if rng.random() < 0.5:
            h, lb = np.flip(h, ax), np.flip(lb, ax)
    return np.ascontiguousarray(h), np.ascontiguousarray(lb)


def soft_dice_loss(logits, target):
    p = logits.softmax(1)
    oh = F.one_hot(target, len(CLASSES)).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    inter = (p * oh).sum(dims)
    den = p.sum(dims) + oh.sum(dims)
    dice = (2 * inter + 1.0) / (den + 1.0)
    return 1.0 - dice[1:].mean()


def train(cases, minutes, log):
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    torch.use_deterministic_algorithms(True)
    model = UNet3D()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    budget = minutes * 60.0
    start = time.time()
    step, losses, epochs = 0, [], 0
    steps_per_epoch = max(1, len(cases) // BATCH)
    # A fixed number of steps keeps the run deterministic; the time only caps it.
    max_steps = int(os.environ.get("WARD_AI_STEPS", "4800"))
    while step < max_steps and time.time() - start < budget:
        order = list(range(len(cases)))
        rng.shuffle(order)
        for i in range(0, len(order) - BATCH + 1, BATCH):
            frac = step / max_steps
            for g in opt.param_groups:
                g["lr"] = 3e-3 * (0.5 * (1 + np.cos(np.pi * frac))) + 1e-4
            xs, ys = [], []
            for j in order[i:i + BATCH]:
                h, lb = random_crop(rng, *cases[j])
                xs.append(to_input(h)[None])
                ys.append(lb.astype(np.int64))
            x = torch.from_numpy(np.stack(xs))
            y = torch.from_numpy(np.stack(ys))
            logits = model(x)
            w = torch.tensor([0.5, 1.0, 1.0, 2.0])
            loss = F.cross_entropy(logits, y, weight=w) + soft_dice_loss(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step % 50 == 0:
                log(f"step {step} epoch {epochs} loss {np.mean(losses[-50:]):.4f} "
                    f"({time.time() - start:.0f} s)")
            if step >= max_steps or time.time() - start >= budget:
                break
        epochs += 1
    secs = time.time() - start
    final = float(np.mean(losses[-50:]))
    log(f"trained {step} steps ({step / steps_per_epoch:.1f} epochs of {len(cases)} series, "
        f"batch {BATCH} crops {CROP}) in {secs:.0f} s, final loss {final:.4f}")
    return model, {"steps": step, "epochs": round(step / steps_per_epoch, 1), "seconds": round(secs),
                   "final_loss": round(final, 4)}


# ---------------------------------------------------------------- export and evaluation


def export(model, path):
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    dyn = {2: "z", 3: "y", 4: "x"}
    torch.onnx.export(model, torch.zeros(1, 1, 16, 32, 32), str(path), input_names=["ct"],
                      output_names=["logits"], dynamic_axes={"ct": dyn, "logits": dyn},
                      opset_version=17, dynamo=False)


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def predict(sess, hu):
    """Argmax labels of a whole volume; sides padded (edge values) to multiples of 4."""
    shape = hu.shape
    pad = [(0, (-s) % 4) for s in shape]
    x = np.pad(to_input(hu), pad, mode="edge")[None, None]
    logits = sess.run(["logits"], {"ct": x})[0]
    return logits[0, :, :shape[0], :shape[1], :shape[2]].argmax(0).astype(np.uint8)


def dice(pred, lab, c):
    p, t = pred == c, lab == c
    den = p.sum() + t.sum()
    return 1.0 if den == 0 else 2.0 * (p & t).sum() / den


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ward", type=Path, default=None, help="ward binary (default: cargo build -p ward)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--minutes", type=float, default=11.0, help="cap on training time")
    ap.add_argument("--cache", type=Path,
                    default=Path(os.environ.get("WARD_AI_CACHE", Path.home() / ".cache/ward-ai-segment")))
    args = ap.parse_args()
    torch.set_num_threads(2)

    def log(m):
        print(m, flush=True)

    ward = args.ward
    if ward is None:
        subprocess.run(["cargo", "build", "-q", "-p", "ward"], cwd=REPO, check=True)
        ward = REPO / "target/debug/ward"
    args.cache.mkdir(parents=True, exist_ok=True)

    t = time.time()
    cases = [load_case(write_series(ward, s, args.cache)) for s in TRAIN_SEEDS]
    log(f"{len(cases)} training series (seeds {TRAIN_SEEDS.start}-{TRAIN_SEEDS.stop - 1}) "
        f"ready in {time.time() - t:.0f} s")

    model, fig = train(cases, args.minutes, log)
    export(model, args.out)
    size = args.out.stat().st_size
    sha = hashlib.sha256(args.out.read_bytes()).hexdigest()
    log(f"wrote {args.out} ({size} bytes, sha256 {sha})")

    sess = session(args.out)
    per = {c: [] for c in (1, 2, 3)}
    pooled = {c: [0, 0] for c in (1, 2, 3)}
    for s in HELDOUT_SEEDS:
        hu, lab = load_case(write_series(ward, s, args.cache))
        pred = predict(sess, hu)
        for c in (1, 2, 3):
            per[c].append(dice(pred, lab, c))
            pooled[c][0] += 2 * int(((pred == c) & (lab == c)).sum())
            pooled[c][1] += int((pred == c).sum() + (lab == c).sum())
        log(f"held-out seed {s} {hu.shape}: " + " ".join(f"{CLASSES[c]} {per[c][-1]:.4f}" for c in (1, 2, 3)))
    heldout = {CLASSES[c]: {"mean": round(float(np.mean(per[c])), 4), "min": round(float(np.min(per[c])), 4),
                            "pooled": round(pooled[c][0] / pooled[c][1], 4)} for c in (1, 2, 3)}
    log("held-out Dice: " + json.dumps(heldout))

    hu = read_volume(write_series(ward, 0, args.cache, vary=False))[0]
    lab = standard_truth(hu.shape)
    x = np.pad(to_input(hu), [(0, (-s) % 4) for s in hu.shape], mode="edge")[None, None]
    sess.run(["logits"], {"ct": x[:, :, :8, :64, :64]})
    t = time.time()
    logits = sess.run(["logits"], {"ct": x})[0]
    infer = time.time() - t
    pred = logits[0].argmax(0)
    standard = {CLASSES[c]: round(float(dice(pred, lab, c)), 4) for c in (1, 2, 3)}
    log(f"standard phantom 256x256x64 Dice: {json.dumps(standard)}; inference {infer:.2f} s on 2 threads")

    summary = {"seed": SEED, "training": fig, "heldout_seeds": [HELDOUT_SEEDS.start, HELDOUT_SEEDS.stop - 1],
               "heldout_dice": heldout, "standard_dice": standard, "inference_256x256x64_s": round(infer, 2),
               "onnx_bytes": size, "sha256": sha,
               "parameters": sum(p.numel() for p in model.parameters())}
    print(json.dumps(summary, indent=2))
    ok = all(v["mean"] >= 0.97 for v in heldout.values()) and all(v >= 0.95 for v in standard.values())
    if not ok:
        log("Dice target NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
