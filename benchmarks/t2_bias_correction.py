"""Does N4 bias-field correction make the T2 ratios independent of the receive coil?

    .venv/bin/pip install SimpleITK==2.5.7   # not a dependency of discquant
    .venv/bin/python benchmarks/t2_bias_correction.py   # about 2 min

docs/measurement.md ("T2", known limit) says no receive-coil correction is made before
``t2_np_csf_ratio``: the CSF lies ~25 mm behind the nucleus, nearer the spine coil. This
script is the measurement behind not adding one. On phantoms (grades I-V, noise on, seeds
3-5) it measures the nucleus/CSF and nucleus/marrow ratios with the phantom's coil
sensitivity off (the truth) and on, each as made and after SimpleITK's N4
(``N4BiasFieldCorrectionImageFilter`` on the image shrunk 4x in-plane, an Otsu foreground
mask, 50 iterations at 1, 2 or 4 fitting levels), and prints the mean and range of the
relative error against the coil-off ratio. A correction worth adopting would bring the
coil-on error near zero without moving the coil-off ratios.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from discquant.io.study import Volume
from discquant.measure.discs import MeasureInputs, measure_discs
from discquant.phantom.study import PhantomConfig, generate_study

SEEDS = (3, 4, 5)
LEVELS = (None, 1, 2, 4)  # None: no correction


def n4(volume: Volume, levels: int, shrink: int = 4) -> Volume:
    """``volume`` divided by N4's bias field (fitted on a shrunk copy, evaluated at full size)."""
    data = volume.data.astype(np.float32)
    image = sitk.GetImageFromArray(data)  # SimpleITK's axes are numpy's reversed
    zooms = np.sqrt((volume.affine[:3, :3] ** 2).sum(axis=0))
    image.SetSpacing([float(z) for z in zooms[::-1]])
    mask = sitk.OtsuThreshold(image, 0, 1, 200)
    factors = [1, shrink, shrink]  # (slices, columns, rows) in SimpleITK's order
    f = sitk.N4BiasFieldCorrectionImageFilter()
    f.SetMaximumNumberOfIterations([50] * levels)
    f.Execute(sitk.Shrink(image, factors), sitk.Shrink(mask, factors))
    log_field = sitk.GetArrayFromImage(f.GetLogBiasFieldAsImage(image))
    return Volume(data / np.exp(log_field), volume.affine)


def ratios(seed: int, *, coil: bool, levels: int | None) -> np.ndarray:
    """(discs, 2): the nucleus/CSF and nucleus/marrow ratios of one phantom."""
    study = generate_study(seed, PhantomConfig(grades=(1, 2, 3, 4, 5), bias=coil))
    t2 = study.t2 if levels is None else n4(study.t2, levels)
    discs = measure_discs(
        MeasureInputs(labels=study.labels_t2, anatomy=t2, nucleus=study.nucleus_t2)
    )
    return np.array([(d.t2_np_csf_ratio, d.t2_np_reference_ratio) for d in discs])


def main() -> None:
    truth = np.concatenate([ratios(s, coil=False, levels=None) for s in SEEDS])
    print(f"relative error of the T2 ratios against coil off, {len(truth)} discs (seeds {SEEDS}):")
    print("coil  N4 levels  nucleus/CSF mean [range]     nucleus/marrow mean [range]")
    for coil in (True, False):
        for levels in LEVELS:
            if not coil and levels is None:
                continue
            got = np.concatenate([ratios(s, coil=coil, levels=levels) for s in SEEDS])
            err = got / truth - 1.0
            cols = "  ".join(
                f"{np.mean(e):+7.1%} [{np.min(e):+6.1%}, {np.max(e):+6.1%}]" for e in err.T
            )
            print(f"{'on ' if coil else 'off'}   {levels or 'none':>9}  {cols}")


if __name__ == "__main__":
    main()
