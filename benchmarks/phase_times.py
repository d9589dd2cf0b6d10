"""Where the time of an executed notebook goes: meta-training, tuning of the baselines, meta-testing, the rest.

Reads notebooks executed by papermill (every code cell's ``metadata.papermill`` holds its ``duration``, ``start_time``
and ``end_time``) and assigns each cell's seconds to a phase, in three explicit steps that can be reviewed:

1. **Sections.** A code cell belongs to the section of the last ``## heading`` above it (cells before the first one
   are the set-up: imports, parameters, data). :data:`NOTEBOOKS` maps each notebook's sections to a phase, written
   after reading what the section's code computes (``notebooks/src/<notebook>.py``); a section whose cells do several
   phases in one loop (e.g. meta-train, tune the baselines and test per dataset) is ``mixed``, not guessed.
2. **Stored results** (when the run's ``results_dir`` is there). Every result the notebook stores (``ResultsStore``:
   ``<name>.json`` with its ``saved_at``, whole seconds, UTC) closes an interval: the seconds of a cell from its start
   (or the previous save in it) to a save go to the phase of what was saved, by the notebook's name patterns
   (``*-history``: a meta-training; ``*-tuning``: a tuning; ``*-test``: a test run, ...); after the cell's last save
   the rest goes to the cell's section phase. An interval holds whatever ran since the previous save (e.g. the
   "did it learn?" gate of the optimizer trained before it), so the split is as fine as the stores are.
3. **Progress bars** (when the run showed them): the last state of every tqdm bar in a cell's stderr
   (``meta-training: 100%|...| 400/400 [01:12<00:00, 5.55it/s]``) gives that meta-training's seconds and units. In
   a mixed cell, the bars' meta-training seconds not already assigned to meta-training by step 2 move from mixed to
   meta-training (measured, not guessed); their sum is printed beside the phases as a check, and
   :mod:`dominant_loops` takes the rate (units per second) from them.

Reused results: a re-executed notebook that loaded its stored results shows near-zero durations. Each notebook is
checked: its printed ``reused: True/False`` lines, stored results older than the execution (in its results folder),
and, for a job of the batch runner, the ``seconds`` of its ``job.json`` against the notebook's own wall time; a
notebook whose meta-trainings were all reused is marked ``CACHED``: its shares describe the reuse, not the work.

    python benchmarks/phase_times.py runs/cpu/kuo2020/seed0/kuo2020_mtl2l.ipynb [--results DIR] [--json out.json]
    python benchmarks/phase_times.py --profile cpu [--runs runs] [--markdown] [--cells]
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

META, TUNING, TESTING, OTHER, MIXED = "meta-training", "tuning", "meta-testing", "figures/claims/other", "mixed"
PHASES = (META, TUNING, TESTING, OTHER, MIXED)
SETUP = "(set-up)"  # the section of the cells before the first heading: imports, parameters, data
OVERHEAD = "(between cells)"  # papermill's wall time not inside any cell: kernel start, saving the notebook


@dataclass(frozen=True)
class Mapping:
    """One notebook's phase assignment: ``sections`` (regular expression on the ``##`` heading, phase), first match
    wins, unmatched sections are ``mixed``; ``results`` (regular expression on a stored result's name without its
    12-hex key, phase), first match wins, unmatched names take the cell's section phase; ``note``: what is mixed."""

    sections: tuple = ()
    results: tuple = ()
    note: str = ""


