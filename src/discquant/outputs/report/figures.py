"""Figures of the HTML report, drawn with matplotlib's object API and returned as PNG bytes.

No pyplot: figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, so
drawing a report never touches a display or a global backend.

Sagittal views follow the radiological convention: anterior on the viewer's left, superior
up, in millimetres so that anisotropic voxels keep their true shape.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from discquant.io.study import Volume
from discquant.literature import NP_ADC_BY_GRADE_UM2_PER_MS
from discquant.results import (
    DISC_LABELS,
    FLAG_LEVEL_UNCERTAIN,
    LEVELS,
    SACRUM_LABEL,
    VERTEBRA_LABELS,
    DiscResult,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GRADE_NAMES = ("I", "II", "III", "IV", "V")


GRADE_COLOURS = ("#1a9850", "#91cf60", "#fee08b", "#fc8d59", "#d73027")
NO_GRADE_COLOUR = "#222222"
FLAG_NOISE_FLOOR_BIAS = "adc_noise_floor_bias"
"""A disc's flag: its nucleus ADC is biased by magnitude noise beyond ±5 % (the noise floor
makes it read low, the voxels the fit drops high: ``DiscResult.adc_np_noise_bias_percent``)."""
NOISE_FLOOR_MARK = "†"
"""The mark of a value biased by noise (tables and legend)."""
DISC_COLOUR = "#ffd92f"
VERTEBRA_COLOUR = "#4eb3d3"
NO_VALUE_COLOUR = "#808080"
"""Mid grey for map pixels without a value (NaN): outside the viridis and magma ranges,
where white read as the magma map's highest residual (an audit)."""
_DISC_VALUES = set(DISC_LABELS.values())
_LEVEL_OF_LABEL = {v: k for k, v in DISC_LABELS.items()}
_VERTEBRA_OF_LABEL = {v: k for k, v in VERTEBRA_LABELS.items()}


@dataclass(frozen=True)
class SagittalSlice:
    """One sagittal section in canonical orientation, ready to draw.

    ``image`` and ``labels`` are indexed ``[anterior, superior]`` (both increasing with the
    index); ``extent`` is ``(a_min, a_max, s_min, s_max)`` in mm, pixel edges included.
    """

    image: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int32] | None
    extent: tuple[float, float, float, float]
    r_mm: float
    index: int
    n_slices: int


def _canonical(volume: Volume) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Data reoriented to the closest RAS+ axes (first 3-D volume only) and its affine."""
    import nibabel as nib

    data = np.asarray(volume.data, dtype=np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    img = nib.as_closest_canonical(nib.Nifti1Image(data, volume.affine))
    return np.asarray(img.dataobj, dtype=np.float32), np.asarray(img.affine, dtype=np.float64)


def _disc_counts(labels: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    rounded = np.rint(labels).astype(np.int32)
    return np.isin(rounded, list(_DISC_VALUES)).sum(axis=(1, 2))


def sagittal_slice(
    image: Volume,
    labels: Volume | None = None,
    *,
    r_mm: float | None = None,
) -> SagittalSlice:
    """The mid-sagittal section of ``image`` (with ``labels`` on the same grid).

    The slice is the one holding the most disc voxels; with no discs, the one nearest
    ``r_mm`` (world right coordinate), else the middle slice.
    """
    from nibabel.affines import voxel_sizes

    data, affine = _canonical(image)
    lab = None
    if labels is not None and labels.shape[:3] == image.shape[:3]:
        lab, _ = _canonical(labels)
    n = data.shape[0]
    index = n // 2
    counts = _disc_counts(lab) if lab is not None else None
    if counts is not None and counts.max() > 0:
        index = int(np.argmax(counts))
    # world right of each slice's centre: the corner's, which the diagonal gave, lies
    # tens of mm off on an oblique slab (an audit of obliquity)
    centre = affine[0, 1] * (data.shape[1] - 1) / 2 + affine[0, 2] * (data.shape[2] - 1) / 2
    r_of_index = affine[0, 0] * np.arange(n) + centre + affine[0, 3]
    if (counts is None or counts.max() == 0) and r_mm is not None:
        index = int(np.argmin(np.abs(r_of_index - r_mm)))
    zooms = voxel_sizes(affine)
    # the axes in mm about the world A and S of the drawn slice's centre: from the
    # corner they were off by up to 34 mm on an oblique slab (an audit); the same as
    # before on a straight grid
    mid = affine @ np.array([index, (data.shape[1] - 1) / 2, (data.shape[2] - 1) / 2, 1.0])
    half_a, half_s = data.shape[1] * zooms[1] / 2, data.shape[2] * zooms[2] / 2
    a_lo, a_hi = mid[1] - half_a, mid[1] + half_a
    s_lo, s_hi = mid[2] - half_s, mid[2] + half_s
    return SagittalSlice(
        image=data[index],
        labels=None if lab is None else np.rint(lab[index]).astype(np.int32),
        extent=(float(a_lo), float(a_hi), float(s_lo), float(s_hi)),
        r_mm=float(r_of_index[index]),
        index=index,
        n_slices=n,
    )


def _png(fig: Figure) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # attach an Agg canvas: no pyplot, no global backend
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.06)
    return buf.getvalue()


def _mm_grid(sl: SagittalSlice) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Pixel-centre coordinates (mm) along the anterior and superior axes."""
    a_lo, a_hi, s_lo, s_hi = sl.extent
    na, ns = sl.image.shape
    a = a_lo + (np.arange(na) + 0.5) * (a_hi - a_lo) / na
    s = s_lo + (np.arange(ns) + 0.5) * (s_hi - s_lo) / ns
    return a, s


