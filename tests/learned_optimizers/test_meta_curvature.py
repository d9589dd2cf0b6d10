"""Meta-Curvature (Park & Oliva 2019): the transformed gradient against the explicit Kronecker product, and the
meta-gradient through the unrolled inner loop against central finite differences."""

import pytest
import torch

from l2l_utils.learned_optimizers.meta_curvature import MetaCurvature, curvature_transform
from l2l_utils.optimizers.unroll import unroll


def _vec(t):  # column-major (first index fastest) vec of a tensor
    return t.permute(*reversed(range(t.dim()))).reshape(-1)


def test_transform_of_a_matrix_equals_kron_mi_mo_vec_g():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(1, 3, 4, generator=g, dtype=torch.float64)
    Mo, Mi = torch.randn(3, 3, generator=g, dtype=torch.float64), torch.randn(4, 4, generator=g, dtype=torch.float64)
    out = curvature_transform(G, [Mo, Mi])[0]
    assert torch.allclose(_vec(out), torch.kron(Mi, Mo) @ _vec(G[0]))
    assert torch.allclose(out, Mo @ G[0] @ Mi.T)


def test_transform_of_a_conv_kernel_equals_kron_mf_mi_mo_vec_g():
    g = torch.Generator().manual_seed(1)
    G = torch.randn(2, 3, 2, 2, 2, generator=g, dtype=torch.float64)  # two runs of a (3, 2, 2, 2) kernel
    Mo, Mi, Mf = (torch.randn(n, n, generator=g, dtype=torch.float64) for n in (3, 2, 4))
    out = curvature_transform(G, [Mo, Mi, Mf])
    for r in range(2):
        flat = G[r].reshape(3, 2, 4)
        assert torch.allclose(_vec(out[r].reshape(3, 2, 4)), torch.kron(Mf, torch.kron(Mi, Mo)) @ _vec(flat))


@pytest.mark.parametrize("vectors", ["diagonal", "full"])
def test_untrained_meta_curvature_is_sgd_and_a_bias_gets_a_diagonal_or_full_mo(vectors):
    rule = MetaCurvature({"w": torch.Size([3, 2]), "b": torch.Size([3])}, lr=0.2, vectors=vectors)
    params = {"w": torch.ones(1, 3, 2), "b": torch.zeros(1, 3)}
    grads = {"w": torch.randn(1, 3, 2), "b": torch.randn(1, 3)}
    new, _ = rule.update(params, grads, rule.init(params), 0)
    assert torch.allclose(new["w"], params["w"] - 0.2 * grads["w"])
    assert torch.allclose(new["b"], params["b"] - 0.2 * grads["b"])
    mo = torch.tensor([[1.0, 0.5, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]])
    with torch.no_grad():
        rule.factors("b")[0].copy_(mo if vectors == "full" else torch.diagonal(mo))
    new, _ = rule.with_lr(1.0).update(params, grads, None, 0)
    expected = grads["b"] @ (mo if vectors == "full" else torch.diag(torch.diagonal(mo))).T
    assert torch.allclose(new["b"], -expected)
    assert rule.num_meta_parameters == 3 * 3 + 2 * 2 + (9 if vectors == "full" else 3)
    assert rule.with_lr(1.0).matrices is rule.matrices and rule.lr == 0.2


def test_meta_parameter_count_on_resnet18_is_metamds_table_9():
    """MetaMD Table 9: MetaCur has 2,974,717 meta-parameters on ResNet-18 (its Meta-SGD count, 11,176,512, is
    torchvision's ResNet-18 without the 1000-way classifier, so the classifier is not counted)."""
    torchvision = pytest.importorskip("torchvision")
    shapes = {k: v.shape for k, v in torchvision.models.resnet18().named_parameters() if not k.startswith("fc.")}
    assert sum(s.numel() for s in shapes.values()) == 11_176_512
    assert MetaCurvature(shapes).num_meta_parameters == 2_974_717
    # full M_o for the 40 batch-norm vectors instead: 2·(5·64² + 5·128² + 5·256² + 5·512²) more than their 2·4,800
    assert MetaCurvature(shapes, vectors="full").num_meta_parameters == 2_974_717 - 9_600 + 3_481_600


def test_bad_vectors_is_refused():
    with pytest.raises(ValueError, match="vectors"):
        MetaCurvature({"b": torch.Size([3])}, vectors="block")


class _LeastSquares:
    """f(W) = ‖W X − Y‖² / n, one run (double precision)."""

    def __init__(self):
        g = torch.Generator().manual_seed(2)
        self.x, self.y = torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(2, 5, generator=g, dtype=torch.float64)
        self.params0 = {"w": (0.1 * torch.randn(1, 2, 3, generator=g, dtype=torch.float64)).requires_grad_()}

    def loss(self, params):
        return ((params["w"] @ self.x - self.y) ** 2).mean(dim=(1, 2))


def test_meta_gradient_through_the_unrolled_loop_equals_finite_differences():
    rule = MetaCurvature({"w": torch.Size([2, 3])}, lr=0.1).double()
    with torch.no_grad():
        for p in rule.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    problem = _LeastSquares()
    out = unroll(rule, problem, 4, order="second")
    grads = torch.autograd.grad(out.meta_loss, list(rule.parameters()))

    def meta_loss():  # Σ_{t=1..4} f(θ_t) in double precision, the inner loop written out
        problem, total = _LeastSquares(), 0.0
        w = problem.params0["w"].detach()
        for _ in range(4):
            with torch.enable_grad():
                w = w.requires_grad_()
                g = torch.autograd.grad(problem.loss({"w": w}).sum(), w)[0]
            w = (w - 0.1 * rule.factors("w")[0] @ g @ rule.factors("w")[1].T).detach()
            total += float(problem.loss({"w": w}).sum())
        return total

    h = 1e-6
    for p, g in zip(rule.parameters(), grads):
        for index in [(0, 0), (1, 2), (0, 1)] if p.shape[0] > 2 else [(0, 0), (1, 0)]:
            with torch.no_grad():
                p[index] += h
                up = meta_loss()
                p[index] -= 2 * h
                down = meta_loss()
                p[index] += h
            assert float(g[index]) == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9)


def test_transfer_keeps_matching_matrices_and_resets_the_others():
    rule = MetaCurvature({"fc.weight": torch.Size([4, 3])})
    with torch.no_grad():
        for p in rule.parameters():
            p.mul_(2.0)
    new = rule.transfer({"fc.weight": torch.Size([6, 3])})
    assert torch.equal(new.factors("fc.weight")[1], 2 * torch.eye(3))
    assert torch.equal(new.factors("fc.weight")[0], torch.eye(6))
