"""The claims table that chapters build and assert on."""

from html import escape

import pandas as pd
import pytest

from damlib.claims import COLUMNS, Claims


def test_frame_keeps_rows_in_order_with_the_columns():
    claims = Claims()
    claims.add("a grows", "end > start", 2.0, 2.0 > 0, "untrained", 0.0, True)
    claims.add("b is exact", "error < 1e-12", 1e-15, True)
    frame = claims.frame()
    assert tuple(frame.columns) == COLUMNS
    assert frame["claim"].tolist() == ["a grows", "b is exact"]
    assert frame["holds"].tolist() == [True, True]
    assert frame["control_fails"].notna().tolist() == [True, False]
    assert bool(frame.loc[0, "control_fails"])
    assert pd.isna(frame.loc[1, "control"])


def test_truth_values_are_plain_bools():
    import numpy as np
    import torch

    claims = Claims()
    claims.add("c", "x > 0", 1.0, np.bool_(True), "ctl", -1.0, torch.tensor(False))
    assert claims.rows[0]["holds"] is True
    assert claims.rows[0]["control_fails"] is False


def test_empty_table_has_the_columns():
    assert tuple(Claims().frame().columns) == COLUMNS


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(claim="", criterion="x", value=1, holds=True), "claim"),
        (dict(claim="c", criterion="", value=1, holds=True), "criterion"),
        (dict(claim="c", criterion="x", value=1, holds=True, control_fails=True),
         "control"),
    ],
)
def test_bad_rows_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Claims().add(**kwargs)


def test_a_claim_is_added_once():
    claims = Claims()
    claims.add("c", "x > 0", 1, True)
    with pytest.raises(ValueError, match="already"):
        claims.add("c", "x > 0", 2, True)


def test_the_display_shows_the_texts_in_full():
    claim = "uncentred: the largest eigenvalue of the hidden Gram matrix grows with the size"
    criterion = "lambda_1 / lambda_2 at initialisation, largest / smallest size > 1.5"
    assert len(claim) > 50 and len(criterion) > 50  # pandas cuts cells at 50 by default
    claims = Claims()
    claims.add(claim, criterion, 2.0, True, "centred, the same measure " * 3, 1.0, True)
    frame = claims.frame()
    assert isinstance(frame, pd.DataFrame)
    for shown in (frame, frame[frame["holds"]], frame.set_index("claim")):
        assert criterion in repr(shown) and escape(criterion) in shown._repr_html_()
    assert claim in repr(frame) and escape(claim) in frame._repr_html_()
    # only the table's display: the option is left as it was
    assert pd.get_option("display.max_colwidth") == 50
    assert "..." in repr(pd.DataFrame({"claim": [claim]}))


def test_the_page_shows_wrapping_headers_and_no_row_numbers():
    claims = Claims()
    claims.add("a claim", "x > 0", 2.0, True, "a control", -1.0, True)
    claims.add("another claim", "x > 0", 3.0, True)
    html = claims.frame()._repr_html_()
    assert "<th>control value</th>" in html and "control_value" not in html
    assert "<th>0</th>" not in html and "<th>1</th>" not in html
    # an index of the chapter's own is kept
    assert "<th>a claim</th>" in claims.frame().set_index("claim")._repr_html_()
    assert claims.frame()["control_value"].iloc[0] == -1.0      # the columns keep their names
