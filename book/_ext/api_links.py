"""Link each chapter to the API reference of the damlib functions and classes its code uses.

The rule, checked in the build (an unresolved link is a warning, so ``-W`` fails) and by
``tests/browser/test_book.py``: every public damlib function or class that a page's code cells
reach through their imports (``am.loss`` after ``from damlib import memory as am``,
``subplots`` after ``from damlib.plotting import subplots``) links to its API entry from the
page. The prose's first inline-code mention of it (```am.loss``` or ```am.loss(W, ...)```) becomes
that link; and a closing paragraph, "damlib on this page", links every one of them by its full
name, in the order the code first uses them, so a function that the prose never names is linked
too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

CALL = re.compile(r"^([A-Za-z_][\w.]*)(\(.*\))?$")


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def bindings(code: str) -> dict[str, object]:
    """``{name: damlib module or object}`` bound by the import statements of ``code``."""
    names: dict[str, object] = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "damlib":
                    target = alias.name if alias.asname else "damlib"
                    names[alias.asname or "damlib"] = _import(target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "damlib":
            module = _import(node.module)
            for alias in node.names:
                obj = getattr(module, alias.name, None) or _import(f"{node.module}.{alias.name}")
                names[alias.asname or alias.name] = obj
    return {k: v for k, v in names.items() if v is not None}


def canonical(obj) -> str | None:
    """``module.qualname`` of a public damlib function or class (where autodoc puts it), else None."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return None
    name = f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"
    if name.split(".")[0] != "damlib" or any(p.startswith("_") for p in name.split(".")):
        return None
    return name


def resolve(dotted: str, names: dict[str, object]) -> str | None:
    """The canonical name of what ``dotted`` (``am.loss``) names under ``names``, or None."""
    head, *rest = dotted.split(".")
    obj = names.get(head)
    for attr in rest:
        if obj is None or canonical(obj):
            return None  # an attribute of a function or class: not followed
        obj = getattr(obj, attr, None)
    return canonical(obj)


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def used(code: str) -> dict[str, str]:
    """``{canonical name: how the code first writes it}`` of every damlib function or class
    that ``code`` uses, in the order of first use."""
    names = bindings(code)
    found: dict[str, tuple[tuple[int, int], str]] = {}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.Attribute, ast.Name)) and (text := _dotted(node)):
            # the longest prefix that names a function or class (am.DAM.loss -> am.DAM)
            parts = text.split(".")
            for n in range(1, len(parts) + 1):
                if name := resolve(".".join(parts[:n]), names):
                    where = (node.lineno, node.col_offset)
                    if name not in found or where < found[name][0]:
                        found[name] = (where, ".".join(parts[:n]))
                    break
    return {name: text for name, (_, text) in sorted(found.items(), key=lambda kv: kv[1][0])}


def chapter_code(path) -> str:
    """The code cells of a Jupytext MyST chapter, magics left out, as one program."""
    import jupytext

    notebook = jupytext.read(path)
    lines = [line for cell in notebook.cells if cell.cell_type == "code"
             for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def _xref(target: str, text: str) -> addnodes.pending_xref:
    ref = addnodes.pending_xref("", refdomain="py", reftype="obj", reftarget=target,
                                refexplicit=True, refwarn=True)
    ref += nodes.literal(text, text, classes=["xref", "py", "py-obj"])
    return ref


def _link(app, doctree) -> None:
    path = Path(app.env.doc2path(app.env.docname))
    if path.suffix != ".md" or "kernelspec:" not in path.read_text(encoding="utf-8")[:800]:
        return
    code = chapter_code(path)
    uses, names = used(code), bindings(code)
    if not uses:
        return
    linked = set()
    for literal in list(doctree.findall(nodes.literal)):
        if literal.parent is None or isinstance(literal.parent, (addnodes.pending_xref,
                                                                 nodes.reference)):
            continue
        match = CALL.match(literal.astext())
        target = match and resolve(match.group(1), names)
        if target in uses and target not in linked:
            literal.replace_self(_xref(target, literal.astext()))
            linked.add(target)
    closing = nodes.paragraph("", "", classes=["api-links"])
    closing += nodes.strong("", "damlib on this page: ")
    for i, target in enumerate(uses):
        closing += [nodes.Text(", ")] if i else []
        closing += _xref(target, target.removeprefix("damlib."))
    sections = [s for s in doctree.children if isinstance(s, nodes.section)]
    (sections[-1] if sections else doctree).append(closing)


def setup(app):
    app.connect("doctree-read", _link)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
