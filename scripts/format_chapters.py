"""Format the code cells of the book's chapters to the page column (88 characters).

Each ```{code-cell}``` block of a MyST chapter is passed through ``ruff format`` (line length 88),
and the figure captions in its ``---`` block of options are wrapped at the same width (a caption
is one Markdown paragraph per blank-line-separated block: its soft line breaks do not show, so
wrapping changes no rendered caption; inline maths and code spans are never split). Other options
stay as they are. With ``--check`` nothing is written and the script lists the chapters that
would change.

    python scripts/format_chapters.py book/**/*.md
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
from pathlib import Path

CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", re.S | re.M)
WIDTH = 88


def _split_options(body: str) -> tuple[str, str]:
    """``(options, code)`` of a cell body: a ``---`` yaml block or leading ``:key:`` lines."""
    if body.startswith("---\n"):
        end = body.index("\n---\n", 3) + 5
        return body[:end], body[end:]
    lines = body.splitlines(keepends=True)
    n = 0
    while n < len(lines) and lines[n].startswith(":"):
        n += 1
    return "".join(lines[:n]), "".join(lines[n:])


def hoist_comments(code: str) -> str:
    """Move the trailing comment of a line longer than the column onto its own line above it."""
    out = []
    for line in code.splitlines(keepends=True):
        body = line.rstrip("\n")
        at = body.rfind("  # ")
        if len(body) > WIDTH and at > 0 and body[:at].strip():
            indent = body[: len(body) - len(body.lstrip())]
            out.append(f"{indent}{body[at + 2:].strip()}\n")
            out.append(body[:at].rstrip() + "\n")
        else:
            out.append(line)
    return "".join(out)


# a token: non-space characters, with inline maths and code spans (which may hold spaces) whole
_TOKEN = re.compile(r"(?:\$[^$]*\$|`[^`]*`|[^\s$`]|[$`])+")


def _wrap_paragraph(words: list[str], indent: str) -> list[str]:
    lines, line = [], ""
    for word in words:
        if line and len(indent) + len(line) + 1 + len(word) > WIDTH:
            lines.append(indent + line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(indent + line)
    return lines


def wrap_captions(options: str) -> str:
    """Wrap every ``caption: |`` block of a cell's yaml options at the page width."""
    lines = options.split("\n")
    out, i = [], 0
    while i < len(lines):
        out.append(lines[i])
        key = lines[i].lstrip()
        if key.startswith("caption: |") and key.rstrip() == "caption: |":
            depth = len(lines[i]) - len(key) + 2
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" " * depth)):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():                 # trailing blank lines stay
                block.pop()
                i -= 1
            wrapped, paragraph = [], []
            for line in block + [""]:
                if line.strip():
                    paragraph.append(line.strip())
                else:
                    words = [m.group(0) for m in _TOKEN.finditer(" ".join(paragraph))]
                    wrapped += _wrap_paragraph(words, " " * depth) + [""]
                    paragraph = []
            wrapped.pop()                                           # the added separator
            # the caption's words, spans and paragraphs must be what they were
            same = " ".join(" ".join(block).split()) == " ".join(" ".join(wrapped).split())
            out += wrapped if same else block
            continue
        i += 1
    return "\n".join(out)


def _same_program(a: str, b: str) -> bool:
    try:
        return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))
    except SyntaxError:
        return False


def format_code(code: str) -> str:
    """``code`` formatted by ruff at the page width; unchanged unless the result parses to the
    same program (comments aside)."""
    if not code.strip():
        return code
    hoisted = hoist_comments(code)
    done = subprocess.run(["ruff", "format", f"--line-length={WIDTH}", "--stdin-filename", "cell.py", "-"],
                          input=hoisted, capture_output=True, text=True)
    if done.returncode != 0 or not _same_program(code, done.stdout):
        return code
    return done.stdout


def format_chapter(text: str) -> str:
    def cell(match: re.Match) -> str:
        options, code = _split_options(match.group(1))
        head = match.group(0)[: match.start(1) - match.start(0)]
        return head + wrap_captions(options) + format_code(code) + "```"

    return CELL.sub(cell, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", type=Path, nargs="+")
    parser.add_argument("--check", action="store_true", help="list what would change, write nothing")
    args = parser.parse_args()
    changed = []
    for path in args.chapters:
        text = path.read_text(encoding="utf-8")
        new = format_chapter(text)
        if new != text:
            changed.append(path)
            if not args.check:
                tmp = path.with_suffix(".tmp")
                tmp.write_text(new, encoding="utf-8")
                tmp.replace(path)
    for path in changed:
        print(path)
    sys.exit(1 if args.check and changed else 0)


if __name__ == "__main__":
    main()
