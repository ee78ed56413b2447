"""`discquant segment`: a phantom T2 through the command line, and bad input or options."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from discquant.cli import app
from discquant.phantom import PhantomConfig, generate_study, write_study


def test_segment_command_writes_named_levels_on_the_input_grid(tmp_path: Path) -> None:
    write_study(generate_study(12, PhantomConfig(noise=False)), tmp_path, subject="s")
    t2 = tmp_path / "sub-s" / "anat" / "sub-s_T2w.nii.gz"
    out = tmp_path / "seg" / "s_seg.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(t2), "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    img, seg = nib.load(t2), nib.load(out)
    assert seg.shape == img.shape
    np.testing.assert_allclose(seg.affine, img.affine)
    labels = set(np.unique(np.asarray(seg.dataobj)).tolist())
    assert {120, 121, 122, 123, 124, 26} <= labels
    levels = json.loads((out.parent / "s_seg_levels.json").read_text())
    names = [lv["name"] for lv in levels["levels"]]
    assert names[-5:] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert "input_not_sagittal" not in levels["flags"]
    lut = (out.parent / "s_seg.tsv").read_text().splitlines()
    assert lut[0] == "index\tname\tabbreviation"
    assert sorted(int(row.split("\t")[0]) for row in lut[1:]) == sorted(labels - {0})
    # the names `analyze` writes in its _dseg.tsv (docs/outputs.md)
    assert "124\tL5-S1 disc\tL5-S1" in lut and "20\tL1 vertebral body\tL1" in lut
    assert "26\tsacrum\tS1" in lut
    for level in levels["levels"]:  # the keys docs/segmentation.md lists
        assert set(level) == {"label", "name", "centroid_mm", "volume_mm3", "confidence", "flags"}
        assert level["flags"] == [] and level["volume_mm3"] > 0  # a whole phantom disc
        assert len(level["centroid_mm"]) == 3 and 0.0 <= level["confidence"] <= 1.0
    assert set(levels) == {"model", "flags", "levels"}
    assert seg.header.get_qform(coded=True)[1] == 1 and seg.header.get_sform(coded=True)[1] == 1
    assert seg.header.get_xyzt_units()[0] == "mm"
    assert seg.header.get_intent()[0] == "label"  # as analyze's _dseg.nii.gz


def test_a_two_dimensional_image_gets_two_dimensional_maps(tmp_path: Path) -> None:
    """A mid-sagittal slice stored as a 2-D NIfTI got maps of shape (…, …, 1), not the
    input's own grid (an audit); they are 2-D now, with the same affine and the discs."""
    from discquant.io.roles import slice_axis

    write_study(generate_study(12, PhantomConfig(noise=False)), tmp_path, subject="s")
    t2 = nib.load(tmp_path / "sub-s" / "anat" / "sub-s_T2w.nii.gz")
    axis = slice_axis(t2.affine, t2.shape)
    order = [a for a in range(3) if a != axis] + [axis]  # the slice axis last
    data = np.transpose(np.asarray(t2.dataobj, dtype=np.float32), order)
    affine = t2.affine.copy()
    affine[:, :3] = t2.affine[:, order]
    middle = data.shape[2] // 2
    affine[:3, 3] += affine[:3, 2] * middle
    image = tmp_path / "midsag.nii.gz"
    nib.save(nib.Nifti1Image(data[:, :, middle], affine), image)
    out = tmp_path / "seg.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(image), "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    seg = nib.load(out)
    assert seg.shape == data.shape[:2]
    np.testing.assert_allclose(seg.affine, nib.load(image).affine)
    assert {120, 121, 122, 123, 124} <= set(np.unique(np.asarray(seg.dataobj)).tolist())
    for mask in ("seg_nucleus.nii.gz", "seg_canal.nii.gz"):
        assert nib.load(tmp_path / mask).shape == data.shape[:2]


def test_an_axial_image_is_flagged_not_silently_reformatted(tmp_path: Path) -> None:
    """The network was trained on sagittal slices: an axial input is resampled to them
    and segmented, and the output says so (it did not)."""
    rng = np.random.default_rng(5)
    image = tmp_path / "axial.nii.gz"
    data = rng.uniform(0, 500, (96, 96, 24)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([0.9, 0.9, 4.0, 1.0])), image)
    out = tmp_path / "seg.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(image), "-o", str(out)])
    assert res.exit_code == 3, res.output  # noise: segmented, and no disc found in it
    assert "input_not_sagittal" in json.loads((tmp_path / "seg_levels.json").read_text())["flags"]
    assert "axial" in res.stderr and "trained on sagittal" in res.stderr


