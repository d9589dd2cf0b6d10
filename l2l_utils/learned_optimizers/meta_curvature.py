"""Meta-Curvature (Park & Oliva 2019, "Meta-Curvature"), MetaMD's MetaCur baseline (Tables 1, 3, 6, 9).

Park & Oliva transform each layer's gradient G ∈ R^{Co×Ci×d} (a convolution's kernel flattened to d = kh·kw) by
three meta-learned matrices, one per tensor mode (their Eq. 4–6, the mode-n product ×n of Kolda & Bader):

    M_mc(G) = G ×₃ M_f ×₂ M_i ×₁ M_o,   (X ×ₙ U)_{…j…} = Σ_k U_{jk} X_{…k…},

so a fully connected layer gets M_o G M_iᵀ, and vec(M_mc(G)) = (M_f ⊗ M_i ⊗ M_o) vec(G) with column-major vec
(their Eq. 7: a Kronecker-factored preconditioner); the inner update is θ ← θ − α·M_mc(∇θ) (their Eq. 3). The
matrices start at the identity (their §4: "initialised as identity"), so an untrained Meta-Curvature is SGD at α.

What the MetaMD tables use (ours where the papers are silent): MetaMD compares the optimisers on networks trained
from a fresh initialisation, so only the curvature matrices are learned (no MAML initialisation, as for this
replication's Meta-SGD); they are meta-trained on the meta-train tasks by differentiating the training loss through
the unrolled inner loop (the same truncated-BPTT protocol as Meta-SGD); α is the learning rate of the MetaMD grid
(App. A.7) at meta-test, and ``lr`` during meta-training. Every tensor of rank k > 2 is flattened behind its first
two modes (so a 1×1 convolution gets a 1×1 M_f). A 1-D tensor (bias, batch-norm scale or shift) has no matrix in Park &
Oliva's Eq. 4–6; ``vectors`` says what it gets: "diagonal" (default) a learned per-element scale (diagonal M_o, n
meta-parameters), "full" a full M_o (n²). "diagonal" is the convention MetaMD's Table 9 count implies: full M_o, M_i,
M_f for the 20 convolutions of ResNet-18 (2,965,117) plus a diagonal for its 40 batch-norm vectors (2·4,800 = 9,600)
is exactly 2,974,717, the classifier not counted (as in its Meta-SGD count 11,176,512); "full" gives 6,446,717.
"""

from __future__ import annotations

import copy
from typing import Mapping

import torch
from torch import nn

from ..optimizers.update_rules import AdditiveRule

MODES = ("out", "in", "filter")
VECTORS = ("diagonal", "full")


def mode_sizes(shape: torch.Size) -> tuple[int, ...]:
    """The sizes of the modes a tensor's gradient is multiplied along: (Co,), (Co, Ci) or (Co, Ci, kh·kw…)."""
    if len(shape) == 0:
        raise ValueError("Meta-Curvature needs tensors of rank >= 1")
    if len(shape) <= 2:
        return tuple(shape)
    return int(shape[0]), int(shape[1]), int(torch.Size(shape[2:]).numel())


def curvature_transform(grad: torch.Tensor, matrices: list[torch.Tensor]) -> torch.Tensor:
    """G ×₁ M_o ×₂ M_i ×₃ M_f for a batch of gradients ``grad`` (runs, *shape) (Park & Oliva Eq. 6)."""
    runs, shape = grad.shape[0], grad.shape[1:]
    g = grad.reshape(runs, *mode_sizes(shape))
    # one mode at a time (a single three-operand einsum may form the outer product of the matrices first)
    out = torch.einsum("ao,ro...->ra...", matrices[0], g)
    if len(matrices) > 1:
        out = torch.einsum("bi,rai...->rab...", matrices[1], out)
    if len(matrices) > 2:
        out = torch.einsum("cf,rabf->rabc", matrices[2], out)
    return out.reshape(runs, *shape)


class MetaCurvature(AdditiveRule):
    """θ ← θ − lr · M_mc(∇θ) with learned M_o, M_i, M_f per tensor of ``shapes``; a 1-D tensor gets a diagonal or a
    full M_o as ``vectors`` says (module docstring)."""

    def __init__(self, shapes: Mapping[str, torch.Size], lr: float = 0.1, vectors: str = "diagonal"):
        super().__init__()
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if vectors not in VECTORS:
            raise ValueError(f"vectors must be one of {VECTORS}, got {vectors!r}")
        self.lr = float(lr)
        self.vectors = vectors
        self.shapes = {name: torch.Size(s) for name, s in shapes.items()}
        self.keys = {name: name.replace(".", "__") for name in shapes}
        self.diagonal = {name for name, s in self.shapes.items() if len(s) == 1 and vectors == "diagonal"}
        self.matrices = nn.ParameterDict({
            f"{key}__{mode}": nn.Parameter(torch.ones(size) if name in self.diagonal else torch.eye(size))
            for name, key in self.keys.items() for mode, size in zip(MODES, mode_sizes(self.shapes[name]))})

    def factors(self, name: str) -> list[torch.Tensor]:
        """[M_o, M_i, M_f] (as many as the tensor has modes) of parameter ``name``; [diag(M_o)] for a 1-D tensor
        under ``vectors="diagonal"``."""
        key = self.keys[name]
        return [self.matrices[f"{key}__{mode}"] for mode in MODES if f"{key}__{mode}" in self.matrices]

    def transform(self, grads: Mapping[str, torch.Tensor]) -> dict:
        """M_mc(∇) for every tensor (no learning rate)."""
        return {k: g * self.factors(k)[0] if k in self.diagonal else curvature_transform(g, self.factors(k))
                for k, g in grads.items()}

    def forward(self, grads, state, groups=None):
        return {k: -self.lr * v for k, v in self.transform(grads).items()}, state

    def with_lr(self, lr: float) -> "MetaCurvature":
        """The same learned matrices (shared, not copied) at another step size α (the meta-test grid, App. A.7)."""
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        view = copy.copy(self)
        view.lr = float(lr)
        return view

    @property
    def num_meta_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def transfer(self, shapes: Mapping[str, torch.Size]) -> "MetaCurvature":
        """The learned matrices for a network with other tensor sizes (MetaMD §5.2 high resolution: 20-class
        meta-training tasks, other class counts at meta-test; ours): every matrix whose size matches is kept, any
        other (a classifier's output mode) is the identity."""
        new = MetaCurvature(shapes, self.lr, self.vectors).to(next(self.parameters()).device)
        with torch.no_grad():
            for key, target in new.matrices.items():
                if key in self.matrices and self.matrices[key].shape == target.shape:
                    target.copy_(self.matrices[key])
        return new
