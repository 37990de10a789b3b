"""Headless Chromium for the tests: a page's screenshot, and what a page sees of another page once loaded.

The report itself holds no script; :func:`inspect_page` writes a small checker page (the test's own) that
loads the report in an iframe and, after the load event (every picture loaded or failed), writes the
report's element ids, pictures and resource URLs as JSON into its own DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WINDOW = (1280, 2400)
_CHECKER = """<!DOCTYPE html><html><body>
<iframe id="report" src="{src}" width="1280" height="2400"></iframe><pre id="result">pending</pre>
<script>
document.getElementById("report").addEventListener("load", function () {{
  var doc = this.contentDocument;
  var found = {{ids: [], images: [], urls: [], scripts: 0}};
  if (doc) {{
    doc.querySelectorAll("[id]").forEach(function (node) {{ found.ids.push(node.id); }});
    Array.prototype.forEach.call(doc.images, function (image) {{
      found.images.push({{src: image.getAttribute("src"), loaded: image.complete && image.naturalWidth > 0}});
    }});
    doc.querySelectorAll("[src], [href]").forEach(function (node) {{
      found.urls.push(node.getAttribute("src") || node.getAttribute("href"));
    }});
    found.scripts = doc.scripts.length;
  }}
  document.getElementById("result").textContent = JSON.stringify(found);
}});
</script></body></html>"""


def chromium() -> str:
    """The Chromium executable; the test skips with the reason when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")
    return found


def _run(flags: list[str], scratch: Path) -> str:
    profile = scratch / f"profile-{len(list(scratch.glob('profile-*')))}"
    done = subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, scratch: Path) -> np.ndarray:
    """The page rendered at :data:`WINDOW` (width, height), as an RGB array."""
    png = scratch / "screenshot.png"
    _run([f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}", page.resolve().as_uri()], scratch)
    with Image.open(png) as image:
        return np.asarray(image.convert("RGB"))


def inspect_page(page: Path, scratch: Path) -> dict:
    """``{"ids": [...], "images": [{"src", "loaded"}], "urls": [...], "scripts": n}`` of the loaded page."""
    checker = scratch / "checker.html"
    checker.write_text(_CHECKER.format(src=html.escape(page.resolve().as_uri())), encoding="utf-8")
    dom = _run(["--allow-file-access-from-files", "--virtual-time-budget=20000", "--dump-dom", checker.as_uri()],
               scratch)
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.DOTALL)
    assert found and found.group(1) != "pending", dom[-2000:]
    return json.loads(html.unescape(found.group(1)))
