"""The book's figures: one matplotlib style (:mod:`.style`) and, per work, the drawing functions
that both a chapter's figure and its explorer call, so that the two cannot disagree."""

from . import figure_data
from .style import (
    COLORS,
    COLUMN_WIDTH,
    MIN_FONT_PT,
    STYLE,
    figure,
    figure_legend,
    label_panels,
    size_colors,
    subplots,
    to_numpy,
    use_style,
)

# In a notebook every displayed figure carries the arrays it draws (damlib.plotting.figure_data).
figure_data.register()

__all__ = ["COLORS", "COLUMN_WIDTH", "MIN_FONT_PT", "STYLE", "figure", "figure_legend",
           "label_panels", "size_colors", "subplots", "to_numpy", "use_style"]
