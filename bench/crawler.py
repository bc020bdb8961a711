"""Per-upload crawl cost (issue 14): the crawl after the 1st upload against the crawl after the
Nth, in the same state directory, with the crawler as synthesized (CRAWL_EVENT_MODE fed by the
raw bucket's S3 events through SQS) and the IAM check on (the crawler calls S3, SQS and Glue as
its role).

    python -m bench.crawler                       # 200 uploads (`make bench` runs this)
    python -m bench.crawler --uploads 50 --write-into bench/results/bench.json

Crawl only: the synthesized stack is deployed into the emulator (no PostgreSQL, no Spark) and its
EventBridge rules are disabled, so an upload starts no execution; each upload is followed by
StartCrawler and GetCrawler polls until the crawler is READY again (the local crawl's minimum
RUNNING/STOPPING times set to 0: what is timed is the crawl's own work). For contrast, the same
crawl with CRAWL_EVERYTHING (every object listed and read) is timed once over the whole history.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR.parent) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(BENCH_DIR.parent))

from airline_local.aws.emulator import Emulator  # noqa: E402
from airline_local.aws.patches.runtime import CrawlerSettings  # noqa: E402
from airline_local.glue import crawler as local_crawler  # noqa: E402
from airline_local.local_stack import CloudAssembly, deploy, synthesize  # noqa: E402
from airline_local.pipeline import LOCAL_CONTEXT, temporary_state_dir  # noqa: E402
from bench import report  # noqa: E402

DEFAULT_UPLOADS = 200
# The per-upload crawl is "flat" when the last uploads' crawls take at most this many times the
# first ones' (medians of WINDOW crawls each, to see past single slow requests).
FLAT_RATIO = 1.5
WINDOW = 10
HEADER = b"booking_id,passenger_name,origin,destination,departure_time,fare_amount,currency,booking_time\n"
ROW = b"BK%06d,Ada Lovelace,JFK,LHR,2026-05-01 10:00:00,420.00,USD,2026-04-01 09:00:00\n"


def measure(uploads: int, state_dir: Path, poll_seconds: float = 0.01) -> dict[str, Any]:
    assembly = CloudAssembly.load(synthesize(state_dir / "cdk.out", LOCAL_CONTEXT))
    with Emulator(state_dir / "emulator", iam_check=True) as emulator:
        emulator.crawler_settings = CrawlerSettings(running_seconds=0.0, stopping_seconds=0.0)
        emulator.start_iam_check(assembly.template)
        stack = deploy(assembly, emulator.client, emulator.job_runner)
        events = emulator.client("events")
        for rule in events.list_rules()["Rules"]:  # crawl only: no execution per upload
            events.disable_rule(Name=rule["Name"])
        s3, glue = emulator.client("s3"), emulator.client("glue")
        (name,) = stack.crawler_names
        crawls = []
        for index in range(1, uploads + 1):
            body = HEADER + b"".join(ROW % (index * 10 + n) for n in range(10))
            s3.put_object(Bucket=stack.raw_bucket, Key=f"raw/bookings/bookings_{index:04d}.csv", Body=body)
            seconds, result = _crawl(glue, name, poll_seconds)
            crawls.append({"upload": index, "seconds": round(seconds, 4), "mode": result.mode,
                           "objects_listed": result.objects_listed, "objects_read": result.objects_read,
                           "events_consumed": result.events_consumed})
        everything = _crawl_everything(name, emulator.region)
    return summarize(crawls, everything)


def _crawl(glue: Any, name: str, poll_seconds: float) -> tuple[float, Any]:
    started = time.perf_counter()
    glue.start_crawler(Name=name)
    while True:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        if crawler["State"] == "READY":
            break
        time.sleep(poll_seconds)
    seconds = time.perf_counter() - started
    status = crawler.get("LastCrawl", {}).get("Status")
    if status != "SUCCEEDED":
        raise RuntimeError(f"crawl failed: {crawler.get('LastCrawl')}")
    return seconds, _backend_crawls(name)[-1].result


def _backend_crawls(name: str) -> list[Any]:
    from moto.glue.models import glue_backends

    from airline_local.aws.cfn import ACCOUNT_ID
    from airline_local.aws.patches.glue_crawler import _local_crawls

    return _local_crawls(glue_backends[ACCOUNT_ID]["us-east-1"].crawlers[name])


def _crawl_everything(name: str, region: str) -> dict[str, Any]:
    """The same crawler's definition with CRAWL_EVERYTHING, run once over the whole history as its role."""
    from moto.glue.models import glue_backends

    from airline_local.aws.cfn import ACCOUNT_ID
    from airline_local.aws.patches.glue_crawler import _crawler_client

    crawler = glue_backends[ACCOUNT_ID][region].crawlers[name]
    definition = local_crawler.CrawlerDefinition.from_api({
        "Name": name, "DatabaseName": crawler.database_name, "Targets": crawler.targets,
        "SchemaChangePolicy": crawler.schema_change_policy,
        "RecrawlPolicy": {"RecrawlBehavior": local_crawler.CRAWL_EVERYTHING}})
    s3, glue = _crawler_client(crawler, "s3", region), _crawler_client(crawler, "glue", region)
    started = time.perf_counter()
    result = local_crawler.run_crawl(definition, s3, glue, skip_unreadable=True)
    return {"seconds": round(time.perf_counter() - started, 4), "objects_listed": result.objects_listed,
            "objects_read": result.objects_read}