HISTORY = (r"-history$", META)  # cached_training: the history is stored when a meta-training ends
NOTEBOOKS = {
    "kuo2020_mtl2l": Mapping(
        sections=((r"^1\. The method", OTHER), (r"^2\. The authors' committed curves", OTHER),
                  (r"^3\. Scenario 1", MIXED), (r"^4\. Scenario 2", MIXED), (r"Claims table", OTHER)),
        results=(HISTORY, (r"-tuning$", TUNING), (r"^s[12]-.*-test$", TESTING)),
        note="§3-4 meta-train the LSTM and MTL2L, tune the baselines and test, per dataset, in one cell each"),
    "andrychowicz2016_l2l": Mapping(
        sections=((r"^1\. The method", OTHER), (r"^2\. Quadratic", MIXED), (r"^3\. A small MLP", MIXED),
                  (r"^4\. Generalisation", MIXED), (r"^5\. Systematic", MIXED), (r"^6\. A convolutional", MIXED),
                  (r"^7\. Neural art", MIXED), (r"^8\. Inside", OTHER), (r"^Appendix D", MIXED),
                  (r"^Appendix A ablation", MIXED), (r"Claims table", OTHER)),
        results=(HISTORY, (r"tuning", TUNING), (r"-test($|-)", TESTING), (r"^fig6-sweep$", MIXED),
                 (r"^lstm-init-evidence$", TESTING)),
        note="§2-7 and the appendices meta-train, tune and test in the same cells; the Fig. 6 sweep trains and "
             "tests per architecture in one stored frame"),
    "head_to_head": Mapping(
        sections=((r"^1\. Data", OTHER), (r"^2\. Meta-training", META), (r"^3\. Hand-designed", TUNING),
                  (r"^4\. The generalisation grid", TESTING), (r"^5\. The table", OTHER), (r"^6\. Curves", OTHER),
                  (r"^7\. The papers' generalisation", OTHER), (r"^8\. Cost", OTHER), (r"Claims table", OTHER)),
        results=(HISTORY, (r"^tuning$", TUNING), (r"^cell-", TESTING)),
        note="§2 also runs each optimizer's \"did it learn?\" gate (a short test); §8 times single steps "
             "(a benchmark, counted as other)"),
    "simple_optimizer": Mapping(
        sections=((r"^1\. The method", OTHER), (r"^2\. The weighted", OTHER), (r"^3\. Meta-training", META),
                  (r"^4\. Comparison", MIXED), (r"^5\. Ablations", MIXED), (r"^6\. The biases", OTHER),
                  (r"^7\. LeNet", MIXED), (r"^8\. New models", MIXED), (r"^9\. A deeper", MIXED),
                  (r"^10\. Time per step", OTHER), (r"Claims table", OTHER)),
        results=(HISTORY, (r"baselines$", MIXED), (r"learned$", TESTING), (r"^transfer-", TESTING),
                 (r"^did-it-learn$", TESTING), (r"^fig2-fig3", MIXED)),
        note="the baseline frames tune and test together; §4-9 test the learned optimizers beside them"),
    "huisman2022_turtle": Mapping(
        sections=((r"^1\. The methods", OTHER), (r"^2\. Theorem 1", OTHER), (r"^3–4\. Sine", MIXED),
                  (r"^5\. Few-shot", MIXED), (r"^6\. Extension", MIXED), (r"^7\. Running time", OTHER),
                  (r"Claims table", OTHER)),
        results=((r"^turtle-at-initialisation$", TESTING), (r".", MIXED)),
        note="each sine/image experiment meta-trains and tests its methods before one store.save of the scores"),
    "metamd": Mapping(
        sections=((r"^1\. The method", OTHER), (r"^1b\. Which hypergradient", MIXED), (r"^2\. Fig\. 1", MIXED),
                  (r"^3–6\. Networks", MIXED), (r"^9\. High-resolution", MIXED), (r"^7\. Table 9", OTHER),
                  (r"^8\. Theorem 4\.1", OTHER), (r"Claims table", OTHER)),
        results=(HISTORY, (r".", MIXED)),
        note="the scores frames are stored after meta-training and testing together (one store.save each)"),
}
NOTEBOOK_ALIASES = {"kuo2020": "kuo2020_mtl2l", "andrychowicz2016": "andrychowicz2016_l2l",
                    "huisman2022": "huisman2022_turtle"}

_KEY = re.compile(r"-[0-9a-f]{12}(?=-|$)")
_BAR = re.compile(r"^(?P<desc>[^\r\n|]*?):\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
                  r"\[(?P<elapsed>[\d:]+)<")
_REUSED = re.compile(r"reused(?: from results store)?: (True|False)")
META_BARS = re.compile(r"meta-training|MetaMD|ARUBA|fine-tuning", re.I)


def _time(value) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _seconds(clock: str) -> int:
    total = 0
    for part in clock.split(":"):
        total = 60 * total + int(part)
    return total


def result_name(stem: str) -> str:
    """A stored result's name without its 12-hex key: ``lstm-MNIST-00bf7230b0cc-history`` -> ``lstm-MNIST-history``."""
    return _KEY.sub("", stem)


