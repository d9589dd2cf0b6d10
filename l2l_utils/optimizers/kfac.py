"""K-FAC: Kronecker-factored approximate curvature (Martens & Grosse 2015), MetaMD's KFAC baseline (Table 2, Table 5).

For a linear layer s = W ā with ā = [a; 1] (the bias as the last column of W, M&G §2) the Fisher block of vec(W)
is approximated by a Kronecker product of two second moments (M&G Eq. 1 and §3):

    F ≈ Ā ⊗ G,   Ā = E[ā āᵀ],   G = E[g gᵀ],   g = ∂ log p(y|x, θ) / ∂s,

with y drawn from the model's own predictive distribution (the "true" Fisher, M&G §5: one sampled target per
example). Convolutions use Grosse & Martens' (2016) KFC: ā is an unfolded patch, Ā its mean over examples and
spatial locations, G the per-example sum over locations of g gᵀ, averaged over examples.

The step (M&G §6.3, factored Tikhonov damping) is

    ΔW = −lr · (G + √λ/π · I)⁻¹ ∇W (Ā + π√λ · I)⁻¹,   π = sqrt((tr Ā / dim Ā) / (tr G / dim G)),

which is −lr · ((Ā + π√λ I) ⊗ (G + √λ/π I))⁻¹ vec(∇W). Factors are exponential running averages with
ε = min(1 − 1/k, 0.95) at step k (M&G §5), their inverses recomputed every ``inverse_every`` steps (M&G T₃ = 20).

Our choices where M&G's full algorithm does more (each a named argument): a fixed damping λ (``damping``; M&G adapt λ
by Levenberg–Marquardt and add momentum chosen from a quadratic model, §6.4–7), a learning rate tuned on the same
grid as the other optimisers instead, and parameters of layers that are neither linear nor convolutional (batch
norm) take a plain gradient step at the same learning rate. The rule needs the minibatch behind the gradient
(``Context.inputs``, which :func:`~l2l_utils.optimizers.unroll.unroll` passes) and the network's module.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from .update_rules import UpdateRule

LAYERS = (nn.Linear, nn.Conv2d)


def kfac_layers(module: nn.Module) -> dict[str, nn.Module]:
    """Name -> layer for every linear and 2-D convolution layer of ``module`` (the layers K-FAC preconditions)."""
    return {name: m for name, m in module.named_modules() if isinstance(m, LAYERS)}


def _homogeneous(a: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)


def _layer_inputs(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(examples, locations, in_features [+1]): the layer's input per example as the rows ā multiplying W."""
    if isinstance(layer, nn.Conv2d):
        patches = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # (B, C·k·k, L)
        patches = patches.transpose(1, 2)
    else:
        patches = x.reshape(x.shape[0], -1, x.shape[-1])
    return _homogeneous(patches) if layer.bias is not None else patches


def _output_grads(layer: nn.Module, s_grad: torch.Tensor) -> torch.Tensor:
    """(examples, locations, out_features): ∂ log p / ∂s per example and location."""
    if isinstance(layer, nn.Conv2d):
        return s_grad.flatten(2).transpose(1, 2)
    return s_grad.reshape(s_grad.shape[0], -1, s_grad.shape[-1])


def kfac_factors(module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor,
                 targets: torch.Tensor | None = None, generator: torch.Generator | None = None) -> dict:
    """{layer name: (Ā, G)} for one network (``params`` without a run dimension) on the minibatch ``x``.

    ``targets``: the classes y the log-likelihood is differentiated at; ``None`` draws one per example from the
    model's softmax (M&G §5, true Fisher). g is the gradient of the per-example log-likelihood (the minibatch mean's
    gradient times the batch size).
    """
    layers = kfac_layers(module)
    inputs, outputs = {}, {}

    def hook(name):
        def record(layer, args, out):
            inputs[name], outputs[name] = args[0], out
        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    try:
        with torch.enable_grad():
            detached = {k: v.detach().requires_grad_() for k, v in params.items()}
            buffers = {k: v.clone() for k, v in module.named_buffers()}  # batch norm's running statistics untouched
            logits = functional_call(module, {**buffers, **detached}, (x,))
            if targets is None:
                with torch.no_grad():
                    targets = torch.multinomial(F.softmax(logits.float(), -1), 1, generator=generator).squeeze(-1)
            log_lik = -F.cross_entropy(logits, targets, reduction="sum")
            names = list(outputs)
            s_grads = torch.autograd.grad(log_lik, [outputs[n] for n in names])
    finally:
        for handle in handles:
            handle.remove()
    factors = {}
    for name, s_grad in zip(names, s_grads):
        layer = layers[name]
        a = _layer_inputs(layer, inputs[name].detach())  # (B, L, d_in)
        g = _output_grads(layer, s_grad)  # (B, L, d_out)
        batch = a.shape[0]
        factors[name] = (torch.einsum("bli,blj->ij", a, a) / (batch * a.shape[1]),
                         torch.einsum("bli,blj->ij", g, g) / batch)
    return factors


