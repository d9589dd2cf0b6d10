# %% [markdown]
# # MTL2L: A Context Aware Neural Optimiser — replication
#
# **Paper:** Kuo, Harandi, Fourrier, Walder, Ferraro, Suominen, *MTL2L: A Context Aware Neural Optimiser* (AutoML
# workshop at ICML 2020, arXiv:2007.09343). Read this notebook next to the paper, appendix included.
#
# Every figure, table and numbered claim of the paper, appendix included, and what this notebook does with it:
#
# | section | paper | here |
# |---|---|---|
# | 1 | Fig. 1 (where neural optimisers apply) and Fig. 3 (LSTM optimiser vs MTL2L, multi-task meta-training): diagrams | run: the code they depict is shown in section 1 (Fig. 3b's alternation in section 4) |
# | 1 | §2-3, Table 1 (Eqs. 5-16), Eq. 17, App. B.3-B.5: the SVD-LSTM optimiser and its hypernetworks | run: code shown, checked numerically |
# | 2 | the authors' committed curves of Figs. 2, 4, 5 | run: read, put on one stated scale, the paper's claims judged on them |
# | 3 | Fig. 2 (a), Fig. 4 (a)-(c) (scenario 1): meta-train and test on MNIST, Fashion-MNIST, KMNIST (App. B.1, B.2, B.4, B.5.2) | run (KMNIST: the paper's train/test split where its train split is on disk, `make data PROFILE=paper`; else, as here, seeded halves of its test split) |
# | 4 | Fig. 2 (b), Fig. 5 (scenario 2): tested on an unseen modified CIFAR-10 (App. B.2, B.5.3) | runs where CIFAR-10 is present: not on disk here; also run on MNIST as a labelled substitute unseen domain |
# | 5 | claims table | every claim of §4 and the conclusion (§6) |
#
# App. A is related work (no experiment).
#
# **Profiles.** `smoke` (default) runs every section at toy size on a CPU in about a minute: its figures say
# "smoke profile" and its numbers are not evidence for or against the paper (only the verdicts on the authors' own
# curves, section 2, are real at every profile). `paper` uses the paper's settings (it fits a CPU: the learner has
# 25,450 parameters). Sizes can be overridden: `papermill ... -p profile paper -y "overrides: {test_runs: 5}"`.
#
# **What the paper fixes and what it leaves open.** The paper gives the learner (MLP 784-32-ReLU-10), the optimisers
# (2-layer LSTMs of 20 units on App. A-preprocessed gradients, p = 10; MTL2L's synapses W_t = QΓ_tPᵀ,
# U_t = SΩ_tJᵀ with fixed orthogonal Q, P, S, J from `scipy.stats.ortho_group` and Γ_t, Ω_t from hypernetworks
# 784-32-ReLU-20 of the minibatch x_t), meta-training (Algorithm 1: S = 100 steps per learner, truncation Ξ = 5,
# Q = 20 learners; Q = 30 alternating Fashion-MNIST and KMNIST for scenario 2; Adam at 1e-3), Eq. 17 for scenario 2,
# the test (1,000 steps; SGD, SGD with momentum 0.9 and Adam, all at learning rate 0.01) and the modified CIFAR-10.
# Where it is silent we follow the authors' public code (github.com/Nic5472K/AutoML2020_ICML_MTL2L), each choice a
# named profile switch:
#
# | where the paper is silent | authors' code | switch (`paper` profile value) |
# |---|---|---|
# | how a 20×2 input synapse gets 20 singular values | a learned bias-free 2→20 projection shared by the gates, then 20×20 SVD synapses | built in (both layouts) |
# | singular values from a minibatch | the hypernetwork on every image, averaged over the minibatch; ReLU after the mean | built in |
# | Eq. 17 on which hypernetworks, when reset | all of them; reset to 0 for every new learner; detached at truncations | built in |
# | hypernetwork dropout | 0.1 / 0.25 / 0.1 (input, hidden, output), meta-training only | `hyper_dropout` (True) |
# | App. B.5.3's "small-sized perturbations" | after every learner step in meta-training θ += c·ε, c = max\|θ\|·(100 − t)/100·{0.025 or 0.05} | `perturbation` (True) |
# | meta-gradient clipping | every element clamped to ±1 | `clamp_meta_gradients` (True) |
# | input normalisation | (0.1307, 0.3081) for MNIST, (0.5, 0.5) for the others | `normalisation` ("authors") |
# | minibatch size | 128 | `batch_size` (128) |
# | learner initialisation | PyTorch's default (its ×0.01 rescaling never runs: the loop looks for `nn.Linear` among parameters) | built in |
# | test evaluation | the whole test set every 10 steps | `eval_every` (10) |
#
# The code also adds 10⁻⁶ inside the log of Andrychowicz et al.'s gradient preprocessing; the paper cites their
# formula, which has none, and so do we. Run side by side on the authors' own classes (float64, identical weights,
# gradients over 10⁻⁶…1 and minibatches, six steps with the state carried), our `architecture="authors"` MTL2L
# (with Eq. 17) and `lstm="authors"` LSTM give their updates to 2·10⁻¹⁵ relative without that 10⁻⁶, and to
# 8·10⁻⁴ with it.
#
# Where the code **differs** from the paper we follow the paper and name the switch that gives the code's choice:
# the code truncates every Ξ = 20 steps (paper: 5; `unroll`), trains the LSTM on Q = 10 learners and scenario-2 MTL2L
# on Q = 50 (paper: 20 and 30; `trajectories`, `trajectories_s2`), and its networks differ (`architecture="authors"`,
# `lstm="authors"`: second layer of one unit without a head, the update is 0.1·h₂; MTL2L gate biases only on the
# forget and input gates). The authors' set-up in one override:
# `{"unroll": 20, "trajectories": 10, "trajectories_s2": 50, "architecture": "authors", "lstm": "authors"}`.
# It matters: in the reference run of the `cpu` profile (which is the `paper` profile: `runs/cpu/kuo2020/`), with the
# paper's settings both neural optimisers deteriorate over the 1,000 test steps (mean test NLL on MNIST: LSTM 3.03,
# MTL2L 4.42, Adam 0.257), and MTL2L meta-trained for scenario 2 does not pass its "did it learn?" gate; in an
# earlier run with this override (older code and verdict functions, 5 test runs; not kept in the repository) MTL2L
# ended at 0.265 on MNIST and converged on the unseen domain, so the failures above may come from the paper's stated
# set-up rather than from MTL2L: this code has not yet run the override at `cpu`. The override as a reference job
# of its own (its own folder and figures): `l2l-reproduce --profile cpu --notebooks kuo2020 -p unroll=20 -p trajectories=10 -p trajectories_s2=50
# -p architecture=authors -p lstm=authors --jobs 1`.
#
# **Ours (neither paper nor code):** 10 test runs per method, the same learners and minibatches for every method
# (paired comparisons); the LSTM optimiser of the `paper` layout is the L2L notebook's (Andrychowicz et al.,
# N(0, 0.1²) initialisation); with the paper's Ξ = 5, S = 100 and Q = 20, meta-training sees 2,000 learner steps.
#
# **How claims are judged.** Every comparison is over the test runs (the same runs for every method: paired), each
# run's test curve read by one statistic (`l2l_utils.evaluation.comparison.curve_scores`): "faster" = lower mean test loss over
# all evaluations, "lower" = lower mean over the last `late_window` steps. The verdict functions of
# `l2l_utils.reporting.verdicts` say "reproduced" or "not reproduced" only when the 95% interval (Student/Welch t or
# Fieller for means, an exact sign-test or Hodges–Lehmann interval for medians, valid at every n) excludes the
# threshold, else "inconclusive"; a comparison of fewer than 6 independent units is "inconclusive" whatever it shows. Each figure's claim rows are shown right below it.

