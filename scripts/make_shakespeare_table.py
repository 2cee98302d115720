"""Derive the character vocabulary, unigram and bigram counts of Shakespeare's texts.

Usage::

    python scripts/make_shakespeare_table.py FOLDER [--out damlib/tables/shakespeare_bigrams.json]

FOLDER holds plain-text files (``*.txt``, read as UTF-8, in sorted order). The vocabulary is
the 65 characters of the tiny-shakespeare corpus: newline, space, ``!$&',-.3:;?``, ``A-Z`` and
``a-z``. Other characters are handled as follows (see :data:`REPLACE`): carriage returns and
tabs become newlines and spaces, double quotes become apostrophes, every other character outside
the vocabulary (digits other than 3, brackets, ``_*/@``...) is dropped. Each file is read on its
own, so no bigram straddles two files. The output is a JSON file written atomically (temporary
file, then rename) with the vocabulary, the counts and a note of the source.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from tqdm.auto import tqdm

VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
REPLACE = {"\r": "\n", "\t": " ", '"': "'"}
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "damlib" / "tables" / "shakespeare_bigrams.json"


def clean(text: str) -> str:
    """Map ``text`` onto the 65-character vocabulary (replace, then drop what is left over)."""
    allowed = set(VOCAB)
    mapped = (REPLACE.get(c, c) for c in text.replace("\r\n", "\n"))
    return "".join(c for c in mapped if c in allowed)


def count(folder: Path) -> dict:
    """Unigram and bigram counts over every ``*.txt`` file of ``folder``."""
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ValueError(f"folder must hold *.txt files, found none in {folder}")
    index = {c: i for i, c in enumerate(VOCAB)}
    v = len(VOCAB)
    unigram = [0] * v
    bigram = [[0] * v for _ in range(v)]
    digest = hashlib.sha256()
    dropped = 0
    for path in tqdm(files, desc="texts"):
        raw = path.read_bytes()
        digest.update(raw)
        text = raw.decode("utf-8")
        kept = clean(text)
        dropped += len(text.replace("\r\n", "\n")) - len(kept)
        ids = [index[c] for c in kept]
        for i in ids:
            unigram[i] += 1
        for a, b in zip(ids[:-1], ids[1:], strict=True):
            bigram[a][b] += 1
    return {
        "source": (f"Character counts of {len(files)} Shakespeare texts ({folder.name}/*.txt), made by "
                   "scripts/make_shakespeare_table.py. Double quotes were mapped to apostrophes, "
                   f"carriage returns and tabs to newlines and spaces; {dropped} other characters "
                   "outside the vocabulary were dropped. bigram[a][b] counts character b right "
                   "after character a within one file."),
        "files": [p.name for p in files],
        "sha256": digest.hexdigest(),
        "vocab": VOCAB,
        "unigram": unigram,
        "bigram": bigram,
    }


def write_atomic(table: dict, out: Path) -> None:
    """Write ``table`` as JSON to a temporary file beside ``out``, then rename it onto ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            # one row of the bigram table per line: small diffs, readable file
            head = {k: table[k] for k in ("source", "files", "sha256", "vocab", "unigram")}
            body = json.dumps(head, indent=1)[:-2]
            rows = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in table["bigram"])
            f.write(body + ',\n "bigram": [\n  ' + rows + "\n ]\n}\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of Shakespeare *.txt files")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"folder {args.folder} is not a directory")
    table = count(args.folder)
    write_atomic(table, args.out)
    print(f"wrote {args.out}: {sum(table['unigram'])} characters, vocabulary of {len(VOCAB)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
