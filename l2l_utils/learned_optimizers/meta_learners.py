"""Episodic meta-learners of Huisman et al. 2022 (Algorithm 1): MAML, the meta-learner LSTM, TURTLE.

All three learn the base-learner initialisation θ (Θ ⊇ {θ}) and adapt it to a task with T updates
on the support set (Algorithm 1, lines 6-9); they differ only in the update rule:

* :class:`MAML` — gradient descent, Eq. 1 (Finn et al. 2017).
* :class:`MetaLearnerLSTM` — Eq. 3 (Ravi & Larochelle 2017): θ lives in the cell state of a second
  LSTM layer whose forget gate ("weight decay") and input gate ("learning rate") are computed from the
  first layer's output, the current θ and the previous gate value.
* :class:`Turtle` — Eq. 6-7 (§4.3): θ ← θ + α ⊙ g_φ(I) with a stateless feed-forward g_φ and a
  learned per-parameter learning-rate vector α.

``second_order=True`` differentiates through the support-set gradients (``create_graph=True``);
``second_order=False`` treats gradients (and losses) as constants — first-order MAML and the
independence assumption of the original meta-learner LSTM (§3.3). Tasks are processed together:
parameters carry a leading task dimension and the network (a :class:`~l2l_utils.tasks.models.FunctionalNetwork`)
is mapped over it with ``torch.func.vmap``.

Where the paper is silent we follow the authors' public code (mikehuisman/revisiting-learned-optimizers), each
choice a switch: ``inner_clamp`` (support gradients clamped to ±10 inside the inner loop for T > 1, MAML and
TURTLE), ``outer_clamp`` (each task's meta-gradient of θ clamped to ±10, see :meth:`EpisodicMetaLearner.initial`),
zero biases in g_φ (``Turtle(zero_bias=True)``), the pre-sigmoid gate fed back in the meta-learner LSTM
(``MetaLearnerLSTM(gate_feedback="pre-sigmoid")``) and no moving-average input at T = 1 (:func:`turtle_inputs`).
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..optimizers.unroll import unroll
from ..optimizers.update_rules import UpdateRule
from .lstm_optimizer import preprocess_gradient


def _flat(tensors: Mapping[str, torch.Tensor], num_tasks: int) -> torch.Tensor:
    return torch.cat([t.reshape(num_tasks, -1) for t in tensors.values()], dim=1)


def _unflat(flat: torch.Tensor, like: Mapping[str, torch.Tensor]) -> dict:
    sizes = [t[0].numel() for t in like.values()]
    return {k: chunk.reshape(like[k].shape) for k, chunk in zip(like, flat.split(sizes, dim=1))}


class _ClampGradient(torch.autograd.Function):
    """Identity whose backward clamps the incoming gradient to ±bound. Gradients taken *with respect to* its output
    (the inner loop's support gradients) do not pass through it; the outer backward pass does."""

    @staticmethod
    def forward(ctx, x, bound):
        ctx.bound = bound
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(-ctx.bound, ctx.bound), None


class SupportSets:
    """The inner problem of J tasks for :func:`~l2l_utils.optimizers.unroll.unroll`: θ_j^(0) and the support losses."""

    def __init__(self, learner, support_x, support_y, params0: dict):
        self.learner, self.x, self.y, self.params0 = learner, support_x, support_y, params0

    def loss(self, params):
        return self.learner.loss(params, self.x, self.y)


class EpisodicMetaLearner(nn.Module, UpdateRule):
    """Θ: the learned initialisation θ plus the update rule's own parameters (none for MAML). An update rule of
    the shared interface (:mod:`l2l_utils.optimizers.update_rules`)."""

    differentiable = True

    def __init__(self, init_params: Mapping[str, torch.Tensor], inner_clamp: float | None = None):
        super().__init__()
        self.param_names = list(init_params)
        self.initialisation = nn.ParameterList(nn.Parameter(v.detach().clone()) for v in init_params.values())
        self.inner_clamp = inner_clamp

    @property
    def num_base_params(self) -> int:
        return sum(p.numel() for p in self.initialisation)

    def initial(self, num_tasks: int, outer_clamp: float | None = None) -> dict:
        """θ_j^(0) = θ for every task j (Algorithm 1, line 6).

        ``outer_clamp``: the meta-gradient of θ is clamped elementwise to ±``outer_clamp`` per task before the
        tasks' gradients are summed (the authors' code clamps the initialisation's gradient after each task's
        backward pass). Task j's query loss depends on θ only through θ_j^(0), so the gradient reaching θ_j^(0) is
        exactly that task's gradient of θ.
        """
        params = {k: p.expand(num_tasks, *p.shape) for k, p in zip(self.param_names, self.initialisation)}
        if outer_clamp is not None:
            params = {k: _ClampGradient.apply(v, outer_clamp) for k, v in params.items()}
        return params

    def init(self, params: dict, context=None):
        """Per-task state of the update rule before the first step."""
        return None

    def update(self, params: dict, grads: dict, state, t: int, context=None):
        """The shared update-rule interface: support gradients clamped elementwise to ±``inner_clamp`` when set
        (the authors' code for T > 1: MAML before its step, TURTLE before g_φ and the moving average), then
        :meth:`step` with the task losses from ``context``."""
        if self.inner_clamp is not None:
            grads = {k: g.clamp(-self.inner_clamp, self.inner_clamp) for k, g in grads.items()}
        return self.step(params, grads, context.loss, state, t)

    def step(self, params: dict, grads: dict, loss: torch.Tensor, state, t: int):
        """The method's own update equation."""
        raise NotImplementedError

    def adapt(self, learner, support_x, support_y, steps: int, second_order: bool = True,
              differentiable: bool = True, outer_clamp: float | None = None) -> dict:
        """θ_j^(T) after ``steps`` updates on the support sets (Algorithm 1, lines 6-9), by the one unroller;
        ``differentiable=False`` (evaluation) keeps no graph. ``outer_clamp``: see :meth:`initial`."""
        problem = SupportSets(learner, support_x, support_y, self.initial(len(support_x),
                                                                          outer_clamp if differentiable else None))
        order = ("second" if second_order else "first") if differentiable else "none"
        return unroll(self, problem, steps, order=order, evaluate_last=False).params


class MAML(EpisodicMetaLearner):
    """Eq. 1: θ^(t+1) = θ^(t) − α ∇L_{D^tr}(θ^(t)), inner learning rate α (0.01, App. A)."""

    def __init__(self, init_params, inner_lr: float = 0.01, inner_clamp: float | None = None):
        super().__init__(init_params, inner_clamp)
        self.inner_lr = inner_lr

    def step(self, params, grads, loss, state, t):
        return {k: params[k] - self.inner_lr * grads[k] for k in params}, state


class MetaLearnerLSTM(EpisodicMetaLearner):
    """Eq. 3, the 2-layer meta-learner LSTM of Ravi & Larochelle (2017), applied to every coordinate.

    Layer 1 is an LSTM (20 units) whose input per coordinate is the preprocessed gradient and loss
    (Andrychowicz et al. App. A, p = 10: four inputs) or, in the enhanced variant of Tables 1-2, the raw
    gradient and loss (two inputs). Layer 2 holds θ in its cell state c:
    f = σ(W_f·[h, c, f̃_prev] + b_f), i = σ(W_i·[h, c, ĩ_prev] + b_i), c ← f ⊙ c − i ⊙ ∇.
    Initialisation as Ravi & Larochelle: W ~ U(−0.01, 0.01), b_f ~ U(4, 6), b_i ~ U(−5, −4).

    The paper does not say what "the previous gate" fed back is. ``gate_feedback="pre-sigmoid"`` (default) feeds
    the gate's pre-activation W·[…] + b, as Ravi & Larochelle's code and the authors' do; ``"post-sigmoid"`` feeds
    σ(…). ``loss_input_grad=False`` (default, the authors' code: ``loss.data``) makes the loss input a constant in
    second-order mode too; the gradient input is always connected there. The authors' code also divides the
    gradient input by the batch size on top of a loss that is already a batch mean; we take that for a slip and do
    not divide.
    """

    GATE_FEEDBACK = ("pre-sigmoid", "post-sigmoid")

    def __init__(self, init_params, hidden: int = 20, raw_inputs: bool = False, preprocess_p: float = 10.0,
                 gate_feedback: str = "pre-sigmoid", loss_input_grad: bool = False):
        super().__init__(init_params)
        if gate_feedback not in self.GATE_FEEDBACK:
            raise ValueError(f"gate_feedback={gate_feedback!r}; allowed values are {list(self.GATE_FEEDBACK)}")
        self.raw_inputs, self.preprocess_p, self.hidden = raw_inputs, preprocess_p, hidden
        self.gate_feedback, self.loss_input_grad = gate_feedback, loss_input_grad
        self.lstm = nn.LSTMCell(2 if raw_inputs else 4, hidden)
        self.W_f = nn.Parameter(torch.empty(hidden + 2).uniform_(-0.01, 0.01))
        self.W_i = nn.Parameter(torch.empty(hidden + 2).uniform_(-0.01, 0.01))
        self.b_f = nn.Parameter(torch.empty(1).uniform_(4.0, 6.0))
        self.b_i = nn.Parameter(torch.empty(1).uniform_(-5.0, -4.0))

    def init(self, params, context=None):
        num_tasks = next(iter(params.values())).shape[0]
        coords = num_tasks * self.num_base_params
        some = self.initialisation[0]
        zeros = lambda *shape: torch.zeros(*shape, device=some.device, dtype=some.dtype)  # noqa: E731
        return zeros(coords, self.hidden), zeros(coords, self.hidden), zeros(coords), zeros(coords)

    def gates(self, params, grads, loss, state):
        """(forget gate f, input gate i, their fed-back values, new layer-1 state) for every coordinate of every
        task; the fed-back values are the pre-activations or the gates themselves (``gate_feedback``)."""
        num_tasks = loss.shape[0]
        grad = _flat(grads, num_tasks).reshape(-1)
        theta = _flat(params, num_tasks).reshape(-1)
        if not self.loss_input_grad:
            loss = loss.detach()
        task_loss = loss.unsqueeze(1).expand(num_tasks, self.num_base_params).reshape(-1)
        if self.raw_inputs:
            x = torch.stack((grad, task_loss), dim=1)
        else:
            x = torch.cat((preprocess_gradient(grad, self.preprocess_p),
                           preprocess_gradient(task_loss, self.preprocess_p)), dim=1)
        h, c, f_prev, i_prev = state
        h, c = self.lstm(x, (h, c))
        f_pre = torch.cat((h, theta[:, None], f_prev[:, None]), 1) @ self.W_f + self.b_f
        i_pre = torch.cat((h, theta[:, None], i_prev[:, None]), 1) @ self.W_i + self.b_i
        f, i = torch.sigmoid(f_pre), torch.sigmoid(i_pre)
        fed_back = (f_pre, i_pre) if self.gate_feedback == "pre-sigmoid" else (f, i)
        return f, i, fed_back, (h, c)

    def step(self, params, grads, loss, state, t):
        num_tasks = loss.shape[0]
        f, i, (f_back, i_back), (h, c) = self.gates(params, grads, loss, state)
        theta = _flat(params, num_tasks).reshape(-1)
        new = f * theta - i * _flat(grads, num_tasks).reshape(-1)
        return _unflat(new.reshape(num_tasks, -1), params), (h, c, f_back, i_back)


@torch.no_grad()
def theorem1_parameters(lstm: MetaLearnerLSTM, inner_lr: float, forget_bias: float = 50.0) -> MetaLearnerLSTM:
    """Theorem 1's parameterisation: W_f = 0, b_f large (f ≈ 1), W_i = 0, b_i = −ln((1−α)/α) (i = α).

    Needs 0 < α < 1: α = 1 would need b_i = +∞, so the proof's "0 < α ≤ 1" holds only in the limit.
    """
    if not 0.0 < inner_lr < 1.0:
        raise ValueError(f"inner_lr must lie in (0, 1) for a finite b_i, got {inner_lr}")
    lstm.W_f.zero_()
    lstm.W_i.zero_()
    lstm.b_f.fill_(forget_bias)
    lstm.b_i.fill_(-math.log((1.0 - inner_lr) / inner_lr))
    return lstm


class Turtle(EpisodicMetaLearner):
    """TURTLE, Eq. 6-7: θ^(t+1) = θ^(t) + α ⊙ g_φ(I^(t)), stateless g_φ applied to every coordinate.

    g_φ: ``hidden_layers`` layers of ``hidden`` ReLU units and one linear output (5 × 20, App. A).
    ``inputs`` per coordinate: the raw support gradient, the moving average h of past gradients
    (Eq. 6, β = 0.9) and the step t ∈ {0..T−1}. The paper does not say how h starts for gradients; we
    set h^(0) = ∇^(0), as the authors' code does. α is learned (initialised U[0, 1), the paper is silent;
    the authors' code does this) or fixed to ones (§5.1, Fig. 3: ``learn_rates=False``).

    ``zero_bias=True`` (default; the paper is silent, the authors' code does it) starts every bias of g_φ, the
    output's included, at zero. With PyTorch's default U(±1/√fan_in) biases g_φ(0) ≠ 0, and since one g_φ moves
    every coordinate, all base-learner weights are pushed the same way at every step.
    """

    INPUTS = ("gradient", "average", "time")

    def __init__(self, init_params, hidden_layers: int = 5, hidden: int = 20, inputs=INPUTS, beta: float = 0.9,
                 learn_rates: bool = True, zero_bias: bool = True, inner_clamp: float | None = None):
        super().__init__(init_params, inner_clamp)
        unknown = [name for name in inputs if name not in self.INPUTS]
        if unknown or not inputs:
            raise ValueError(f"inputs={list(inputs)}; allowed are non-empty subsets of {list(self.INPUTS)}")
        self.inputs, self.beta = tuple(inputs), beta
        layers, width = [], len(self.inputs)
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        if zero_bias:
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    nn.init.zeros_(layer.bias)
        rates = torch.rand(self.num_base_params) if learn_rates else torch.ones(self.num_base_params)
        if learn_rates:
            self.rates = nn.Parameter(rates)
        else:
            self.register_buffer("rates", rates)

    def step(self, params, grads, loss, state, t):
        num_tasks = loss.shape[0]
        grad = _flat(grads, num_tasks)
        average = grad if state is None else self.beta * state[0] + (1.0 - self.beta) * grad  # Eq. 6
        features = {"gradient": grad, "average": average, "time": torch.full_like(grad, float(t))}
        x = torch.stack([features[name] for name in self.inputs], dim=-1)
        step = self.rates * self.net(x).squeeze(-1)  # Eq. 7
        return _unflat(_flat(params, num_tasks) + step, params), (average,)


def turtle_inputs(steps: int, average_at_one_step: bool = False) -> tuple[str, ...]:
    """g_φ's inputs for T = ``steps`` updates: all of :attr:`Turtle.INPUTS`, except that at T = 1 the moving
    average (a copy of the one gradient, no history) is dropped, as the authors' code does
    (``average_at_one_step=True`` keeps it)."""
    if steps == 1 and not average_at_one_step:
        return tuple(name for name in Turtle.INPUTS if name != "average")
    return Turtle.INPUTS
