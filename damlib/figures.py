"""The registry of regenerated paper figures: one entry per figure of the book.

The book's figure index (``book/intro.md``) and its gallery (``book/gallery.md``) are generated
from this list at build time by ``book/_ext/figures.py``; a figure named here and missing from the
build is a build warning (an error in CI), and ``tests/test_figures.py`` checks that every entry
has a figure cell in a chapter of the table of contents, and every figure cell an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPERS = {
    "gd": "Cabannes, Şimşek, Bietti (2024)",
    "dam": "Thériault, Tantari (2026)",
    "hpt": "Holtzman, Krotov, Hanin (2026)",
}


@dataclass(frozen=True)
class PaperFigure:
    """One regenerated figure.

    ``paper``: key of :data:`PAPERS`; ``number``: what the paper calls it ("Fig. 3",
    "Thm 1"); ``label``: the book figure's name (``mystnb: figure: name:``); ``summary``: one
    line of what it shows.
    """

    paper: str
    number: str
    label: str
    summary: str

    @property
    def caption_label(self) -> str:
        """How the book numbers the figure, in its caption and references: "hpt Fig. 16"."""
        return f"{self.paper} {self.number}"


FIGURES: tuple[PaperFigure, ...] = (
    PaperFigure("gd", "Thm 1", "fig-gd-particles",
                "Scores of W and the free particles coincide under GD and SGD"),
    PaperFigure("gd", "Thms 2, 3", "fig-gd-orthogonal",
                "Orthogonal embeddings: margins grow like log t, Lambert-W closed form, GD loss bound"),
    PaperFigure("gd", "Thm 4, Prop. 5", "fig-gd-interference",
                "Two interfering tokens: log growth, bounded orthogonal part, loss spikes"),
    PaperFigure("gd", "Fig. 3", "fig-gd-tradeoff",
                "Learning-rate trade-off: first step of perfect accuracy over p1, eta and alpha"),
    PaperFigure("gd", "Fig. 1", "fig-gd-levels",
                "Loss level lines and 0-1 loss in the two-token plane, three correlations"),
    PaperFigure("gd", "Fig. 2", "fig-gd-spikes",
                "Loss spikes: GD trajectories for eta = 10 and 1 drawn on the landscape"),
    PaperFigure("gd", "Fig. 4", "fig-gd-capacity",
                "Limited capacity (d = 2 < N): calibration gap, catastrophic forgetting under SGD"),
    PaperFigure("gd", "Fig. 5", "fig-gd-sharpness",
                "Hessian operator norm and sharpness along GD, with the 2/eta line"),
    PaperFigure("gd", "Fig. 6", "fig-gd-dimension",
                "Margins for d in {3, 5, 10} and eta in {3, 10, 20}, Zipf frequencies"),
    PaperFigure("gd", "Fig. 7", "fig-gd-transformer",
                "Induction-head transformer: loss and associative-memory margins, W_O^2 alone and all three"),
    PaperFigure("gd", "Fig. 7 (T = 256, stored)", "fig-gd-transformer-stored",
                "The same at the paper's sequence length and dimensions, 256 sequences, from the results store"),
    PaperFigure("dam", "slide \"Our DAM\"", "fig-dam-memories",
                "Memories of the vMF model and of a Krotov-Hopfield DAM become digit prototypes (with a control)"),
    PaperFigure("dam", "slide \"Fixed points\"", "fig-dam-fixed-points",
                "Copying memories keeps a stationary point stationary (gradient to round-off)"),
    PaperFigure("dam", "slide \"Fixed points\" (saddles)", "fig-dam-saddles",
                "Smallest splitting eigenvalue against beta: the copied point is a saddle above a threshold"),
    PaperFigure("dam", "slide \"Split memories\"", "fig-dam-splitting",
                "Wall time to a test accuracy, splitting against scratch, speed-up against P_max"),
    PaperFigure("dam", "paper Fig. 5 (stored runs)", "fig-dam-splitting-small",
                "The authors' small-data protocol: grown by splitting against no splitting and scratch, seeds"),
    PaperFigure("dam", "paper Fig. 6 (stored runs)", "fig-dam-splitting-speedup",
                "The authors' speed-up protocol: whole-run wall time, compute, accuracy against P_max, seeds"),
    PaperFigure("dam", "last slide", "fig-dam-saddle-point",
                "Saddle-point equations iterated to a fixed point against memories trained by cross-entropy"),
    PaperFigure("hpt", "Table 1", "fig-hpt-table1",
                "First updates stay O(1) under every row; controls fail"),
    PaperFigure("hpt", "Fig. 1", "fig-hpt-linear-collapse",
                "Loss, pre-activations and Gram spectrum against the step across sizes, linear"),
    PaperFigure("hpt", "Fig. 2", "fig-hpt-relu-centring",
                "Centring keeps the optimum and the stability edge of ReLU DenseAMs"),
    PaperFigure("hpt", "Fig. 3", "fig-hpt-mnist-sgd",
                "Transfer across coarse-graining scales of MNIST, SGD"),
    PaperFigure("hpt", "Fig. 4", "fig-hpt-mnist-adam",
                "MNIST scales and Adam transfer"),
    PaperFigure("hpt", "Fig. 5", "fig-hpt-linear-transfer",
                "Learning-rate transfer, linear, SGD"),
    PaperFigure("hpt", "Fig. 6", "fig-hpt-linear-dynamics",
                "Training dynamics at several learning rates, linear"),
    PaperFigure("hpt", "Fig. 7", "fig-hpt-relu-spike",
                "Spike and bulk of the hidden Gram matrix, centred or not"),
    PaperFigure("hpt", "Fig. 8", "fig-hpt-relu-loss",
                "Final loss and dynamics, ReLU, centred or not"),
    PaperFigure("hpt", "Fig. 9", "fig-hpt-relu-powers",
                "Transfer for ReLU^p, several powers p, SGD and Adam"),
    PaperFigure("hpt", "Fig. 10", "fig-hpt-adam-transfer",
                "Adam transfer, centred ReLU"),
    PaperFigure("hpt", "Fig. 11", "fig-hpt-adam-centring",
                "Adam, uncentred against centred"),
    PaperFigure("hpt", "Fig. 11 (stored)", "fig-hpt-adam-stored",
                "Adam, uncentred against centred, to D = 512 (stored run)"),
    PaperFigure("hpt", "Fig. 12", "fig-hpt-adam-update",
                "Size of the Adam update, uncentred against centred"),
    PaperFigure("hpt", "Fig. 13", "fig-hpt-softmax-centring",
                "Softmax with Adam, uncentred against centred"),
    PaperFigure("hpt", "Fig. 13 (stored)", "fig-hpt-softmax-stored",
                "Softmax with Adam, uncentred against centred, to D = 512 (stored run)"),
    PaperFigure("hpt", "Fig. 14", "fig-hpt-softmax-transfer",
                "Softmax: SGD instability against Adam transfer"),
    PaperFigure("hpt", "Fig. 15", "fig-hpt-softmax-keff",
                "Softmax: divergence in time and the participation ratio"),
    PaperFigure("hpt", "Fig. 16", "fig-hpt-k-only",
                "Transfer when only the width K grows"),
    PaperFigure("hpt", "Fig. 16 (stored)", "fig-hpt-k-only-stored",
                "K-only transfer to K = 16384, Table 1 against the proportional scales (stored run)"),
    PaperFigure("hpt", "Fig. 17", "fig-hpt-mnist-consistency",
                "Consistent denoising across MNIST scales"),
)


def by_label() -> dict[str, PaperFigure]:
    """The registry keyed by figure label."""
    return {fig.label: fig for fig in FIGURES}
