"""Neural art as an optimizee family (Andrychowicz et al. §3.4, App. C; the losses of Gatys et al. 2015).

A problem styles ``n`` images at once: the parameters are the pixels θ of each styled image, (n, 3, S, S) in [0, 1]
units, and

    f(θ) = α L_content(c, θ) + β L_style(s, θ) + γ L_reg(θ)                                      (§3.4)

with, on the rectified responses F^l of VGG-19's layer l to θ (P^l, A^l: those of the content image c and the Gram
matrices of the style image s; N_l channels, M_l positions),

* L_content = ½ Σ_ij (F^l_ij − P^l_ij)² on relu4_2 (Gatys et al. Eq. 1, "conv4_2");
* L_style = Σ_l w_l E_l, E_l = Σ_ij (G^l_ij − A^l_ij)² / (4 N_l² M_l²), G^l = F^l F^lᵀ (Gram matrix), on relu1_1,
  relu2_1, relu3_1, relu4_1, relu5_1 with w_l = 1/5 (Gatys et al. Eq. 3-5);
* L_reg = Σ (θ_{i,j+1} − θ_{i,j})² + (θ_{i+1,j} − θ_{i,j})², the squared total variation: §3.4 says only "a
  regularizer that encourages smoothness" (Gatys et al. have none), so the form is ours.

Not as Gatys et al.: they rescale VGG's weights so that each filter's mean activation over images and positions is
one (the network's output unchanged); here torchvision's ImageNet weights are used unscaled, which changes each style
layer's share of L_style and the content/style balance (with average pooling as theirs: the notebook's profile).

The paper (App. C included) gives neither α, β nor γ: :class:`ArtLossWeights` holds Gatys et al.'s ratio α/β = 10⁻³
and our γ. Each problem draws its content images from the task's pool and starts from Gaussian white noise around
mid-grey (Gatys et al. start from white noise; the standard deviation is ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import nn

GATYS_CONTENT_LAYERS = ("relu4_2",)
GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's VGG input normalisation
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(features: nn.Sequential) -> list[str]:
    """Gatys et al.'s names for the layers of a VGG feature stack: conv{block}_{k}, relu{block}_{k}, pool{block}."""
    names, block, k = [], 1, 0
    for layer in features:
        if isinstance(layer, nn.Conv2d):
            k += 1
            names.append(f"conv{block}_{k}")
        elif isinstance(layer, nn.ReLU):
            names.append(f"relu{block}_{k}")
        elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            names.append(f"pool{block}")
            block, k = block + 1, 0
        else:
            raise ValueError(f"unexpected layer {layer!r} in a VGG feature stack")
    return names


class VGGFeatures(nn.Module):
    """The responses of chosen layers of a frozen VGG feature stack to images in [0, 1] (normalised as torchvision's
    ImageNet models expect). Layers after the last one asked for are dropped."""

    def __init__(self, features: nn.Sequential, layers: Sequence[str]):
        super().__init__()
        names = vgg_layer_names(features)
        unknown = [name for name in layers if name not in names]
        if unknown or not layers:
            raise ValueError(f"layers {unknown or list(layers)} are not in this VGG; it has {names}")
        last = max(names.index(name) for name in layers)
        self.features, self.names, self.layers = features[:last + 1], names[:last + 1], tuple(layers)
        self.features.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        return super().train(False)  # always frozen

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x, out = (images - self.mean) / self.std, {}
        for name, layer in zip(self.names, self.features):
            x = layer(x)
            if name in self.layers:
                out[name] = x
        return out


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """G = F Fᵀ per run: (n, N, H, W) responses, F reshaped to (N, M = H·W), give (n, N, N) (Gatys et al. Eq. 3)."""
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """½ Σ (F − P)² per run (Gatys et al. Eq. 1)."""
    return 0.5 * (features - target).pow(2).flatten(1).sum(1)


