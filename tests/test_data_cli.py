"""`edge-tl data check`: table, --json, exit status 0 (clean) / 1 (problems) / 2 (unusable input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_tl.data.manifest import Manifest, ManifestItem
from helpers.cli import cli
from helpers.data import image_folder, messy_files, write_files


def test_clean_folder_exits_0_with_table_and_json(tmp_path, capsys):
    root = image_folder(tmp_path / "d", {"cat": 4, "dog": 3})
    code, out, err = cli(["data", "check", str(root), "--json", str(tmp_path / "r.json")], capsys)
    assert code == 0, err
    assert "data check: d" in out and "usable" in out and "leakage" in out
    js = json.loads((tmp_path / "r.json").read_text())
    assert js["total"] == 7 and js["good"] == 7 and js["ok"] and js["class_counts"] == {"cat": 4, "dog": 3}


def test_messy_folder_exits_1_and_lists_bad_files(tmp_path, capsys):
    root = tmp_path / "d"
    write_files(root / "cat", messy_files())
    image_folder(root, {"dog": 3})
    code, out, _ = cli(["data", "check", str(root), "--json", "-", "--threads", "2"], capsys)
    assert code == 1
    js = json.loads(out)  # --json - : JSON alone on stdout, the table on stderr
    assert js["bad_counts"]["empty"] == 1 and js["bad_counts"]["truncated"] == 2
    assert js["bad_counts"]["not-image"] == 2 and js["bad_counts"]["too-large"] == 1
    assert js["note_counts"]["wrong-extension"] == 3 and js["note_counts"]["cmyk"] == 1
    assert len(js["duplicates"]) == 1
    assert {Path(b["path"]).name for b in js["bad_files"]} >= {"empty.jpg", "bomb.png", "text.jpg"}


@pytest.mark.parametrize("counts,zero_byte,words", [
    ({"cat": 3, "dog": 3}, True, ("bad files (1, skipped)", "cat/zero.jpg", "zero-byte")),  # the table lists it
    ({"cat": 4, "dog": 2}, False, ("too small", "'dog'")),  # a class too small to split
])
def test_problem_in_the_table_exits_1(tmp_path, capsys, counts, zero_byte, words):
    root = image_folder(tmp_path / "d", counts)
    if zero_byte:
        (root / "cat" / "zero.jpg").write_bytes(b"")
    code, out, _ = cli(["data", "check", str(root)], capsys)
    assert code == 1 and all(w in out for w in words), out


def test_leaky_manifest_exits_1(tmp_path, capsys):
    root = image_folder(tmp_path / "d", {"cat": 2, "dog": 2})
    (root / "cat" / "copy.jpg").write_bytes((root / "cat" / "0.jpg").read_bytes())
    from edge_tl._io import sha256_file

    def item(rel: str, label: int, split: str) -> ManifestItem:
        return ManifestItem(rel, sha256_file(root / rel), label, split)

    m = Manifest(classes=("cat", "dog"), items=(item("cat/0.jpg", 0, "train"), item("cat/copy.jpg", 0, "test"),
                                                item("dog/0.jpg", 1, "train"), item("dog/1.jpg", 1, "test")),
                 dataset="d", root=str(root))
    path = m.save(tmp_path / "run" / "split.json")
    code, out, _ = cli(["data", "check", str(path), "--json", str(tmp_path / "r.json")], capsys)
    assert code == 1 and "leakage" in out
    js = json.loads((tmp_path / "r.json").read_text())
    assert len(js["leakage"]) == 1 and sorted(js["leakage"][0]["splits"]) == ["test", "train"]
    # a run folder (split.json + card.json) is accepted too
    (tmp_path / "run" / "card.json").write_text("{}")
    code, _, _ = cli(["data", "check", str(tmp_path / "run")], capsys)
    assert code == 1


def test_changed_file_since_split_exits_1(tmp_path, capsys):
    root = image_folder(tmp_path / "d", {"cat": 3, "dog": 3})
    from edge_tl.data.manifest import split_dataset
    from edge_tl.data.sources import load_folder

    m, _ = split_dataset(load_folder(root), progress=False)
    path = m.save(tmp_path / "split.json")
    assert cli(["data", "check", str(path)], capsys).code == 0
    image_folder(root, {"cat": 1}, seed=50)  # overwrite cat/0.jpg with other content
    code, out, _ = cli(["data", "check", str(path)], capsys)
    assert code == 1 and "changed" in out


@pytest.mark.parametrize("args,match", [
    (["data", "check", "/no/such/folder"], "does not exist"),
    (["data", "check", "samplee"], "did you mean 'sample'"),
    (["data", "check", "oxford-pets", "--data-root", "."], "not an extracted Oxford-IIIT Pet"),
])
def test_unusable_input_exits_2_on_one_line(args, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(args, capsys)
    assert code == 2 and err.startswith("error: ") and match in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_sample_is_clean(tmp_path, capsys):
    code, out, _ = cli(["data", "check", "sample", "--json", str(tmp_path / "r.json")], capsys)
    assert code == 0 and "data check: sample" in out
    js = json.loads((tmp_path / "r.json").read_text())
    assert js["good"] == 600 and js["bad"] == 0 and not js["duplicates"]


def test_relative_path_and_label_conflict(tmp_path, capsys, monkeypatch):
    root = image_folder(tmp_path / "d", {"cat": 3, "dog": 3})
    (root / "dog" / "also_a_cat.jpg").write_bytes((root / "cat" / "0.jpg").read_bytes())
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(["data", "check", "d"], capsys)
    assert code == 1 and "filed under two classes" in out
    assert "cat/0.jpg = dog/also_a_cat.jpg" in out  # paths shown relative to the dataset folder