def draw_sagittal(
    sl: SagittalSlice,
    *,
    title: str,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    colorbar_label: str | None = None,
    width_in: float = 4.6,
    uncertain: frozenset[int] = frozenset(),
    no_value_colour: str | None = None,
) -> bytes:
    """A sagittal panel with disc and vertebra outlines and level names, as PNG bytes.

    The names of the labels in ``uncertain`` end in ``?``: with the sacrum out of view every
    name can be one level off, and they were drawn as sure as any (a user trial). Pixels
    without a value (NaN) are drawn in ``no_value_colour`` (e.g. :data:`NO_VALUE_COLOUR`);
    without one they are left transparent, which shows white.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    a_lo, a_hi, s_lo, s_hi = sl.extent
    aspect = (s_hi - s_lo) / max(a_hi - a_lo, 1e-6)
    fig = Figure(figsize=(width_in, min(max(width_in * aspect, 3.0), 7.5)), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    img = sl.image
    if vmin is None or vmax is None:
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0)
        vmin = float(lo) if vmin is None else vmin
        vmax = float(hi if hi > lo else lo + 1) if vmax is None else vmax
    # imshow wants [row, col] = [superior (flipped by origin), anterior].
    handle = ax.imshow(
        img.T,
        origin="lower",
        extent=sl.extent,
        cmap=colormaps[cmap].with_extremes(bad=no_value_colour) if no_value_colour else cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    if sl.labels is not None:
        _draw_outlines(ax, sl, uncertain)
    ax.set_xlim(a_hi, a_lo)  # radiological sagittal view: anterior on the left
    ax.set_ylim(s_lo, s_hi)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("anterior ← → posterior (mm)", fontsize=8)
    ax.set_ylabel("inferior ← → superior (mm)", fontsize=8)
    ax.tick_params(labelsize=7)
    if colorbar_label is not None:
        cb = fig.colorbar(handle, ax=ax, fraction=0.046, pad=0.03)
        cb.set_label(colorbar_label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    return _png(fig)


def _halo() -> list[object]:
    """A dark rim around the level names: yellow text alone was unreadable on the viridis
    ADC and inferno residual maps (a user trial)."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2.0, foreground="black")]


def _draw_outlines(ax: object, sl: SagittalSlice, uncertain: frozenset[int]) -> None:
    assert sl.labels is not None
    a, s = _mm_grid(sl)
    grid_a, grid_s = np.meshgrid(a, s, indexing="ij")
    a_max = sl.extent[1]
    for value in np.unique(sl.labels):
        value = int(value)
        if value == 0:
            continue
        mask = sl.labels == value
        is_disc = value in _DISC_VALUES
        if value not in _DISC_VALUES and value not in _VERTEBRA_OF_LABEL:
            continue
        colour = DISC_COLOUR if is_disc else VERTEBRA_COLOUR
        ax.contour(  # type: ignore[attr-defined]
            grid_a,
            grid_s,
            mask.astype(np.float32),
            levels=[0.5],
            colors=[colour],
            linewidths=1.0 if is_disc else 0.7,
        )
        # Vertebra labels usually include the posterior elements: put the name towards the
        # front of the mask so that it sits on the vertebral body.
        ca, cs = float(np.percentile(grid_a[mask], 75)), float(grid_s[mask].mean())
        if is_disc:
            front = float(grid_a[mask].max())  # most anterior point of the disc
            x = min(front + 6.0, a_max - 1.0)
            ax.annotate(  # type: ignore[attr-defined]
                _LEVEL_OF_LABEL[value] + ("?" if value in uncertain else ""),
                xy=(front, cs),
                xytext=(x, cs),
                fontsize=7.5,
                color=DISC_COLOUR,
                ha="right",
                va="center",
                fontweight="bold",
                arrowprops={"arrowstyle": "-", "color": DISC_COLOUR, "lw": 0.6},
                path_effects=_halo(),
            )
        else:
            ax.text(  # type: ignore[attr-defined]
                ca,
                cs,
                (_VERTEBRA_OF_LABEL[value] if value != SACRUM_LABEL else "S")
                + ("?" if value in uncertain else ""),
                fontsize=7,
                color="white",
                ha="center",
                va="center",
                path_effects=_halo(),
            )