# %% tags=["parameters"]
profile = "smoke"     # "smoke" or "paper"
seed = 0              # non-negative integer
device = "auto"       # "auto" (CUDA when present), "cpu", "cuda", "cuda:N"
data_dir = None       # data root; default: $L2L_DATA_DIR, else <project>/data
results_dir = None    # default: runs/<profile>/results/kuo2020
figures_dir = None    # default: figures/kuo2020
overrides = {}        # any profile size, e.g. {"test_runs": 5}
progress = True       # tqdm progress bars

# %%
import inspect
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from l2l_utils.evaluation.comparison import (best_learning_rates, curve_scores, held_out_loss_curves, tune_baselines,
                                             tuned_at_edge)
from l2l_utils.evaluation.meta_test import split_data
from l2l_utils.harness.notebook_setup import start_notebook
from l2l_utils.learned_optimizers.fused_cells import lstm_equations
from l2l_utils.learned_optimizers.lstm_optimizer import LSTMOptimizer
from l2l_utils.learned_optimizers.mtl2l import AuthorsLSTMOptimizer, MTL2LOptimizer, SVDSynapses, count_parameters
from l2l_utils.meta_training.truncated_bptt import MetaTrainConfig, TruncatedBPTT, meta_train_cached, meta_train_key
from l2l_utils.optimizers.baselines import baseline_rule
from l2l_utils.optimizers.update_rules import Context
from l2l_utils.reporting.criteria import converges, deteriorates, each_beats, gets_volatile
from l2l_utils.reporting.learning_gate import CHANCE_10_CLASSES, gate, gated
from l2l_utils.reporting.plotting import profile_title, save_figure
from l2l_utils.reporting.published_curves import (BASELINE_DIVISOR, NEURAL_DIVISOR, implied_divisors, read_curves,
                                                  to_mean_nll, verify)
from l2l_utils.reporting.verdicts import Result, across, all_of, better, negate, within_tolerance
from l2l_utils.storage.paths import project_root
from l2l_utils.storage.results import cached_frame
from l2l_utils.tasks.datasets import (LUMINANCE, DatasetMissingError, DeviceDataset, greyscale_crop, load_dataset,
                                      load_image_dataset, normalise)
from l2l_utils.tasks.datasets.files import has_train_split
from l2l_utils.tasks.models import mlp
from l2l_utils.tasks.problems import AlternatingTask, ClassifierTask

PAPER = "kuo2020"
# Every parameter is checked here, before any compute; a bad value stops with a message naming it.
run = start_notebook(PAPER, "Kuo et al. 2020 (MTL2L)", profile, seed, device, results_dir, figures_dir, overrides)
cfg, dev, results_dir, figures_dir, store, claims, run_note = (
    run.cfg, run.device, run.results_dir, run.figures_dir, run.store, run.claims, run.run_note)
started = run.started
HAND = ["SGD", "SGD-M", "ADAM"]                                   # §4: SGD, SGD with momentum 0.9, Adam
TUNE_SEED, TEST_SEED = 1_000 * seed + 7, 1_000 * seed + 123      # tuning and test learners differ from training
REFERENCE = project_root() / "reference" / "kuo2020_mtl2l"
# the paper's colour code (§4): MTL2L black line, LSTM cyan line, SGD red ×, SGD-M yellow +, Adam blue *
STYLE = {"MTL2L": dict(color="black", lw=2), "LSTM": dict(color="c", lw=2),
         "SGD": dict(color="red", marker="x", ls=""), "SGD-M": dict(color="orange", marker="+", ls=""),
         "ADAM": dict(color="blue", marker="*", ls="")}


def problems(task, n, problem_seed):
    """The same n learners (θ0 and minibatches) every time it is called: every method sees the same runs."""
    return lambda: task.sample(n, torch.Generator().manual_seed(problem_seed))

