"""Paper-style figures: learning curves with learned optimizers solid and hand-designed ones dashed
(Andrychowicz et al. Fig. 4-7), saved as PNG and PDF atomically under ``figures/<paper>/``."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import seaborn as sns

from ..evaluation.comparison import divergence_counts, mean_curves
from ..storage.results import atomic_write_bytes

HAND_DESIGNED = ("SGD", "RMSprop", "ADAM", "NAG")
COLOURS = {"LSTM": "tab:blue", "LSTM-sub": "tab:cyan", "SGD": "tab:green", "RMSprop": "tab:purple",
           "ADAM": "tab:red", "NAG": "tab:orange"}


def paper_style():
    sns.set_theme(context="notebook", style="whitegrid")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "axes.titlesize": 11})


def profile_title(title: str, profile: str, note: str = "") -> str:
    """Figure titles carry the profile (smoke figures say "smoke profile") and any note (overrides, data)."""
    return f"{title} ({profile} profile{', ' + note if note else ''})"


def plot_learning_curves(ax, frame, title: str = "", logy: bool = True, steps: tuple | None = None):
    """Mean loss over non-diverged runs vs step; learned solid, hand-designed dashed (Fig. 4)."""
    curves = mean_curves(frame)
    diverged = divergence_counts(frame)
    if steps is not None:
        curves = curves.loc[steps[0]:steps[1]]
    for name in curves.columns:
        label = name + (f" ({diverged[name]} diverged)" if diverged.get(name, 0) else "")
        ax.plot(curves.index, curves[name], label=label, color=COLOURS.get(name),
                linestyle="--" if name in HAND_DESIGNED else "-", linewidth=1.8)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


def save_figure(fig, figures_dir, name: str) -> list[Path]:
    """Write ``<figures_dir>/<name>.png`` and ``.pdf`` atomically; returns the paths."""
    paths = []
    for ext in ("png", "pdf"):
        buffer = io.BytesIO()
        stamp = {"CreationDate": None} if ext == "pdf" else {}  # no timestamp: same figure, same bytes
        fig.savefig(buffer, format=ext, bbox_inches="tight", metadata=stamp)
        paths.append(atomic_write_bytes(Path(figures_dir) / f"{name}.{ext}", buffer.getvalue()))
    return paths




def plot_final_losses(ax, frame, x: str, title: str = ""):
    """Final loss against an architecture size (Fig. 6): one line per optimizer, log-log axes."""
    for name, group in frame.groupby("optimizer"):
        group = group.sort_values(x)
        ax.plot(group[x], group["final_loss"], marker="o", label=name, color=COLOURS.get(name),
                linestyle="--" if name in HAND_DESIGNED else "-")
    ax.set(xscale="log", yscale="log", xlabel=x.replace("_", " ") + " units" if x == "hidden" else x,
           ylabel="final loss", title=title)
    ax.legend(fontsize=8)
    return ax