def uncertain_levels(discs: list[DiscResult]) -> frozenset[str]:
    """The levels whose names the report marks ``?``: each found disc flagged
    ``level_uncertain``.

    Parameters
    ----------
    discs
        The study's discs.

    Returns
    -------
    frozenset of str
        Their level names (``"L4-L5"``); the images, the tables and the ADC chart mark
        the same set (the chart and tables showed plain names: an audit).
    """
    return frozenset(d.level for d in discs if d.found and FLAG_LEVEL_UNCERTAIN in d.flags)


def level_name(level: str, uncertain: frozenset[str]) -> str:
    """A level's name as the report shows it: with ``?`` when it is uncertain.

    Parameters
    ----------
    level
        The level, e.g. ``"L4-L5"``.
    uncertain
        The uncertain levels (:func:`uncertain_levels`).

    Returns
    -------
    str
        ``"L4-L5?"`` for an uncertain level, else the level itself.
    """
    return level + ("?" if level in uncertain else "")


def noise_biased(disc: DiscResult) -> bool:
    """Whether the disc's nucleus ADC is biased by noise beyond ±5 %.

    Parameters
    ----------
    disc
        One disc.

    Returns
    -------
    bool
        True when it is flagged ``adc_noise_floor_bias``; its nucleus ADC (and what is
        computed from it) is then shown as flagged, not as an ordinary value (an audit).
    """
    return FLAG_NOISE_FLOOR_BIAS in disc.flags


def adc_chart_points(discs: list[DiscResult]) -> dict[str, tuple[float, float, float]]:
    """Level -> (p10, median, p90) of the nucleus ADC, for the levels that have one.

    The median is the nucleus ADC the tables report, and it always lies between p10 and
    p90 (a mean can lie above p90 when a few voxels read high).
    """
    out = {}
    for d in discs:
        s = d.adc_np
        if d.level in LEVELS and s is not None:
            values = (s.p10, s.median, s.p90)
            if all(np.isfinite(v) for v in values):
                out[d.level] = (float(s.p10), float(s.median), float(s.p90))
    return out


def adc_chart_range(
    points: dict[str, tuple[float, float, float]], *, zones: tuple[float, float] = (0.7, 2.35)
) -> tuple[float, float]:
    """The chart's ADC axis: the grade zones, widened to hold every p10-p90 bar."""
    lows = [p10 for p10, _, _ in points.values()]
    highs = [p90 for _, _, p90 in points.values()]
    lo = min([zones[0], *(v - 0.05 for v in lows)])
    hi = max([zones[1], *(v + 0.05 for v in highs)])
    return lo, hi


def adc_chart(discs: list[DiscResult]) -> bytes:
    """Nucleus ADC by level against the reference zone of each Pfirrmann grade, as PNG bytes."""
    return _png(adc_chart_figure(discs))


