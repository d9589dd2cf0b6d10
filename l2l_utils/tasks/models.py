"""Every network of the collection, and the one functional wrapper that evaluates many copies at once.

Networks are plain ``nn.Module``s: the MLPs of Andrychowicz et al. §3.2 and MetaMD §5.2, the §3.3 ConvNet, VGG-19's
feature layers (§3.4 neural art), the sine network and Conv-4 of Huisman et al. (App. A), LeNet-5 and ResNet-18 of
MetaMD. :class:`FunctionalNetwork` evaluates a
module with parameters passed as a dict of tensors with a leading run (or task) dimension
(``torch.func.functional_call`` under ``vmap``), so update rules can be differentiated through it and many optimizees
run as one batch.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.func import functional_call, vmap

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}


def loop_over_runs(fn):
    """``vmap``'s contract (leading run/task dimension on every argument) by a Python loop.

    Same numbers as ``vmap(fn)``; on a CPU it is faster for convolutions, which vmap turns into grouped
    convolutions with a slow backward (``benchmarks/bench_turtle.py``).
    """

    def run(params, *tensors):
        return torch.stack([fn({k: v[j] for k, v in params.items()}, *(t[j] for t in tensors))
                            for j in range(tensors[0].shape[0])])

    return run


def mlp(in_features: int, hidden: Sequence[int], num_classes: int, activation: str = "sigmoid") -> nn.Module:
    """MLP optimizee of §3.2: ``hidden`` units per layer with the given non-linearity."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}; allowed values are {sorted(ACTIVATIONS)}")
    layers, width = [], in_features
    for units in hidden:
        layers += [nn.Linear(width, units), ACTIVATIONS[activation]()]
        width = units
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """§3.3 optimizee: three conv layers with max pooling, an FC layer of 32 units, ReLU + batch norm.

    The paper does not give channel counts or kernel sizes; 16 channels and 5x5 kernels follow the
    authors' public code. Batch norm uses batch statistics only (no running averages), so every
    step is a function of the parameters alone, as the functional optimizee interface needs.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, channels=(16, 16, 16),
                 kernel_size: int = 5, hidden: int = 32, image_size: int = 32):
        super().__init__()
        blocks, width, size = [], in_channels, image_size
        for out in channels:
            blocks += [nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2),
                       nn.BatchNorm2d(out, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
            width, size = out, size // 2
        self.conv = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(width * size * size, hidden),
                                nn.BatchNorm1d(hidden, track_running_stats=False), nn.ReLU(),
                                nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.fc(self.conv(x))


def conv_fc_groups(names) -> dict:
    """Two-LSTM split of §3.3: parameters of the convolutional part vs the fully connected part."""
    return {k: ("conv" if k.startswith("conv.") else "fc") for k in names}


def sine_network(hidden: Sequence[int] = (40, 40), zero_bias: bool = True) -> nn.Module:
    """Sine-wave base learner of Finn et al. 2017 (Huisman et al. App. A): 1-40-40-1 with ReLU. The paper does not
    say how it is initialised; ``zero_bias=True`` (the authors' code) keeps PyTorch's default weights and zeroes
    every bias."""
    net = mlp(1, list(hidden), 1, activation="relu")
    if zero_bias:
        for layer in net:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.bias)
    return net


class Conv4(nn.Module):
    """Few-shot base learner of Snell et al. 2017 / Chen et al. 2019 (Huisman et al. App. A): four
    blocks of ``channels`` 3×3 convolutions (padding 1), batch norm, ReLU and 2×2 max pooling, then a
    dense layer with one output per class. On 84×84×3 inputs the embedding has 64·5·5 = 1,600 features.

    Batch norm uses the statistics of the batch it is given (no running averages), as in MAML, so a
    task's forward pass is a function of the parameters and that task's images only.
    """

    def __init__(self, in_channels: int = 3, n_way: int = 5, image_size: int = 84, channels: int = 64,
                 blocks: int = 4):
        super().__init__()
        layers, width, size = [], in_channels, image_size
        for _ in range(blocks):
            layers += [nn.Conv2d(width, channels, 3, padding=1),
                       nn.BatchNorm2d(channels, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
            width, size = channels, size // 2
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.feature_dim = channels * size * size
        self.head = nn.Linear(self.feature_dim, n_way)

    def forward(self, x):
        return self.head(self.features(x))


# ------------------------------------------------------------------------------ MetaMD §5.2
def lenet(num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> nn.Module:
    """LeNet-5 for (N, 1, 28, 28) inputs, as commonly used for MNIST-sized digits.

    conv 1->6 5×5 (padding 2), ReLU, maxpool 2; conv 6->16 5×5, ReLU, maxpool 2; flatten (16·5·5 = 400);
    fc 120, ReLU; fc 84, ReLU; fc ``num_classes``. Parameters with 10 classes:
    156 + 2,416 + 48,120 + 10,164 + 850 = **61,706**. For (N, 3, 32, 32) images (CIFAR-10) the first convolution
    has 3 input channels and no padding (62,006 parameters).
    """
    if image_size not in (28, 32):
        raise ValueError(f"image_size must be 28 or 32 (the flattened features must be 16·5·5), got {image_size}")
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=(32 - image_size) // 2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def googlenet(num_classes: int = 10) -> nn.Module:
    """torchvision's GoogLeNet (Inception v1; SimpleOptimizer paper Fig. 5b on CIFAR-10), randomly initialised, without
    the auxiliary classifiers and with its dropout removed and batch norm on batch statistics only, so a training step
    is a deterministic function of the parameters and the minibatch (as the functional training of many networks
    needs). 5,610,154 parameters with 10 classes."""
    net = torchvision.models.googlenet(weights=None, num_classes=num_classes, aux_logits=False, init_weights=True,
                                       transform_input=False)
    for module in list(net.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.BatchNorm2d(child.num_features, eps=child.eps, track_running_stats=False))
            elif isinstance(child, nn.Dropout):
                setattr(module, name, nn.Identity())
    return net


def mlp_width_for(num_params: int, layers: int, in_features: int = 784, num_classes: int = 10) -> int:
    """The width h whose MLP with ``layers`` linear layers (``layers − 1`` hidden layers of h units) has the number
    of parameters closest to ``num_params`` (e.g. SimpleOptimizer paper Fig. 5a: 5 layers, 16× the base MLP)."""
    if layers < 2:
        raise ValueError(f"layers must be at least 2 (one hidden layer), got {layers}")

    def count(h):
        return (in_features + 1) * h + (layers - 2) * (h + 1) * h + (h + 1) * num_classes

    h = 1
    while count(h) < num_params:
        h *= 2
    low, high = h // 2, h
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if count(mid) < num_params else (low, mid)
    return min((low, high), key=lambda w: abs(count(w) - num_params)) if low > 0 else high


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's ResNet-18 (ImageNet stem, 3-channel input), randomly initialised, never downloads.

    11,181,642 parameters with 10 classes, of which 11,176,512 are outside the final ``fc`` layer; that is
    the Meta-SGD meta-parameter count in the MetaMD paper's Table 9. Batch norm uses batch statistics only
    (no running averages), so a training step is a function of the parameters alone, as the functional
    (vmapped) training of many networks needs; the parameter count is unchanged.
    """
    return torchvision.models.resnet18(weights=None, num_classes=num_classes,
                                       norm_layer=lambda c: nn.BatchNorm2d(c, track_running_stats=False))



VGG19_WIDTHS = (64, 128, 256, 512, 512)  # channels of VGG-19's five blocks (configuration "E")
VGG19_CONVS = (2, 2, 4, 4, 4)  # 3×3 convolutions per block


def vgg19_features(widths=VGG19_WIDTHS, pooling: str = "max") -> nn.Sequential:
    """The convolutional part of VGG-19 (Simonyan & Zisserman, configuration E), laid out as torchvision's
    ``vgg19().features``: 3×3 convolutions (padding 1) each followed by a ReLU, a 2×2 pooling after every block, at
    the same indices, so torchvision's ImageNet state dict loads into it (its ``features.*`` keys without the prefix).
    ``widths`` scales the channels (a few channels: the tests' small random VGG). ``pooling="avg"`` swaps max for
    average pooling, as Gatys et al. (2015) do for image synthesis; it has no parameters, so weights still load.
    ReLUs are not in place (the neural-art losses read their outputs)."""
    if pooling not in ("max", "avg"):
        raise ValueError(f"pooling={pooling!r}; allowed values are ['avg', 'max']")
    if len(widths) != len(VGG19_CONVS) or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be {len(VGG19_CONVS)} positive channel counts, got {widths!r}")
    layers, channels = [], 3
    for width, convs in zip(widths, VGG19_CONVS):
        for _ in range(convs):
            layers += [nn.Conv2d(channels, int(width), kernel_size=3, padding=1), nn.ReLU()]
            channels = int(width)
        layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
    return nn.Sequential(*layers)

# ------------------------------------------------------------------------------ the functional wrapper
class FunctionalNetwork:
    """A module evaluated functionally for many runs (or tasks) at once: ``loss(params, x, y)`` returns one loss per
    run for a dict of parameters with a leading run dimension and data with the same leading dimension.

    ``kind="classification"`` uses the cross-entropy, ``"regression"`` the MSE (sine waves). ``vectorize=False``
    loops over the runs instead of vmapping (same numbers): on a CPU, vmapped convolutions become grouped
    convolutions whose double backward is ~3× slower than a loop for Conv-4 (``benchmarks/bench_turtle.py``).
    """

    KINDS = ("regression", "classification")

    def __init__(self, module: nn.Module, kind: str = "classification", vectorize: bool = True):
        if kind not in self.KINDS:
            raise ValueError(f"kind={kind!r}; allowed values are {list(self.KINDS)}")
        self.module, self.kind, self.vectorize = module, kind, vectorize
        criterion = F.mse_loss if kind == "regression" else F.cross_entropy

        def single_loss(params, x, y):
            return criterion(functional_call(self.module, params, (x,)), y)

        def single_predict(params, x):
            return functional_call(self.module, params, (x,))

        def single_accuracy(params, x, y):
            return (functional_call(self.module, params, (x,)).argmax(-1) == y).float().mean()

        batch = vmap if vectorize else loop_over_runs
        self._loss, self._predict = batch(single_loss), batch(single_predict)
        self._shared_accuracy = vmap(single_accuracy, in_dims=(0, None, None))
        self._shared_loss = vmap(single_loss, in_dims=(0, None, None))

    def initial_params(self) -> dict:
        """A fresh copy of the module's own (randomly initialised) parameters: θ of Algorithm 1, line 1."""
        return {k: v.detach().clone() for k, v in self.module.named_parameters()}

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    def loss(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._loss(dict(params), x, y)

    def accuracy(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Fraction of correct predictions per run, each on its own data (classification only)."""
        return (self._predict(dict(params), x).argmax(-1) == y).float().mean(-1)

    def accuracy_on(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                    chunk: int = 2000) -> torch.Tensor:
        """Accuracy of every run on the same data ``x``, ``y`` (evaluated ``chunk`` examples at a time)."""
        return self._mean_on(self._shared_accuracy, params, x, y, chunk)

    def loss_on(self, params: Mapping[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                chunk: int = 2000) -> torch.Tensor:
        """Mean loss of every run on the same data ``x``, ``y`` (evaluated ``chunk`` examples at a time)."""
        return self._mean_on(self._shared_loss, params, x, y, chunk)

    @staticmethod
    def _mean_on(per_example_mean, params, x, y, chunk: int) -> torch.Tensor:
        with torch.no_grad():
            total = sum(per_example_mean(dict(params), x[i:i + chunk], y[i:i + chunk]) * len(y[i:i + chunk])
                        for i in range(0, len(y), chunk))
        return total / len(y)

    def score(self, params, x, y) -> dict:
        """Query metrics per task: ``loss`` and, for classification, ``accuracy``."""
        out = {"loss": self.loss(params, x, y)}
        if self.kind == "classification":
            out["accuracy"] = self.accuracy(params, x, y)
        return out
