"""Batch runner (``l2l-reproduce``): run notebooks with papermill and gather their claims."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from ..reporting.claims import frame_to_markdown, gather_claims, write_summary
from ..storage.paths import project_root

# short name (also the figures folder name) -> notebook path relative to the project root
NOTEBOOKS = {
    "andrychowicz2016": "notebooks/andrychowicz2016_l2l.ipynb",
    "huisman2022": "notebooks/huisman2022_turtle.ipynb",
    "kuo2020": "notebooks/kuo2020_mtl2l.ipynb",
    "metamd": "notebooks/metamd.ipynb",
    "simple_optimizer": "notebooks/simple_optimizer.ipynb",
}


def find_root(start=None) -> Path:
    """The project root (folder with pyproject.toml and l2l_utils/) above ``start`` (default: cwd)."""
    root = project_root(start)
    if not (root / "pyproject.toml").exists():
        raise FileNotFoundError(f"no pyproject.toml in {root} or any parent; pass --root")
    return root


def parse_parameter(text: str) -> tuple[str, object]:
    """Parse ``KEY=VALUE``; VALUE via ``ast.literal_eval``, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"parameter {text!r} must look like KEY=VALUE")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def select_notebooks(names, notebooks=None) -> list[str]:
    """Return the chosen short names (all when ``names`` is empty); unknown names raise ValueError."""
    notebooks = NOTEBOOKS if notebooks is None else notebooks
    if not names:
        return list(notebooks)
    unknown = [n for n in names if n not in notebooks]
    if unknown:
        raise ValueError(f"unknown notebook(s) {', '.join(unknown)}; allowed: {', '.join(notebooks)}")
    return list(names)


def run_batch(profile="smoke", names=None, seed=0, out=None, overrides=None, root=None,
              kernel="python3", notebooks=None) -> dict:
    """Run the chosen notebooks, gather claims into ``<out>/claims.{csv,md}``.

    Returns ``{"failed": {name: error}, "claims": DataFrame, "out": Path}``.
    """
    import papermill
    from tqdm.auto import tqdm

    notebooks = NOTEBOOKS if notebooks is None else notebooks
    chosen = select_notebooks(names, notebooks)
    root = Path(root).resolve() if root is not None else find_root()
    out = Path(out) if out is not None else root / "runs" / profile
    if not out.is_absolute():
        out = Path.cwd() / out
    out.mkdir(parents=True, exist_ok=True)

    failed = {}
    for name in tqdm(chosen, desc=f"notebooks ({profile})", unit="nb"):
        parameters = {
            "profile": profile, "seed": seed,
            "results_dir": str(out / "results" / name),
            "figures_dir": str(root / "figures" / name),
            **(overrides or {}),
        }
        try:
            papermill.execute_notebook(
                str(root / notebooks[name]), str(out / f"{name}.ipynb"),
                parameters=parameters, cwd=str(root / "notebooks"),
                kernel_name=kernel, progress_bar=False,
            )
        except Exception as error:  # a failing notebook must not stop the others
            # papermill's error carries the notebook's exception as ename/evalue
            ename = getattr(error, "ename", type(error).__name__)
            evalue = getattr(error, "evalue", str(error))
            failed[name] = f"{ename}: {evalue} (see {out / (name + '.ipynb')})"
            tqdm.write(f"{name} failed: {failed[name]}")

    claims = gather_claims([out / "results" / name / "claims.csv" for name in chosen])
    write_summary(claims, out)
    return {"failed": failed, "claims": claims, "out": out}


def main(argv=None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="l2l-reproduce", description=__doc__)
    parser.add_argument("--profile", default="smoke", help="profile name (default: smoke)")
    parser.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                        help=f"notebooks to run (default: all of {', '.join(NOTEBOOKS)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="output folder (default: runs/<profile>)")
    parser.add_argument("-p", "--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="extra notebook parameter, repeatable")
    parser.add_argument("--root", default=None, help="project root (default: folder with pyproject.toml)")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    args = parser.parse_args(argv)

    try:
        select_notebooks(args.notebooks)
        overrides = dict(parse_parameter(p) for p in args.parameter)
        root = Path(args.root).resolve() if args.root else find_root()
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    out = Path(args.out) if args.out else root / "runs" / args.profile

    result = run_batch(profile=args.profile, names=args.notebooks, seed=args.seed, out=out,
                       overrides=overrides, root=root, kernel=args.kernel)
    print(frame_to_markdown(result["claims"]))
    print(f"claims summary: {result['out'] / 'claims.csv'}, {result['out'] / 'claims.md'}")
    if result["failed"]:
        print("failed notebooks:", file=sys.stderr)
        for name, error in result["failed"].items():
            print(f"  {name}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
