"""A stand-in Glue job that holds its run until the test opens its gate: it runs while the file
named by --gate exists (at most 120 s), then succeeds. No Spark."""

import sys
import time
from pathlib import Path

from awsglue.utils import getResolvedOptions

args = getResolvedOptions(sys.argv, ["JOB_NAME", "gate"])
deadline = time.monotonic() + 120
while Path(args["gate"]).exists() and time.monotonic() < deadline:
    time.sleep(0.05)
print("gate opened:", args["gate"])
