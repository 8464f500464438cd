"""The per-exit table printed at the end of a run."""
from __future__ import annotations

from typing import Any


def exit_table(results: dict[str, Any]) -> str:
    """Exit, stage, params, MFLOPs, then top-1 on validation and test for the best and last weights;
    `ens` is the mean-softmax ensemble, `ens (logits)` the mean-logit one."""
    header = ["exit", "stage", "params", "MFLOPs", "val top1 (best)", "test top1 (best)", "test top1 (last)"]
    rows = []
    best, last = results["best"], results["last"]
    for i, info in enumerate(results["exits"]):
        rows.append([str(info["index"]), str(info["stage"]), f"{info['params'] / 1e6:.2f}M", f"{info['flops'] / 1e6:.1f}",
                     f"{best['val']['top1'][i]:.2f}", f"{best['test']['top1'][i]:.2f}", f"{last['test']['top1'][i]:.2f}"])
    for label, key in (("ens", "ensemble_top1"), ("ens (logits)", "ensemble_logit_top1")):
        if key in best["test"]:
            rows.append([label, "-", "-", "-", f"{best['val'][key]:.2f}", f"{best['test'][key]:.2f}", f"{last['test'][key]:.2f}"])
    return markdown_table(header, rows)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table with right-aligned, padded columns (readable as plain text too)."""
    widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])
