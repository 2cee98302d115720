"""What a chapter's code uses of damlib, as the book's api_links extension reads it."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import api_links  # noqa: E402

CODE = """
import damlib
from damlib import memory as am, train
from damlib.plotting import subplots
from damlib.dam import model as dm
E = am.sphere_embeddings(3, 2, generator=damlib.generator(0))
fig, axes = subplots(1, 2)
m = dm.DAM
x = dm._normalise(E)
runs = train.sweep
loss = 3
"""


def test_used_follows_the_imports():
    uses = api_links.used(CODE)
    assert list(uses) == [
        "damlib.memory.sphere_embeddings", "damlib.config.generator",
        "damlib.plotting.style.subplots", "damlib.dam.model.DAM", "damlib.train.sweep",
    ]  # in the order of first use; the private _normalise and the local `loss` are left out
    assert uses["damlib.plotting.style.subplots"] == "subplots"


def test_resolve_reads_prose_mentions():
    names = api_links.bindings(CODE)
    assert api_links.resolve("am.sphere_embeddings", names) == "damlib.memory.sphere_embeddings"
    assert api_links.resolve("dm.DAM", names) == "damlib.dam.model.DAM"
    assert api_links.resolve("am.nothing", names) is None
    assert api_links.resolve("loss", names) is None
    assert api_links.CALL.match("am.loss(W, E)").group(1) == "am.loss"


def test_every_chapter_uses_damlib():
    chapters = sorted(ROOT.glob("book/[gdh]*/*.md"))
    assert chapters and all(api_links.used(api_links.chapter_code(p)) for p in chapters)
