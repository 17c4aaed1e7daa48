"""Render a :class:`~edge_tl.report.collect.Report` as ONE self-contained HTML page that leads with the verdict.

Images are inlined as base64 data URIs, CSS is inline, there is no JavaScript, and a Content-Security-Policy
forbids every external request and every script, so the page is safe to open even though every value in it
comes from files on disk. Every piece of text is escaped here and only here. The layout never needs a
horizontal scroll bar at 1280 px: the decision table has a fixed set of short columns, and the raw tables
(folded under ``<details>``) wrap their cells.
"""

from __future__ import annotations

import base64
import html

from edge_tl import __version__
from edge_tl.card import now_iso
from edge_tl.report import human
from edge_tl.report.collect import Report, Section
from edge_tl.report.tables import Block, Figure, Note, Table
from edge_tl.report.verdict import FAIL, PASS, Candidate, Verdict

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9;
line-height:1.4}
header{background:#1f3a5f;color:#fff;padding:14px 32px}
header h1{margin:0 0 2px;font-size:1.35em}
header p{margin:0;opacity:.85;font-size:.85em;overflow-wrap:anywhere}
nav{padding:6px 32px;background:#e4e9f0;font-size:.85em}
nav a{margin-right:14px;color:#1f3a5f}
main{padding:4px 32px 32px;max-width:1280px}
section{background:#fff;border:1px solid #d8dde5;border-radius:6px;padding:6px 20px 14px;margin:14px 0;
overflow-wrap:anywhere}
section.missing{background:#fbfbfb;border-style:dashed}
h2{font-size:1.2em;border-bottom:1px solid #e4e9f0;padding-bottom:4px;margin:8px 0}
p.intro{margin:6px 0 10px;max-width:960px}
.badge{font-size:.75em;font-weight:600;border-radius:4px;padding:1px 7px;white-space:nowrap}
.missing .badge,.badge.todo{font-weight:normal;color:#7a5b00;background:#fff1c2;margin-left:8px}
.badge.pass{color:#0b5b2a;background:#d5f2df}
.badge.fail{color:#fff;background:#b3261e}
.badge.none{color:#52607a;background:#eef1f5;font-weight:normal}
.pick{border-left:6px solid #1f8a4c;background:#f1faf4;padding:10px 16px;margin:8px 0 12px;border-radius:4px}
.pick.nothing{border-left-color:#b3261e;background:#fdf0ef}
.pick .file{font-size:1.3em;font-weight:700}
.facts{display:flex;flex-wrap:wrap;gap:8px 28px;margin:8px 0 4px}
.facts div{font-size:.8em;color:#52607a}
.facts b{display:block;font-size:1.35em;color:#1d2430}
ul.fails{margin:6px 0 10px;padding-left:20px;color:#b3261e}
ul.notes{margin:4px 0;padding-left:20px;color:#52607a;font-size:.9em}
table{border-collapse:collapse;margin:8px 0 14px;font-size:.85em;max-width:100%}
table.decision{width:100%}
caption{text-align:left;font-weight:600;padding:4px 0;color:#394a63}
th,td{border:1px solid #d8dde5;padding:3px 8px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef1f5;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#f8f9fb}
tr.chosen td{background:#e3f5e9}
tr.failed td{color:#8c1d18}
figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top;max-width:100%}
figure img{max-width:min(100%,540px);max-height:480px;border:1px solid #d8dde5}
figcaption{font-size:.8em;color:#52607a}
p.note{color:#52607a}
details{margin:6px 0 10px}
summary{cursor:pointer;font-weight:600;color:#394a63;font-size:.9em}
code{background:#eef1f5;color:#1d2430;padding:1px 4px;border-radius:3px}
footer{padding:0 32px 24px;font-size:.8em;color:#7a869a}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _is_num(text: str) -> bool:
    return bool(text) and (text[0].isdigit() or (text[0] == "-" and text[1:2].isdigit()))


def _cell(text: str) -> str:
    if text in (PASS, FAIL):
        return f"<td>{badge(text)}</td>"
    return f'<td class="num">{_e(text)}</td>' if _is_num(text) else f"<td>{_e(text)}</td>"


def _table(t: Table) -> str:
    parts = ["<table>"]
    if t.caption and not t.collapsed:
        parts.append(f"<caption>{_e(t.caption)}</caption>")
    heads = t.columns if t.columns == ("field", "value") else tuple(human.label(c) for c in t.columns)
    parts.append("<thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in heads) + "</tr></thead><tbody>")
    parts.extend("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in t.rows)
    parts.append("</tbody></table>")
    if t.omitted:
        parts.append(f'<p class="note">{t.omitted} more rows not shown.</p>')
    if t.collapsed:
        return f"<details><summary>{_e(t.caption or 'details')}</summary>{''.join(parts)}</details>"
    return "".join(parts)


def _figure(f: Figure) -> str:
    data = base64.b64encode(f.data).decode("ascii")
    return (f'<figure><img src="data:{_e(f.mime)};base64,{data}" alt="{_e(f.caption)}">'
            f"<figcaption>{_e(f.caption)}</figcaption></figure>")


def _note(n: Note) -> str:
    command = f" <code>{_e(n.command)}</code>" if n.command else ""
    return f'<p class="note">{_e(n.text)}{command}</p>'


_RENDER = {Table: _table, Figure: _figure, Note: _note}


def _block(b: Block) -> str:
    return _RENDER[type(b)](b)  # type: ignore[operator]


def badge(state: str) -> str:
    cls = {PASS: "pass", FAIL: "fail"}.get(state, "none")
    return f'<span class="badge {cls}">{_e(state)}</span>'


def _where(c: Candidate, threads: int | None) -> str:
    bits = [c.format.upper() if c.format in ("onnx", "tflite") else c.format, c.quantization]
    if c.runtime:
        bits.append(f"on {c.runtime}")
    if threads:
        bits.append(f"{threads} thread{'s' if threads != 1 else ''}")
    return ", ".join(bits)


def _pick(v: Verdict) -> str:
    c, t = v.chosen, v.chosen_threads
    if c is None:
        return f'<div class="pick nothing"><div class="file">No file to ship yet</div><p>{_e(v.why)}</p></div>'
    facts = [("File size", human.mb(c.size_mb)), ("Median latency", human.ms(c.p50.get(t or 0))),
             ("Top-1 accuracy", human.pct_points(c.top1)), ("Accuracy drop", human.points(c.drop)),
             ("Agreement with PyTorch", human.pct_points(c.agreement)), ("Parity gate", c.parity)]
    cells = "".join(f"<div>{_e(k)}<b>{_e(val)}</b></div>" for k, val in facts)
    return (f'<div class="pick"><div>Recommended file</div><div class="file"><code>{_e(c.name)}</code></div>'
            f"<div>{_e(_where(c, t))}</div><div class=\"facts\">{cells}</div><p>{_e(v.why)}</p></div>")


def _decision_table(v: Verdict) -> str:
    heads = ["Artefact", "Format", "Quantisation", "Runtime", "Size", "Top-1", "Agreement"]
    heads += [f"p50 at {t} thread{'s' if t != 1 else ''}" for t in v.threads] + ["Parity"]
    rows = []
    for c in v.candidates:
        cls = "chosen" if c is v.chosen else ("failed" if c.failed else "")
        name = c.name + (" (reference)" if c.reference else "")
        cells = [f"<td>{_e(name)}</td>", f"<td>{_e(c.format)}</td>", f"<td>{_e(c.quantization)}</td>",
                 f"<td>{_e(c.runtime or '-')}</td>"]
        cells += [f'<td class="num">{_e(x)}</td>' for x in (human.mb(c.size_mb), human.pct_points(c.top1),
                                                             human.pct_points(c.agreement))]
        cells += [f'<td class="num">{_e(human.ms(c.p50.get(t)))}</td>' for t in v.threads]
        cells.append(f"<td>{badge(c.parity) if not c.reference else _e('reference')}</td>")
        rows.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    return f'<table class="decision"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _verdict(v: Verdict) -> str:
    parts = ['<section id="verdict" class="verdict">', "<h2>Verdict</h2>", _pick(v)]
    fails = [c for c in v.candidates if c.problems]
    if fails:
        items = "".join(f"<li><b>{_e(c.name)}</b> {badge(c.parity) if c.parity == FAIL else ''} "
                        f"{_e('; '.join(c.problems))}</li>" for c in fails)
        parts.append(f'<ul class="fails">{items}</ul>')
    if v.candidates:
        parts.append(_decision_table(v))
    if v.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in v.notes) + "</ul>")
    parts.append("</section>")
    return "\n".join(parts)


def _section(s: Section) -> str:
    cls = "" if s.present else ' class="missing"'
    badge_html = "" if s.present else '<span class="badge todo">not run yet</span>'
    intro = f'<p class="intro">{_e(s.intro)}</p>' if s.intro else ""
    body = "\n".join(_block(b) for b in s.blocks)
    return f'<section id="{_e(s.key)}"{cls}>\n<h2>{_e(s.title)}{badge_html}</h2>\n{intro}\n{body}\n</section>'


def render_html(report: Report, generated: str | None = None) -> str:
    """The complete page as a string."""
    nav = " ".join(f'<a href="#{_e(s.key)}">{_e(s.title)}</a>' for s in report.sections)
    card = report.card
    sub = (f"{_e(card.backbone)} &middot; {card.num_classes} classes &middot; input {card.input.size} px "
           f"&middot; run <code>{_e(report.run)}</code>")
    body = "\n".join(_section(s) for s in report.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="edge-tl {_e(__version__)}">
<title>{_e(report.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header><h1>{_e(report.title)}</h1><p>{sub}</p></header>
<nav><a href="#verdict">Verdict</a> {nav}</nav>
<main>
{_verdict(report.verdict)}
{body}
</main>
<footer>Generated by edge-tl {_e(__version__)} on {_e(generated or now_iso())}.</footer>
</body>
</html>
"""