# %% [markdown]
# ## 1. The method (§2-3, Table 1, App. B.3-B.5)
#
# A neural optimiser $\mathcal{V}$ updates the learner by $\theta_{t+1} = \theta_t + g_{t+1}$,
# $[g_{t+1}, h_{t+1}] = \mathcal{V}(\nabla_\theta\mathcal{L}_{t+1}(\theta_t), h_t \mid \phi)$ (Eqs. 2-3), coordinatewise
# on App. A-preprocessed gradients. MTL2L replaces the LSTM's synapses by $\mathcal{W}_t = Q\Gamma_tP^\top$ and
# $\mathcal{U}_t = S\Omega_tJ^\top$ (Eqs. 13-14) with $\Gamma_t = \mathrm{diag}(\mathcal{N}^{(1)}(x_t))$ and
# $\Omega_t = \mathrm{diag}(\mathcal{N}^{(2)}(x_t))$ from the minibatch $x_t$ (Eqs. 15-16), in scenario 2 smoothed by
# $\mathcal{N}_t = 0.9\mathcal{N}_{t-1} + 0.1\,\mathrm{MLP}(x_t)$, $\mathcal{N}_0 = 0$ (Eq. 17). The gates (Eqs. 9-12),
# one SVD synapse, the hypernetworks with Eq. 17, and one step:

# %%
print(inspect.getsource(lstm_equations))
print(inspect.getsource(SVDSynapses.forward))
print(inspect.getsource(MTL2LOptimizer.context_values))
print(inspect.getsource(MTL2LOptimizer.step_coordinates))

# %% [markdown]
# Meta-training (Algorithm 1) is the shared truncated-BPTT estimator: $\mathscr{L}(\phi) = \sum_{\tau=1}^{\Xi}
# \mathcal{L}_{\tau+1}(\theta_\tau)$ over each truncation of Ξ steps, the learner's gradients entering as constants, the
# graph (hidden states and Eq. 17's averages included) cut between truncations, Adam on φ.

# %%
print(inspect.getsource(TruncatedBPTT.step))

# %% [markdown]
# Parameter counts. The fixed orthogonal matrices are buffers (saved with the model, not trained). The
# hypernetworks hold almost all of MTL2L's parameters: four of 784·32 + 32 + 32·k + k.

# %%
# NBVAL_CHECK_OUTPUT
print("learner MLP 784-32-ReLU-10:                 ", sum(p.numel() for p in mlp(784, [32], 10, "relu").parameters()))
print("LSTM optimiser (Andrychowicz et al.):       ", count_parameters(LSTMOptimizer(preprocess_p=10.0)))
print("LSTM optimiser (authors' code):             ", count_parameters(AuthorsLSTMOptimizer()))
print("MTL2L, paper layout (2×20, head):           ", count_parameters(MTL2LOptimizer("paper")))
print("MTL2L, authors' layout (20 then 1 unit):    ", count_parameters(MTL2LOptimizer("authors")))
print("fixed orthogonal matrices (paper layout):   ", sum(b.numel() for b in MTL2LOptimizer("paper").buffers()))

# %% [markdown]
# Three checks against independent computations (the unit tests pin the same properties):
# (a) the fixed matrices are orthogonal; (b) with given singular values the SVD-LSTM step equals `torch.nn.LSTMCell`
# run with the matrices $W_g = L_g\,\mathrm{diag}(\gamma)R_g^\top$ (an independent LSTM); (c) Eq. 17 by hand: two
# steps of the moving average against $0.1\,m_1$ and $0.9\cdot0.1\,m_1 + 0.1\,m_2$ from the hypernetwork's own
# outputs $m_t$; (d) a batch of optimizees never mixes: changing one run's minibatch leaves another run's update
# unchanged.

# %%
@torch.no_grad()
def method_checks():
    torch.manual_seed(seed)
    H = 20
    rule = MTL2LOptimizer("paper", momentum=0.9, seed=seed).double()
    ortho = max(float((s.left @ s.left.transpose(1, 2) - torch.eye(H, dtype=s.left.dtype)).abs().max())
                for s in (rule.input1, rule.recurrent1, rule.input2, rule.recurrent2))
    gamma, omega = torch.rand(1, H, dtype=torch.float64), torch.rand(1, H, dtype=torch.float64)
    x, h, c = (torch.randn(1, H, 7, dtype=torch.float64) for _ in range(3))  # (runs, units, coordinates)
    ours, _ = lstm_equations(rule.input2(x, gamma) + rule.recurrent2(h, omega), c, H)
    cell = torch.nn.LSTMCell(H, H, bias=False).double()
    order = [1, 0, 2, 3]  # torch's gates are (input, forget, cell, output); ours (forget, input, candidate, output)
    with torch.no_grad():
        cell.weight_ih.copy_(rule.input2.matrices(gamma[0])[order].reshape(4 * H, H))
        cell.weight_hh.copy_(rule.recurrent2.matrices(omega[0])[order].reshape(4 * H, H))
    reference, _ = cell(x[0].T, (h[0].T, c[0].T))
    images = torch.randn(2, 3, 8, 784, dtype=torch.float64)  # two steps, three runs, minibatches of 8
    state = [torch.zeros(3, net.second.out_features, dtype=torch.float64) for net in rule.hypernets]
    rule.eval()
    first = rule.context_values(images[0], state)
    second = rule.context_values(images[1], first)
    m = [[torch.relu(net(images[k])) for net in rule.hypernets] for k in range(2)]
    eq17 = max(max(float((first[i] - 0.1 * m[0][i]).abs().max()), float((second[i] - (0.09 * m[0][i] + 0.1 * m[1][i]))
                                                                          .abs().max())) for i in range(4))
    params = {"w": torch.randn(3, 5, 4, dtype=torch.float64)}
    grads = {"w": torch.randn(3, 5, 4, dtype=torch.float64)}
    plain = MTL2LOptimizer("paper", seed=seed).double().eval()  # no Eq. 17: the minibatch acts at full strength
    start = plain.init(params, Context())
    before, _ = plain.update(params, grads, start, 0, Context(inputs=images[0]))
    changed = images[0].clone()
    changed[1] = 3 * torch.randn_like(changed[1])
    after, _ = plain.update(params, grads, start, 0, Context(inputs=changed))
    mixing = float((after["w"][[0, 2]] - before["w"][[0, 2]]).abs().max())
    moved = float((after["w"][1] - before["w"][1]).abs().max())
    return {"(a) max |LLᵀ − I|": ortho, "(b) SVD-LSTM vs nn.LSTMCell": float((ours[0].T - reference).abs().max()),
            "(c) Eq. 17 by hand": eq17, "(d) other runs' change": mixing}, moved


