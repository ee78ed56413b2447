"""A DWI shifted left-right: what its CSF and nuclei read (run by hand, ~1 min).

    .venv/bin/python benchmarks/dwi_shift_csf.py [--seed 7] [--shifts -10,0,10]

The alignment check cannot see a left-right shift between the T2 and the DWI. A phantom
(the default configuration, noise on) is analysed with its own labels standing in for
the network, its DWI affine moved left-right by each shift (mm). Prints the canal's CSF
ADC, the study flags and, per disc, the nucleus median ADC against the truth and
``water_index_csf``: where the CSF check (`pipeline._check_csf_adc`,
docs/measurement.md) flags the study, and where no sign does.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import Any

from discquant.io.study import Series, SeriesRole, Study, Volume
from discquant.phantom import PhantomConfig, generate_study
from discquant.pipeline import analyze


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--shifts", default="-10,0,10", help="mm, comma-separated")
    args = ap.parse_args()
    ph = generate_study(args.seed, PhantomConfig())  # as tests/test_pipeline.py makes it
    seg = SimpleNamespace(
        labels=ph.labels_t2, nucleus=ph.nucleus_t2, canal=None, levels=[], flags=[]
    )

    def truth(image: Any) -> Any:
        return seg

    t2 = Series(SeriesRole.T2, "phantom", "T2", ph.t2, "sagittal")
    for dx in (float(v) for v in args.shifts.split(",")):
        affine = ph.dwi.affine.copy()
        affine[0, 3] += dx
        dwi = Series(
            SeriesRole.DWI, "phantom", "DWI", Volume(ph.dwi.data, affine), "sagittal",
            bvals_s_per_mm2=ph.bvals, bvecs=ph.bvecs,
        )  # fmt: skip
        res = analyze(Study("ph", (t2, dwi)), segmenter=truth)
        print(f"shift {dx:+g} mm: CSF {res.csf_adc_um2_per_ms:.3g} µm²/ms, flags {res.flags}")
        for d in res.discs:
            if d.adc_np is None:
                continue
            error = 100 * (d.adc_np.median / ph.truth.disc(d.level).np_region_adc_um2_per_ms - 1)
            index = "withheld" if d.water_index_csf is None else f"{d.water_index_csf:.2f}"
            print(f"  {d.level}: nucleus {d.adc_np.median:.3g} ({error:+.1f} %), "
                  f"water_index_csf {index}")  # fmt: skip


if __name__ == "__main__":
    main()
