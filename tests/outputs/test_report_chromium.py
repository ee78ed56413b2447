"""The report opened in headless Chromium: no console errors, every image loads, five rows.

The report itself has no script. To learn whether images decoded, the test renders a copy
with one added load-time script that writes the count of loaded images into the DOM, then
reads it from ``--dump-dom``. The screenshot of the unmodified report is kept under
``test-artifacts/`` for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from tests.outputs.conftest import Synthetic

from discquant.outputs.report import render_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; .ci/run does)"
)

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});
</script>"""


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def _console_errors(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if ":CONSOLE" in line or "Failed to load resource" in line or "net::ERR_" in line
    ]


def test_report_renders_in_headless_chromium(synthetic: Synthetic, tmp_path: Path) -> None:
    html = render_report(synthetic.result)
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", _PROBE + "</body>"), encoding="utf-8")

    dumped = _chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    assert _console_errors(dumped.stderr) == []
    n_images = len(re.findall(r"<img\b", html))
    assert n_images == 4
    assert f'data-images="{n_images}/{n_images}"' in dumped.stdout
    table = re.search(r'<table id="disc-table">.*?</table>', dumped.stdout, re.S)
    assert table is not None
    assert len(re.findall(r"<tr [^>]*data-level=", table.group(0))) == 5

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shown = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    assert _console_errors(shown.stderr) == []
    with Image.open(shot) as img:
        assert img.size == (1280, 2000)
        grey = img.convert("L")
        histogram = grey.histogram()
    # The inlined sagittal images are mostly dark; a page of broken images would be white.
    dark = sum(histogram[:40]) / (1280 * 2000)
    assert dark > 0.03


_WIDTH_PROBE = """<script>
window.addEventListener('load', function () {
  var box = document.getElementById('disc-table').parentElement;
  document.body.setAttribute('data-widths', [
    document.documentElement.scrollWidth, window.innerWidth,
    box.scrollWidth, box.clientWidth, getComputedStyle(box).overflowX
  ].join(' '));
});
</script>"""


def test_report_on_a_phone_scrolls_the_disc_table_not_the_page(
    synthetic: Synthetic, tmp_path: Path
) -> None:
    """At 390 px the disc table (cells do not wrap) ran off the screen, the whole page
    wider than the window (an audit): the table scrolls sideways in its own box and the
    page fits the window."""
    probe = tmp_path / "narrow.html"
    probe.write_text(
        render_report(synthetic.result).replace("</body>", _WIDTH_PROBE + "</body>"),
        encoding="utf-8",
    )
    dumped = _chromium(
        tmp_path,
        "--window-size=390,900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    )
    widths = re.search(r'data-widths="(\d+) (\d+) (\d+) (\d+) (\w+)"', dumped.stdout)
    assert widths is not None
    page, window, box, box_visible, overflow = widths.groups()
    assert int(window) <= 500  # headless Chromium keeps a window at least 500 px wide
    assert int(page) <= int(window)  # nothing runs off the page
    assert overflow == "auto" and int(box) > int(box_visible)  # the table scrolls in its box


PDFTOTEXT = shutil.which("pdftotext")


@pytest.mark.skipif(PDFTOTEXT is None, reason="pdftotext is not installed (poppler-utils)")
def test_report_prints_on_a4_whole(synthetic: Synthetic, tmp_path: Path) -> None:
    """Printed (A4, Chromium's print to PDF), the provenance was cut at its screen height
    inside a scroll box, long lines cut at its edge, and the T2 filled page 1 alone with the
    ADC map on page 2 (an audit): the provenance prints whole and the pair stays together."""
    import copy

    result = copy.deepcopy(synthetic.result)
    result.provenance["many"] = {f"entry_{i:03d}": i for i in range(150)}
    long_line = "/data/" + "segment_" * 60 + "end"
    result.provenance["path"] = long_line
    result.provenance["zz_last"] = "END-OF-PROVENANCE"
    html = render_report(result).replace("</style>", "@page { size: A4; }</style>", 1)
    report = tmp_path / "report.html"
    report.write_text(html, encoding="utf-8")
    pdf = tmp_path / "report.pdf"
    _chromium(tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report.as_uri())
    assert PDFTOTEXT is not None
    text = subprocess.run(
        [PDFTOTEXT, str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    pages = [re.sub(r"\s+", "", page) for page in text.split("\f")]
    whole = "".join(pages)
    assert "END-OF-PROVENANCE" in whole and '"entry_149":149' in whole
    assert long_line in whole  # wrapped, not cut at the box's edge
    # both image captions (T2 and ADC) on the first page, beside each other
    assert pages[0].count("Discsyellowwithlevelnames") == 2