errors, moved = method_checks()
for name, value in errors.items():
    print(f"{name:<32} {value:.1e}")
print(f"(d) the changed run's own update moved by {moved:.2e} (so the check can fail)")
claims.add("§3 Table 1, Eqs. 13-17", "MTL2L's synapses are W = QΓPᵀ, U = SΩJᵀ with fixed orthogonal matrices and "
           "singular values from the minibatch; scenario 2 averages them by Eq. 17", "exact",
           "orthogonality (matrices stored in float32), and in float64: SVD-LSTM = nn.LSTMCell with the same matrices, "
           "Eq. 17 by hand, no mixing of runs; every error at most 1e-6",
           within_tolerance(errors, 1e-6))
claims.show("§3 Table 1, Eqs. 13-17")

# %% [markdown]
# ## 2. The authors' committed curves, on one stated scale
#
# The authors' repository holds the test curves behind Figs. 2, 4 and 5 (copied unchanged, with its MIT licence, to
# `reference/kuo2020_mtl2l/`): 10 runs per baseline, 5 per neural optimiser (20 for scenario-2 MTL2L), a value every
# 10 steps of the 1,000-step test. Their plotting scripts plot the values as stored. What are they? A 10-class
# learner near its start has a cross-entropy close to ln 10 = 2.303, so ln 10 divided by a file's first value
# estimates the factor between its numbers and the mean NLL per image — exactly for a method still at chance after
# 10 steps, an underestimate for one that has already learned.

# %%
reference = read_curves(REFERENCE)
broken = verify(REFERENCE)
print("files intact (md5):", not broken, broken or "")
divisors = implied_divisors(reference)
display(divisors.drop(columns="file").drop_duplicates().round(4))
print(f"neural optimisers: the authors' test code sums the batch-mean NLL over the 79 test batches of 128 and divides "
      f"by 10,000 images: factor 10,000/79 = {NEURAL_DIVISOR:.2f}")
sgd = divisors.loc[divisors["method"] == "SGD", "ln10_over_first"]
print(f"baselines: the slowest files (SGD) give {sgd.min():.1f}-{sgd.max():.1f}: the same formula with test batches of "
      f"32, 10,000/313 = {BASELINE_DIVISOR:.2f}")

# %% [markdown]
# The neural optimisers' files sit at ≈ 124-129 where they start at chance (LSTM) and above where they start lower
# (MTL2L); the slow baselines at ≈ 32. One common factor cannot fit the ToyCifar10 files, where no 784-32-10 MLP gets
# far below chance: at ×126.6 SGD would sit at NLL ≈ 9 after 10 steps at learning rate 0.01, at ×32 the LSTM optimiser
# at 0.6 on greyscale CIFAR-10. So the stored numbers are on two scales, a factor ≈ 4 apart, and the paper's figures,
# which plot them as stored, show the neural optimisers' losses about four times too low against the baselines.
# Below, every curve on one scale: mean test NLL per image (neural files ×10,000/79, baseline files ×10,000/313).

# %%
ref_nll = to_mean_nll(reference)
mnist_ref = ref_nll[ref_nll.file.str.startswith(("A001", "A003"))]
fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
for method, part in mnist_ref.groupby("method"):
    mean = part.groupby("step")[["value", "nll"]].mean()
    axes[0].plot(mean.index, mean["value"], label=method, markevery=5, **STYLE[method])
    axes[1].plot(mean.index, mean["nll"], label=method, markevery=5, **STYLE[method])
axes[0].set(title="Fig. 4a as committed (values as stored)", xlabel="iteration", ylabel="stored value")
axes[1].set(title="the same files on one scale", xlabel="iteration", ylabel="mean test NLL per image")
axes[1].axhline(np.log(10), color="grey", lw=0.8, ls=":")
axes[0].legend()
save_figure(fig, figures_dir, "authors_curves_scale")
plt.show()

# %% [markdown]
# The paper's claims, judged on the authors' own runs (on the one scale; runs are not paired across methods here, and
# the MTL2L curves come from other runs than the LSTM ones). "Faster" reads the mean test NLL over the 1,000 steps,
# "lower" the mean over the last `late_window` steps.

# %%
def scores_of(frame, value, by="optimizer", late_window=None, split=None):
    """Per method × run: the statistics a claim reads from a test curve (windows of the profile unless given)."""
    return curve_scores(frame, value, late_window or cfg.late_window, split or cfg.volatility_split, by=by)


PAPER_WINDOWS = dict(late_window=100, split=400)  # the authors' 1,000-step curves are read with the paper's numbers


def column(scores, method, name, by="optimizer"):
    return scores.loc[scores[by] == method].sort_values("run")[name].to_numpy()


def neural_beat_hand(scores, name, paired, unit, by="optimizer", chance=None):
    """Both neural optimisers below each of SGD, SGD-M and Adam in statistic ``name`` (`criteria.each_beats`; with
    ``chance``, a baseline not shown below chance loss is not counted as beaten)."""
    values = {m: column(scores, m, name, by) for m in scores[by].unique()}
    return each_beats(values, ("LSTM", "MTL2L"), HAND, paired=paired, unit=unit, chance=chance)


