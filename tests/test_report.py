"""The Snakemake HTML report of the smoke run, rendered in headless Chromium (Debian's, ci/install-test-deps.sh).

Snakemake 9's report is one self-contained page: a React app whose data (`var results = {...}`, each result
with its file as a data: URI, and `var categories`) is inline. So the test checks (1) the embedded data holds
every analysis table and figure, byte for byte; (2) Chromium runs the app: the rendered DOM (outside <script>)
shows the result categories, the screenshot is not blank; (3) a user's clicks (category -> subcategory ->
view a figure) list each analysis's results and display a figure as an <img> of the PNG.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# The analysis stage's tables (workflow/rules/analysis.smk ANALYSIS_OUTPUTS); each but correlations.csv has a
# .png and .pdf figure beside it.
TABLES = ["correlations", "fig2_pilot", "fig4_points", "fig5a_convergence", "fig5b_points",
          "table13_shift_correlations", "fig6_remi", "fig7_bound", "table20_remi", "table12_divergence_terms",
          "table14_cost", "table2_splits", "runtime", "control", "summary"]
FIGURES = [t for t in TABLES if t != "correlations"]

pytestmark = pytest.mark.slow


def _inline_json(html: str, name: str):
    m = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert m, f"the report has no inline `var {name}`"
    return json.loads(m.group(1))


class _Visible(HTMLParser):
    """Text outside <script>/<style> (what the app rendered), plus every <img> src and <pre id> text."""

    def __init__(self):
        super().__init__()
        self.depth, self.text, self.imgs, self.pre, self._pre_id = 0, [], [], {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "style"):
            self.depth += 1
        elif tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag == "pre" and a.get("id"):
            self._pre_id = a["id"]

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self.depth -= 1
        elif tag == "pre":
            self._pre_id = None

    def handle_data(self, data):
        if self._pre_id:
            self.pre[self._pre_id] = self.pre.get(self._pre_id, "") + data
        elif not self.depth and data.strip():
            self.text.append(data.strip())


def _chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=15000", *args, page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def _visible(dom: str) -> _Visible:
    v = _Visible()
    v.feed(dom)
    return v


def _not_blank(png: Path) -> None:
    from PIL import Image, ImageStat

    assert png.is_file() and png.stat().st_size > 5000, f"{png}: no screenshot"
    with Image.open(png) as im:
        stat = ImageStat.Stat(im.convert("L"))
        assert stat.stddev[0] > 10, f"{png}: the screenshot is blank (grey-level stddev {stat.stddev[0]:.1f})"


# Clicks as a user would: the category, then each subcategory (recording the rows it lists), then the view
# button of Figure 4's PNG. The log lands in a <pre id="rpm-test-log"> that --dump-dom returns.
_NAVIGATE = """<script>
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const link = (t) => [...document.querySelectorAll('a')].find((a) => a.textContent.trim() === t);
  const log = {clicked: [], rows: {}};
  await sleep(300);
  for (const sub of SUBCATEGORIES) {
    const cat = link(CATEGORY); if (!cat) { log.error = 'no link ' + CATEGORY; break; }
    cat.click(); await sleep(200);
    const s = link(sub); if (!s) { log.error = 'no link ' + sub; break; }
    s.click(); await sleep(200);
    log.clicked.push(sub);
    log.rows[sub] = [...document.querySelectorAll('tr')].map((tr) => [...tr.querySelectorAll('td')]
        .map((td) => td.textContent.trim()).filter((t) => t));
  }
  link(CATEGORY).click(); await sleep(200);
  link(FIGURE_SUBCATEGORY).click(); await sleep(200);
  const row = [...document.querySelectorAll('tr')].find((tr) => tr.textContent.includes('png'));
  if (row) { row.querySelector('a').click(); await sleep(500); } else { log.error = 'no png row'; }
  const pre = document.createElement('pre'); pre.id = 'rpm-test-log'; pre.textContent = JSON.stringify(log);
  document.body.appendChild(pre);
})();
</script>"""


def test_report_renders_every_analysis_figure(smoke_run, tmp_path):
    assert CHROMIUM.is_file(), "Debian's chromium is missing: run ci/install-test-deps.sh"
    report = smoke_run / "results" / "report.html"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"),
                           "-d", str(smoke_run), "--configfile", str(REPO / "workflow/configs/smoke.yaml"),
                           "--cores", "1", "--report", str(report)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, f"snakemake --report failed:\n{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}"
    html = report.read_text(encoding="utf-8")

    # (1) The embedded data: every analysis table and figure, byte for byte, in category "4. Analysis" (the
    # summary in "0. What this run shows", the report's first category).
    results = _inline_json(html, "results")
    categories = _inline_json(html, "categories")
    analysis = smoke_run / "results" / "analysis"
    expected = [f"{t}.csv" for t in TABLES] + [f"{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]
    for name in expected:
        key = f"results/analysis/{name}"
        assert key in results, f"{key} is not in the report"
        uri = results[key]["data_uri"]
        header, _, payload = uri.partition(",")
        data = base64.b64decode(payload) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
        assert data == (analysis / name).read_bytes(), f"{key}: the embedded copy differs from the file"
        assert results[key]["caption"].strip(), f"{key} has no caption"
    assert results["results/analysis/fig4_points.png"]["mime_type"] == "image/png"
    for name in expected:
        category = ("8. Run time" if name.startswith("runtime.") else
                    "0. What this run shows" if name.startswith("summary.") else "4. Analysis")
        listed = {p for subs in categories.get(category, {}).values() for p in subs}
        assert f"results/analysis/{name}" in listed, f"{name} is not under {category!r}"

    # (2) Chromium runs the app: its menu is rendered DOM, not script text; the screenshot is not blank.
    shot = tmp_path / "report.png"
    _chromium(tmp_path, report, f"--screenshot={shot}", "--window-size=1400,1000")
    _not_blank(shot)
    dom = _visible(_chromium(tmp_path, report, "--dump-dom").stdout)
    for category in ("0. What this run shows", "4. Analysis", "2. Metrics", "8. Run time"):
        assert category in dom.text, f"the rendered page shows no {category!r}; visible text: {dom.text[:40]}"

    # (3) Navigate: every analysis subcategory lists its results; Figure 4's PNG is displayed as an image.
    subs = sorted(categories["4. Analysis"])
    fig4_sub = next(s for s, paths in categories["4. Analysis"].items()
                    if "results/analysis/fig4_points.png" in paths)
    script = (_NAVIGATE.replace("SUBCATEGORIES", json.dumps(subs)).replace("FIGURE_SUBCATEGORY", json.dumps(fig4_sub))
              .replace("CATEGORY", json.dumps("4. Analysis")))
    head, body_end, tail = html.rpartition("</body>")  # the last one: the page's scripts contain the string too
    nav = tmp_path / "report_navigated.html"
    nav.write_text(head + script + body_end + tail, encoding="utf-8")
    dom = _visible(_chromium(tmp_path, nav, "--dump-dom").stdout)
    log = json.loads(dom.pre["rpm-test-log"])
    assert "error" not in log, log
    assert log["clicked"] == subs
    for sub, paths in categories["4. Analysis"].items():
        shown = {tuple(r) for r in log["rows"][sub]}
        for p in paths:
            r = results[p]["labels"]
            assert (r["result"], r["format"]) in shown, f"{sub}: the page lists no row for {p} ({shown})"
    fig4_png = base64.b64encode((analysis / "fig4_points.png").read_bytes()).decode()
    assert any(src.startswith("data:image/png") and fig4_png[:200] in src for src in dom.imgs), \
        f"Figure 4's PNG is not displayed; images: {[s[:40] for s in dom.imgs]}"
    shot = tmp_path / "figure4.png"
    _chromium(tmp_path, nav, f"--screenshot={shot}", "--window-size=1400,1000")
    _not_blank(shot)