def test_outputs_of_an_empty_map_and_a_dotted_name(tmp_path: Path) -> None:
    """No labels: a header-only table (it listed all 17). A dotted .nii name: its levels
    JSON is <stem>_levels.json, not the input's BIDS sidecar name."""
    from discquant.io.study import Volume
    from discquant.segment.infer import SpineSegmentation
    from discquant.segment.io import write_segmentation

    empty = Volume(np.zeros((4, 4, 2), np.int16), np.eye(4))
    seg = SpineSegmentation(labels=empty, nucleus=None, canal=None, model="m")
    paths = write_segmentation(seg, tmp_path / "sub-012_T2w.v2.nii")
    assert sorted(p.name for p in paths) == [
        "sub-012_T2w.v2.nii",
        "sub-012_T2w.v2.tsv",
        "sub-012_T2w.v2_levels.json",
    ]
    assert (tmp_path / "sub-012_T2w.v2.tsv").read_text() == "index\tname\tabbreviation\n"


def test_segment_command_rejects_a_non_nifti_output_before_running(tmp_path: Path) -> None:
    image = tmp_path / "t2.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.float32), np.eye(4)), image)
    res = CliRunner().invoke(app, ["segment", str(image), "-o", str(tmp_path / "seg.txt")])
    assert res.exit_code == 2
    assert "seg.txt" in res.output and "end it in .nii or .nii.gz" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t2.nii.gz"]


def _cli_error(args: list[str], folder: Path) -> str:
    """Run the CLI: exit 2, one error line, nothing new under ``folder``."""
    before = sorted(folder.rglob("*"))
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("INFO")]
    assert len(lines) == 1 and lines[0].startswith("discquant: error: "), res.stderr
    assert sorted(folder.rglob("*")) == before
    return lines[0]


def _t2(path: Path, *, nan: bool = False) -> Path:
    data = np.random.default_rng(3).uniform(100, 1000, (64, 64, 3)).astype(np.float32)
    if nan:
        data[10, 20, 1] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 4.0, 1.0])), path)
    return path


def test_segment_command_rejects_nan_voxels_as_analyze_does(tmp_path: Path) -> None:
    image = _t2(tmp_path / "t2.nii.gz", nan=True)
    line = _cli_error(["segment", str(image), "-o", str(tmp_path / "seg.nii.gz")], tmp_path)
    assert f"{image}: " in line and "1 NaN" in line
    inspect = CliRunner().invoke(app, ["inspect", "--t2", str(image)])  # the analyze reader
    assert inspect.exit_code == 2 and line in inspect.stderr


def test_segment_command_rejects_an_unknown_device(tmp_path: Path) -> None:
    image = _t2(tmp_path / "t2.nii.gz")
    args = ["segment", str(image), "-o", str(tmp_path / "seg.nii.gz"), "--device", "foo"]
    assert "unknown device 'foo'" in _cli_error(args, tmp_path)


def test_segment_command_rejects_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    image = _t2(tmp_path / "t2.nii.gz")
    weights = tmp_path / "weights.pt"
    weights.write_text("adc,water\n1.0,80\n")
    args = ["segment", str(image), "-o", str(tmp_path / "seg.nii.gz"), "--model", str(weights)]
    line = _cli_error(args, tmp_path)
    assert f"{weights}: not a discquant segmentation model" in line


def test_segment_command_refuses_an_image_too_small_to_hold_a_disc(tmp_path: Path) -> None:
    # Three sagittal slices of 16 × 20 pixels of 1 mm: the network's four stride-2 levels
    # once failed inside PyTorch with a traceback.
    image = tmp_path / "tiny.nii.gz"
    data = np.random.default_rng(0).uniform(100, 1000, (3, 16, 20)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([4.0, 1.0, 1.0, 1.0])), image)
    line = _cli_error(["segment", str(image), "-o", str(tmp_path / "seg.nii.gz")], tmp_path)
    assert f"{image}: the sagittal field of view is 20 × 16 mm; at least 64 mm" in line