def damped_inverses(A: torch.Tensor, G: torch.Tensor, damping: float) -> tuple[torch.Tensor, torch.Tensor]:
    """((Ā + π√λ I)⁻¹, (G + √λ/π I)⁻¹) with π of M&G §6.3 (Eq. in the module docstring)."""
    pi = torch.sqrt((torch.trace(A) / len(A)).clamp_min(1e-12) / (torch.trace(G) / len(G)).clamp_min(1e-12))
    root = damping ** 0.5
    eye_a, eye_g = torch.eye(len(A), dtype=A.dtype, device=A.device), torch.eye(len(G), dtype=G.dtype, device=G.device)
    return torch.linalg.inv(A + pi * root * eye_a), torch.linalg.inv(G + root / pi * eye_g)


def weight_matrix(layer: nn.Module, grads: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    """The layer's gradient as the matrix ∇W (out, in·k·k [+1]) that Ā and G act on (bias as the last column)."""
    w = grads[f"{name}.weight"]
    w = w.reshape(w.shape[0], -1)
    return torch.cat([w, grads[f"{name}.bias"][:, None]], dim=1) if layer.bias is not None else w


class KFAC(UpdateRule):
    """K-FAC (module docstring) as an update rule for networks evaluated functionally with a leading run dimension.

    ``module``: the network whose parameters the rule updates (parameter names ``<layer>.weight``/``.bias``);
    ``lr``: the step size; ``damping``: λ; ``inverse_every``: T₃; ``decay_cap``: the 0.95 of ε = min(1 − 1/k, 0.95);
    ``seed``: the sampled targets' stream."""

    def __init__(self, module: nn.Module, lr: float, damping: float = 1e-3, inverse_every: int = 20,
                 decay_cap: float = 0.95, seed: int = 0):
        if not lr > 0 or not damping > 0 or inverse_every < 1 or not 0 <= decay_cap < 1:
            raise ValueError(f"KFAC needs lr > 0, damping > 0, inverse_every >= 1, 0 <= decay_cap < 1; got "
                             f"lr={lr}, damping={damping}, inverse_every={inverse_every}, decay_cap={decay_cap}")
        self.module, self.lr, self.damping, self.inverse_every, self.decay_cap = module, lr, damping, inverse_every, decay_cap
        self.layers = kfac_layers(module)
        self.seed = seed

    def init(self, params, context=None):
        device = next(iter(params.values())).device
        return {"factors": None, "inverses": None, "generator": torch.Generator(device=device).manual_seed(self.seed)}

    def update(self, params, grads, state, t, context=None):
        x = None if context is None else context.inputs
        if x is None:
            raise ValueError("KFAC needs the minibatch behind the gradient (Context.inputs); run it with unroll() on a "
                             "problem that records last_inputs (ClassifierProblem)")
        runs = next(iter(params.values())).shape[0]
        fresh = [kfac_factors(self.module, {k: v[r] for k, v in params.items()}, x[r], generator=state["generator"])
                 for r in range(runs)]
        eps = min(1.0 - 1.0 / (t + 1), self.decay_cap)
        if state["factors"] is None:
            state["factors"] = fresh
        else:
            state["factors"] = [{n: tuple(eps * old + (1 - eps) * new for old, new in zip(prev[n], cur[n]))
                                 for n in cur} for prev, cur in zip(state["factors"], fresh)]
        if state["inverses"] is None or t % self.inverse_every == 0:
            state["inverses"] = [{n: damped_inverses(*f[n], self.damping) for n in f} for f in state["factors"]]
        new = {k: params[k] - self.lr * g for k, g in grads.items()}  # plain step for everything not preconditioned
        for name, layer in self.layers.items():
            steps = []
            for r in range(runs):
                a_inv, g_inv = state["inverses"][r][name]
                steps.append(g_inv @ weight_matrix(layer, {k: v[r] for k, v in grads.items()}, name) @ a_inv)
            step = torch.stack(steps)
            key = f"{name}.weight"
            if layer.bias is not None:
                new[f"{name}.bias"] = params[f"{name}.bias"] - self.lr * step[:, :, -1]
                step = step[:, :, :-1]
            new[key] = params[key] - self.lr * step.reshape(params[key].shape)
        return new, state
