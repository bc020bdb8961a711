"""Time of a local pipeline's start: wall and CPU of ``LocalPipeline.start()`` and of its deploy.

    python -m bench.start [--runs 3] [--project-dir DIR]

Each run starts a pipeline (IAM check on, no warm Spark worker) in a fresh process, as each test
module does, and prints one JSON line: ``start`` / ``deploy`` seconds, their ``_cpu`` (the process's
CPU time, steadier than wall time on a shared machine), and ``apply_schema`` when the code under
``--project-dir`` still applies sql/001_schema.sql directly (before issue 12's step 10). Run it on two
worktrees, alternating, to compare two commits. The synth is cached (AIRLINE_LOCAL_SYNTH_CACHE, a
temporary directory by default), so the first run of a new synth is slower. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_ONE_RUN = """
import json, sys, time
import airline_local.pipeline as P
from airline_local.warehouse import redshift_data
out = {}
def timed(name, fn):
    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            out[name] = round(time.perf_counter() - t, 3)
            out[name + "_cpu"] = round(time.process_time() - c, 3)
    return wrapper
P.deploy = timed("deploy", P.deploy)
if hasattr(redshift_data.Warehouse, "apply_schema"):  # code from before the migrations (issue 22)
    redshift_data.Warehouse.apply_schema = timed("apply_schema", redshift_data.Warehouse.apply_schema)
with P.temporary_state_dir("bench-start-") as d:
    pipeline = P.LocalPipeline(d, warm_workers=0)
    t, c = time.perf_counter(), time.process_time()
    pipeline.start()
    out["start"], out["start_cpu"] = round(time.perf_counter() - t, 3), round(time.process_time() - c, 3)
    pipeline.stop()
print(json.dumps(out))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.start", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.setdefault("AIRLINE_LOCAL_SYNTH_CACHE", tempfile.mkdtemp(prefix="bench-start-synth-"))
    env["PYTHONPATH"] = str(args.project_dir.resolve())
    for _ in range(args.runs):
        done = subprocess.run([sys.executable, "-c", _ONE_RUN], cwd=args.project_dir, env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(done.stderr[-2000:], file=sys.stderr)
            return done.returncode
        print(done.stdout.strip().splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
