"""Speed of ``segment_spine`` on a 15 × 512 × 512 sagittal T2 series (run by hand).

    .venv/bin/python benchmarks/segment.py [--repeats 3] [--threads 2] [--no-reference]

Prints the median wall time and the peak resident memory of the whole segmentation
(reorientation, network, resampling back, instances and level names) in a fresh
subprocess, then the time of one forward pass of an nnU-Net-sized 3D network (MONAI
``DynUNet`` with nnU-Net's default 3D full-resolution depth and filters: 6 stages,
32-64-128-256-320-320 filters, 3×3×3 kernels, in-plane-first strides as nnU-Net plans
for 4 mm slices) on the same input, and their ratio.

The input is a real 1 mm T2 volume from ``../shared/data/lumbar-t2-discs`` resampled to
15 sagittal slices of 512 × 512 at 0.6 mm × 0.6 mm × 4 mm (a typical clinical grid).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[1]))
from discquant.segment import load_segmentation_model, segment_spine
from discquant.io.study import Volume
d = np.load(sys.argv[2])
vol = Volume(data=d["data"], affine=d["affine"])
model = load_segmentation_model()
segment_spine(vol, model=model)  # warm-up (first-call allocations)
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter()
    seg = segment_spine(vol, model=model)
    times.append(time.perf_counter() - t)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"times": times, "peak_rss_mb": rss,
                  "levels": [lv.name for lv in seg.levels], "flags": seg.flags}))
"""

REFERENCE = r"""
import json, resource, sys, time
import numpy as np, torch
from monai.networks.nets import DynUNet
torch.set_num_threads(int(sys.argv[1]))
net = DynUNet(spatial_dims=3, in_channels=1, out_channels=4, kernel_size=[3] * 6,
              strides=[(1, 1, 1), (1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)],
              upsample_kernel_size=[(1, 2, 2), (1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2)],
              filters=[32, 64, 128, 256, 320, 320], norm_name="instance", res_block=False).eval()
x = torch.zeros(1, 1, 16, 512, 512)  # 15 slices padded to a multiple of 4 along depth
t = time.perf_counter()
with torch.inference_mode():
    net(x)
print(json.dumps({"seconds": time.perf_counter() - t,
                  "params": sum(p.numel() for p in net.parameters()),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_input(path: Path) -> None:
    import nibabel as nib
    import numpy as np
    from scipy import ndimage

    img = nib.load(str(DATA / "lumbar-t2-discs" / "sub-fcs11_T2w.nii.gz"))
    src = np.asarray(img.dataobj, dtype=np.float32)  # (I, P, R), 1 mm
    # 15 slices 4 mm apart around the middle, 512 x 512 at 0.6 mm (221 mm -> 368 px, padded)
    mid = src.shape[2] // 2
    slices = src[:, :, mid - 28 : mid + 29 : 4][:, :, :15]
    zoomed = ndimage.zoom(slices, (1 / 0.6, 1 / 0.6, 1), order=1)
    out = np.zeros((512, 512, 15), dtype=np.float32)
    out[: zoomed.shape[0], : zoomed.shape[1]] = zoomed[:512, :512]
    data = np.ascontiguousarray(np.transpose(out, (2, 0, 1)))  # (R, I, P): slices first
    affine = np.array(
        [[4.0, 0, 0, 0], [0, 0, -0.6, 0], [0, -0.6, 0, 0], [0, 0, 0, 1]], dtype=np.float64
    )
    np.savez(path, data=data, affine=affine)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-reference", action="store_true")
    a = ap.parse_args()
    inp = Path("/tmp/discquant-bench-segment.npz")
    make_input(inp)
    r = subprocess.run(
        [sys.executable, "-c", CHILD, str(a.threads), str(inp), str(a.repeats)],
        capture_output=True,
        text=True,
        check=True,
    )
    ours = json.loads(r.stdout.strip().splitlines()[-1])
    med = statistics.median(ours["times"])
    print("input: 15 x 512 x 512 sagittal T2 (0.6 x 0.6 x 4 mm)")
    print(
        f"segment_spine: median {med:.2f} s over {len(ours['times'])} runs "
        f"({', '.join(f'{t:.2f}' for t in ours['times'])}), peak RSS {ours['peak_rss_mb']:.0f} MB"
    )
    print(f"  levels {ours['levels']} flags {ours['flags']}")
    if not a.no_reference:
        r = subprocess.run(
            [sys.executable, "-c", REFERENCE, str(a.threads)],
            capture_output=True,
            text=True,
            check=True,
        )
        ref = json.loads(r.stdout.strip().splitlines()[-1])
        print(
            f"DynUNet 3D (nnU-Net full-res filters, {ref['params'] / 1e6:.1f} M params), "
            f"one forward pass: {ref['seconds']:.2f} s, peak RSS {ref['peak_rss_mb']:.0f} MB"
        )
        print(f"ratio DynUNet / segment_spine: {ref['seconds'] / med:.1f}x")
    print(f"threads: {a.threads}; shared machine, other jobs may run at the same time")


if __name__ == "__main__":
    main()