def mtl2l_beats_lstm(scores, name, paired, unit, by="optimizer"):
    return better(column(scores, "MTL2L", name, by), column(scores, "LSTM", name, by), ("MTL2L", "LSTM"),
                  paired=paired, unit=unit, seed=seed)


def deteriorated(scores, method, paired=True, unit="runs", by="optimizer"):
    """The curve ends (mean over the last late_window steps) above its best moving mean by the margin."""
    return deteriorates(column(scores, method, "final", by), column(scores, method, "best", by),
                        cfg.deterioration_margin, paired=paired, unit=unit)


def got_volatile(scores, method, by="optimizer"):
    """Step-to-step changes after volatility_split larger than before it (per run, paired)."""
    return gets_volatile(column(scores, method, "volatility_after", by), column(scores, method, "volatility_before", by),
                         paired=True, unit="runs")


def converged(scores, method, by="optimizer"):
    """The learner ends below where it started (final vs first evaluation, per run)."""
    return converges(column(scores, method, "final", by), column(scores, method, "start", by), paired=True, unit="runs")


S1_CLAIMS = {
    "faster": ("§4 Fig. 4 (scenario 1)", "For all datasets, the neural optimisers updated learners more rapidly than "
               "SGD, SGD with momentum and Adam (all at learning rate 0.01)"),
    "mtl2l_faster": ("§4 Fig. 4 (scenario 1, MTL2L vs LSTM: speed)", "MTL2L converged the learners more efficiently "
                     "than the LSTM optimiser"),
    "mtl2l_lower": ("§4 Fig. 4 (scenario 1, MTL2L vs LSTM: loss)", "MTL2L yielded lower losses than the LSTM optimiser"),
}
S2_CLAIMS = {
    "unstable": ("§4 Fig. 5 (scenario 2)", "On the unseen dataset the LSTM optimiser deteriorates while MTL2L stays "
                 "stable"),
    "timing": ("§4 Fig. 5 (timing)", "The LSTM optimiser's instability is mild for the first 400 iterations and volatile "
               "after"),
    "unseen": ("§6 conclusion", "MTL2L successfully converges learners on an unseen input domain"),
}
FASTER_CRITERION = "mean test NLL over the 1,000 steps per run; each neural optimiser below each baseline"
LOWER_CRITERION = "mean test NLL over the last late_window steps per run; MTL2L below the LSTM"
UNSTABLE_CRITERION = ("LSTM: final (mean over the last late_window steps) above its best 5-evaluation moving mean by "
                      "more than deterioration_margin; MTL2L: not")
TIMING_CRITERION = "standard deviation of the LSTM's step-to-step test-loss changes after step 400 above that before"

ref_s1 = {}
for dataset, prefixes in (("MNIST", ("A001", "A003")), ("FashionMNIST", ("A004",)), ("KMNIST", ("A005",))):
    part = scores_of(ref_nll[ref_nll.file.str.startswith(prefixes)], "nll", by="method", **PAPER_WINDOWS)
    ref_s1[dataset] = part
for key, check, criterion_text in (("faster", lambda s: neural_beat_hand(s, "mean", False, "runs", "method"),
                                    FASTER_CRITERION),
                                   ("mtl2l_faster", lambda s: mtl2l_beats_lstm(s, "mean", False, "runs", "method"),
                                    "mean test NLL over the 1,000 steps per run; MTL2L below the LSTM"),
                                   ("mtl2l_lower", lambda s: mtl2l_beats_lstm(s, "final", False, "runs", "method"),
                                    LOWER_CRITERION)):
    claim, statement = S1_CLAIMS[key]
    claims.add(f"{claim} — authors' curves", statement, "qualitative (plot)",
               criterion_text + " (authors' runs on one scale, unpaired)",
               across({d: check(s) for d, s in ref_s1.items()}), published=True)
toy = scores_of(ref_nll[ref_nll.file.str.startswith("A006")], "nll", by="method", **PAPER_WINDOWS)
claim, statement = S2_CLAIMS["unstable"]
claims.add(f"{claim} — authors' curves", statement, "qualitative (plot)", UNSTABLE_CRITERION + " (authors' runs)",
           all_of({"LSTM deteriorates": deteriorated(toy, "LSTM", by="method"),
                   "MTL2L stable": negate(deteriorated(toy, "MTL2L", by="method"), "MTL2L does not deteriorate")}),
           published=True)
claim, statement = S2_CLAIMS["timing"]
claims.add(f"{claim} — authors' curves", statement, "qualitative (plot)", TIMING_CRITERION + " (authors' runs)",
           got_volatile(toy, "LSTM", by="method"), published=True)
claim, statement = S2_CLAIMS["unseen"]
claims.add(f"{claim} — authors' curves", statement, "qualitative (plot)",
           "MTL2L's final test NLL below its first evaluation, per run (authors' runs)",
           converged(toy, "MTL2L", by="method"), published=True)
claims.show(*(f"{c} — authors' curves" for c, _ in [*S1_CLAIMS.values(), *S2_CLAIMS.values()]))

# %% [markdown]
# ## 3. Scenario 1: meta-train and meta-test on the same dataset (Fig. 2a, Fig. 4a-c)
#
# The learner is an MLP 784-32-ReLU-10 on flattened images. For each dataset the LSTM optimiser and MTL2L (no
# Eq. 17) are meta-trained by Algorithm 1 on its training split, then every method trains 10 new learners for
# 1,000 steps (the same initialisations and minibatches for every method), the test loss is measured on the whole
# test split every 10 steps. KMNIST: where its train split is on disk (`make data PROFILE=paper`), the paper's split
# (60,000 train / 10,000 test); the offline copy here has only its test split, and then a seeded half trains
# (meta-training and the learners' minibatches) and the other half tests — a labelled difference from the paper's
# split. Which one was used is printed below and written in the claims.
#
# **Did it learn?** Every meta-trained optimiser is run beside the same network before meta-training on test learners
# of its training task for the meta-training horizon; it must have lowered the meta-loss (mean loss over the
# horizon) and end at least 10% below the loss at θ0, both decided over the runs (paired). A claim row comparing an
# optimiser that failed is "inconclusive: <name> did not learn" (`l2l_utils.reporting.learning_gate`).
# **Extra (not in the paper):** the three baselines with their learning rate tuned on separate learners (best mean
# final training loss over `tune_grid`; a best rate at the grid's edge extends it by up to `tune_grid_extensions`
# rates, and one still at the edge of the rates tried is printed as such), drawn dashed, to show what the untuned
# comparison leaves out. The claims compare with the baselines at the paper's fixed learning rate 0.01 (§4: "all
# with learning rates 0.01"); the paper tunes nothing, so no claim row depends on this tuning.

