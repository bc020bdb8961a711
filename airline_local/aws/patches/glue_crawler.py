"""Glue crawlers (moto.glue): the lifecycle of AWS's crawler, and a crawl that really infers the
tables (airline_local.glue.crawler), reading S3 as the crawler's role when the IAM check is on.

Targets moto 5.2.5. Tested in tests/local/test_moto_patches.py (the crawler tests) and
tests/local/test_crawler.py. Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME, CrawlerSettings, emulator_client, role_broker

LOG = logging.getLogger(__name__)


class LocalCrawl:
    """One crawl: RUNNING while the work runs (at least running_seconds), then STOPPING, then done."""

    def __init__(self, crawler_name: str, settings: CrawlerSettings) -> None:
        self.crawl_id = str(uuid.uuid4())
        self.crawler_name = crawler_name
        self.start_time = datetime.now(timezone.utc)
        self.end_time: datetime | None = None
        self._started = time.monotonic()
        self._running_seconds = settings.running_seconds
        self._stopping_seconds = settings.stopping_seconds
        self._work_done_at: float | None = None
        self._stop_requested_at: float | None = None
        self.status = "SUCCEEDED"  # of the finished crawl: SUCCEEDED | FAILED | CANCELLED
        self.error_message: str | None = None
        self.result: Any = None  # the local crawler's CrawlResult (what it listed, read, consumed)
        self._lock = threading.Lock()

    def work_finished(self, error_message: str | None) -> None:
        with self._lock:
            self._work_done_at = time.monotonic()
            if error_message is not None:
                self.status, self.error_message = "FAILED", error_message

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested_at = time.monotonic()
            self.status, self.error_message = "CANCELLED", None

    def state(self) -> str:
        """The crawler's State while this is its latest crawl: RUNNING | STOPPING | READY."""
        now = time.monotonic()
        with self._lock:
            if self._stop_requested_at is not None:
                stopping_ends = self._stop_requested_at + self._stopping_seconds
            elif self._work_done_at is None or now < self._started + self._running_seconds:
                return "RUNNING"
            else:
                running_ended = max(self._started + self._running_seconds, self._work_done_at)
                stopping_ends = running_ended + self._stopping_seconds
            if now < stopping_ends:
                return "STOPPING"
            if self.end_time is None:
                self.end_time = datetime.now(timezone.utc)
            return "READY"

    def last_crawl(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "Status": self.status,
            "LogGroup": "/aws-glue/crawlers",
            "LogStream": self.crawler_name,
            "MessagePrefix": self.crawl_id,
            "StartTime": self.start_time,
        }
        if self.error_message:
            info["ErrorMessage"] = self.error_message
        return info


_CRAWLER_STARTS = threading.Lock()


def _local_crawls(crawler: Any) -> list[LocalCrawl]:
    if "_local_crawls" not in crawler.__dict__:
        crawler._local_crawls = []
    return crawler._local_crawls


