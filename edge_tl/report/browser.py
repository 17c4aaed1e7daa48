"""Open a report in a real headless Chromium: screenshot, rendered DOM and console messages.

Used by the tests and by ``scripts/browser_check.py`` (CI checks the demo's real report with it). Needs
Debian's ``chromium`` (``apt-get install -y chromium``); :func:`find_chromium` returns ``None`` without it.
The browser runs with networking features off and a throw-away profile; as root it needs ``--no-sandbox``.
"""

from __future__ import annotations

import html
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