def phase_of(name: str, patterns, default: str | None) -> str | None:
    for pattern, phase in patterns:
        if re.search(pattern, name):
            return phase
    return default


@dataclass
class Bar:
    """The last state of one tqdm bar: ``start`` units already done when it began (a resumed run), ``n`` at its end,
    ``elapsed`` seconds (whole: tqdm prints mm:ss)."""

    desc: str
    start: int
    n: int
    total: int
    elapsed: int

    @property
    def units(self) -> int:
        return self.n - self.start


def progress_bars(text: str) -> list[Bar]:
    """Every tqdm bar in ``text`` (a cell's stderr), by its last printed state; a bar ends where the next one starts
    (a new description, or a count or elapsed time that goes back)."""
    bars: list[Bar] = []
    for piece in re.split(r"[\r\n]", text):
        m = _BAR.match(piece.strip())
        if not m:
            continue
        desc, n, total, elapsed = m["desc"].strip(), int(m["n"]), int(m["total"]), _seconds(m["elapsed"])
        last = bars[-1] if bars else None
        if last and last.desc == desc and last.total == total and n >= last.n and elapsed >= last.elapsed:
            last.n, last.elapsed = n, elapsed
        else:
            bars.append(Bar(desc, n, n, total, elapsed))
    return bars


@dataclass
class Cell:
    index: int
    section: str
    phase: str  # the section's phase
    seconds: float
    start: datetime | None
    end: datetime | None
    split: dict = field(default_factory=dict)  # phase -> seconds
    bars: list = field(default_factory=list)
    saves: list = field(default_factory=list)  # (name, time, phase, seconds of the interval it closes)


def _stream(cell, name: str) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == name)


def stored_results(results_dir: Path | None) -> list[tuple[str, datetime]]:
    """(name without key, saved_at) of every stored result under ``results_dir`` (its ``*.json`` with ``saved_at``)."""
    if results_dir is None or not results_dir.is_dir():
        return []
    saves = []
    for path in results_dir.rglob("*.json"):
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("saved_at"):
            saves.append((result_name(path.stem), _time(meta["saved_at"])))
    return sorted(saves, key=lambda s: s[1])


def split_cell(cell: Cell, saves, patterns) -> dict:
    """The cell's seconds by phase: from its start to each save inside it (1 s of slack: ``saved_at`` is truncated
    to whole seconds) to the saved result's phase, the rest to the cell's section phase."""
    split: dict = {}
    if cell.start is None or cell.end is None or not saves:
        return {cell.phase: cell.seconds}
    begin, end = cell.start.timestamp(), cell.end.timestamp()
    previous = begin
    for name, when in saves:
        t = when.timestamp()
        if not begin - 1 <= t <= end + 1:
            continue
        t = min(max(t, previous), end)
        phase = phase_of(name, patterns, cell.phase)
        cell.saves.append((name, when, phase, t - previous))
        split[phase] = split.get(phase, 0.0) + (t - previous)
        previous = t
    split[cell.phase] = split.get(cell.phase, 0.0) + max(0.0, end - previous)
    # scale to the recorded duration (start/end and duration differ by milliseconds)
    total = sum(split.values())
    return {k: v * cell.seconds / total for k, v in split.items()} if total > 0 else {cell.phase: cell.seconds}


@dataclass
class Report:
    path: Path
    notebook: str
    wall: float
    cells: list
    phases: dict
    bar_seconds: float
    bars: list
    results_dir: Path | None
    reused: dict
    older_results: int
    fresh_results: int
    job_seconds: float | None
    job_threads: int | None
    note: str
    flags: list

    @property
    def cached(self) -> bool:
        return any(f.startswith("CACHED") for f in self.flags)


def notebook_key(path: Path, nb) -> str:
    stem = path.stem
    if stem in NOTEBOOKS:
        return stem
    return NOTEBOOK_ALIASES.get(stem, stem)