def run_crawlers_like_aws() -> None:
    """Glue crawler lifecycle as AWS: StartCrawler -> RUNNING -> STOPPING -> READY, with
    LastCrawl (the last *finished* crawl) {Status: SUCCEEDED | FAILED + ErrorMessage | CANCELLED};
    StartCrawler while RUNNING or STOPPING raises CrawlerRunningException; the crawl really
    infers the tables (airline_local.glue.crawler). moto 5.2.5: no tables, LastCrawl shows the current
    crawl with `COMPLETED`, the crawler stays RUNNING unless state transitions are configured, and
    StartCrawler is accepted while STOPPING.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/glue/latest/webapi/API_StartCrawler.html.
    Test: tests/local/test_moto_patches.py::test_crawl_runs_stops_and_is_ready_with_last_crawl_succeeded and the crawler tests after it.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.glue.exceptions import CrawlerNotRunningException, CrawlerRunningException, GlueClientError
    from moto.glue.models import FakeCrawler

    original_as_dict = FakeCrawler.as_dict

    def status(self: Any) -> str:
        crawls = _local_crawls(self)
        return crawls[-1].state() if crawls else "READY"

    def start_crawler(self: Any) -> None:
        # The check and the start are one step, as on AWS: the server's request threads may bring
        # two StartCrawler calls at once (a burst of uploads), and two crawls would both create the table.
        with _CRAWLER_STARTS:
            if status(self) != "READY":
                raise CrawlerRunningException(f"Crawler with name {self.name} has already started")
            crawl = LocalCrawl(self.name, RUNTIME.crawler_settings)
            _local_crawls(self).append(crawl)
        threading.Thread(
            target=_crawl_in_background, args=(self, crawl), name=f"crawl-{self.name}", daemon=True
        ).start()

    def stop_crawler(self: Any) -> None:
        state = status(self)
        if state == "STOPPING":
            raise GlueClientError("CrawlerStoppingException", f"Crawler with name {self.name} is stopping")
        if state != "RUNNING":
            raise CrawlerNotRunningException(f"Crawler with name {self.name} isn't running")
        _local_crawls(self)[-1].request_stop()

    def as_dict(self: Any) -> dict[str, Any]:
        data = original_as_dict(self)
        crawls = _local_crawls(self)
        data.pop("LastCrawl", None)
        finished = [c for c in crawls if c.state() == "READY"]
        if finished:
            data["LastCrawl"] = finished[-1].last_crawl()
        if crawls and crawls[-1].state() != "READY":
            elapsed = datetime.now(timezone.utc) - crawls[-1].start_time
            data["CrawlElapsedTime"] = int(elapsed.total_seconds() * 1000)
        return data

    replace(FakeCrawler, "status", property(status))
    replace(FakeCrawler, "start_crawler", start_crawler)
    replace(FakeCrawler, "stop_crawler", stop_crawler)
    replace(FakeCrawler, "as_dict", as_dict)


def _crawl_in_background(crawler: Any, crawl: LocalCrawl) -> None:
    from airline_local.glue import crawler as local_crawler

    injected = RUNTIME.crawler_settings.take_injected_failure()
    if injected is not None:
        crawl.work_finished(injected)
        return
    try:
        definition = local_crawler.CrawlerDefinition.from_api(
            {
                "Name": crawler.name,
                "DatabaseName": crawler.database_name,
                "Targets": crawler.targets,
                "TablePrefix": crawler.table_prefix,
                "SchemaChangePolicy": crawler.schema_change_policy,
                "RecrawlPolicy": crawler.recrawl_policy,
            }
        )
        region = crawler.backend.region_name
        s3, glue = _crawler_client(crawler, "s3", region), _crawler_client(crawler, "glue", region)
        # Event mode: the crawler reads its S3 events queue as its role; its first successful
        # crawl lists the targets, the later ones crawl only what the events name.
        sqs = _crawler_client(crawler, "sqs", region) if definition.event_mode else None
        first_crawl = not any(c.status == "SUCCEEDED" and c.state() == "READY" for c in _local_crawls(crawler) if c is not crawl)
        result = local_crawler.run_crawl(definition, s3, glue, sqs=sqs, first_crawl=first_crawl,
                                         skip_unreadable=True)  # AWS: such a file is UNKNOWN, not a failure
        for reason in result.objects_skipped:
            LOG.warning("crawler %s: skipped %s", crawler.name, reason)
        LOG.info("crawler %s: %s", crawler.name, result)
        crawl.result = result
        crawl.work_finished(None)
    except local_crawler.CrawlError as error:
        crawl.work_finished(str(error))
    except Exception as error:  # AWS reports internal failures as a FAILED crawl, not an outage
        LOG.exception("crawler %s failed", crawler.name)
        crawl.work_finished(f"Internal Service Exception: {type(error).__name__}: {error}")


#: The session name Glue gives a crawler's role session (docs/aws-notes.md, "IAM check").
CRAWLER_SESSION_NAME = "AWS-Crawler"


def _crawler_client(crawler: Any, service: str, region: str) -> Any:
    """The crawler reads S3 and writes the Data Catalog as its role (glue.amazonaws.com) when the
    IAM check is on; a trust policy that refuses Glue fails the crawl naming it."""
    check = RUNTIME.iam_check
    if check is None:
        return emulator_client(service, region)
    from airline_local.aws.iam.authorizer import AccessDeniedError
    from airline_local.glue.crawler import CrawlAccessDeniedError

    try:
        return role_broker(check).client(service, crawler.role, CRAWLER_SESSION_NAME, "glue.amazonaws.com")
    except AccessDeniedError as error:
        raise CrawlAccessDeniedError(f"Glue cannot assume the crawler's role {crawler.role}: {error}") from error


PATCHES = (run_crawlers_like_aws,)
