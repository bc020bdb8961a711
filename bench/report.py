"""The benchmark's results: derived figures, the printed table, the JSON file and the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCALING_REFERENCE_ROWS = 1_000_000  # the reference size: rows/s at the largest vs this
SCALING_TOLERANCE = 0.10  # issue 14: rows/s at the largest size >= 0.9 x the reference
COPY_RATIO_GOAL = 0.15  # issue 14: pipeline rows/s >= 0.15 x PostgreSQL COPY at 1M rows
STAGE_TO_BARE_GOAL = 0.5  # the job's stage rows/s against a bare CSV -> Parquet Spark job
CORES_SPEEDUP_GOAL = 1.7  # stage time at local[1] / at local[2]
EMULATED_COPY_GOAL = 0.5  # emulated COPY (Parquet -> PostgreSQL) against a plain text COPY
RSS_FLAT_TOLERANCE = 1.25  # "flat": peak job RSS at the largest size <= 1.25 x at 1M rows


def _sig(value: float) -> float:
    """4 significant digits: a tiny smoke run's ratios must not round to 0."""
    return float(f"{value:.4g}")


def throughput_entry(pipeline: dict[str, Any], copy: dict[str, Any]) -> dict[str, Any]:
    """One size: the job's run, the COPY floor's run, and the ratio of their rows/s."""
    ratio = pipeline["rows_per_second"] / copy["rows_per_second"] if copy["rows_per_second"] else 0.0
    # The same ratio in CPU time (job + database against the database alone for COPY): what it
    # would be on otherwise idle cores. None when COPY was too short to register CPU ticks.
    pipeline_cpu = pipeline.get("job_cpu_seconds", 0.0) + pipeline.get("db_cpu_seconds", 0.0)
    copy_cpu = copy.get("db_cpu_seconds", 0.0)
    cpu_ratio = _sig(copy_cpu / pipeline_cpu) if copy_cpu > 0 and pipeline_cpu > 0 else None
    return {
        "rows": pipeline["rows"],
        "input_mb": round(pipeline["input_bytes"] / 1e6, 1),
        "pipeline": pipeline,
        "copy": copy,
        "pipeline_to_copy_ratio": _sig(ratio),
        "pipeline_to_copy_cpu_ratio": cpu_ratio,
    }