# %%
NORMALISATION = {"MNIST": (0.1307, 0.3081)}  # authors' code; (0.5, 0.5) for every other dataset


def prepared(data):
    if cfg.normalisation == "none":
        return data
    mean, std = NORMALISATION.get(data.name, (0.5, 0.5))
    return normalise(data, mean, std)


KMNIST_PAPER_SPLIT = has_train_split("KMNIST", data_dir)  # else seeded halves of its test split
KMNIST_SPLIT_NOTE = ("KMNIST: the paper's train/test split" if KMNIST_PAPER_SPLIT else
                     "KMNIST: seeded halves of its test split (its train split is not on disk)")


def load_domain(name):
    """(train, test, note) for a dataset, normalised as the profile says; raises DatasetMissingError."""
    if name == "KMNIST" and not KMNIST_PAPER_SPLIT:
        pool = load_dataset("KMNIST", "test", data_dir)
        train, test = split_data(pool, cfg.kmnist_train_share, seed)
        note = f"KMNIST test split as a pool: {len(train)} train / {len(test)} test (seeded)"
    elif name == "CIFAR10-grey":
        weights = (0.30, 0.11, 0.59) if cfg.cifar_grey_weights == "as printed" else LUMINANCE
        train, test = (greyscale_crop(load_image_dataset("CIFAR10", s, data_dir, download=False), weights) for s in ("train", "test"))
        note = f"CIFAR-10, grey = {weights[0]}R + {weights[1]}G + {weights[2]}B, top-left 28×28"
    else:
        train, test = load_dataset(name, "train", data_dir), load_dataset(name, "test", data_dir)
        note = f"{name}: {len(train)} train / {len(test)} test" + (" (the paper's split)" if name == "KMNIST" else "")
    if name == "CIFAR10-grey":  # normalised as the other non-MNIST datasets
        train, test = (normalise(d, 0.5, 0.5) if cfg.normalisation == "authors" else d for d in (train, test))
    else:
        train, test = prepared(train), prepared(test)
    return train, test, note


def classifier_task(train):
    return ClassifierTask(mlp(784, [cfg.learner_hidden], 10, "relu"),
                          DeviceDataset.from_image_data(train, dev, flatten=True), cfg.batch_size, init_std=None)


def new_lstm():
    torch.manual_seed(seed)
    if cfg.lstm == "authors":
        return AuthorsLSTMOptimizer().to(dev)
    return LSTMOptimizer(preprocess_p=10.0, output_scale=0.1, init_std=0.1, init="normal").to(dev)


def new_mtl2l(momentum):
    torch.manual_seed(seed)
    return MTL2LOptimizer(cfg.architecture, momentum=momentum,
                          dropout=(0.1, 0.25, 0.1) if cfg.hyper_dropout else (0.0, 0.0, 0.0),
                          perturbation=cfg.perturbation, perturbation_horizon=cfg.train_steps, seed=seed).to(dev)


def meta_config(trajectories):
    """Algorithm 1: `trajectories` learners of S steps, truncations of Ξ, Adam; one validation at the end."""
    return MetaTrainConfig(steps=cfg.train_steps, unroll=cfg.unroll, meta_batch=1, epochs=1,
                           trajectories_per_epoch=trajectories, val_problems=cfg.val_problems, meta_lr=cfg.meta_lr,
                           seed=seed, clip_value=1.0 if cfg.clamp_meta_gradients else None)


def kmnist_split_key(domains):
    """Nothing with the seeded halves (the keys stay those of earlier runs); the split where it is the paper's, so
    results on it are stored apart."""
    return {"kmnist_split": "paper"} if KMNIST_PAPER_SPLIT and "KMNIST" in domains else {}


def setting_of(kind, domains, momentum=0.0):
    base = {"learner": f"mlp-784-{cfg.learner_hidden}-relu-10", "batch": cfg.batch_size, "domains": list(domains),
            "normalisation": cfg.normalisation, "kmnist_train_share": cfg.kmnist_train_share,
            **kmnist_split_key(domains)}
    if kind == "LSTM":
        return {**base, "optimiser": f"lstm-{cfg.lstm}"}
    return {**base, "optimiser": f"mtl2l-{cfg.architecture}", "momentum": momentum, "dropout": cfg.hyper_dropout,
            "perturbation": cfg.perturbation}


GATES = {}  # "did it learn?" of every meta-trained optimiser, by its name (e.g. "lstm-MNIST")


def meta_trained(kind, task, domains, trajectories, momentum=0.0):
    """The optimiser meta-trained on `task` (cached by its full setting), in evaluation mode, and its key; its
    "did it learn?" gate (against the same network before meta-training, on test learners of `task` for the
    meta-training horizon) goes into GATES."""
    make = (lambda: new_lstm()) if kind == "LSTM" else (lambda: new_mtl2l(momentum))
    rule = make()
    name, setting, meta = f"{kind.lower()}-{'+'.join(domains)}", setting_of(kind, domains, momentum), meta_config(
        trajectories)
    history, reused = meta_train_cached(rule, task, meta, results_dir, name, setting, progress)
    rule.eval()
    GATES[name] = gate(kind, rule, make().eval(), problems(task, cfg.test_runs, TEST_SEED), cfg.train_steps,
                       chance=CHANCE_10_CLASSES)
    print(f"{kind} meta-trained on {' + '.join(domains)}: {trajectories} learners × {cfg.train_steps} steps, "
          f"Ξ = {cfg.unroll}; reused: {reused}; final validation loss {history['val_final_loss'].iloc[-1]:.3f}; "
          f"did it learn? {GATES[name].verdict}")
    return rule, meta_train_key(results_dir, name, meta, setting)


