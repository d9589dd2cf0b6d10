"""Meta Mirror Descent (MetaMD): a learned Kronecker-factored mirror map (MetaMD paper §4, App. A).

φ_M(θ) = ½ θᵀMθ with M block diagonal, one block per layer ζ, M_ζ = A_ζ ⊗ B_ζ, A_ζ = a_ζa_ζᵀ + I_κ,
B_ζ = b_ζb_ζᵀ + I_ι (§4.2). A layer's parameters form one ι × κ matrix G_ζ: the weight reshaped to
(out, in·k·k) with the bias, if any, as one more column (a 1-D parameter such as a batch-norm scale is a
column of its own). With column-major vec, (A ⊗ B) vec(G) = vec(B G A), so the mirror-descent step of
App. A.2, θ ← θ − η M⁻¹∇L, is computed per layer as B⁻¹ G A⁻¹ without ever forming A ⊗ B; the two
inverses are exact by Sherman-Morrison, (vvᵀ + I)⁻¹ = I − vvᵀ/(1 + vᵀv) (the paper uses an SVD; the
result is the same).

Closed forms used below (each checked against dense matrices in the tests):
* Bregman divergence (Eq. 2) B_φ(θ‖θ') = ½ (θ − θ')ᵀ M (θ − θ') = ½ Σ_ζ ⟨D_ζ, B_ζ D_ζ A_ζ⟩_F.
* ‖M − I‖²_F = Σ_ζ ‖A‖²_F‖B‖²_F − 2 tr(A) tr(B) + κι (App. A.4 with the erratum noted in the notebook:
  ‖A ⊗ B‖²_F = Σ_ij v_i(A)² v_j(B)², not Σ_ij v_i(A) v_j(B)), computed term by term without cancellation
  (:meth:`KroneckerMirrorMap.frobenius_distance`).
* λ = min_ζ v_min(A_ζ) v_min(B_ζ) (App. A.5), v_min(A) = 1 when κ > 1, else 1 + a².
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from ..optimizers.update_rules import AdditiveRule


def layer_blocks(named_shapes: Mapping[str, torch.Size]) -> dict[str, list[str]]:
    """Group parameter names by layer (``"conv1.weight"``, ``"conv1.bias"`` -> ``"conv1"``)."""
    blocks: dict[str, list[str]] = {}
    for name in named_shapes:
        blocks.setdefault(name.rsplit(".", 1)[0] if "." in name else name, []).append(name)
    return blocks


class KroneckerMirrorMap(nn.Module):
    """The learned mirror map φ_M: factors a_ζ ∈ R^κ, b_ζ ∈ R^ι for every layer ζ (§4.2).

    ``init_norm``: each factor starts as N(0, init_norm²/len) per entry, so ‖a‖ ≈ ‖b‖ ≈ init_norm and M
    starts near I (mirror descent near SGD). The paper does not say; at a = b = 0 the gradient of M with
    respect to the factors vanishes, so they cannot start at exactly zero.
    """

    def __init__(self, named_shapes: Mapping[str, torch.Size], init_norm: float = 0.1,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.blocks = layer_blocks(named_shapes)
        self.shapes = {k: torch.Size(v) for k, v in named_shapes.items()}
        self.dims = {}
        self.a, self.b = nn.ParameterDict(), nn.ParameterDict()
        for layer, names in self.blocks.items():
            rows = self.shapes[names[0]][0]
            for name in names:
                if self.shapes[name][0] != rows:
                    raise ValueError(f"parameters of layer {layer!r} disagree on the output size: {names}")
            cols = sum(self.shapes[n][1:].numel() for n in names)
            key = layer.replace(".", "__")
            self.dims[layer] = (rows, cols, key)
            self.a[key] = nn.Parameter(torch.randn(cols, generator=generator) * init_norm / cols**0.5)
            self.b[key] = nn.Parameter(torch.randn(rows, generator=generator) * init_norm / rows**0.5)

    @property
    def num_meta_parameters(self) -> int:
        """Σ_ζ (κ_ζ + ι_ζ): the number of meta-parameters (Table 9)."""
        return sum(p.numel() for p in self.parameters())

    def transfer(self, named_shapes: Mapping[str, torch.Size]) -> "KroneckerMirrorMap":
        """This M for a network with other layer sizes, e.g. meta-trained on 20-class tasks and deployed on a
        256-class dataset (MetaMD §5.2, high resolution; the paper does not say how). A factor is kept where its
        size matches the new block and set to zero (an identity factor) where it does not: a classifier keeps its
        input-side factor a, and its row factor b becomes 0 (B = I), as its rows were random classes."""
        new = KroneckerMirrorMap(named_shapes, init_norm=0.0).to(next(self.parameters()).device)
        with torch.no_grad():
            for layer, (rows, cols, key) in new.dims.items():
                if layer in self.dims:
                    old_rows, old_cols, old_key = self.dims[layer]
                    if old_cols == cols:
                        new.a[key].copy_(self.a[old_key])
                    if old_rows == rows:
                        new.b[key].copy_(self.b[old_key])
        return new

    # ------------------------------------------------------------------ layer matrices
    def matrix(self, tensors: Mapping[str, torch.Tensor], layer: str) -> torch.Tensor:
        """G_ζ: the layer's tensors as one (…, ι, κ) matrix (leading dims kept, e.g. a run dimension)."""
        names = self.blocks[layer]
        rows = self.dims[layer][0]
        lead = tensors[names[0]].shape[: tensors[names[0]].dim() - len(self.shapes[names[0]])]
        return torch.cat([tensors[n].reshape(*lead, rows, -1) for n in names], dim=-1)

    def unmatrix(self, matrix: torch.Tensor, layer: str) -> dict:
        names = self.blocks[layer]
        sizes = [self.shapes[n][1:].numel() for n in names]
        lead = matrix.shape[:-2]
        return {n: part.reshape(*lead, *self.shapes[n]) for n, part in zip(names, matrix.split(sizes, dim=-1))}

    def factors(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.dims[layer][2]
        return self.a[key], self.b[key]

    def dense_block(self, layer: str) -> torch.Tensor:
        """M_ζ = A_ζ ⊗ B_ζ as a dense matrix (for tests and small problems only)."""
        a, b = self.factors(layer)
        A = torch.outer(a, a) + torch.eye(len(a), dtype=a.dtype, device=a.device)
        B = torch.outer(b, b) + torch.eye(len(b), dtype=b.dtype, device=b.device)
        return torch.kron(A, B)

    # ------------------------------------------------------------------ the update (App. A.2)
    def precondition(self, grads: Mapping[str, torch.Tensor]) -> dict:
        """M⁻¹∇ per layer, B⁻¹ G A⁻¹, by Sherman-Morrison on both factors."""
        out = {}
        for layer in self.blocks:
            a, b = self.factors(layer)
            G = self.matrix(grads, layer)
            G = G - b[:, None] * (b @ G)[..., None, :] / (1.0 + b @ b)  # B⁻¹ G
            G = G - (G @ a)[..., :, None] * a / (1.0 + a @ a)  # (B⁻¹ G) A⁻¹
            out.update(self.unmatrix(G, layer))
        return out

    def step(self, params: Mapping[str, torch.Tensor], grads: Mapping[str, torch.Tensor], lr: float) -> dict:
        """θ_{t+1} = θ_t − η M⁻¹ ∇L(θ_t), the closed-form solution of Eq. 14-15 (App. A.2)."""
        update = self.precondition(grads)
        return {k: params[k] - lr * update[k] for k in params}

    # ------------------------------------------------------------------ meta-objective terms (Eq. 8)
    def bregman(self, theta: Mapping[str, torch.Tensor], theta1: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """B_φM(θ‖θ1) = ½ Σ_ζ ⟨D_ζ, B_ζ D_ζ A_ζ⟩ with D = θ − θ1 (per run if tensors have a run dimension)."""
        total = 0.0
        for layer in self.blocks:
            a, b = self.factors(layer)
            D = self.matrix(theta, layer) - self.matrix(theta1, layer)
            DA = D + (D @ a)[..., :, None] * a  # D A
            BDA = DA + b[:, None] * (b @ DA)[..., None, :]  # B D A
            total = total + 0.5 * (D * BDA).sum(dim=(-2, -1))
        return total

    def frobenius_distance(self) -> torch.Tensor:
        """‖M − I‖_F from the factors (App. A.4, corrected), as a sum of non-negative terms.

        M_ζ − I = aaᵀ⊗I + I⊗bbᵀ + aaᵀ⊗bbᵀ, so with α = ‖a‖², β = ‖b‖²: ‖M_ζ − I‖²_F = ια² + κβ² + α²β² + 2αβ + 2α²β
        + 2αβ². (The equal form ‖A‖²‖B‖² − 2 tr A tr B + κι of App. A.4 subtracts numbers of size κι: in float32 near
        M = I it loses every digit, and its gradient is noise.)
        """
        total = 0.0
        for layer, (rows, cols, _) in self.dims.items():
            a, b = self.factors(layer)
            na, nb = a @ a, b @ b
            total = total + rows * na**2 + cols * nb**2 + na**2 * nb**2 + 2 * na * nb * (1 + na + nb)
        return (total + torch.finfo(total.dtype).tiny).sqrt()

    def strong_convexity(self) -> torch.Tensor:
        """λ = min_ζ v_min(A_ζ) v_min(B_ζ) (App. A.5)."""
        values = []
        for layer, (rows, cols, _) in self.dims.items():
            a, b = self.factors(layer)
            min_a = 1 + a @ a if cols == 1 else torch.ones((), dtype=a.dtype, device=a.device)
            min_b = 1 + b @ b if rows == 1 else torch.ones((), dtype=b.dtype, device=b.device)
            values.append(min_a * min_b)
        return torch.stack(values).min()

    def largest_eigenvalue(self) -> torch.Tensor:
        """max_ζ (1 + ‖a_ζ‖²)(1 + ‖b_ζ‖²): the largest eigenvalue of M."""
        return torch.stack([(1 + a @ a) * (1 + b @ b) for a, b in (self.factors(l) for l in self.blocks)]).max()

    def meta_objective(self, theta_T, theta1, k: float, gamma: float) -> torch.Tensor:
        """Eq. 8: mean over tasks of B_φM(θ_T‖θ_1) + k/λ + γ‖M − I‖_F (tasks along the leading dimension)."""
        return self.bregman(theta_T, theta1).mean() + k / self.strong_convexity() + gamma * self.frobenius_distance()


class DiagonalMirrorMap(nn.Module):
    """M = diag(m), m = exp(s) > 0: the diagonal special case of the 2-D quadratics (§5.1, App. A.6); the parameter
    vector is ``{"theta": (runs, d)}``."""

    def __init__(self, dim: int = 2, init: float = 1.0):
        super().__init__()
        self.log_m = nn.Parameter(torch.full((dim,), float(init)).log())

    @property
    def m(self) -> torch.Tensor:
        return self.log_m.exp()

    def precondition(self, grads):
        """M⁻¹∇ = ∇ / m."""
        return {k: g / self.m for k, g in grads.items()}

    def bregman(self, theta: torch.Tensor, theta1: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((theta - theta1) ** 2 * self.m).sum(-1)

    def frobenius_distance(self) -> torch.Tensor:
        return torch.linalg.vector_norm(self.m - 1.0)

    def strong_convexity(self) -> torch.Tensor:
        return self.m.min()

    def meta_objective(self, theta_T, theta1, k: float, gamma: float) -> torch.Tensor:
        return self.bregman(theta_T, theta1).mean() + k / self.strong_convexity() + gamma * self.frobenius_distance()


class MirrorDescentOptimizer(AdditiveRule):
    """Mirror descent with a (learned) mirror map as an update rule: θ ← θ − η M⁻¹∇L (App. A.2)."""

    def __init__(self, mirror, lr: float):
        super().__init__()
        self.mirror, self.lr = mirror, lr

    def forward(self, grads, state, groups=None):
        return {k: -self.lr * v for k, v in self.mirror.precondition(grads).items()}, state


class DiagonalMirrorDescent(MirrorDescentOptimizer):
    """θ ← θ − η g / m for a diagonal M = diag(m) (the 2-D quadratics of §5.1, App. A.6)."""

    def forward(self, grads, state, groups=None):
        return {k: -(self.lr * g) / self.mirror.m for k, g in grads.items()}, state
