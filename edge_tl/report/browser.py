"""Open a report in a real headless Chromium: screenshot, rendered DOM and console messages.

Used by the tests and by ``scripts/browser_check.py`` (CI checks the demo's real report with it). Needs
Debian's ``chromium`` (``apt-get install -y chromium``); :func:`find_chromium` returns ``None`` without it.
The browser runs with networking features off and a throw-away profile; as root it needs ``--no-sandbox``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge_tl.errors import ConfigError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--hide-scrollbars", "--enable-logging=stderr", "--v=0")
_CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?[:\]]|Uncaught|Content Security Policy", re.IGNORECASE)


@dataclass(frozen=True)
class BrowserCheck:
    """What the browser saw: the rendered DOM, the console lines, and the screenshot file."""

    dom: str
    console: tuple[str, ...]
    screenshot: Path


def find_chromium() -> str | None:
    """Path of a Chromium-family browser, or ``None``."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, profile: str, extra: list[str], url: str, timeout: float) -> subprocess.CompletedProcess:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *extra, url]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                              env={**os.environ, "LANG": "C.UTF-8"})
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{browser} did not finish within {timeout:.0f} s", "check the chromium install") from None


def console_lines(stderr: str) -> list[str]:
    """Chromium log lines that are page console messages, uncaught errors or CSP violations."""
    return [line for line in stderr.splitlines() if _CONSOLE.search(line)]


def check_page(html_path: Path, screenshot: Path, width: int = 1280, height: int = 2400,
               timeout: float = 90.0) -> BrowserCheck:
    """Render ``html_path`` twice (DOM dump, then screenshot) and collect the console output of both."""
    browser = find_chromium()
    if browser is None:
        raise ConfigError("no chromium found", "apt-get install -y chromium")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="edge-tl-chromium-") as profile:
        dom = _run(browser, profile, ["--dump-dom"], url, timeout)
        shot = _run(browser, profile, [f"--screenshot={Path(screenshot).resolve()}",
                                       f"--window-size={width},{height}"], url, timeout)
    for proc in (dom, shot):
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
            raise ConfigError(f"{browser} exited with status {proc.returncode}: {tail[0]}",
                              "check the chromium install")
    return BrowserCheck(dom=dom.stdout, console=tuple(console_lines(dom.stderr) + console_lines(shot.stderr)),
                        screenshot=Path(screenshot))


_PROBE = """<script>
addEventListener("load", () => {
  const de = document.documentElement, out = {viewport: de.clientWidth, height: innerHeight,
    scroll_width: de.scrollWidth, images: document.images.length, broken: 0, widest: 0, widest_el: ""};
  for (const img of document.images) if (!(img.complete && img.naturalWidth > 0)) out.broken++;
  const box = (sel) => { const el = document.querySelector(sel); return el ? el.getBoundingClientRect() : null; };
  for (const el of document.querySelectorAll("#verdict, #verdict *, header, nav")) {
    const r = el.getBoundingClientRect();
    if (r.right > out.widest) { out.widest = r.right; out.widest_el = el.tagName + "." + el.className; }
  }
  for (const [k, sel] of [["verdict", "#verdict"], ["pick", "#verdict .pick"], ["table", "#verdict table"]]) {
    const r = box(sel); out[k] = r ? {top: r.top, bottom: r.bottom} : null;
  }
  const pre = document.createElement("pre"); pre.id = "edge-tl-layout"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def measure_layout(html_path: Path, width: int = 1280, height: int = 800, timeout: float = 90.0) -> dict:
    """Lay the page out at ``width`` x ``height`` and return what a person would see: the page's scroll width,
    the right edge of the widest element of the header and verdict, where the verdict's boxes sit, and how many
    images failed to load.

    The report itself runs no script; this renders a throw-away copy whose CSP also allows one inline probe
    script, so the measurement cannot weaken the real page.
    """
    browser = find_chromium()
    if browser is None:
        raise ConfigError("no chromium found", "apt-get install -y chromium")
    text = Path(html_path).read_text(encoding="utf-8")
    text = text.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';", 1)
    text = text.replace("</body>", _PROBE + "</body>", 1)
    with tempfile.TemporaryDirectory(prefix="edge-tl-layout-") as tmp:
        probe = Path(tmp) / "probe.html"
        probe.write_text(text, encoding="utf-8")
        proc = _run(browser, str(Path(tmp) / "profile"), ["--dump-dom", f"--window-size={width},{height}",
                                                          "--virtual-time-budget=5000"], probe.as_uri(), timeout)
    found = re.search(r'<pre id="edge-tl-layout">(.*?)</pre>', proc.stdout, flags=re.DOTALL)
    if proc.returncode != 0 or found is None:
        raise ConfigError(f"{browser} did not lay out the page (status {proc.returncode})", "check the chromium install")
    return json.loads(html.unescape(found.group(1)))


def headings(dom: str) -> list[str]:
    """The text of every ``<h2>`` in a rendered DOM (badges stripped)."""
    out = []
    for raw in re.findall(r"<h2[^>]*>(.*?)</h2>", dom, flags=re.DOTALL):
        out.append(html.unescape(re.sub(r"<span.*?</span>", "", raw, flags=re.DOTALL)).strip())
    return out


def is_blank(png: Path) -> bool:
    """True when a screenshot has (almost) a single colour."""
    from PIL import Image

    with Image.open(png) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1 << 16)
    return colors is not None and len(colors) < 8