@pytest.mark.shared
def test_an_interrupted_training_prints_the_checkpoint_not_a_missing_model(
    tmp_path: Path, shared_data: Path
) -> None:
    """A run stopped by max_steps_this_run printed DIR/model.pt, which it had not written."""
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"channels: [4, 8, 16]\npatch: 64\nbatch_size: 2\nsteps: 20\nmax_steps_this_run: 5\n"
        f"data_root: {shared_data}\ntrain_subjects: [sub-fcs11]\nval_subjects: []\n"
    )
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "segment", "--config", str(config), "--out", str(out)])
    assert res.exit_code == 0, res.output
    printed = res.output.strip().splitlines()[-1]
    assert printed.startswith(str(out / "last.pt")) and "resume" in printed
    assert not (out / "model.pt").exists()
    args = ["train", "segment", "--config", str(config), "--out", str(out), "--quiet"]
    res = CliRunner().invoke(app, args)  # resumed for 5 more steps
    assert res.exit_code == 0 and res.stdout == "", res.output  # --quiet: errors only


@pytest.mark.parametrize(
    ("split", "message"),
    [
        # the default groups hold ../shared/data's patients; vb1x03 would be trained on
        ("val_subjects: [sub-vb1x02]\n", "sub-vb1x02 (validation) and sub-vb1x03 (training)"),
        (
            "train_subjects: [sub-a, sub-b]\nval_subjects: [sub-c]\n"
            "patient_groups: [[sub-b, sub-c]]\n",
            "sub-c (validation) and sub-b (training) are one patient",
        ),
        ("patient_groups: [[sub-a, sub-b], [sub-b]]\n", "names sub-b in two groups"),
    ],
)
def test_a_split_that_puts_one_patient_on_both_sides_is_refused(
    tmp_path: Path, split: str, message: str
) -> None:
    """The split was by volume name: a config holding out one of a patient's volumes
    validated on a spine it trained on, without a warning. Refused before any reading."""
    root = tmp_path / "data"
    (root / "lumbar-t2-vertebrae").mkdir(parents=True)
    for name in ("sub-vb1x02", "sub-vb1x03", "sub-a", "sub-b", "sub-c"):
        (root / "lumbar-t2-vertebrae" / f"{name}_mr.nii.gz").write_bytes(b"not read")
    config = tmp_path / "leak.yaml"
    config.write_text(f"steps: 20\ndata_root: {root}\n{split}")
    out = tmp_path / "run"
    line = _cli_error(["train", "segment", "--config", str(config), "--out", str(out)], tmp_path)
    assert message in line
    assert not out.exists()


def test_every_output_is_checked_before_the_inference(tmp_path: Path) -> None:
    """A side file whose name was a folder failed after the inference and left the
    label map and masks behind; -o on the input replaced the T2 with labels."""
    write_study(generate_study(12, PhantomConfig(noise=False)), tmp_path, subject="s")
    t2 = tmp_path / "sub-s" / "anat" / "sub-s_T2w.nii.gz"
    (tmp_path / "seg_levels.json").mkdir()
    before = sorted(tmp_path.rglob("*"))
    res = CliRunner().invoke(app, ["segment", str(t2), "-o", str(tmp_path / "seg.nii.gz")])
    assert res.exit_code == 2 and "seg_levels.json" in res.stderr, res.output
    assert "segmentation:" not in res.stderr  # refused before the network ran
    res = CliRunner().invoke(app, ["segment", str(t2), "-o", str(t2)])
    assert res.exit_code == 2 and "would replace the input" in res.stderr, res.output
    assert sorted(tmp_path.rglob("*")) == before


def test_a_failed_write_leaves_none_of_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from discquant.io.study import Volume
    from discquant.segment.infer import SpineSegmentation
    from discquant.segment.io import write_segmentation

    mask = Volume(np.ones((4, 4, 2), np.uint8), np.eye(4))
    seg = SpineSegmentation(
        labels=Volume(np.zeros((4, 4, 2), np.int16), np.eye(4)), nucleus=mask, canal=mask, model="m"
    )
    (tmp_path / "seg_levels.json").mkdir()  # taken after the CLI's checks
    with pytest.raises(IsADirectoryError):
        write_segmentation(seg, tmp_path / "seg.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg_levels.json"]


