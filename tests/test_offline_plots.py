"""The page `dvc plots show`/`diff` fill in: the vega bundles DVC's own page would load from a
CDN, vendored with their licences, inlined, and named in .dvc/config.

The page drawing in a real browser with the network blocked is tested in test_pipeline.py,
on a pipeline run.
"""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "plots" / "vendor"


def test_the_vendored_bundles_are_the_versions_dvcs_page_loads():
    from dvc_render.vega import VegaRenderer

    loaded = dict(re.findall(r"/npm/([a-z-]+)@([0-9.]+)", VegaRenderer.SCRIPTS))
    assert set(loaded) == {"vega", "vega-lite", "vega-embed"}
    vendored = dict(folder.name.rsplit("-", 1) for folder in VENDOR.iterdir() if folder.is_dir())
    assert vendored == loaded
    for name, version in loaded.items():
        assert (VENDOR / f"{name}-{version}" / "LICENSE").read_text().startswith("Copyright")


def test_the_bundles_are_the_files_their_readme_names():
    readme = (VENDOR / "README.md").read_text()
    rows = re.findall(r"`([\w.-]+/[\w.-]+\.min\.js)` \| `sha512-[^`]+` \| `([0-9a-f]{64})`", readme)
    assert {path for path, _ in rows} == {str(p.relative_to(VENDOR)) for p in VENDOR.glob("*/*.js")}
    for path, sha256 in rows:
        assert hashlib.sha256((VENDOR / path).read_bytes()).hexdigest() == sha256, path


def test_dvc_fills_in_the_page_that_inlines_the_bundles():
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:  # a relative template is relative to .dvc/
        configured = Path(repo.dvc_dir, repo.config["plots"]["html_template"]).resolve()
    assert configured == ROOT / "plots" / "offline.html"
    page = configured.read_text()
    assert "{plot_divs}" in page
    assert "{scripts}" not in page  # where DVC would put its CDN tags
    check = [sys.executable, str(ROOT / "plots" / "make_template.py"), "--check"]
    stale = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert stale.returncode == 0, stale.stderr
