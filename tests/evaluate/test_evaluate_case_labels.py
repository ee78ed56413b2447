"""evaluate_case refuses a reference in another labelling than discquant's (an audit)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from discquant.errors import InvalidInputError
from discquant.evaluate.segmentation import check_reference_labels, evaluate_case

SPACING = (1.0, 1.0, 1.0)


def _discs(offset: int) -> np.ndarray:
    """Five discs on a 40 x 10 x 3 grid, labelled ``offset + 1`` … ``offset + 5``."""
    vol = np.zeros((40, 10, 3), np.int16)
    for k in range(5):
        vol[4 + 7 * k : 8 + 7 * k, 2:8] = offset + 1 + k
    return vol


def test_a_reference_of_discs_1_to_5_is_refused_with_a_hint_to_map_it() -> None:
    """lumbar-t2-discs numbers its discs 1-5: against a perfect prediction (120-124)
    evaluate_case gave disc Dice 0 at "C1" … "C5" without a word."""
    pred, ref = _discs(119), _discs(0)
    with pytest.raises(InvalidInputError) as err:
        evaluate_case(pred, ref, SPACING, case="sub-01")
    msg = str(err.value)
    assert msg.startswith("sub-01: the reference holds none of the VerSe/SPINEPS labels")
    assert "holds 1-5, which VerSe reads as cervical C1-C5" in msg
    assert "convert_real_references" in msg and "\n" not in msg
    # Mapped as the hint says, the same prediction scores what it is: perfect.
    mapped = np.where(ref > 0, ref + 119, 0).astype(np.int16)
    res = evaluate_case(pred, mapped, SPACING)
    assert res.dice == {"disc": 1.0}
    assert res.level_dice == dict.fromkeys(("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"), 1.0)


@pytest.mark.parametrize(
    ("offset", "shown"),
    [(999, "1000-1004"), (-6, "-5--1"), (100, "101-105")],  # others; cervical discs
)
def test_a_reference_sharing_no_discquant_label_is_refused(offset: int, shown: str) -> None:
    with pytest.raises(InvalidInputError, match=f"it holds {shown}; discquant writes"):
        evaluate_case(_discs(119), _discs(offset), SPACING)


def test_references_in_discquants_labels_pass() -> None:
    """Thoracic levels (T1 = 8), bodies only, the canal and a whole VerSe spine whose
    cervical labels lie beside lumbar ones are discquant's convention; background alone
    scores nothing and is not refused."""
    thoracic = _discs(7)  # T1 … T5 bodies
    assert evaluate_case(thoracic, thoracic, SPACING).dice == {"body": 1.0}
    whole = np.where(_discs(0) == 1, 1, _discs(119))  # C1, T12 and L3-L4 … L5-S1
    whole[whole == 121] = 19
    check_reference_labels(whole)
    empty = np.zeros((40, 10, 3), np.int16)
    assert evaluate_case(_discs(119), empty, SPACING).dice == {}


def test_the_real_lumbar_t2_discs_reference_is_refused_until_mapped(shared_data: Path) -> None:
    src = shared_data / "lumbar-t2-discs" / "sub-fcs11_dseg.nii.gz"
    if not src.is_file():
        pytest.skip(f"{src} is absent")
    img = nib.load(str(src))
    ref = np.asarray(img.dataobj).astype(np.int16)
    pred = np.where(ref > 0, ref + 119, 0).astype(np.int16)
    spacing = [float(v) for v in img.header.get_zooms()[:3]]
    with pytest.raises(InvalidInputError, match="cervical C1-C5"):
        evaluate_case(pred, ref, spacing)
    assert evaluate_case(pred, pred, spacing).dice["disc"] == 1.0


@pytest.mark.parametrize("other", [26, 124, 20, 61])
def test_cervical_labels_beside_lumbar_ones_without_thoracic_are_refused(other: int) -> None:
    """Discs 1-4 of another convention plus one label that is also discquant's (the
    sacrum 26, say) passed and scored Dice 0 at "C1" … "C4": no spine in VerSe's
    numbering runs from the neck to the sacrum without a thoracic level."""
    ref = np.where(_discs(0) == 5, other, _discs(0))
    with pytest.raises(InvalidInputError) as err:
        evaluate_case(_discs(119), ref, SPACING, case="sub-02")
    msg = str(err.value)
    assert msg.startswith("sub-02: the reference mixes labels 1-4, which VerSe reads as")
    assert "with others and no thoracic level" in msg and "\n" not in msg