def adc_chart_figure(discs: list[DiscResult]) -> Figure:
    """The figure of :func:`adc_chart`, for drawing or inspection.

    Parameters
    ----------
    discs
        The study's discs.

    Returns
    -------
    matplotlib.figure.Figure
        One axes: the nucleus ADC median and p10-p90 bar of each level, filled with the
        colour of its CNN grade and labelled with the grade's numeral (colour alone could
        not be read by a colour-blind reader, and there was no legend: an audit), the disc
        core's median beside it, over the grade zones, with a legend; uncertain level names
        end in ``?``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    centres = np.asarray(NP_ADC_BY_GRADE_UM2_PER_MS)
    points = adc_chart_points(discs)
    lo, hi = adc_chart_range(points, zones=(0.7, float(centres[0]) + 0.35))
    _draw_grade_zones(ax, lo, hi)
    by_level = {d.level: d for d in discs}
    for x, level in enumerate(LEVELS):
        d = by_level.get(level)
        if d is None or level not in points:
            ax.text(x, lo + 0.08, "n/a", ha="center", fontsize=7, color="#777777")
            continue
        _draw_level(ax, x, d, points[level])
    uncertain = uncertain_levels(discs)
    ax.set_xticks(range(len(LEVELS)), [level_name(lv, uncertain) for lv in LEVELS])
    ax.set_xlim(-0.5, len(LEVELS) + 0.3)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("ADC (µm²/ms)", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title(
        "Nucleus ADC (● median, bar p10–p90; fill and label = CNN grade) · disc core (□ median)",
        fontsize=8.5,
    )
    _chart_legend(ax, hollow=any(noise_biased(d) for d in discs if d.level in points))
    return fig


def _draw_grade_zones(ax: Axes, lo: float, hi: float) -> None:
    """Each grade's zone of typical nucleus ADC, split at the midpoints of neighbouring
    centres so that they do not overlap; the outer zones reach the axis ends (``lo``,
    ``hi``). Reading aids, not decision thresholds."""
    centres = np.asarray(NP_ADC_BY_GRADE_UM2_PER_MS)
    edges = np.concatenate([[hi], (centres[1:] + centres[:-1]) / 2, [lo]])
    for g in range(5):
        ax.axhspan(edges[g + 1], edges[g], color=GRADE_COLOURS[g], alpha=0.18, lw=0)
        ax.axhline(centres[g], color=GRADE_COLOURS[g], lw=0.8, ls="--", alpha=0.9)
        ax.text(
            len(LEVELS) - 0.45,
            (edges[g] + edges[g + 1]) / 2,
            f"grade {GRADE_NAMES[g]}",
            fontsize=7,
            va="center",
            ha="left",
            color="#333333",
        )


def _grade_label(grade: int | None) -> str:
    """The text beside a point: the CNN grade's numeral, or an en dash without a grade."""
    return "–" if grade is None else GRADE_NAMES[grade - 1]


def _draw_level(ax: Axes, x: int, disc: DiscResult, point: tuple[float, float, float]) -> None:
    """One level's nucleus point (median and p10-p90 bar, filled with the grade's colour
    and labelled with its numeral to the left; hollow when noise biases it) and its disc
    core median (a square)."""
    p10, median, p90 = point
    grade = disc.pfirrmann_grade
    colour = NO_GRADE_COLOUR if grade is None else GRADE_COLOURS[grade - 1]
    if noise_biased(disc):  # hollow: biased by noise; the label still gives the grade
        colour = "white"
    ax.errorbar(
        x,
        median,
        yerr=[[median - p10], [p90 - median]],
        fmt="o",
        color="#222222",
        mfc=colour,
        ms=8,
        capsize=3,
        lw=1,
        zorder=3,
    )
    ax.text(
        x - 0.13,
        median,
        _grade_label(grade),
        ha="right",
        va="center",
        fontsize=7.5,
        fontweight="bold",
        color="#222222",
        zorder=4,
    )
    if disc.adc_disc is not None and np.isfinite(disc.adc_disc.median):
        ax.plot(
            x + 0.18, disc.adc_disc.median, marker="s", ms=5, color="#555555", mfc="white",
            zorder=3,
        )  # fmt: skip


def _chart_legend(ax: Axes, *, hollow: bool) -> None:
    """The chart's legend, outside the axes on the right: each grade's fill and numeral,
    the point without a grade, the hollow point of a nucleus ADC biased by noise (when
    ``hollow``: the chart has one), and the disc core's square."""
    from matplotlib.lines import Line2D

    def point(fill: str, label: str, marker: str = "o", size: float = 7) -> Line2D:
        return Line2D(
            [], [], ls="none", marker=marker, ms=size, mfc=fill, mec="#222222", label=label
        )

    handles = [point(GRADE_COLOURS[g], f"grade {GRADE_NAMES[g]}") for g in range(5)]
    handles.append(point(NO_GRADE_COLOUR, "– no grade"))
    if hollow:
        handles.append(point("white", f"hollow {NOISE_FLOOR_MARK}: biased by noise"))
    handles.append(point("white", "disc core median", marker="s", size=5))
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        frameon=False,
        title="CNN grade (fill, label)",
        title_fontsize=7.5,
        alignment="left",
    )