def test_masks_a_model_does_not_make_are_not_left_from_an_earlier_run(tmp_path: Path) -> None:
    """A map written by a model without nucleus and canal classes beside the masks of an
    earlier run: the old masks read as this run's (a review)."""
    from discquant.io.study import Volume
    from discquant.segment.infer import SpineSegmentation
    from discquant.segment.io import write_segmentation

    labels = Volume(np.zeros((4, 4, 2), np.int16), np.eye(4))
    mask = Volume(np.ones((4, 4, 2), np.uint8), np.eye(4))
    write_segmentation(SpineSegmentation(labels, nucleus=mask, canal=mask), tmp_path / "s.nii.gz")
    write_segmentation(SpineSegmentation(labels, nucleus=None, canal=None), tmp_path / "s.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.nii.gz", "s.tsv", "s_levels.json"]


def test_a_failed_write_names_the_output_not_its_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `segment -o /proc/seg.nii.gz` said "/proc/.tmp-seg.nii.gz: No such file or directory"
    import nibabel as nib

    from discquant.io.study import Volume
    from discquant.segment.infer import SpineSegmentation
    from discquant.segment.io import write_segmentation

    def refuse(img: object, filename: str) -> None:
        raise FileNotFoundError(2, "No such file or directory", filename)

    monkeypatch.setattr(nib, "save", refuse)
    seg = SpineSegmentation(
        labels=Volume(np.zeros((4, 4, 2), np.int16), np.eye(4)), nucleus=None, canal=None
    )
    with pytest.raises(FileNotFoundError) as err:
        write_segmentation(seg, tmp_path / "seg.nii.gz")
    assert err.value.filename == str(tmp_path / "seg.nii.gz")


def test_segment_and_analyze_write_one_look_up_table(tmp_path: Path) -> None:
    """`segment` wrote `index, name` with "vertebral body T12" / "disc T12-L1", `analyze`
    `index, name, abbreviation` with "T12 vertebra" / "T12-L1 disc": one writer now."""
    from discquant.io.study import Volume
    from discquant.outputs.derivatives import write_dseg_tsv
    from discquant.segment.infer import SpineSegmentation
    from discquant.segment.io import write_segmentation

    labels = np.zeros((4, 4, 3), np.int16)
    labels[0, 0, 0], labels[1, 1, 1], labels[2, 2, 2], labels[3, 3, 0] = 19, 119, 26, 124
    seg = SpineSegmentation(labels=Volume(labels, np.eye(4)), nucleus=None, canal=None)
    write_segmentation(seg, tmp_path / "seg.nii.gz")
    analyze = write_dseg_tsv(tmp_path / "analyze_dseg.tsv", present={19, 26, 119, 124})
    text = (tmp_path / "seg.tsv").read_text()
    assert text == analyze.read_text()
    assert text.splitlines() == [
        "index\tname\tabbreviation",
        "19\tT12 vertebral body\tT12",
        "26\tsacrum\tS1",
        "119\tT12-L1 disc\tT12-L1",
        "124\tL5-S1 disc\tL5-S1",
    ]


