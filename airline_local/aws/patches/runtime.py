"""What the patched moto talks to: the local runtime's state, which the Emulator fills in.

`RUNTIME` holds the local stand-ins (job runner, warehouse Data API, mailbox, crawler timing, the IAM
check) that the patches in this package delegate to; `airline_local.aws.emulator.Emulator` sets them.
The two client helpers give a patch an AWS client of the emulator: as the operator
(`emulator_client`) or, with the IAM check on, as a role an AWS service assumes (`role_broker`).
This module imports no patch: every patch module imports it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class CrawlerSettings:
    """How long a local crawl stays in each state, and failures injected by tests.

    A crawl is RUNNING for at least `running_seconds` (and until the crawl work is done), then
    STOPPING for `stopping_seconds`, then READY, like an AWS crawler (whose minimum is ~1 minute).
    Locally half a second in all: the state machine's first GetCrawler (after one scaled Wait,
    0.5 s) finds the crawl READY, and every execution's crawler phase takes ~0.5 s, not ~1.1 s.
    Tests that need a state to last set longer windows.
    """

    running_seconds: float = 0.3
    stopping_seconds: float = 0.2
    _injected_failures: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next_crawl(self, message: str = "Internal Service Exception") -> None:
        """Make the next crawl end with LastCrawl FAILED and this ErrorMessage."""
        with self._lock:
            self._injected_failures.append(message)

    def take_injected_failure(self) -> str | None:
        with self._lock:
            return self._injected_failures.popleft() if self._injected_failures else None

    def clear_injected_failures(self) -> None:
        with self._lock:
            self._injected_failures.clear()


@dataclass(frozen=True)
class ActorDenial:
    """An actor's call refused by the IAM check, recorded where no API caller sees the error."""

    actor: str  # e.g. "EventBridge rule arn:aws:events:...:rule/NAME"
    principal: str  # the role session ARN (or the role, when it could not be assumed)
    action: str
    resource: str
    message: str
    object_key: str | None = None  # the S3 object the event was about, if any
    at: float = field(default_factory=time.time)

    def describe(self) -> str:
        return (f"{self.actor}: {self.principal} was denied {self.action} on {self.resource}: {self.message}")


@dataclass
class LocalRuntime:
    """The local stand-ins the patched moto delegates to (set by the Emulator)."""

    endpoint_url: str | None = None
    job_runner: Any = None  # airline_local.glue.job_runner.JobRunner
    data_api: Any = None  # airline_local.warehouse.redshift_data.DataApiEmulator
    mailbox: Any = None  # airline_local.aws.mailbox.Mailbox
    crawler_settings: CrawlerSettings = field(default_factory=CrawlerSettings)
    # Multiplies every Wait state's duration (1.0 = as written). Not an AWS behaviour: a local
    # speed knob, because the definition's waits are sized for AWS crawlers (minutes).
    wait_time_scale: float = 1.0
    # The local IAM check (airline_local.aws.iam.requests.IamCheck); None = off, moto as shipped.
    iam_check: Any = None
    # What an actor could not do for lack of a permission, where no API caller sees the error
    # (EventBridge starting a target): the newest 1,000, for the pipeline's result.
    denials: deque[ActorDenial] = field(default_factory=lambda: deque(maxlen=1000))


RUNTIME = LocalRuntime()


def emulator_client(service: str, region: str) -> Any:
    import boto3

    if not RUNTIME.endpoint_url:
        raise RuntimeError("the emulator's endpoint is not set (airline_local.aws.emulator.Emulator sets it)")
    return boto3.client(
        service, endpoint_url=RUNTIME.endpoint_url, region_name=region,
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


def role_broker(check: Any) -> Any:
    """The RoleBroker minting the actors' sessions (Emulator.start_iam_check sets it)."""
    if check.role_broker is None:
        raise RuntimeError("local IAM check: no role broker (airline_local.aws.emulator.Emulator.start_iam_check sets it)")
    return check.role_broker
