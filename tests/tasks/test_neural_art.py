"""Neural art (Andrychowicz et al. §3.4, Gatys et al. 2015): VGG-19's layout and layer names against torchvision's,
the Gram matrix, content, style and smoothness losses against explicit loops, the loss's gradient against finite
differences, and the whole path (problems, one truncation of meta-training, test curves of the LSTM and the
baselines) on a small randomly initialised VGG with tiny images; the files' availability check and layout."""

import itertools

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from l2l_utils.evaluation.comparison import compare_optimizers, tune_baselines
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT, train_learned_optimizer
from l2l_utils.optimizers.unroll import unroll
from l2l_utils.tasks.datasets import (DatasetMissingError, imagenet_vgg19_features, load_square_images,
                                      neural_art_files, split_content)
from l2l_utils.tasks.models import VGG19_WIDTHS, vgg19_features
from l2l_utils.tasks.neural_art import (GATYS_CONTENT_LAYERS, GATYS_STYLE_LAYERS, IMAGENET_MEAN, IMAGENET_STD,
                                        ArtLossWeights, NeuralArtTask, VGGFeatures, content_loss, gram_matrix,
                                        style_layer_loss, total_variation, vgg_layer_names)

SMALL = (4, 6, 8, 8, 8)  # channels of the tests' VGG-19 (same layers, a few channels)
LAYERS = GATYS_CONTENT_LAYERS + GATYS_STYLE_LAYERS


def small_vgg(seed=0, dtype=torch.float32, pooling="avg"):
    """VGG-19's layers with a few channels, He-initialised with zero biases so the deep responses still depend on
    the image (PyTorch's default start shrinks the signal until the biases alone decide relu4_2)."""
    torch.manual_seed(seed)
    features = vgg19_features(SMALL, pooling)
    for layer in features:
        if isinstance(layer, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            torch.nn.init.zeros_(layer.bias)
    return VGGFeatures(features, LAYERS).to(dtype)


def small_task(size=16, pool=5, seed=0, dtype=torch.float32, weights=ArtLossWeights()):
    g = torch.Generator().manual_seed(seed)
    content = torch.rand(pool, 3, size, size, generator=g, dtype=dtype)
    style = torch.rand(3, size, size, generator=g, dtype=dtype)
    return NeuralArtTask(small_vgg(seed, dtype), content, style, weights)


# ------------------------------------------------------------------------------------------------ the network
def test_vgg19_layout_is_torchvisions_so_its_imagenet_weights_load():
    ours = vgg19_features(VGG19_WIDTHS, pooling="max").state_dict()
    theirs = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"]).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert sum(v.numel() for v in ours.values()) == 20_024_384  # VGG-19's convolutional parameters


def test_layer_names_are_gatys_at_the_indices_of_torchvisions_vgg19():
    names = vgg_layer_names(vgg19_features(SMALL))
    # torchvision's vgg19().features: conv1_1 at 0, conv2_1 at 5, conv3_1 at 10, conv4_1 at 19, conv4_2 at 21,
    # conv5_1 at 28; each ReLU right after its convolution; 5 pools
    for name, index in {"conv1_1": 0, "relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20, "relu4_2": 22,
                        "relu5_1": 29, "pool1": 4, "pool5": 36}.items():
        assert names[index] == name
    assert len(names) == 37


def test_features_are_the_layers_outputs_on_normalised_images_and_the_stack_is_cut_after_the_last():
    extractor = small_vgg()
    images = torch.rand(2, 3, 16, 16)
    out = extractor(images)
    assert set(out) == set(LAYERS) and len(extractor.features) == 30  # up to relu5_1
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out["relu1_1"], extractor.features[:2](normalised))
    torch.testing.assert_close(out["relu4_2"], extractor.features[:23](normalised))
    other = extractor(torch.rand(2, 3, 16, 16))
    for name in LAYERS:  # every response depends on the image (the losses below are not about constants)
        assert out[name].abs().sum() > 0 and not torch.allclose(out[name], other[name]), name
    assert not any(p.requires_grad for p in extractor.parameters())
    with pytest.raises(ValueError, match="not in this VGG"):
        VGGFeatures(vgg19_features(SMALL), ["conv6_1"])


