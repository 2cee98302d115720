"""The book's figures: one matplotlib style (:mod:`.style`) and, per work, the drawing functions
that both a chapter's figure and its explorer call, so that the two cannot disagree."""

from .style import COLORS, STYLE, label_panels, subplots, to_numpy, use_style

__all__ = ["COLORS", "STYLE", "label_panels", "subplots", "to_numpy", "use_style"]