def style_layer_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """E_l = Σ (G − A)² / (4 N² M²) per run, G the Gram matrix of ``features`` (n, N, H, W) (Gatys et al. Eq. 4)."""
    n_channels, positions = features.shape[1], features.shape[2] * features.shape[3]
    return (gram_matrix(features) - target_gram).pow(2).flatten(1).sum(1) / (4.0 * n_channels**2 * positions**2)


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Σ (θ_{i,j+1} − θ_{i,j})² + (θ_{i+1,j} − θ_{i,j})² per run over every channel (our smoothness term)."""
    dx = images[..., :, 1:] - images[..., :, :-1]
    dy = images[..., 1:, :] - images[..., :-1, :]
    return dx.pow(2).flatten(1).sum(1) + dy.pow(2).flatten(1).sum(1)


@dataclass(frozen=True)
class ArtLossWeights:
    """α, β, γ of §3.4's f and the style layers' w_l. The paper gives none of them: α/β = 10⁻³ is Gatys et al.'s
    (their Fig. 2-3 use 10⁻³ and 10⁻⁴; on Caffe's VGG with 0-255 pixels, where torchvision's takes normalised ones,
    so the ratio does not carry over exactly), w_l = 1/5 on five layers is theirs, γ is ours."""

    content: float = 1.0
    style: float = 1e3
    smoothness: float = 1.0
    style_layer_weights: tuple[float, ...] | None = None  # None: 1 / (number of style layers) each


class NeuralArtProblem:
    """``n`` neural-art problems: their content targets (one per run), the style's Gram matrices (shared)."""

    def __init__(self, extractor: VGGFeatures, params0: dict, content_targets: Mapping[str, torch.Tensor],
                 style_grams: Mapping[str, torch.Tensor], weights: ArtLossWeights, content_images: torch.Tensor):
        self.extractor, self.params0, self.weights = extractor, params0, weights
        self.content_targets, self.style_grams, self.content_images = dict(content_targets), dict(style_grams), \
            content_images
        self.groups = {"image": "all"}
        count = len(self.style_grams)
        self.layer_weights = weights.style_layer_weights or (1.0 / count,) * count
        if len(self.layer_weights) != count:
            raise ValueError(f"{len(self.layer_weights)} style layer weights for {count} style layers")

    def terms(self, params: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """L_content, L_style, L_reg per run (unweighted)."""
        image = params["image"]
        responses = self.extractor(image)
        content = sum(content_loss(responses[k], t) for k, t in self.content_targets.items())
        style = sum(w * style_layer_loss(responses[k], g) for w, (k, g) in zip(self.layer_weights,
                                                                               self.style_grams.items()))
        return {"content": content, "style": style, "smoothness": total_variation(image)}

    def loss(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """f(θ) = α L_content + β L_style + γ L_reg per run (§3.4)."""
        terms, w = self.terms(params), self.weights
        return w.content * terms["content"] + w.style * terms["style"] + w.smoothness * terms["smoothness"]

    def select(self, rows: torch.Tensor) -> "NeuralArtProblem":
        """The problems of the runs ``rows`` only."""
        return NeuralArtProblem(self.extractor, {k: v[rows] for k, v in self.params0.items()},
                                {k: v[rows] for k, v in self.content_targets.items()}, self.style_grams,
                                self.weights, self.content_images[rows])


class NeuralArtTask:
    """Neural-art problems with one style and a pool of content images, all S×S (§3.4: one style, 64×64 training
    images; tests at 128×128 with a new style). ``sample(n)`` styles ``n`` content images of the pool, distinct
    when ``n`` ≤ the pool (a test set of n images is each used once), from θ0 = 0.5 + ``init_std`` · N(0, 1) per
    pixel."""

    def __init__(self, extractor: VGGFeatures, content_images: torch.Tensor, style_image: torch.Tensor,
                 weights: ArtLossWeights = ArtLossWeights(), content_layers: Sequence[str] = GATYS_CONTENT_LAYERS,
                 style_layers: Sequence[str] = GATYS_STYLE_LAYERS, init_std: float = 0.25):
        if content_images.dim() != 4 or content_images.shape[1] != 3 or content_images.shape[2] != content_images.shape[3]:
            raise ValueError(f"content images must be (K, 3, S, S), got {tuple(content_images.shape)}")
        style_image = style_image if style_image.dim() == 4 else style_image.unsqueeze(0)
        if style_image.shape[1:] != content_images.shape[1:]:
            raise ValueError(f"the style image {tuple(style_image.shape[1:])} must have the content images' size "
                             f"{tuple(content_images.shape[1:])}")
        needed = set(content_layers) | set(style_layers)
        if not needed <= set(extractor.layers):
            raise ValueError(f"the extractor computes {extractor.layers}, the losses need {sorted(needed)}")
        self.extractor, self.content_images, self.weights = extractor, content_images, weights
        self.content_layers, self.style_layers, self.init_std = tuple(content_layers), tuple(style_layers), init_std
        self.size, self.style_image = content_images.shape[-1], style_image[0].to(content_images)
        with torch.no_grad():
            responses = extractor(style_image.to(content_images))
            self.style_grams = {k: gram_matrix(responses[k])[0] for k in self.style_layers}

    @property
    def num_params(self) -> int:
        return 3 * self.size * self.size  # 12,288 at 64×64, 49,152 at 128×128 (§4)

    def sample(self, n: int, generator: torch.Generator) -> NeuralArtProblem:
        pool = self.content_images.shape[0]
        rows = torch.randperm(pool, generator=generator)[:n] if n <= pool else torch.randint(pool, (n,),
                                                                                             generator=generator)
        noise = torch.randn((n, 3, self.size, self.size), generator=generator)
        device = self.content_images.device
        images = self.content_images[rows.to(device)]
        with torch.no_grad():
            responses = self.extractor(images)
        targets = {k: responses[k] for k in self.content_layers}
        params0 = {"image": (0.5 + self.init_std * noise).to(device, self.content_images.dtype)}
        return NeuralArtProblem(self.extractor, params0, targets, self.style_grams, self.weights, images)
