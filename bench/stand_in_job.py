"""A stand-in for the Glue job (bench.backfill --stand-in-job SECONDS): no Spark, no warehouse. It
takes the real job's arguments, sleeps --stand_in_seconds and writes the real job's RunSummary
(glue_scripts/ingest_bookings.py) under --data_root_uri/runs/, so that both state machines run
exactly as with the real job, and what is measured is their orchestration alone."""

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlparse

from awsglue.utils import getResolvedOptions
from ingest_bookings import RunSummary


def local_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


args = getResolvedOptions(sys.argv, ["JOB_NAME", "source_uri", "execution_id", "data_root_uri", "stand_in_seconds"])
summary = RunSummary(execution_id=args["execution_id"], source_file=args["source_uri"],
                     started_at=datetime.now(timezone.utc))
rows = len(local_path(args["source_uri"]).read_bytes().splitlines()) - 1
time.sleep(float(args["stand_in_seconds"]))
summary.status, summary.rows_read, summary.rows_inserted = "SUCCEEDED", rows, rows
out = local_path(args["data_root_uri"].rstrip("/") + "/runs/" + args["execution_id"] + ".json")
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(summary.to_json(datetime.now(timezone.utc)))
