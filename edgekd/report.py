"""`edgekd report`: compare finished runs in one markdown table and two plots.

Runs of one recipe that differ only in their seed are one row, shown as mean +- std over seeds.
Every number comes from each run's `results.json`: test top-1 per exit and of the ensemble, for
the weights picked on validation (`best`) and for the last epoch (`last`), plus the student's params
and FLOPs per exit, and the per-exit accuracy of the cached teachers in a runs folder's `teachers/`.
Reads no weights, so it needs neither torch nor the data.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.engine.summary import markdown_table
from edgekd.errors import EdgekdError

RESULTS = "results.json"
SEED_SUFFIX = re.compile(r"-seed\d+$")


@dataclass
class RunGroup:
    """Runs of one recipe (and profile) over one or more seeds."""

    label: str
    exits: list[dict[str, int]]
    runs: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def accuracies(self, which: str) -> list[list[float]]:
        """Per run: test top-1 of every exit then the mean-softmax ensemble, for `best` or `last` weights."""
        return [[*r[which]["test"]["top1"], r[which]["test"]["ensemble_top1"]] for r in self.runs]

    def logit_ensembles(self, which: str) -> list[float]:
        """Per run: test top-1 of the mean-logit ensemble (runs recorded before it was measured have none)."""
        return [r[which]["test"]["ensemble_logit_top1"] for r in self.runs if "ensemble_logit_top1" in r[which]["test"]]


def find_teachers(paths: list[str]) -> list[Path]:
    """Finished teacher trainings in the `teachers/` cache of every folder of runs given."""
    return [p.parent for text in paths for p in sorted((Path(text) / "teachers").glob(f"*/{RESULTS}"))]


def find_runs(paths: list[str]) -> list[Path]:
    """Run folders named directly, or every finished run inside a folder of runs (teachers excluded)."""
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if (path / RESULTS).is_file():
            found.append(path)
        elif path.is_dir():
            inner = sorted(p.parent for p in path.glob(f"*/{RESULTS}"))
            if not inner:
                raise EdgekdError(f"{path} holds no finished run (no {RESULTS} in it or its subfolders); "
                                  f"a run writes {RESULTS} when its training and evaluation are done")
            found.extend(inner)
        else:
            raise EdgekdError(f"{path} does not exist; pass run folders such as runs/kd_resnet18")
    return found


def _seed(results: dict[str, Any]) -> int:
    match = re.search(r"-seed(\d+)$", results["name"])
    return int(match.group(1)) if match else 0


def _read_results(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / RESULTS).read_text())
    except json.JSONDecodeError as err:
        raise EdgekdError(f"{run_dir / RESULTS} is not an edgekd results file ({err})") from None


def group_runs(run_dirs: list[Path]) -> list[RunGroup]:
    """Group runs by name without the seed suffix, keeping the order they were given in."""
    groups: dict[str, RunGroup] = {}
    for run_dir in run_dirs:
        results = _read_results(run_dir)
        try:
            label = SEED_SUFFIX.sub("", results["name"])
            exits = results["exits"]
        except KeyError as err:
            raise EdgekdError(f"{run_dir / RESULTS} is not an edgekd results file ({err})") from None
        group = groups.setdefault(label, RunGroup(label, exits))
        if [e["flops"] for e in group.exits] != [e["flops"] for e in exits]:
            raise EdgekdError(f"runs named '{label}' have different students ({run_dir}); give them different recipe names")
        seed = _seed(results)
        if seed in group.seeds:
            raise EdgekdError(f"two runs of '{label}' with seed {seed} ({run_dir}); pass each run once")
        group.runs.append(results)
        group.seeds.append(seed)
    return list(groups.values())


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def accuracy_table(groups: list[RunGroup], which: str) -> str:
    """Rows: run groups; columns: each exit's test top-1 and the two ensembles'."""
    width = max(len(g.exits) for g in groups)
    header = ["run", "method", "seeds", *(f"exit {k + 1}" for k in range(width)), "ensemble", "ensemble (mean logit)"]
    rows = []
    for g in groups:
        per_run = g.accuracies(which)
        cells = [_mean_std([acc[j] for acc in per_run]) for j in range(len(g.exits))]
        cells += ["-"] * (width - len(g.exits))
        method = g.runs[0].get("method", "-")
        rows.append([g.label, method, ",".join(map(str, sorted(g.seeds))), *cells, _mean_std([acc[-1] for acc in per_run]),
                     _mean_std(g.logit_ensembles(which))])
    return markdown_table(header, rows)


def teacher_table(teacher_dirs: list[Path]) -> str:
    """One row per cached teacher: its folder, how it was trained, and the test top-1 of each exit (first to final)
    for the weights the students were given (the best on validation)."""
    header = ["teacher", "trained with", "exits", "test top-1 per exit (first to final)", "final exit"]
    rows = []
    for folder in teacher_dirs:
        results = _read_results(folder)
        try:
            top1 = results["best"]["test"]["top1"]
            method = results["method"]
        except KeyError as err:
            raise EdgekdError(f"{folder / RESULTS} is not an edgekd results file (no {err})") from None
        trained = "exit heads on its frozen backbone" if method == "exit_heads" else method
        rows.append([folder.name, trained, str(len(top1)), " / ".join(f"{a:.2f}" for a in top1), f"{top1[-1]:.2f}"])
    return markdown_table(header, rows)


def cost_table(groups: list[RunGroup]) -> str:
    """Params and FLOPs of each exit of every distinct student."""
    header = ["run", "exit", "stage", "params", "MFLOPs", "MFLOPs (early-exit path)"]
    rows, seen = [], set()
    for g in groups:
        key = tuple(e["flops"] for e in g.exits)
        if key in seen:
            continue
        seen.add(key)
        for e in g.exits:
            rows.append([g.label, str(e["index"]), str(e["stage"]), f"{e['params'] / 1e6:.2f}M", f"{e['flops'] / 1e6:.1f}",
                         f"{e['cumulative_flops'] / 1e6:.1f}"])
    return markdown_table(header, rows)


def _line_plot(path: Path, series: dict[str, tuple[list, list[float], list[float]]], xlabel: str, title: str) -> Path:
    """One line per run group, with error bars of one std over seeds where it ran with several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (xs, ys, stds) in series.items():
        ax.errorbar(xs, ys, yerr=stds if any(stds) else None, marker="o", capsize=3, label=label)
    ax.set(xlabel=xlabel, ylabel="test top-1 (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot(groups: list[RunGroup], which: str, out_dir: Path) -> list[Path]:
    """Per-exit accuracy by run, and accuracy against FLOPs per exit (PNG, matplotlib); mean ± std over seeds."""
    columns = {g.label: list(zip(*g.accuracies(which))) for g in groups}
    means = {label: [statistics.mean(col) for col in cols] for label, cols in columns.items()}
    stds = {label: [statistics.stdev(col) if len(col) > 1 else 0.0 for col in cols] for label, cols in columns.items()}
    by_exit = {g.label: ([f"exit {k + 1}" for k in range(len(g.exits))] + ["ensemble"], means[g.label], stds[g.label])
               for g in groups}
    by_flops = {g.label: ([e["flops"] / 1e6 for e in g.exits], means[g.label][:-1], stds[g.label][:-1]) for g in groups}
    return [
        _line_plot(out_dir / "accuracy_per_exit.png", by_exit, "", f"Test top-1 per exit ({which} weights, ± 1 std over seeds)"),
        _line_plot(out_dir / "accuracy_vs_flops.png", by_flops, "MFLOPs per image (backbone up to the exit + its head)",
                   f"Accuracy vs compute per exit ({which} weights, ± 1 std over seeds)"),
    ]


def write_report(paths: list[str], out_dir: Path, *, plots: bool = True) -> str:
    """Write `report.md` (and the plots) into `out_dir`; return the markdown."""
    groups = group_runs(find_runs(paths))
    sections = ["# edgekd report", "",
                "Test top-1 (%) per exit and of the two ensembles of all exits: mean softmax (what edgekd selects "
                "and deploys with) and mean logit (what BYOT's code reports); mean ± std over seeds where a "
                "recipe ran with several.", "",
                "## Best epoch (selected on validation)", "", accuracy_table(groups, "best"), "",
                "## Last epoch", "", accuracy_table(groups, "last"), "",
                "## Cost per exit (one image)", "", cost_table(groups), ""]
    teachers = find_teachers(paths)
    if teachers:
        sections += ["## Teachers", "", "The cached teachers these runs learned from (`teachers/` in the runs folder), "
                     "for the weights the students were given.", "", teacher_table(teachers), ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        images = plot(groups, "best", out_dir)
        sections += ["## Plots", "", *(f"![{p.stem}]({p.name})" for p in images), ""]
    text = "\n".join(sections)
    tmp = out_dir / "report.md.tmp"
    tmp.write_text(text)
    tmp.replace(out_dir / "report.md")
    return text
