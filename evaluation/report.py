"""Report files for the evaluations: ``<name>.json`` (all figures), ``<name>.md`` (a Markdown table)
and ``<name>.png`` (grouped bars)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return f"{float(value):.4f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table whose columns are the union of the rows' keys, in first-seen order."""
    if not rows:
        return "_no rows_\n"
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    lines = [
        "| " + " | ".join(_cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, name: str, metrics: dict[str, Any], table_rows: list[dict[str, Any]]) -> Path:
    """Write ``<name>.json`` ({"metrics": ..., "rows": ...}) and ``<name>.md``; returns the .md path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"metrics": _jsonable(metrics), "rows": _jsonable(table_rows)}
    (out_dir / f"{name}.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md = out_dir / f"{name}.md"
    md.write_text(f"# {name}\n\n{markdown_table(table_rows)}", encoding="utf-8")
    return md


def bar_plot(out_dir: Path, name: str, groups: dict[str, dict[str, float]], title: str) -> Path:
    """``<name>.png``: one cluster of bars per metric, one bar (colour) per group (method / mode)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: list[str] = []
    for values in groups.values():
        metrics.extend(m for m in values if m not in metrics)
    n_groups = max(1, len(groups))
    width = 0.8 / n_groups
    x = np.arange(len(metrics))
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 2 + 0.35 * len(metrics) * n_groups)), 5.0))
    for i, (group, values) in enumerate(groups.items()):
        heights = [float(values.get(m, np.nan)) for m in metrics]
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=group)
    ax.set_xticks(x)
    ax.set_xticklabels(metrics, rotation=30, ha="right")
    ax.set_title(title, pad=28 if groups else 6)
    ax.set_ylim(0, 1.05 if all(0 <= v <= 1 for g in groups.values() for v in g.values()) else None)
    ax.grid(axis="y", alpha=0.3)
    if groups:
        ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=min(n_groups, 6), frameon=False)
    fig.tight_layout()
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