def summarize(crawls: list[dict[str, Any]], everything: dict[str, Any]) -> dict[str, Any]:
    window = min(WINDOW, max(1, len(crawls) // 2))
    # The first crawl lists the target (no crawl has succeeded yet): the event-mode ones follow.
    event_crawls = [c for c in crawls if c["mode"] == "event"]
    first = statistics.median(c["seconds"] for c in event_crawls[:window]) if event_crawls else None
    last = statistics.median(c["seconds"] for c in event_crawls[-window:]) if event_crawls else None
    ratio = round(last / first, 2) if first and last else None
    return {
        "uploads": len(crawls),
        "recrawl_behavior": local_crawler.CRAWL_EVENT_MODE,
        "first_crawl": crawls[0],
        "second_crawl": crawls[1] if len(crawls) > 1 else None,
        "last_crawl": crawls[-1],
        "window": window,
        "first_window_median_seconds": round(first, 4) if first else None,
        "last_window_median_seconds": round(last, 4) if last else None,
        "last_to_first_ratio": ratio,
        "flat_ratio_goal": FLAT_RATIO,
        "flat": ratio is not None and ratio <= FLAT_RATIO,
        "max_objects_read_per_event_crawl": max((c["objects_read"] for c in event_crawls), default=0),
        "crawl_everything_at_last_upload": everything,
        # Every 10th crawl and the last (the medians above use them all).
        "crawls_sampled": crawls[::10] + ([crawls[-1]] if (len(crawls) - 1) % 10 else []),
    }


def run(uploads: int = DEFAULT_UPLOADS) -> dict[str, Any]:
    with temporary_state_dir("airline-bench-crawler-") as state_dir:
        return measure(uploads, state_dir)


def format_summary(result: dict[str, Any]) -> str:
    first, last, everything = result["first_crawl"], result["last_crawl"], result["crawl_everything_at_last_upload"]
    return "\n".join([
        f"crawler ({result['recrawl_behavior']}), {result['uploads']} uploads in one state directory:",
        f"  upload 1 ({first['mode']} mode): {first['seconds'] * 1000:.0f} ms, read {first['objects_read']} object(s)",
        f"  upload {last['upload']} ({last['mode']} mode): {last['seconds'] * 1000:.0f} ms, "
        f"listed {last['objects_listed']}, read {last['objects_read']} object(s)",
        f"  event-mode crawls, median of the first {result['window']}: {result['first_window_median_seconds'] * 1000:.0f} ms, "
        f"of the last {result['window']}: {result['last_window_median_seconds'] * 1000:.0f} ms "
        f"(ratio {result['last_to_first_ratio']}, goal <= {result['flat_ratio_goal']}: "
        f"{'met' if result['flat'] else 'not met'})",
        f"  for contrast, CRAWL_EVERYTHING over the {result['uploads']} files: {everything['seconds'] * 1000:.0f} ms, "
        f"read {everything['objects_read']} objects",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crawler", description=__doc__.split("\n")[0])
    parser.add_argument("--uploads", type=int, default=DEFAULT_UPLOADS)
    parser.add_argument("--write-into", type=Path, help="a bench results JSON to record the result in (key 'crawler')")
    args = parser.parse_args(argv)
    result = run(args.uploads)
    print(format_summary(result))
    if args.write_into:
        report.record_into(args.write_into, "crawler", result)
        print(f"results: {args.write_into} (crawler)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
