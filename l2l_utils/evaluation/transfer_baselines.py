"""Transfer-learning baselines of Tables 1-2 (Huisman et al. App. A, after Chen et al. 2019).

* TrainFromScratch: a freshly initialised base learner trained on the support set only.
* Finetuning ("Baseline" of Chen et al.): Conv-4 + linear classifier pre-trained on minibatches of 16
  from the merged meta-training data; per task a new linear head is trained on the frozen embedding.
* Baseline++: the same with a cosine-similarity classifier (Chen et al. §3.2), scale factor 2 for
  Conv-4 backbones as in Chen et al.

At test time every baseline is trained for 100 steps on minibatches of 4 drawn from the support set;
every 25 steps it is evaluated on the entire support set and the best state is the one tested on the
query set (App. A). Tasks are trained together: parameters carry a leading task dimension and Adam
(elementwise, so stacking tasks changes nothing) updates all of them in one step.
"""

from __future__ import annotations

import copy

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm.auto import tqdm

from ..optimizers.unroll import unroll
from ..optimizers.update_rules import TorchOptimizerRule
from ..tasks.models import FunctionalNetwork

KINDS = ("TrainFromScratch", "Finetuning", "Baseline++")


class CosineClassifier(nn.Module):
    """Baseline++ head: scale · cos(x, w_c) for every class c (Chen et al. 2019, §3.2)."""

    def __init__(self, in_features: int, num_classes: int, scale: float = 2.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.scale = scale

    def forward(self, x):
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T


def make_head(kind: str, in_features: int, num_classes: int) -> nn.Module:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; allowed values are {list(KINDS)}")
    return CosineClassifier(in_features, num_classes) if kind == "Baseline++" else nn.Linear(in_features, num_classes)


def pretrain(backbone: nn.Module, head: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int,
             batch_size: int = 16, lr: float = 1e-3, seed: int = 0, progress: bool = True) -> nn.Module:
    """Standard supervised training of backbone + head on the merged meta-training classes (App. A)."""
    model = nn.Sequential(backbone, head).to(images.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    for _ in tqdm(range(steps), desc="pre-training", disable=not progress):
        index = torch.randint(len(labels), (batch_size,), generator=generator, device=images.device)
        loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return backbone


def embed(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Frozen embedding of every task's images, (J, S, ...) -> (J, S, d); batch norm per task and set."""
    params = {k: v.detach() for k, v in backbone.named_parameters()}
    with torch.no_grad():
        return vmap(lambda images: functional_call(backbone, params, (images,)))(x)


class SupportMinibatches:
    """The test-time problem of the transfer baselines: minibatches of ``batch_size`` drawn from each task's support
    set (tasks stacked along the leading dimension, one network per task)."""

    def __init__(self, learner, params0: dict, support_x, support_y, batch_size: int, seed: int):
        self.learner, self.params0, self.x, self.y = learner, params0, support_x, support_y
        self.batch_size = batch_size
        self.generator = torch.Generator(device=support_x.device).manual_seed(seed)
        self.rows = torch.arange(support_y.shape[0], device=support_x.device)[:, None]

    def loss(self, params):
        index = torch.randint(self.y.shape[1], (self.y.shape[0], self.batch_size), generator=self.generator,
                              device=self.x.device)
        return self.learner.loss(params, self.x[self.rows, index], self.y[self.rows, index])


def train_on_support(module: nn.Module, inits: list[dict], support_x, support_y, query_x, query_y, steps: int = 100,
                     batch_size: int = 4, eval_every: int = 25, lr: float = 1e-3, seed: int = 0) -> pd.DataFrame:
    """Train one copy of ``module`` per task (initial values ``inits[j]``) on its support set with Adam (the shared
    unroller); keep the state with the best full-support-set accuracy at every ``eval_every`` steps; score the
    query set."""
    learner = FunctionalNetwork(module, "classification")
    params0 = {k: torch.stack([init[k] for init in inits]) for k in inits[0]}
    best = {"params": {k: v.detach().clone() for k, v in params0.items()}}
    with torch.no_grad():
        best["accuracy"] = learner.accuracy(best["params"], support_x, support_y)

    def keep_best(t, params):
        if t > 0 and t % eval_every == 0:
            with torch.no_grad():
                acc = learner.accuracy(params, support_x, support_y)
                better = acc > best["accuracy"]
                for k in best["params"]:
                    mask = better.view(-1, *([1] * (best["params"][k].dim() - 1)))
                    best["params"][k] = torch.where(mask, params[k], best["params"][k])
                best["accuracy"] = torch.where(better, acc, best["accuracy"])

    problem = SupportMinibatches(learner, params0, support_x, support_y, batch_size, seed)
    unroll(TorchOptimizerRule(lambda p: torch.optim.Adam(p, lr=lr)), problem, steps, monitor=keep_best,
           evaluate_last=False)
    with torch.no_grad():
        scores = learner.score(best["params"], query_x, query_y)
    return pd.DataFrame({k: v.cpu().numpy() for k, v in scores.items()})


def evaluate_transfer(kind: str, backbone: nn.Module | None, make_network, episodes: list, n_way: int,
                      steps: int = 100, batch_size: int = 4, eval_every: int = 25, lr: float = 1e-3,
                      seed: int = 0) -> pd.DataFrame:
    """Meta-test a transfer baseline on every task of ``episodes``; one row per task (loss, accuracy).

    ``make_network()`` builds a fresh base learner (TrainFromScratch); ``backbone`` is the pre-trained
    embedding (Finetuning, Baseline++), whose ``feature_dim`` sizes the new head.
    """
    frames = []
    for i, batch in enumerate(episodes):
        torch.manual_seed(seed + i)
        if kind == "TrainFromScratch":
            networks = [make_network().to(batch.support_x.device) for _ in range(len(batch))]
            module = copy.deepcopy(networks[0])
            inits = [{k: v.detach() for k, v in net.named_parameters()} for net in networks]
            sx, qx = batch.support_x, batch.query_x
        else:
            module = make_head(kind, backbone.feature_dim, n_way).to(batch.support_x.device)
            inits = [{k: v.detach() for k, v in make_head(kind, backbone.feature_dim, n_way).to(
                batch.support_x.device).named_parameters()} for _ in range(len(batch))]
            sx, qx = embed(backbone.features, batch.support_x), embed(backbone.features, batch.query_x)
        frames.append(train_on_support(module, inits, sx, batch.support_y, qx, batch.query_y, steps, batch_size,
                                       eval_every, lr, seed + i))
    frame = pd.concat(frames, ignore_index=True)
    frame.insert(0, "task", range(len(frame)))
    return frame
