"""Check an edge-tl HTML report in headless Chromium (CI runs it on the demo's real report).

    python scripts/browser_check.py runs/latest/report.html [--screenshot report.png]

Exits 0 when the page renders the verdict and every report section, logs nothing to the console (no script
errors, no blocked requests), its screenshot is not blank, nothing needs a horizontal scroll at 1280 px, the
verdict is on the first screen and every image decodes; prints what it saw either way. Needs `apt-get install -y chromium`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from edge_tl.errors import EdgeTLError
from edge_tl.report.browser import check_page, headings, is_blank, measure_layout
from edge_tl.report.collect import SECTIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshot", type=Path, default=None, help="keep the screenshot here")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: no such report {args.report}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        shot = args.screenshot or Path(tmp) / "report.png"
        try:
            seen = check_page(args.report, shot)
        except EdgeTLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        found = headings(seen.dom)
        blank = is_blank(seen.screenshot)
        try:
            box = measure_layout(args.report)
        except EdgeTLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    expected = ["Verdict", *(title for _, title, _ in SECTIONS)]
    missing = [t for t in expected if t not in found]
    print(f"sections: {len(found)} found, missing: {', '.join(missing) or 'none'}")
    print(f"images: {seen.dom.count('<img ')}; screenshot: {'BLANK' if blank else 'ok'}")
    print(f"console messages: {len(seen.console)}")
    for line in seen.console:
        print(f"  {line}")
    wide = box["scroll_width"] > box["viewport"] or box["widest"] > box["viewport"]
    first = box["pick"] is not None and box["pick"]["bottom"] <= box["height"]
    print(f"layout at {box['viewport']} px: widest {box['widest']:.0f} px ({box['widest_el']}), page "
          f"{box['scroll_width']} px; verdict on the first screen: {'yes' if first else 'NO'}; "
          f"broken images: {box['broken']}")
    return 1 if missing or blank or seen.console or wide or not first or box["broken"] else 0


if __name__ == "__main__":
    sys.exit(main())