def test_frame(name, learned, keys, task, test_data, tuned=None):
    """Test curves of the learned rules and the baselines (lr 0.01; plus tuned ones if given) on the same learners."""
    rules = {**learned, **{h: baseline_rule(h, cfg.baseline_lr) for h in HAND}}
    rules.update({f"{h} (tuned)": baseline_rule(h, lr) for h, lr in (tuned or {}).items()})
    test_dev = DeviceDataset.from_image_data(test_data, dev, flatten=True)
    return cached_frame(store, name, {"keys": keys, "tuned": tuned, "n": cfg.test_runs},
                        lambda: held_out_loss_curves(rules, problems(task, cfg.test_runs, TEST_SEED), cfg.test_steps,
                                                 cfg.eval_every, task, test_dev))[0]


def tuned_rates(name, task, domains):
    """The extra's tuned rates (best mean final training loss on separate learners; a best rate at the grid's edge
    extends the grid by up to `tune_grid_extensions` rates) and the baselines still at the edge of the rates tried."""
    table, _ = cached_frame(store, f"{name}-tuning", {"grid": cfg.tune_grid, "runs": cfg.tune_runs,
                                                      "extensions": cfg.tune_grid_extensions,
                                                      **kmnist_split_key(domains)},
                            lambda: tune_baselines(HAND, cfg.tune_grid, problems(task, cfg.tune_runs, TUNE_SEED),
                                                   cfg.test_steps, cfg.tune_grid_extensions)[1])
    return best_learning_rates(table), tuned_at_edge(table)


