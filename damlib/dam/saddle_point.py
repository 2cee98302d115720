"""The saddle-point equations of the slides, iterated to a fixed point."""

from __future__ import annotations

import torch

from .. import checks
from ..data import _take_rows
from .model import DAM, _check_data, _normalise, check_single, overlaps


def saddle_point_iteration(
    model: DAM, x: torch.Tensor, y: torch.Tensor, *, max_iter: int = 500, tol: float = 1e-12
) -> tuple[DAM, list]:
    """Iterate the saddle-point equations of the slides with every training digit its own archetype.

    With ``sigma_{x mu}`` the responsibility of memory ``mu`` for digit ``x`` given its label
    (softmax over ``mu`` of ``beta w^mu . x + log g^mu_{y_x}``)::

        xbar^mu = (1/n) sum_x sigma_{x mu} x,    ybar^mu_y = (1/n) sum_x 1[y_x = y] sigma_{x mu},
        w^mu = xbar^mu / |xbar^mu|,              g^mu_y = ybar^mu_y,

    the overlap factor of the slides taken as 1 (a point estimate). Its fixed points are the stationary
    points of the joint log-likelihood. Returns the model at the fixed point and the largest change of a
    memory per iteration. Stops when the change is below ``tol``.
    """
    checks.positive_int("max_iter", max_iter)
    checks.positive("tol", tol)
    check_single(model, "saddle_point_iteration")
    _check_data(model, x, y)
    onehot = torch.nn.functional.one_hot(y, model.n_classes).to(x.dtype)  # (n, C)
    w, g = model.w, model.class_weights
    changes = []
    for it in range(max_iter):
        s = model.beta * overlaps(w, x)  # (n, P)
        log_g = torch.where(g > 0, g, torch.ones_like(g)).log().masked_fill(g <= 0, float("-inf"))
        sigma = (s + _take_rows(log_g.T.contiguous(), y)).softmax(-1)  # (n, P)
        xbar = sigma.T @ x / len(x)
        new_w = _normalise(xbar)
        g = (sigma.T @ onehot) / len(x)  # ybar, sums to 1
        changes.append((new_w - w).norm(dim=-1).max().item())
        w = new_w
        checks.finite(it + 1, w, "memories")
        if changes[-1] < tol:
            break
    logits = torch.where(g > 0, g, torch.ones_like(g)).log().masked_fill(g <= 0, float("-inf"))
    return DAM(w, logits, model.beta), changes