def scaling(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows/s at the largest size against the reference size (1M rows when measured, else the
    next smaller size), and peak job memory by rows."""
    by_rows = sorted(entries, key=lambda e: e["rows"])
    result: dict[str, Any] = {
        "job_peak_rss_mb_by_rows": {str(e["rows"]): e["pipeline"]["job_peak_rss_mb"] for e in by_rows},
        "db_peak_rss_mb_by_rows": {str(e["rows"]): e["pipeline"]["db_peak_rss_mb"] for e in by_rows},
    }
    if len(by_rows) >= 2:
        largest = by_rows[-1]
        references = [e for e in by_rows[:-1] if e["rows"] == SCALING_REFERENCE_ROWS]
        reference = references[0] if references else by_rows[-2]
        ratio = largest["pipeline"]["rows_per_second"] / reference["pipeline"]["rows_per_second"]
        result.update(
            largest_rows=largest["rows"],
            reference_rows=reference["rows"],
            rows_per_second_ratio=_sig(ratio),
            within_tolerance=ratio >= 1 - SCALING_TOLERANCE,
        )
    return result


def targets(document: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with the measured value and whether it is met."""
    found: dict[str, Any] = {}
    at_1m = [e for e in document["throughput"] if e["rows"] == SCALING_REFERENCE_ROWS]
    if at_1m:
        ratio = at_1m[0]["pipeline_to_copy_ratio"]
        found["pipeline_to_copy_ratio_at_1m"] = {"goal": f">= {COPY_RATIO_GOAL}", "measured": ratio,
                                                 "met": ratio >= COPY_RATIO_GOAL}
    scale = document.get("scaling", {})
    if "rows_per_second_ratio" in scale:
        found["rows_per_second_largest_vs_reference"] = {
            "goal": f">= {1 - SCALING_TOLERANCE:g}", "measured": scale["rows_per_second_ratio"],
            "met": scale["within_tolerance"]}
    rss = scale.get("job_peak_rss_mb_by_rows", {})
    if "largest_rows" in scale and rss.get(str(scale["reference_rows"])):
        growth = _sig(rss[str(scale["largest_rows"])] / rss[str(scale["reference_rows"])])
        found["job_peak_rss_largest_vs_reference"] = {
            "goal": f"<= {RSS_FLAT_TOLERANCE:g}", "measured": growth, "met": growth <= RSS_FLAT_TOLERANCE}
    stage = document.get("stage", {})
    if "stage_to_bare_ratio" in stage:
        found["stage_vs_bare_spark"] = {
            "goal": f">= {STAGE_TO_BARE_GOAL:g}", "measured": stage["stage_to_bare_ratio"],
            "met": stage["stage_to_bare_ratio"] >= STAGE_TO_BARE_GOAL}
    if "fresh_stage_to_bare_ratio" in stage:  # issue 25: each in a fresh JVM, as Glue runs are
        found["stage_vs_bare_spark_fresh_jvm"] = {
            "goal": f">= {STAGE_TO_BARE_GOAL:g}", "measured": stage["fresh_stage_to_bare_ratio"],
            "met": stage["fresh_stage_to_bare_ratio"] >= STAGE_TO_BARE_GOAL}
    if "cores_speedup" in stage:
        found["stage_local1_vs_local2"] = {
            "goal": f">= {CORES_SPEEDUP_GOAL:g}", "measured": stage["cores_speedup"],
            "met": stage["cores_speedup"] >= CORES_SPEEDUP_GOAL}
    copy_path = document.get("copy_path", {})
    if "emulated_to_plain_ratio" in copy_path:
        found["emulated_copy_vs_plain_copy"] = {
            "goal": f">= {EMULATED_COPY_GOAL:g}", "measured": copy_path["emulated_to_plain_ratio"],
            "met": copy_path["emulated_to_plain_ratio"] >= EMULATED_COPY_GOAL}
    latency = document.get("latency")
    if latency and latency.get("runs"):
        found["latency_median_seconds"] = {"goal": "< 15", "measured": latency["median_seconds"],
                                           "met": latency["median_seconds"] < 15}
    return found


def format_table(document: dict[str, Any]) -> str:
    lines = []
    header = (f"{'rows':>10} {'MB':>7} | {'pipeline s':>10} {'rows/s':>9} {'MB/s':>6} {'CPU s':>7} {'job RSS':>8} "
              f"{'db RSS':>7} | {'COPY s':>7} {'rows/s':>9} {'MB/s':>6} {'CPU s':>6} | {'ratio':>6} {'CPU ratio':>9}")
    lines += [header, "-" * len(header)]
    for e in document["throughput"]:
        p, c = e["pipeline"], e["copy"]
        cpu_ratio = e.get("pipeline_to_copy_cpu_ratio")
        lines.append(
            f"{e['rows']:>10,} {e['input_mb']:>7.1f} | {p['seconds']:>10.1f} {p['rows_per_second']:>9,.0f} "
            f"{p['mb_per_second']:>6.2f} {p.get('job_cpu_seconds', 0) + p.get('db_cpu_seconds', 0):>7.1f} "
            f"{p['job_peak_rss_mb']:>6.0f}MB {p['db_peak_rss_mb']:>5.0f}MB | "
            f"{c['seconds']:>7.2f} {c['rows_per_second']:>9,.0f} {c['mb_per_second']:>6.1f} "
            f"{c.get('db_cpu_seconds', 0):>6.2f} | {e['pipeline_to_copy_ratio']:>6.3f} "
            f"{'-' if cpu_ratio is None else format(cpu_ratio, '.3f'):>9}")
    scale = document.get("scaling", {})
    if "rows_per_second_ratio" in scale:
        lines.append(f"scaling: rows/s at {scale['largest_rows']:,} / rows/s at {scale['reference_rows']:,} "
                     f"= {scale['rows_per_second_ratio']:.3f} (target >= {1 - SCALING_TOLERANCE:g})")
    if scale.get("job_peak_rss_mb_by_rows"):
        lines.append("job peak RSS by rows: " + ", ".join(
            f"{int(r):,}: {mb:.0f} MB" for r, mb in scale["job_peak_rss_mb_by_rows"].items()))
    for key, label in (("latency_cold", "cold: a fresh job process each"),
                       ("latency", "warm Spark workers, the local default")):
        latency = document.get(key)
        if latency and latency.get("runs"):
            phases = ", ".join(f"{k} {v:.2f}" for k, v in latency["median_phases"].items())
            lines.append(f"latency ({label}): {latency['rows']:,}-row file upload -> email, median of "
                         f"{latency['runs']}: {latency['median_seconds']:.2f} s ({phases})")
    stage = document.get("stage", {})
    if stage.get("seconds"):
        lines.append(f"stage phase on {stage['rows']:,} rows (best of {stage.get('repeat', 1)}): " + ", ".join(
            f"{master} {mode} {seconds:.1f} s" for master, modes in stage["seconds"].items()
            for mode, seconds in modes.items()))
    if stage.get("fresh_jvm_seconds"):  # issue 25: both ratios, fresh JVM (as on Glue) and warm
        lines.append(f"stage/bare on {stage['rows']:,} rows: fresh JVM "
                     f"{stage.get('fresh_stage_to_bare_ratio', '-')} (" + ", ".join(
                         f"{mode} {seconds:.1f} s" for mode, seconds in stage["fresh_jvm_seconds"].items())
                     + f"), warm {stage.get('stage_to_bare_ratio', '-')}")
    copy_path = document.get("copy_path", {})
    if copy_path:
        lines.append(f"emulated COPY of {copy_path['rows']:,} staged rows: {copy_path['emulated_seconds']:.2f} s, "
                     f"plain text COPY of the same rows {copy_path['plain_seconds']:.2f} s")
    for name, target in document.get("targets", {}).items():
        lines.append(f"target {name}: {target['measured']} (goal {target['goal']}): "
                     f"{'met' if target['met'] else 'NOT met'}")
    machine = document.get("machine", {})
    if machine:
        lines.append(f"machine: {machine.get('cpus')} CPUs, load average before/after "
                     f"{machine.get('load_average_before')} / {machine.get('load_average_after')}")
    return "\n".join(lines)


def write_json(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path


def record_into(path: Path, key: str, result: dict[str, Any]) -> Path:
    """One benchmark's result under `key` of a results JSON (the other keys kept): what a
    benchmark run on its own adds to bench/results/bench.json."""
    document = json.loads(path.read_text()) if path.is_file() else {}
    document[key] = result
    return write_json(document, path)


def write_chart(document: dict[str, Any], path: Path) -> Path:
    """Throughput (pipeline and COPY, rows/s) and their ratio against rows, log-scaled rows."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    entries = sorted(document["throughput"], key=lambda e: e["rows"])
    rows = [e["rows"] for e in entries]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    left.plot(rows, [e["pipeline"]["rows_per_second"] for e in entries], "o-", label="pipeline (Glue job + load)")
    left.plot(rows, [e["copy"]["rows_per_second"] for e in entries], "s--", label="PostgreSQL COPY (floor)")
    left.set(xscale="log", yscale="log", xlabel="rows in the file", ylabel="rows per second",
             title="Throughput")
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    ratios = [e["pipeline_to_copy_ratio"] for e in entries]
    right.plot(rows, ratios, "o-", color="tab:green", label="wall-clock rows/s ratio")
    cpu_ratios = [(r, e["pipeline_to_copy_cpu_ratio"]) for r, e in zip(rows, entries)
                  if e.get("pipeline_to_copy_cpu_ratio")]
    if cpu_ratios:
        right.plot(*zip(*cpu_ratios), "^--", color="tab:purple", label="CPU-time ratio")
    for x, y in zip(rows, ratios):
        right.annotate(f"{y:.3g}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    right.axhline(COPY_RATIO_GOAL, color="grey", linestyle=":", label=f"goal {COPY_RATIO_GOAL}")
    lowest = min([r for r in ratios if r > 0] + [y for _, y in cpu_ratios] + [COPY_RATIO_GOAL])
    right.set(xscale="log", yscale="log", xlabel="rows in the file", ylabel="pipeline ÷ COPY",
              title="Pipeline against the COPY floor", ylim=(lowest / 2, 1.0))
    right.grid(True, which="both", alpha=0.3)
    right.legend()
    machine = document.get("machine", {})
    figure.suptitle(f"Local pipeline benchmark ({machine.get('cpus', '?')} CPUs, "
                    f"{document.get('created_at', '')[:10]})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def markdown_table(document: dict[str, Any]) -> str:
    """The throughput table as Markdown, for docs/performance.md."""
    lines = [
        "| rows | input MB | pipeline s | rows/s | MB/s | job CPU s | job peak RSS | db peak RSS "
        "| COPY s | COPY rows/s | ratio | CPU ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in document["throughput"]:
        p, c = e["pipeline"], e["copy"]
        cpu_ratio = e.get("pipeline_to_copy_cpu_ratio")
        lines.append(
            f"| {e['rows']:,} | {e['input_mb']:.1f} | {p['seconds']:.1f} | {p['rows_per_second']:,.0f} | "
            f"{p['mb_per_second']:.2f} | {p.get('job_cpu_seconds', 0):.1f} | {p['job_peak_rss_mb']:.0f} MB | "
            f"{p['db_peak_rss_mb']:.0f} MB | {c['seconds']:.2f} | {c['rows_per_second']:,.0f} | "
            f"{e['pipeline_to_copy_ratio']:.3f} | {'–' if cpu_ratio is None else format(cpu_ratio, '.3f')} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bench.report bench/results/bench.json
    import sys

    loaded = json.loads(Path(sys.argv[1]).read_text())
    print(format_table(loaded))
    print()
    print(markdown_table(loaded))