def test_imagenet_weights_load_from_a_torchvision_state_dict_under_the_data_root(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the classifier is ignored
    (tmp_path / "vgg19").mkdir()
    torch.save(state, tmp_path / "vgg19" / "vgg19-dcbb9e9d.pth")
    image = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(imagenet_vgg19_features(tmp_path, pooling="max")(image), reference(image))
    averaged = imagenet_vgg19_features(tmp_path, pooling="avg")  # Gatys et al.'s pooling, the same weights
    assert isinstance(averaged[4], torch.nn.AvgPool2d)
    torch.testing.assert_close(averaged[21].weight, reference[21].weight)
    with pytest.raises(DatasetMissingError, match="vgg19-dcbb9e9d.pth"):
        imagenet_vgg19_features(tmp_path / "elsewhere")


# ------------------------------------------------------------------------------------------------- the losses
def test_gram_matrix_against_explicit_loops():
    F = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    G = gram_matrix(F)
    for n, i, j in itertools.product(range(2), range(3), range(3)):
        expected = sum(F[n, i, a, b] * F[n, j, a, b] for a in range(2) for b in range(3))
        assert abs(float(G[n, i, j]) - float(expected)) < 1e-12


def test_content_and_style_losses_against_gatys_equations_worked_with_loops():
    g = torch.Generator().manual_seed(1)
    F, P = torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64), torch.randn(2, 3, 2, 2, generator=g,
                                                                                  dtype=torch.float64)
    A = torch.randn(3, 3, generator=g, dtype=torch.float64)
    for n in range(2):
        half_sq = 0.5 * sum(float(F[n, c, a, b] - P[n, c, a, b]) ** 2
                            for c, a, b in itertools.product(range(3), range(2), range(2)))
        assert abs(float(content_loss(F, P)[n]) - half_sq) < 1e-12
        f = F[n].reshape(3, 4).numpy()
        G = np.array([[sum(f[i, k] * f[j, k] for k in range(4)) for j in range(3)] for i in range(3)])
        E = ((G - A.numpy()) ** 2).sum() / (4 * 3**2 * 4**2)  # N = 3 channels, M = 4 positions
        assert abs(float(style_layer_loss(F, A)[n]) - E) < 1e-12


def test_total_variation_against_loops():
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64)
    for n in range(2):
        expected = sum(float(x[n, c, i, j + 1] - x[n, c, i, j]) ** 2 for c in range(3) for i in range(3)
                       for j in range(3))
        expected += sum(float(x[n, c, i + 1, j] - x[n, c, i, j]) ** 2 for c in range(3) for i in range(2)
                        for j in range(4))
        assert abs(float(total_variation(x)[n]) - expected) < 1e-12


def test_the_problem_loss_is_the_weighted_sum_and_zero_content_loss_at_the_content_image():
    task = small_task(weights=ArtLossWeights(content=2.0, style=3.0, smoothness=0.5))
    problem = task.sample(3, torch.Generator().manual_seed(0))
    terms = problem.terms(problem.params0)
    torch.testing.assert_close(problem.loss(problem.params0),
                               2.0 * terms["content"] + 3.0 * terms["style"] + 0.5 * terms["smoothness"])
    assert torch.all(problem.terms({"image": problem.content_images})["content"] == 0)


def test_style_loss_vanishes_at_the_style_image():
    g = torch.Generator().manual_seed(3)
    style = torch.rand(3, 16, 16, generator=g)
    task = NeuralArtTask(small_vgg(), torch.rand(2, 3, 16, 16, generator=g), style)
    problem = task.sample(2, g)
    assert torch.all(problem.terms({"image": style.expand(2, 3, 16, 16)})["style"].abs() < 1e-10)
    assert torch.all(problem.terms(problem.params0)["style"] > 0)


def test_loss_gradient_against_central_finite_differences():
    task = small_task(dtype=torch.float64, weights=ArtLossWeights(content=1.0, style=1e3, smoothness=1.0))
    problem = task.sample(2, torch.Generator().manual_seed(5))
    image = problem.params0["image"].clone().requires_grad_()
    loss = problem.loss({"image": image})
    grad, = torch.autograd.grad(loss.sum(), image)
    g = torch.Generator().manual_seed(6)
    for _ in range(6):
        index = tuple(int(torch.randint(s, (1,), generator=g)) for s in image.shape)
        eps = 1e-6
        plus, minus = image.detach().clone(), image.detach().clone()
        plus[index] += eps
        minus[index] -= eps
        fd = (problem.loss({"image": plus}).sum() - problem.loss({"image": minus}).sum()) / (2 * eps)
        assert abs(float(fd) - float(grad[index])) <= 1e-5 * max(1.0, abs(float(fd))), (index, float(fd),
                                                                                          float(grad[index]))