def plot_curves(ax, frame, title, value="test_loss"):
    for method, part in frame.groupby("optimizer", sort=False):
        mean = part.groupby("step")[value].mean()
        if method.endswith("(tuned)"):
            ax.plot(mean.index, mean.values, ls="--", lw=1, color=STYLE[method.split()[0]]["color"], label=method)
        else:
            ax.plot(mean.index, mean.values, label=method, markevery=max(1, len(mean) // 20), **STYLE[method])
    ax.set(title=title, xlabel="iteration", ylabel="mean test NLL per image")


scenario1, s1_scores, s1_notes = {}, {}, {}
for dataset in cfg.datasets_s1:
    try:
        train, test, s1_notes[dataset] = load_domain(dataset)
    except DatasetMissingError as missing:
        print(f"{dataset}: not run: data missing\n{missing}")
        continue
    print(s1_notes[dataset])
    task = classifier_task(train)
    lstm, lstm_key = meta_trained("LSTM", task, [dataset], cfg.trajectories)
    mtl2l, mtl2l_key = meta_trained("MTL2L", task, [dataset], cfg.trajectories)
    tuned, edge = tuned_rates(f"s1-{dataset}", task, [dataset])
    print("tuned learning rates (extra):", tuned, "| still at the edge of the rates tried:", edge or "none")
    scenario1[dataset] = test_frame(f"s1-{dataset}-test", {"LSTM": lstm, "MTL2L": mtl2l}, [lstm_key, mtl2l_key],
                                    task, test, tuned)
    s1_scores[dataset] = scores_of(scenario1[dataset], "test_loss")

# %%
ref_s1_frames = {"MNIST": ("A001", "A003"), "FashionMNIST": ("A004",), "KMNIST": ("A005",)}
if scenario1:
    fig, axes = plt.subplots(2, len(scenario1), figsize=(4.5 * len(scenario1), 7.5), squeeze=False,
                             constrained_layout=True)
    for j, (dataset, frame) in enumerate(scenario1.items()):
        plot_curves(axes[0, j], frame, profile_title(f"Fig. 4: {dataset} (ours)", profile, run_note))
        authors = ref_nll[ref_nll.file.str.startswith(ref_s1_frames[dataset])].rename(columns={"method": "optimizer"})
        plot_curves(axes[1, j], authors, f"{dataset}: authors' curves, one scale", value="nll")
        axes[1, j].set_ylim(axes[0, j].get_ylim())
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, figures_dir, "fig4_scenario1")
    plt.show()
    display(pd.concat({d: s.groupby("optimizer")[["mean", "final"]].mean() for d, s in s1_scores.items()}, axis=1)
            .round(3))
for key, check, criterion_text in (("faster", lambda s: neural_beat_hand(s, "mean", True, "runs", chance=CHANCE_10_CLASSES),
                                    FASTER_CRITERION + " (paired; a baseline not shown 10% below chance, ln 10, is not "
                                    "counted as beaten)"),
                                   ("mtl2l_faster", lambda s: mtl2l_beats_lstm(s, "mean", True, "runs"),
                                    "mean test NLL over the 1,000 steps per run; MTL2L below the LSTM (paired)"),
                                   ("mtl2l_lower", lambda s: mtl2l_beats_lstm(s, "final", True, "runs"),
                                    LOWER_CRITERION + " (paired)")):
    claim, statement = S1_CLAIMS[key]
    missing = [d for d in ("MNIST", "FashionMNIST", "KMNIST") if d not in s1_scores]
    if not s1_scores:
        claims.not_run(claim, statement, "qualitative (plot)", "no scenario-1 dataset available")
        continue
    result = across({d: gated(check(s), {"LSTM": GATES[f"lstm-{d}"], "MTL2L": GATES[f"mtl2l-{d}"]})
                     for d, s in s1_scores.items()})
    if missing and result.kind == "reproduced":
        result = Result(f"inconclusive: not measured on {', '.join(missing)}", result.measured)
    claims.add(claim, statement, "qualitative (plot)",
               criterion_text + (f"; {KMNIST_SPLIT_NOTE}" if "KMNIST" in s1_scores else ""), result)
claims.show(*(c for c, _ in S1_CLAIMS.values()))

# %% [markdown]
# ## 4. Scenario 2: meta-test on an unseen dataset (Fig. 2b, Fig. 5)
#
# The LSTM optimiser is meta-trained on KMNIST only; MTL2L on Fashion-MNIST and KMNIST in turn (odd learners one,
# even ones the other, App. B.5.3) with Eq. 17's moving average and Q = 30 learners. Both are then tested on a
# dataset neither saw: the paper's modified CIFAR-10 (greyscale "0.30R + 0.59B + 0.11G" as printed — the usual
# luminance weights are 0.299R + 0.587G + 0.114B, switch `cifar_grey_weights` — and the top-left 28×28 crop), which
# runs wherever CIFAR-10 is on disk; and, here, MNIST as a **substitute** unseen domain (labelled in every row):
# meta-training is exactly the paper's, only the test domain differs.

# %%
scenario2, s2_scores = {}, {}
try:
    fmnist_train, _, _ = load_domain("FashionMNIST")
    kmnist_train, _, kmnist_note = load_domain("KMNIST")
    print(kmnist_note)
    s2_ready = True
except DatasetMissingError as missing:
    print(f"scenario 2: not run: data missing\n{missing}")
    s2_ready = False
if s2_ready:
    lstm2, lstm2_key = meta_trained("LSTM", classifier_task(kmnist_train), ["KMNIST"], cfg.trajectories)
    mtl2l2, mtl2l2_key = meta_trained("MTL2L", AlternatingTask([classifier_task(fmnist_train),
                                                                classifier_task(kmnist_train)]),
                                      ["FashionMNIST", "KMNIST"], cfg.trajectories_s2, cfg.eq17_momentum)
    for domain, label in (("CIFAR10-grey", "modified CIFAR-10 (the paper's)"), ("MNIST", "MNIST (substitute)")):
        try:
            train, test, note = load_domain(domain)
        except DatasetMissingError as missing:
            print(f"{label}: not run: data missing ({'; '.join(missing.missing)})")
            continue
        print(note)
        frame = test_frame(f"s2-{domain}-test", {"LSTM": lstm2, "MTL2L": mtl2l2}, [lstm2_key, mtl2l2_key],
                           classifier_task(train), test)
        scenario2[label] = frame
        s2_scores[label] = scores_of(frame, "test_loss")

# %%
if scenario2:
    toy_frame = ref_nll[ref_nll.file.str.startswith("A006")].rename(columns={"method": "optimizer"})
    fig, axes = plt.subplots(1, len(scenario2) + 1, figsize=(4.8 * (len(scenario2) + 1), 4), squeeze=False,
                             constrained_layout=True)
    for j, (label, frame) in enumerate(scenario2.items()):
        plot_curves(axes[0, j], frame, profile_title(f"Fig. 5: {label}", profile, run_note))
    plot_curves(axes[0, -1], toy_frame, "Fig. 5: authors' curves (ToyCifar10), one scale", value="nll")
    axes[0, 0].legend(fontsize=8)
    save_figure(fig, figures_dir, "fig5_scenario2")
    plt.show()
    display(pd.concat({d: s.groupby("optimizer")[["start", "mean", "final", "best", "volatility_before",
                                                  "volatility_after"]].mean() for d, s in s2_scores.items()}).round(3))
for key, (claim, statement) in S2_CLAIMS.items():
    for label in ("modified CIFAR-10 (the paper's)", "MNIST (substitute)"):
        row = f"{claim} — {label}"
        if label not in s2_scores:
            why = ("CIFAR-10 is not on disk (not available offline)" if "CIFAR" in label
                   else "data missing for scenario 2")
            claims.not_run(row, statement, "qualitative (plot)", why)
            continue
        s = s2_scores[label]
        if key == "unstable":
            result = all_of({"LSTM deteriorates": deteriorated(s, "LSTM"),
                             "MTL2L stable": negate(deteriorated(s, "MTL2L"), "MTL2L does not deteriorate")})
            text = UNSTABLE_CRITERION
        elif key == "timing":
            result, text = got_volatile(s, "LSTM"), TIMING_CRITERION
        else:
            result = all_of({"MTL2L converges": converged(s, "MTL2L"),
                             "MTL2L below the LSTM": mtl2l_beats_lstm(s, "final", True, "runs")})
            text = "MTL2L's final test NLL below its start and below the LSTM's, per run (paired)"
        claims.add(row, statement, "qualitative (plot)", f"{text}; meta-trained on {KMNIST_SPLIT_NOTE}",
                   gated(result, {"LSTM": GATES["lstm-KMNIST"], "MTL2L": GATES["mtl2l-FashionMNIST+KMNIST"]}))
claims.show(*(f"{c} — {label}" for c, _ in S2_CLAIMS.values()
              for label in ("modified CIFAR-10 (the paper's)", "MNIST (substitute)")))

# %% [markdown]
# ## 5. Claims table
# One row per claim, as judged above: on the authors' own curves (section 2, on one scale) and on our runs (sections
# 3-4), with the criterion, the measurement with its 95% interval over runs, and the verdict of a tested
# function (`l2l_utils.reporting.verdicts`). At the `smoke` profile the verdicts on our runs read "smoke: pipeline ran".

# %%
claims.save(results_dir / "claims.csv")
print(claims.counts())
display(Markdown(claims.to_markdown()))
print(f"took {time.perf_counter() - started:.1f} s")

# %%
# NBVAL_CHECK_OUTPUT
print(claims.display_verdicts())
