"""The run history of a state directory: one JSON line per execution the local pipeline followed
(succeeded, failed, not started), in `<state dir>/history.jsonl`.

It outlives the stack: `airline-ingest local status` reads it after `local down`, when the
emulator (and with it every execution it knew) is gone and the warehouse holds committed loads only.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.jsonl"


def history_path(state_dir: Path) -> Path:
    return Path(state_dir) / HISTORY_FILE


def record(state_dir: Path, entry: dict[str, Any]) -> None:
    """Append one execution (keys of airline_local.status.RunStatus) to the history."""
    line = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
    with open(history_path(state_dir), "a", encoding="utf-8") as history:
        fcntl.flock(history, fcntl.LOCK_EX)  # concurrent runs: whole lines, never interleaved
        history.write(line)


def entries(state_dir: Path) -> list[dict[str, Any]]:
    """Every recorded execution, oldest first; a line a killed writer left half-written is skipped."""
    try:
        lines = history_path(state_dir).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found
