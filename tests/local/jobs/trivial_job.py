"""A stand-in Glue job for the emulator tests: plain Python, Glue-style arguments, no Spark.

Reads the uploaded file through the file:// URI the job runner gives it, writes a run summary under
--data_root_uri, and fails like the real job (an exception naming the file) when the file says so.
"""

import json
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from awsglue.utils import getResolvedOptions


class BookingFileError(Exception):
    pass


def local_path(uri: str) -> Path:
    parsed = urlparse(uri)
    assert parsed.scheme == "file", f"expected a file:// URI from the local runner, got {uri}"
    return Path(unquote(parsed.path))


def main() -> None:
    args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_uri", "execution_id", "data_root_uri"])
    text = local_path(args["source_uri"]).read_text(encoding="utf-8")
    rows = text.splitlines()[1:]
    failed = "FAIL" in text
    summary = {
        "execution_id": args["execution_id"],
        "source_file": args["source_uri"],
        "status": "FAILED" if failed else "SUCCEEDED",
        "rows_read": len(rows),
        "job_name": args["JOB_NAME"],
        "greeting": (Path.cwd() / "greeting.txt").read_text().strip()
        if (Path.cwd() / "greeting.txt").exists() else None,
    }
    out = local_path(args["data_root_uri"].rstrip("/") + "/runs/" + args["execution_id"] + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary))
    if "SLEEP" in text:
        time.sleep(2)  # long enough to see the run RUNNING
    if failed:
        raise BookingFileError(f"{args['source_uri']}: the file asks to fail")
    print("done", json.dumps(summary))


if __name__ == "__main__":
    main()