def test_docs_describe_the_levels_file_as_written() -> None:
    """docs/segmentation.md promised per level "(level, centroid in RAS mm, volume,
    confidence, flags)"; the file has the flags once, for the whole image."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "segmentation.md").read_text()
    intro = doc.split("\n## ", 1)[0]
    for key in ("model", "flags", "levels", "label", "name", "centroid_mm", "volume_mm3",
                "confidence"):  # fmt: skip
        assert f"`{key}`" in intro, key
    assert "index, name, abbreviation" in intro


def test_no_disc_found_exits_3_with_the_outputs_written(tmp_path: Path) -> None:
    """An image of noise without a spine: `segment` exited 0 (`flags: no_discs_found`),
    `analyze` 3. (An all-zero image, used here before, is refused as a mask since
    2026-12-06: it holds one value.)"""
    image = tmp_path / "t2.nii.gz"
    noise = np.random.default_rng(0).uniform(0, 50, (12, 96, 96)).astype(np.float32)
    nib.save(nib.Nifti1Image(noise, np.diag([4.0, 1, 1, 1])), image)
    out = tmp_path / "seg.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(image), "-o", str(out), "--quiet"])
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    assert f"no disc found in {image}" in res.stderr
    levels = json.loads((tmp_path / "seg_levels.json").read_text())
    assert levels["levels"] == [] and "no_discs_found" in levels["flags"]
    assert not np.asarray(nib.load(out).dataobj).any()
    assert (tmp_path / "seg.tsv").read_text() == "index\tname\tabbreviation\n"


def test_a_single_slice_withholds_the_volumes_as_analyze_does(tmp_path: Path) -> None:
    """On one mid-sagittal slice the levels file gave area × slice thickness as each disc's
    volume, unflagged, where analyze withholds it (a user trial)."""
    write_study(generate_study(12, PhantomConfig(noise=False)), tmp_path, subject="s")
    image = nib.load(tmp_path / "sub-s" / "anat" / "sub-s_T2w.nii.gz")
    mid = image.shape[2] // 2
    affine = image.affine.copy()
    affine[:3, 3] += affine[:3, 2] * mid  # the middle slice where it lies
    one = nib.Nifti1Image(np.asarray(image.dataobj)[:, :, mid : mid + 1], affine)
    nib.save(one, tmp_path / "one.nii.gz")
    res = CliRunner().invoke(
        app, ["segment", str(tmp_path / "one.nii.gz"), "-o", str(tmp_path / "o.nii.gz")]
    )
    assert res.exit_code == 0, res.output
    levels = json.loads((tmp_path / "o_levels.json").read_text())["levels"]
    assert [lv["name"] for lv in levels][-3:] == ["L3-L4", "L4-L5", "L5-S1"]
    for level in levels:
        assert level["volume_mm3"] is None
        assert level["flags"] == ["volume_withheld_single_slice"]


def test_a_label_map_is_refused_as_analyze_refuses_it(tmp_path: Path) -> None:
    """`discquant segment sub-01_dseg.nii.gz` named levels on a label map with exit 0
    (a docs trial: docs/import.md says such an image is refused); now exit 2 naming the
    file, nothing written, as `analyze --t2` does."""
    ph = generate_study(12, PhantomConfig(noise=False))
    labels = tmp_path / "sub-s_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(ph.labels_t2.data, np.int16), ph.labels_t2.affine), labels)
    out = tmp_path / "seg" / "s_seg.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(labels), "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().startswith(f"discquant: error: {labels}: the image taken for the T2")
    assert "(spine labels): a label map or a mask, not an MR image" in res.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_four_dimensional_dwi_is_segmented_on_its_b0_mean(tmp_path: Path) -> None:
    """A 4-D input was segmented on its first volume without a word: a b = 800 image
    where the scanner stored that shell first. With its .bval beside it, the mean of its
    b≈0 volumes is segmented (as `analyze` does without a T2); without one, the first
    volume, with a warning."""
    write_study(generate_study(12, PhantomConfig(noise=False)), tmp_path, subject="s")
    dwi = tmp_path / "sub-s" / "dwi" / "sub-s_dwi.nii.gz"
    img = nib.load(dwi)
    data = np.asarray(img.dataobj, dtype=np.float32)
    bvals = np.loadtxt(dwi.with_name("sub-s_dwi.bval"))
    order = np.argsort(-bvals, kind="stable")  # the highest shell first
    assert bvals[order[0]] > 0 and (bvals == 0).sum() >= 1
    stored = tmp_path / "dwi_b_high_first.nii.gz"
    nib.save(nib.Nifti1Image(data[..., order], img.affine), stored)
    b0 = tmp_path / "b0_mean.nii.gz"
    nib.save(nib.Nifti1Image(data[..., bvals == 0].mean(axis=-1), img.affine), b0)

    def segment(image: Path, out: str) -> tuple[np.ndarray, str]:
        res = CliRunner().invoke(app, ["segment", str(image), "-o", str(tmp_path / out)])
        assert res.exit_code == 0, res.output
        return np.asarray(nib.load(tmp_path / out).dataobj), res.output

    reference, _ = segment(b0, "b0_seg.nii.gz")
    first_volume, said = segment(stored, "first_seg.nii.gz")  # no .bval yet
    assert "a 4-D image of" in said and "its first volume is segmented" in said
    np.savetxt(stored.parent / "dwi_b_high_first.bval", bvals[None, order], fmt="%g")
    labels, said = segment(stored, "seg.nii.gz")
    np.testing.assert_array_equal(labels, reference)
    assert not np.array_equal(first_volume, reference)  # the b = 800 image reads otherwise
    assert {120, 121, 122, 123, 124} <= set(np.unique(labels).tolist())
    (stored.parent / "dwi_b_high_first.bval").write_text("0 400\n")  # one too few
    res = CliRunner().invoke(app, ["segment", str(stored), "-o", str(tmp_path / "x.nii.gz")])
    assert res.exit_code == 2
    assert "dwi_b_high_first.bval: has 2 b-values but dwi_b_high_first.nii.gz has" in res.output
