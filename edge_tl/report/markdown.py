"""The report's summary as Markdown (``edge-tl report --md FILE``): the verdict, the decision table and one line
per stage, for CI logs and pull requests. Plain text only: no images; pipes and tag openers escaped."""

from __future__ import annotations

import re

from edge_tl.report import human
from edge_tl.report.collect import Report
from edge_tl.report.verdict import Verdict

_TAG = re.compile(r"<(?=[A-Za-z/!?])")


def _cell(text: object) -> str:
    text = str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return _TAG.sub("&lt;", text)  # a "<" that could open an HTML tag; "91 % < 98 %" stays readable


def _verdict(v: Verdict) -> list[str]:
    c, t = v.chosen, v.chosen_threads
    if c is None:
        lines = ["**No file to ship yet.** " + _cell(v.why)]
    else:
        where = ", ".join(x for x in (c.format, c.quantization, c.runtime and f"on {c.runtime}",
                                      t and f"{t} thread{'s' if t != 1 else ''}") if x)
        lines = [f"**Ship `{_cell(c.name)}`** ({_cell(where)}): {human.mb(c.size_mb)}, p50 "
                 f"{human.ms(c.p50.get(t or 0))}, top-1 {human.pct_points(c.top1)}, drop {human.points(c.drop)}, "
                 f"parity {c.parity}.", "", _cell(v.why)]
    fails = [x for x in v.candidates if x.problems]
    if fails:
        lines += [""] + [f"- **{_cell(x.name)}** {x.parity if x.parity == 'FAIL' else ''}: "
                         f"{_cell('; '.join(x.problems))}" for x in fails]
    if v.candidates:
        heads = ["Artefact", "Format", "Quantisation", "Runtime", "Size", "Top-1", "Agreement"]
        heads += [f"p50 @{n}t" for n in v.threads] + ["Parity"]
        lines += ["", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        for x in v.candidates:
            cells = [x.name + (" (reference)" if x.reference else ""), x.format, x.quantization, x.runtime or "-",
                     human.mb(x.size_mb), human.pct_points(x.top1), human.pct_points(x.agreement),
                     *(human.ms(x.p50.get(n)) for n in v.threads), "reference" if x.reference else x.parity]
            name = f"**{_cell(cells[0])}**" if x is c else _cell(cells[0])
            lines.append("| " + " | ".join([name, *(_cell(y) for y in cells[1:])]) + " |")
    if v.notes:
        lines += ["", *(f"- {_cell(n)}" for n in v.notes)]
    return lines


def render_markdown(report: Report) -> str:
    """The verdict and one paragraph per stage, as GitHub-flavoured Markdown."""
    card = report.card
    lines = [f"## {_cell(report.title)}", "",
             f"{_cell(card.backbone)}, {card.num_classes} classes, input {card.input.size} px, run `{_cell(report.run)}`.",
             "", "### Verdict", "", *_verdict(report.verdict), ""]
    for s in report.sections:
        lines += [f"### {s.title}", ""]
        lines.append(_cell(s.intro) if s.present and s.intro else
                     ("Included." if s.present else "Not run yet: " + "; ".join(
                         f"`{b.command}`" for b in s.blocks if getattr(b, "command", None))))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
