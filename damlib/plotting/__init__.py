"""The book's figures: one matplotlib style (:mod:`.style`) and, per work, the drawing functions
that both a chapter's figure and its explorer call, so that the two cannot disagree."""

from . import figure_data
from .style import COLORS, STYLE, label_panels, subplots, to_numpy, use_style

# In a notebook every displayed figure carries the arrays it draws (damlib.plotting.figure_data).
figure_data.register()

__all__ = ["COLORS", "STYLE", "label_panels", "subplots", "to_numpy", "use_style"]
