"""Render the phantom figures of docs/phantom.md.

    .venv/bin/python benchmarks/phantom_figures.py

Writes docs/figures/phantom_t2_adc_real.png (mid-sagittal T2 and scanner-style ADC of
the default phantom, seed 7, next to a real sagittal T2 from ../shared/data), and
docs/figures/phantom_grades.png (one disc per Pfirrmann grade, T2 and ADC), and
docs/figures/phantom_training.png (domain-randomised training samples with labels).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "docs" / "figures"
REAL = ROOT.parent / "shared" / "data" / "lumbar-t2-discs" / "sub-fcs20_T2w.nii.gz"


def _extent(shape: tuple[int, ...], vox: tuple[float, float, float]) -> list[float]:
    return [0.0, shape[1] * vox[1], shape[0] * vox[0], 0.0]


def main_figure() -> None:
    import nibabel as nib

    from discquant.phantom import generate_study

    st = generate_study(7)
    k = st.t2.shape[2] // 2
    t2 = st.t2.data[:, :, k]
    kd = int(np.argmin(np.abs(np.arange(st.dwi.shape[2]) - (st.dwi.shape[2] - 1) / 2)))
    assert st.adc_scanner is not None
    adc = st.adc_scanner.data[:, :, kd]
    panels = 3 if REAL.exists() else 2
    fig, ax = plt.subplots(1, panels, figsize=(4.2 * panels, 4.8))
    ax[0].imshow(t2, cmap="gray", vmin=0, vmax=np.percentile(t2, 99.7),
                 extent=_extent(t2.shape, st.t2.voxel_mm))  # fmt: skip
    ax[0].set_title("phantom T2 TSE, mid-sagittal\n0.6 × 0.6 × 4 mm, seed 7", fontsize=9)
    im = ax[1].imshow(adc, cmap="gray", vmin=0, vmax=3.0,
                      extent=_extent(adc.shape, st.dwi.voxel_mm))  # fmt: skip
    ax[1].set_title("phantom scanner ADC (b 0/400/800)\n1.8 × 1.8 × 4 mm, µm²/ms", fontsize=9)
    fig.colorbar(im, ax=ax[1], fraction=0.04)
    if REAL.exists():
        img = nib.load(REAL)
        d = np.asarray(img.dataobj, dtype=float)
        sl = d[:, :, d.shape[2] // 2]
        z = img.header.get_zooms()
        ax[2].imshow(sl, cmap="gray", vmin=0, vmax=np.percentile(sl, 99.7),
                     extent=_extent(sl.shape, (float(z[0]), float(z[1]), float(z[2]))))  # fmt: skip
        ax[2].set_title("real T2 FSE (sub-fcs20, 1.5 T)\nMenezes-Reis et al. 2016", fontsize=9)
    for a in ax:
        a.set_xlabel("mm", fontsize=8)
        a.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(FIG / "phantom_t2_adc_real.png", dpi=80)
    plt.close(fig)


def grades_figure() -> None:
    from discquant.phantom import PhantomConfig, generate_study

    st = generate_study(3, PhantomConfig(grades=(1, 2, 3, 4, 5), snr=40.0))
    k = st.t2.shape[2] // 2
    lab = st.labels_t2.data[:, :, k]
    fig, ax = plt.subplots(2, 5, figsize=(11, 4.2))
    top = np.percentile(st.t2.data[:, :, k], 99.7)
    assert st.adc_scanner is not None
    kd = st.dwi.shape[2] // 2
    for i, d in enumerate(st.truth.discs[-5:]):
        rows, cols = np.nonzero(lab == d.label)
        r0, c0 = int(rows.mean()), int(cols.mean())
        crop = st.t2.data[max(r0 - 40, 0) : r0 + 40, max(c0 - 55, 0) : c0 + 55, k]
        ax[0, i].imshow(crop, cmap="gray", vmin=0, vmax=top)
        ax[0, i].set_title(f"{d.level}: grade {d.grade}\nNP T2 {d.np_t2_ms:.0f} ms", fontsize=8)
        ld = st.labels_dwi.data[:, :, kd]
        rr, cc = np.nonzero(ld == d.label)
        if rr.size:
            r1, c1 = int(rr.mean()), int(cc.mean())
            ca = st.adc_scanner.data[max(r1 - 13, 0) : r1 + 13, max(c1 - 18, 0) : c1 + 18, kd]
            ax[1, i].imshow(ca, cmap="gray", vmin=0, vmax=3.0)
        ax[1, i].set_title(f"ADC, NP truth {d.np_adc_um2_per_ms:.2f}", fontsize=8)
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    fig.savefig(FIG / "phantom_grades.png", dpi=80)
    plt.close(fig)


def training_figure() -> None:
    from discquant.phantom import training_sample

    fig, ax = plt.subplots(2, 5, figsize=(11, 4.8))
    for i, seed in enumerate((1, 2, 5, 6, 9)):
        s = training_sample(seed)
        k = s.image.shape[2] // 2
        ax[0, i].imshow(s.image.data[:, :, k], cmap="gray", vmin=0, vmax=1)
        p = s.params
        ax[0, i].set_title(
            f"seed {seed}: {p['inplane_mm']:.2f} mm, {p['n_slices']} sl"
            + (", inv" if p["invert"] else ""),
            fontsize=8,
        )
        lab = s.labels.data[:, :, k].astype(float)
        ax[1, i].imshow(np.where(lab > 0, lab % 29, np.nan), cmap="tab20", interpolation="nearest")
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    fig.savefig(FIG / "phantom_training.png", dpi=70)
    plt.close(fig)


if __name__ == "__main__":
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    FIG.mkdir(parents=True, exist_ok=True)
    main_figure()
    grades_figure()
    training_figure()
    for p in sorted(FIG.glob("phantom_*.png")):
        print(p.relative_to(ROOT), p.stat().st_size // 1024, "KiB")
