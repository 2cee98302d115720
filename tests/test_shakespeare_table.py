"""Tests of scripts/make_shakespeare_table.py and of damlib.data.load_shakespeare_table on its output."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from damlib.data import load_shakespeare_table

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make_shakespeare_table.py"
spec = importlib.util.spec_from_file_location("make_shakespeare_table", SCRIPT)
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)


def test_vocabulary_and_cleaning():
    assert len(make.VOCAB) == 65 and len(set(make.VOCAB)) == 65
    assert make.clean('Ab "c"\r\n[d]_9\t3') == "Ab 'c'\nd 3"


def test_counts_and_round_trip(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("abab")
    (folder / "b.txt").write_text("ba{")   # '{' is dropped; no bigram across the two files
    out = tmp_path / "table.json"
    assert make.main([str(folder), "--out", str(out)]) == 0
    assert not list(tmp_path.glob("*.tmp"))  # the temporary file was renamed
    raw = json.loads(out.read_text())
    assert raw["files"] == ["a.txt", "b.txt"]
    table = load_shakespeare_table(out)
    a, b = make.VOCAB.index("a"), make.VOCAB.index("b")
    assert table.unigram[a] == 3 and table.unigram[b] == 3 and table.unigram.sum() == 6
    assert table.bigram[a, b] == 2 and table.bigram[b, a] == 2 and table.bigram.sum() == 4
    assert table.decode(table.encode("ab")) == "ab"


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="folder"):
        make.count(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"vocab": "ab", "source": "", "unigram": [1], "bigram": [[0]]}))
    with pytest.raises(ValueError, match="path"):
        load_shakespeare_table(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="path"):
        load_shakespeare_table(bad)


def test_shipped_table_matches_its_note():
    table = load_shakespeare_table()
    assert "make_shakespeare_table.py" in table.source
    assert torch.equal(table.bigram.sum(), table.unigram.sum() - 42)  # one bigram fewer per file
