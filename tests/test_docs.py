"""The README is a landing page and the docs site builds with --strict, offline, with every page in its nav."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 12 * 1024
# references that mean nothing to a user: internal tracker numbers, development machines, sibling checkouts
INTERNAL = re.compile(r"\b[Ii]ssue #?\d+\b|/work/|\.\./shared\b|/tmp/(?!\.\.\.)|/root/")


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_is_a_landing_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < README_LIMIT
    heads = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    assert heads[:6] == ["Quick start", "The commands", "Results", "Deploy", "Documentation", "Development"]
    quick = text.split("## Quick start", 1)[1].split("## ", 1)[0]
    assert re.findall(r"^make (\w+)", quick, flags=re.MULTILINE) == ["demo", "test"]
    commands = text.split("## The commands", 1)[1].split("## ", 1)[0]
    assert re.findall(r"^edge-tl (\w+)", commands, flags=re.MULTILINE) == ["train", "export", "bench", "attack",
                                                                             "report"]
    results = text.split("## Results", 1)[1].split("## ", 1)[0]
    assert re.search(r"\b20\d\d-\d\d-\d\d\b", results) and "|---" in results  # a dated table
    assert "model_asset_path=\"exported/model_int8.tflite\"" in text and "InferenceSession(\"exported/model" in text
    for block in _python_blocks(text):
        ast.parse(block)


def test_readme_deploy_snippets_are_the_checked_ones():
    """The README's deploy snippets are copies of the Deploy guide's, which the deploy tests run for real."""
    deploy = (DOCS / "sections" / "deploy.md").read_text(encoding="utf-8")
    section = README.read_text(encoding="utf-8").split("## Deploy", 1)[1].split("\n## ", 1)[0]
    blocks = _python_blocks(section)
    assert len(blocks) == 2 and all(block in _python_blocks(deploy) for block in blocks)


def test_readme_links_point_at_existing_docs():
    text = README.read_text(encoding="utf-8")
    links = re.findall(r"\]\(((?!https?:)[^)#]+)(?:#[^)]*)?\)", text)
    assert links and all((ROOT / link).is_file() for link in links), [x for x in links if not (ROOT / x).is_file()]


def test_no_internal_references_in_docs():
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in pages
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if INTERNAL.search(line)]
    assert found == []


def test_every_docs_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"^\s+- (?:[^:\n]+: )?([\w./-]+\.md)\s*$", config, flags=re.MULTILINE))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - nav == set() and nav - pages == set()


def test_docs_site_builds_strict_offline(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (mkdocs, mkdocs-material, ...)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "NO_PROXY": "*", "HTTP_PROXY": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9"}  # any network fetch fails the build
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    # the CLI reference is generated from the Click commands: every sub-command has its own heading
    from edge_tl.cli.main import COMMANDS

    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f'id="edge-tl-{name}"' in cli, name
    assert "--md" in cli  # an option added to a command shows up without editing the docs
    # the API reference is generated from docstrings
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for obj in ("edge_tl.report.build_report", "edge_tl.export.api.export", "edge_tl.card.ModelCard"):
        assert f'id="{obj}"' in api, obj
    assert (site / "sections" / "report" / "index.html").is_file() and (site / "INTERNAL" / "index.html").is_file()
