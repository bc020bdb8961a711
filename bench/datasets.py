"""Generated booking files for the benchmark, cached by (rows, seed, bad ratio).

Generating 5 million rows takes minutes of pure Python: a cached file is reused as long as its
parameters (in its name) and the generator's source (a digest beside it) are the same, so a
change to the generator never leaves a stale file behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from airline_local import generator

DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / ".cache" / "data"


def generator_digest() -> str:
    """Short digest of the generator's source: part of every cached file's identity."""
    return hashlib.sha256(Path(generator.__file__).read_bytes()).hexdigest()[:12]


def dataset_path(rows: int, seed: int, bad_ratio: float, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    return Path(cache_dir) / f"bookings-{rows}-seed{seed}-bad{bad_ratio:g}-{generator_digest()}.csv"


def ensure_dataset(rows: int, seed: int, bad_ratio: float, cache_dir: Path = DEFAULT_CACHE_DIR) -> tuple[Path, bool]:
    """The cached file for these parameters, generating it first if needed.

    Returns (path, generated): `generated` is False when the cached file was reused. The file is
    written under a temporary name and renamed, so an interrupted run leaves no half file.
    """
    if rows <= 0:
        raise ValueError(f"rows must be positive, got {rows}")
    path = dataset_path(rows, seed, bad_ratio, cache_dir)
    if path.is_file():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        generator.write_csv(partial, rows, seed=seed, bad_ratio=bad_ratio)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path, True
