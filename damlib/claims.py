"""The claims table of a chapter: each check of a paper's claim beside its control.

A chapter adds one row per claim: the claim, its criterion, the value it measured and
whether the criterion holds, and the control run that the claim says must fail (its
value and whether it does fail the same criterion). ``frame()`` is the table the page
shows; the chapter asserts on its columns.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = (
    "claim",
    "criterion",
    "value",
    "holds",
    "control",
    "control_value",
    "control_fails",
)


class ClaimsFrame(pd.DataFrame):
    """A DataFrame that displays every text in full.

    pandas cuts a cell at ``display.max_colwidth`` characters (50 by default), which would
    cut most claims and criteria, and in a terminal drops the columns that do not fit; this
    frame lifts both limits for its own display only. Indexing it (``table["holds"]``,
    ``table.loc[...]``) works as on any DataFrame.
    """

    @property
    def _constructor(self):
        # rows selected from the table (an assertion's message) display in full too
        return ClaimsFrame

    def __repr__(self) -> str:
        with _in_full():
            return super().__repr__()

    def _repr_html_(self) -> str | None:
        # the page shows the table without its row numbers (an index of its own stays), and with
        # headers that can wrap ("control value"), so that it fits the column
        shown = pd.DataFrame(self).rename(columns=lambda name: str(name).replace("_", " "))
        with _in_full():
            return shown.to_html(index=not isinstance(self.index, pd.RangeIndex), notebook=True)


def _in_full():
    """The display options under which a table shows every text and every column."""
    return pd.option_context("display.max_colwidth", None, "display.max_columns", None)


class Claims:
    """Collects the rows of a claims table, in the order they are added."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(
        self,
        claim: str,
        criterion: str,
        value,
        holds,
        control: str | None = None,
        control_value=None,
        control_fails=None,
    ) -> None:
        """Add one claim.

        Parameters
        ----------
        claim, criterion : str
            What the paper says, and the test on ``value`` that checks it here.
        value
            The measured number (or count) the criterion is applied to.
        holds : bool-like
            Whether the criterion holds for ``value``.
        control : str, optional
            The run the claim says must fail the criterion (``None``: no control, for
            example a numerical identity that tests the code).
        control_value
            The control's number, measured the same way.
        control_fails : bool-like, optional
            Whether the control fails the criterion (``None`` where not run).
        """
        if not isinstance(claim, str) or not claim:
            raise ValueError(f"claim must be a non-empty string, got {claim!r}")
        if not isinstance(criterion, str) or not criterion:
            raise ValueError(f"criterion must be a non-empty string, got {criterion!r}")
        if claim in self.claims():
            raise ValueError(f"claim {claim!r} is already in the table")
        if control is None and control_fails is not None:
            raise ValueError("control_fails needs a control")
        self.rows.append(
            dict(
                claim=claim,
                criterion=criterion,
                value=value,
                holds=bool(holds),
                control=control,
                control_value=control_value,
                control_fails=None if control_fails is None else bool(control_fails),
            )
        )

    def claims(self) -> list[str]:
        """The claims added so far, in order."""
        return [row["claim"] for row in self.rows]

    def frame(self) -> ClaimsFrame:
        """The table: one row per claim, the columns of ``COLUMNS``, texts shown in full."""
        return ClaimsFrame(self.rows, columns=list(COLUMNS))
