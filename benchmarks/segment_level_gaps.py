"""How long can the link between two named discs be before a disc is missing? (by hand)

    .venv/bin/python benchmarks/segment_level_gaps.py [--model MODEL] [--midsag 101]
        [--phantoms 10] [--cache runs/level-gaps-cache] [--out FILE.jsonl] [EXTRA.nii.gz ...]

Segments the real labelled volumes (lumbar-t2-discs, lumbar-t2-vertebrae), every
``len/--midsag``-th mid-sagittal slice of SPIDER and of Sudirman, ``--phantoms`` unseen
phantoms (seeds 10000…) and any EXTRA images with the shipped (or given) model, caches
the maps ``name_levels`` reads (class map, disc probability, affine of the reoriented grid)
under ``--cache``, and names the levels on them. For every link between two neighbouring
named discs it prints the *gap ratio*: the link's length over the mean of its neighbouring
links (see ``segment.levels.link_gap_ratios``). A disc missed between two named discs
doubles a link (ratio ≈ 2); the distribution on the images named right sets
``segment.levels.MAX_GAP_RATIO``. A second run re-names the cached maps only (seconds),
so a change to ``name_levels`` can be checked for name and flag changes by diffing two
``--out`` files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from discquant.segment import levels
from discquant.segment.data import load_nifti_volume

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))


def _cached_maps(key: str, load, model_path: Path | None, cache: Path) -> dict:  # type: ignore[no-untyped-def]
    f = cache / f"{key}.npz"
    if f.is_file():
        z = np.load(f)
        return {k: z[k] for k in z.files}
    from discquant.segment import load_segmentation_model
    from discquant.segment.infer import predict_probabilities

    model = _cached_maps.model = getattr(_cached_maps, "model", None) or load_segmentation_model(
        model_path
    )
    prob, ro = predict_probabilities(load(), model)
    classes = model.classes
    cls = prob.argmax(axis=-1)
    naming = np.where(cls == classes.index("nucleus"), classes.index("disc"), cls)
    disc_prob = prob[..., classes.index("disc")] + prob[..., classes.index("nucleus")]
    out = {
        "naming": naming.astype(np.uint8),
        "disc_prob": disc_prob.astype(np.float16),
        "affine": ro.affine,
        "classes": np.array(classes),
    }
    f.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(f, **out)
    return out


def name(maps: dict) -> levels.NamedLevels:
    classes = [str(c) for c in maps["classes"]]
    return levels.name_levels(
        maps["naming"],
        maps["affine"],
        body_class=classes.index("body"),
        disc_class=classes.index("disc"),
        sacrum_class=classes.index("sacrum"),
        disc_prob=maps["disc_prob"].astype(np.float32),
    )


def main() -> None:
    from segment_eval import phantom_case

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--midsag", type=int, default=101, help="slices per mid-sagittal set")
    ap.add_argument("--phantoms", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "level-gaps-cache")
    ap.add_argument("--out", type=Path, default=None, help="one JSON line per image")
    ap.add_argument("extra", nargs="*", type=Path)
    args = ap.parse_args()

    cases: list[tuple[str, str, object]] = []
    vols = sorted((DATA / "lumbar-t2-discs").glob("sub-*_T2w.nii.gz")) + sorted(
        (DATA / "lumbar-t2-vertebrae").glob("sub-*_mr.nii.gz")
    )
    cases += [("volumes", p.name, p) for p in vols]
    for s in ("spider", "sudirman"):
        paths = sorted((DATA / f"{s}-midsag-t2").glob("sub-*_T2w.nii.gz"))
        step = max(1, len(paths) // args.midsag)
        cases += [(s, p.name, p) for p in paths[::step][: args.midsag]]
    cases += [("phantoms", f"study-{10_000 + i}", 10_000 + i) for i in range(args.phantoms)]
    cases += [("extra", p.name, p) for p in args.extra]

    out = args.out.open("w") if args.out else None
    per_set: dict[str, list[float]] = {}
    for group, key, src in cases:
        if isinstance(src, int):
            seed = src

            def load(seed: int = seed):  # type: ignore[no-untyped-def]
                return phantom_case(seed, None)[0]
        else:
            path = src

            def load(path: Path = path):  # type: ignore[no-untyped-def]
                return load_nifti_volume(path)

        maps = _cached_maps(f"{group}/{key}", load, args.model, args.cache)
        named = name(maps)
        pts = [np.array(lv.centroid_mm) for lv in named.levels]
        links = (
            [float(x) for x in np.linalg.norm(np.diff(np.array(pts), axis=0), axis=1)]
            if len(pts) > 1
            else []
        )
        ratios = levels.link_gap_ratios(pts)
        per_set.setdefault(group, []).append(max(ratios, default=0.0))
        row = {
            "set": group,
            "image": key,
            "names": [lv.name for lv in named.levels],
            "flags": named.flags,
            "links_mm": [round(x, 1) for x in links],
            "gap_ratios": [round(r, 3) for r in ratios],
        }
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()
        if max(ratios, default=0.0) >= 1.5 or group == "extra":
            print(json.dumps(row), flush=True)
    for group, mx in per_set.items():
        m = np.asarray(mx)
        print(
            f"{group}: {m.size} images, largest gap ratio per image: p50 {np.median(m):.2f}, "
            f"p95 {np.percentile(m, 95):.2f}, max {m.max():.2f}; images ≥ 1.5: "
            f"{int((m >= 1.5).sum())}, ≥ {levels.MAX_GAP_RATIO}: "
            f"{int((m >= levels.MAX_GAP_RATIO).sum())}",
            flush=True,
        )


if __name__ == "__main__":
    main()