def analyse(path, results_dir=None, mapping: Mapping | None = None) -> Report:
    """The phase report of one executed notebook (module docstring)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    key = notebook_key(path, nb)
    mapping = mapping or NOTEBOOKS.get(key, Mapping(note="no mapping for this notebook: every section is mixed"))
    papermill = nb.metadata.get("papermill", {})
    params = papermill.get("parameters") or {}
    if results_dir is None and params.get("results_dir"):
        results_dir = Path(params["results_dir"])
    if results_dir is not None and not Path(results_dir).is_dir():
        results_dir = None
    if results_dir is None and (path.parent / "results").is_dir():  # a batch job's folder, moved or copied
        results_dir = path.parent / "results"
    results_dir = Path(results_dir) if results_dir else None
    saves = stored_results(results_dir)

    section, cells, reused = SETUP, [], {"True": 0, "False": 0}
    for index, c in enumerate(nb.cells):
        if c.cell_type == "markdown":
            for line in c.source.splitlines():
                m = re.match(r"^##\s+(.*)$", line.strip())  # level 2 exactly: sections
                if m:
                    section = m.group(1).strip()
                    break
            continue
        if c.cell_type != "code":
            continue
        meta = c.metadata.get("papermill", {})
        seconds = float(meta.get("duration") or 0.0)
        phase = OTHER if section == SETUP else phase_of(section, mapping.sections, MIXED)
        cell = Cell(index, section, phase, seconds, _time(meta.get("start_time")), _time(meta.get("end_time")))
        cell.split = split_cell(cell, saves, mapping.results)
        cell.bars = progress_bars(_stream(c, "stderr"))
        bars_in_cell = sum(b.elapsed for b in cell.bars if META_BARS.search(b.desc))
        moved = min(max(0.0, bars_in_cell - cell.split.get(META, 0.0)), cell.split.get(MIXED, 0.0))
        if moved > 0:  # measured meta-training inside a mixed cell that no stored result accounted for
            cell.split[MIXED] -= moved
            cell.split[META] = cell.split.get(META, 0.0) + moved
        for m in _REUSED.finditer(_stream(c, "stdout")):
            reused[m.group(1)] += 1
        cells.append(cell)

    start, end = _time(papermill.get("start_time")), _time(papermill.get("end_time"))
    in_cells = sum(c.seconds for c in cells)
    if papermill.get("duration") is not None:
        wall = float(papermill["duration"])
    elif start and cells and cells[-1].end:
        wall = (cells[-1].end - start).total_seconds()  # still running: up to the last finished cell
    else:
        wall = in_cells
    phases = {p: 0.0 for p in PHASES}
    for c in cells:
        for p, s in c.split.items():
            phases[p] += s
    phases[OTHER] += max(0.0, wall - in_cells)  # kernel start, between cells
    bars = [b for c in cells for b in c.bars]
    bar_seconds = sum(b.elapsed for b in bars if META_BARS.search(b.desc))

    older = sum(1 for _, t in saves if start and t < start)
    fresh = len(saves) - older
    job = path.parent / "job.json"
    job_seconds = job_threads = None
    if job.exists():
        record = json.loads(job.read_text(encoding="utf-8"))
        job_seconds, job_threads = record.get("seconds"), record.get("threads")
    flags = []
    if reused["True"] and not reused["False"]:
        flags.append(f"CACHED: all {reused['True']} meta-trainings it reports were reused from stored results")
    elif reused["True"]:
        flags.append(f"says \"reused: True\" for {reused['True']} of {reused['True'] + reused['False']} "
                     f"meta-trainings (a result of this run used again, or one stored before it)")
    timed = sum(1 for c in cells if c.start is not None)
    if cells and timed < len(cells) and end is not None:  # a run still going has not started its last cells
        flags.append(f"{len(cells) - timed} of {len(cells)} code cells carry no papermill timing")
    if wall > 0 and wall - in_cells > max(60.0, 0.1 * wall):
        flags.append(f"{wall - in_cells:.0f} s of the wall time are outside the cells (kernel start, between "
                     f"cells; counted as other)")
    if job_seconds and job_seconds > 2 * wall + 60:
        flags.append(f"CACHED?: job.json says {job_seconds:.0f} s, the notebook's own wall time is {wall:.0f} s")
    if older and results_dir is not None:
        flags.append(f"{older} stored results predate this execution (reused or from an earlier run), {fresh} made "
                     f"by it")
    if results_dir is None:
        flags.append("no results folder: phases by section only")
    if end is None:
        flags.append("not finished: up to the last completed cell")
    return Report(path, key, wall, cells, phases, bar_seconds, bars, results_dir, reused, older, fresh,
                  job_seconds, job_threads, mapping.note, flags)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def row(report: Report) -> dict:
    """The table row: wall seconds, seconds and share per phase, the progress bars' meta-training seconds."""
    wall = report.wall or 1.0
    out = {"notebook": report.notebook, "path": str(report.path), "wall_s": round(report.wall, 1)}
    for p in PHASES:
        out[f"{p}_s"] = round(report.phases[p], 1)
        out[f"{p}_share"] = round(report.phases[p] / wall, 4)
    out.update(meta_training_bars_s=report.bar_seconds, flags=report.flags, note=report.note,
               results_dir=str(report.results_dir) if report.results_dir else None, job_seconds=report.job_seconds,
               job_threads=report.job_threads)
    return out