# ---------------------------------------------------------------------------------------------- the problems
def test_sampling_draws_distinct_content_images_and_white_noise_starts():
    task = small_task(pool=5)
    assert task.num_params == 3 * 16 * 16
    problem = task.sample(5, torch.Generator().manual_seed(0))
    rows = [int(torch.nonzero((task.content_images == img).flatten(1).all(1))[0]) for img in problem.content_images]
    assert sorted(rows) == list(range(5))  # a pool-sized batch uses every image once
    start = problem.params0["image"]
    assert start.shape == (5, 3, 16, 16) and abs(float(start.mean()) - 0.5) < 0.05
    assert abs(float(start.std()) - 0.25) < 0.03
    again = task.sample(5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.params0["image"], start)  # seeded: the same problems every time
    chunk = problem.select(torch.tensor([1, 3]))
    torch.testing.assert_close(chunk.loss(chunk.params0), problem.loss(problem.params0)[[1, 3]])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="must have the content images' size"):
        NeuralArtTask(small_vgg(), torch.rand(2, 3, 16, 16), torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(K, 3, S, S\)"):
        NeuralArtTask(small_vgg(), torch.rand(2, 3, 16, 8), torch.rand(3, 16, 8))


def test_one_meta_training_truncation_of_the_lstm_optimizer_on_neural_art():
    task = small_task()
    torch.manual_seed(0)
    lstm = LSTMOptimizer(preprocess_p=10.0, output_scale=1.0)
    cfg = MetaTrainConfig(steps=4, unroll=2, meta_batch=2, epochs=1, trajectories_per_epoch=1, val_problems=2)
    before = {k: v.detach().clone() for k, v in lstm.state_dict().items()}
    estimate = TruncatedBPTT(task, cfg).step(lstm, torch.Generator().manual_seed(0), 2)
    assert np.isfinite(estimate.value) and not estimate.failed
    grads = [p.grad for p in lstm.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    history, best = train_learned_optimizer(lstm, task, cfg, progress=False)
    assert len(history) == 1 and np.isfinite(history["val_final_loss"].iloc[0])
    assert any(not torch.equal(before[k], v) for k, v in lstm.state_dict().items())


def test_test_curves_of_the_lstm_and_the_tuned_baselines_on_neural_art():
    task = small_task(pool=3)
    make = lambda: task.sample(3, torch.Generator().manual_seed(1))  # noqa: E731
    lrs, table = tune_baselines(["SGD", "ADAM"], [1e-4, 1e-2], make, 3)
    assert set(table["optimizer"]) == {"SGD", "ADAM"}
    torch.manual_seed(0)
    frame = compare_optimizers({"LSTM": LSTMOptimizer(preprocess_p=10.0)}, lrs, make, 3)
    assert set(frame["optimizer"]) == {"LSTM", "SGD", "ADAM"}
    assert frame.groupby("optimizer").size().eq(3 * 4).all()  # 3 runs × steps 0..3
    adam = frame[frame.optimizer == "ADAM"].pivot(index="run", columns="step", values="loss").to_numpy()
    assert np.all(adam[:, -1] < adam[:, 0])  # Adam lowers the loss of every image
    styled = unroll(LSTMOptimizer(preprocess_p=10.0), make(), 2).detached_params["image"]
    assert styled.shape == (3, 3, 16, 16)


# -------------------------------------------------------------------------------------------- files on disk
def _write_image(path, size=(20, 12), colour=(255, 0, 0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_missing_files_are_all_named_with_the_layout_and_how_to_get_them(tmp_path):
    with pytest.raises(DatasetMissingError) as info:
        neural_art_files(tmp_path, min_content=3)
    text = str(info.value)
    for fragment in ("VGG-19 ImageNet weights", "content images (0 in", "style_train", "style_test",
                     "make data", "download.pytorch.org/models/vgg19-dcbb9e9d.pth", "ImageNet"):
        assert fragment in text, fragment
    # everything there but the weights: only the weights are named
    for i in range(3):
        _write_image(tmp_path / "neural_art" / "content" / f"img{i}.jpg")
    _write_image(tmp_path / "neural_art" / "style_train.png")
    _write_image(tmp_path / "neural_art" / "style_test.jpeg")
    (tmp_path / "neural_art" / "content" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetMissingError) as info:
        neural_art_files(tmp_path, min_content=3)
    assert "VGG-19 ImageNet weights" in str(info.value) and "content images (" not in str(info.value)
    (tmp_path / "vgg19").mkdir()
    (tmp_path / "vgg19" / "vgg19-dcbb9e9d.pth").write_bytes(b"x")
    files = neural_art_files(tmp_path, min_content=3)
    assert [p.name for p in files.content] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert files.style_train.name == "style_train.png" and files.style_test.name == "style_test.jpeg"
    with pytest.raises(DatasetMissingError, match="need at least 4"):
        neural_art_files(tmp_path, min_content=4)


def test_split_is_disjoint_seeded_and_sized_as_asked(tmp_path):
    paths = [tmp_path / f"{i:03d}.jpg" for i in range(30)]
    split = split_content(paths, n_val=3, n_test=5, n_train=10, seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [10, 3, 5]
    assert len(set(split["train"]) | set(split["val"]) | set(split["test"])) == 18
    assert split == split_content(list(reversed(paths)), 3, 5, 10, seed=0)  # the order on disk does not matter
    assert len(split_content(paths, 3, 5, 1000)["train"]) == 22  # all that is left
    with pytest.raises(ValueError, match="cannot give"):
        split_content(paths[:8], 3, 5, 10)


def test_images_are_resized_and_centre_cropped_to_squares_in_unit_range(tmp_path):
    _write_image(tmp_path / "a.png", size=(30, 20), colour=(255, 128, 0))
    images = load_square_images([tmp_path / "a.png"], 8)
    assert images.shape == (1, 3, 8, 8) and images.dtype == torch.float32
    torch.testing.assert_close(images[0, :, 4, 4], torch.tensor([1.0, 128 / 255, 0.0]))
