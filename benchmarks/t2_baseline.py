"""The T2 intensity baseline check: its margin on real images, and what it prevents.

    python benchmarks/t2_baseline.py

1. On every real T2 image of ``../shared/data`` (the disc and vertebra volumes, the SPIDER
   and Sudirman mid-sagittal slices): the 0.5th percentile over the 99th
   (:func:`discquant.measure.contrast.check_t2_baseline`) and whether any voxel is
   negative. The check flags an added constant above 0.4 and a signed image below -0.05.
2. sub-fcs11's T2 as is, with 20,000 added and with 300 subtracted, through ``analyze``
   (T2 alone): the nucleus/CSF ratios, heterogeneity and expected Pfirrmann grades that
   would be reported without the check (it is bypassed), and the flags with it.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import nibabel as nib
import numpy as np

from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.measure import contrast
from discquant.pipeline import analyze

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _real_images() -> list[Path]:
    sets = ("lumbar-t2-discs", "lumbar-t2-vertebrae", "spider-midsag-t2", "sudirman-midsag-t2")
    names = ("*_T2w.nii.gz", "*_mr.nii.gz")
    return sorted({p for s in sets for n in names for p in (DATA / s).glob(n)})


def _margin() -> None:
    ratios, negative = [], 0
    for path in _real_images():
        data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        check = contrast.check_t2_baseline(data)
        ratios.append((check.low / check.high, path.name))
        negative += int((data < 0).any())
    worst = max(ratios)
    flagged = sum(
        r > contrast.MAX_BASELINE_SHARE or r < -contrast.MAX_NEGATIVE_SHARE for r, _ in ratios
    )
    print(
        f"{len(ratios)} real T2 images: 0.5th/99th percentile at most {worst[0]:.3f} "
        f"({worst[1]}); images with a negative voxel {negative}; flagged {flagged}"
    )


def _analysed(
    data: np.ndarray, affine: np.ndarray, *, bypass: bool
) -> tuple[str, str, str, list[str]]:
    study = Study("fcs11", (Series(SeriesRole.T2, "bench", "T2", Volume(data, affine), "sag"),))
    if bypass:
        unflagged = contrast.T2BaselineCheck(0.0, 1.0, None)
        with mock.patch.object(contrast, "check_t2_baseline", return_value=unflagged):
            res = analyze(study)
    else:
        res = analyze(study)

    def spread(values: list[float | None]) -> str:
        kept = [v for v in values if v is not None]
        return f"{min(kept):.3f}-{max(kept):.3f}" if kept else "withheld"

    found = [d for d in res.discs if d.found]
    return (
        spread([d.t2_np_csf_ratio for d in found]),
        spread([d.t2_np_heterogeneity for d in found]),
        spread([d.pfirrmann_expected for d in found]),
        [f for f in res.flags if f.startswith("t2_")],
    )


def main() -> None:
    _margin()
    img = nib.load(str(DATA / "lumbar-t2-discs" / "sub-fcs11_T2w.nii.gz"))
    t2 = np.asarray(img.dataobj, dtype=np.float32)
    print("sub-fcs11 | check | nucleus/CSF | heterogeneity | expected grade | study flags")
    for name, data in (("as is", t2), ("+20000", t2 + 20_000), ("-300", t2 - 300)):
        for bypass in (True, False):
            np_csf, het, expected, flags = _analysed(data, img.affine, bypass=bypass)
            check = "bypassed" if bypass else "on"
            print(f"{name} | {check} | {np_csf} | {het} | {expected} | {','.join(flags) or '-'}")


if __name__ == "__main__":
    main()