def markdown(reports: list[Report]) -> str:
    head = ("| notebook | wall | " + " | ".join(PHASES) + " | meta-training by its progress bars | notes |\n"
            "| --- | --- | " + " | ".join("---" for _ in PHASES) + " | --- | --- |")
    lines = [head]
    for r in reports:
        wall = r.wall or 1.0
        cells = [f"{_clock(r.phases[p])} ({100 * r.phases[p] / wall:.0f}%)" if r.phases[p] >= 0.5 else "—"
                 for p in PHASES]
        bars = _clock(r.bar_seconds) if r.bars else "no bars"
        notes = "; ".join(r.flags + ([r.note] if r.note else []))
        lines.append(f"| {r.notebook} | {_clock(r.wall)} | " + " | ".join(cells) + f" | {bars} | {notes} |")
    return "\n".join(lines)


def describe(report: Report, cells: bool = False) -> str:
    wall = report.wall or 1.0
    out = [f"{report.path}  ({report.notebook})", f"  wall {_clock(report.wall)} ({report.wall:.0f} s)"
           + (f"; job.json {report.job_seconds:.0f} s, {report.job_threads} thread(s)" if report.job_seconds else "")]
    for p in PHASES:
        out.append(f"  {p:<22} {report.phases[p]:>9.1f} s  {100 * report.phases[p] / wall:5.1f}%")
    if report.bars:
        out.append(f"  progress bars: {len(report.bars)}, meta-training {report.bar_seconds} s")
    for flag in report.flags + ([report.note] if report.note else []):
        out.append(f"  note: {flag}")
    if cells:
        for c in report.cells:
            if c.seconds >= 1:
                split = ", ".join(f"{p} {s:.0f}" for p, s in c.split.items() if s >= 0.5)
                out.append(f"    cell {c.index:>3} {c.seconds:>9.1f} s  [{c.section[:40]}] {split}")
                for b in c.bars:
                    out.append(f"        bar {b.desc!r}: {b.start}->{b.n}/{b.total} in {b.elapsed} s")
                for name, when, phase, seconds in c.saves:
                    out.append(f"        saved {name} at {when:%H:%M:%S} after {seconds:.0f} s -> {phase}")
    return "\n".join(out)


def find_notebooks(runs: Path, profile: str) -> list[Path]:
    """Every executed notebook of a batch profile: ``runs/<profile>/<notebook>/<run>/<notebook file>.ipynb``."""
    return sorted(p for p in (runs / profile).glob("*/*/*.ipynb") if not p.name.startswith("."))


def main(argv=None) -> list[Report]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", nargs="*", type=Path, help="executed notebooks")
    p.add_argument("--profile", help="every runs/<profile>/*/*/*.ipynb")
    p.add_argument("--runs", type=Path, default=Path(__file__).resolve().parents[1] / "runs",
                   help="the runs folder (default: the checkout's runs/)")
    p.add_argument("--results", type=Path, help="the results folder (one notebook; default: its results_dir)")
    p.add_argument("--cells", action="store_true", help="print every cell of a second or more")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--json", type=Path, help="write the rows as JSON")
    args = p.parse_args(argv)
    paths = list(args.notebooks) + (find_notebooks(args.runs, args.profile) if args.profile else [])
    if not paths:
        p.error("give notebooks or --profile")
    if args.results and len(paths) != 1:
        p.error("--results is for one notebook")
    reports = [analyse(path, args.results) for path in paths]
    for r in reports:
        print(describe(r, args.cells), end="\n\n")
    if args.markdown:
        print(markdown(reports))
    if args.json:
        args.json.write_text(json.dumps([row(r) for r in reports], indent=2, default=str))
    return reports


if __name__ == "__main__":
    main()
