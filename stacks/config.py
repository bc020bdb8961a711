"""The stack's configuration: read once from CDK context into a typed, frozen object.

Every key has a documented default here; cdk.json repeats the defaults so that users see them
(a test keeps the two in step). Context values given on the command line (`-c key=value`) arrive
as strings, so every reader accepts the string form too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:  # importing constructs starts jsii: only the CDK app needs it
    from aws_cdk import RemovalPolicy
    from constructs import Node

WORKER_TYPES = ("G.025X", "G.1X", "G.2X", "G.4X", "G.8X")
# Regions where a Redshift Serverless workgroup (with enhanced VPC routing) takes three subnets
# over two Availability Zones instead of three (docs/aws-notes.md, "Redshift Serverless subnets").
TWO_ZONE_REGIONS = ("us-west-1",)
SUBNET_COUNT = 3
_AZ_ID = re.compile(r"^([a-z]{2,}[0-9]+)-az[0-9]+$")
_DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
               "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}
_NAME = re.compile(r"^[a-z][a-z0-9-]{2,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """A context value is missing, malformed or inconsistent; the message names the key."""


@dataclass(frozen=True)
class PipelineConfig:
    """Typed view of the cdk.json context (camelCase keys there, snake_case here)."""

    # Notifications
    notification_emails: tuple[str, ...] = ()
    # Orchestration: how often and how many times the state machine polls a running crawler.
    crawler_poll_interval_seconds: int = 30
    crawler_max_polls: int = 60
    # EventBridge → Step Functions delivery
    event_retry_attempts: int = 8
    event_max_age_hours: int = 24
    # Glue job
    glue_worker_type: str = "G.1X"
    glue_number_of_workers: int = 2
    glue_flex: bool = False
    glue_job_timeout_minutes: int = 60
    glue_max_concurrent_runs: int = 5
    # First wait before retrying a run refused for MaxConcurrentRuns (x1.5 a retry, with jitter).
    glue_concurrency_retry_seconds: int = 30
    max_reject_ratio: float = 0.1
    # Backfill (stacks/backfill.py): files in flight at once (0: one fewer than the job's max
    # concurrent runs, so that uploads keep a run of their own: backfill_concurrency), and the
    # percentage of failed files past which the backfill stops.
    backfill_max_concurrency: int = 0
    backfill_tolerated_failure_percentage: int = 10
    airportsdata_version: str = "20260905"
    # Redshift: a new Serverless namespace + workgroup, unless an existing one is named.
    redshift_database: str = "dev"
    redshift_namespace_name: str = "airline-bookings"
    redshift_workgroup_name: str = "airline-bookings"
    redshift_base_capacity: int = 8
    redshift_vpc_cidr: str = "10.40.0.0/16"
    # AZ IDs (e.g. euw1-az1) of the workgroup's three subnets; empty: the region's first zones.
    redshift_subnet_az_ids: tuple[str, ...] = ()
    existing_redshift_workgroup_name: str = ""
    existing_redshift_workgroup_id: str = ""
    existing_redshift_cluster_id: str = ""
    existing_redshift_db_user: str = ""
    existing_redshift_admin_secret_arn: str = ""
    # Storage and logs
    staging_expiration_days: int = 7
    quarantine_expiration_days: int = 90
    noncurrent_version_expiration_days: int = 30
    access_log_expiration_days: int = 365
    log_retention_days: int = 365
    retain_data: bool = True

    # -- derived views ------------------------------------------------------------------------
    @property
    def redshift_mode(self) -> str:
        """'serverless' (created by the stack), 'existing-serverless' or 'existing-cluster'."""
        if self.existing_redshift_cluster_id:
            return "existing-cluster"
        if self.existing_redshift_workgroup_name:
            return "existing-serverless"
        return "serverless"

    @property
    def data_removal_policy(self) -> RemovalPolicy:
        """What `cdk destroy` does with resources that hold data (buckets, keys, logs, the
        namespace): kept with retainData, removed without.

        Kept means RetainExceptOnCreate, not Retain: a *create* that rolls back deletes them, so
        a failed first deploy leaves no named resource behind to block the retry with "already
        exists" (docs/aws-notes.md)."""
        from aws_cdk import RemovalPolicy

        return RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE if self.retain_data else RemovalPolicy.DESTROY

    @property
    def glue_job_run_queuing(self) -> bool:
        """Whether the job queues runs past its max concurrent runs (WAITING) instead of refusing
        them: on for standard jobs; Flex jobs cannot queue (docs/aws-notes.md, "Job run queuing")."""
        return not self.glue_flex

    @property
    def backfill_concurrency(self) -> int:
        """The backfill's MaxConcurrency: backfillMaxConcurrency, else one run fewer than the job's
        max concurrent runs (at least one), so that an upload during a backfill gets a run at once."""
        return self.backfill_max_concurrency or max(1, self.glue_max_concurrent_runs - 1)

    @property
    def creates_redshift(self) -> bool:
        return self.redshift_mode == "serverless"

    @property
    def workgroup_name(self) -> str:
        """The workgroup the job talks to ('' in cluster mode)."""
        if self.redshift_mode == "existing-cluster":
            return ""
        return self.existing_redshift_workgroup_name or self.redshift_workgroup_name


# camelCase context key -> (field name, parser)
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def context_key(field_name: str) -> str:
    """The cdk.json context key of a PipelineConfig field."""
    return _camel(field_name)


def _parse_int(key: str, value: Any, minimum: int = 0) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context '{key}': expected an integer, got {value!r}") from None
    if isinstance(value, bool) or number < minimum:
        raise ConfigError(f"context '{key}': expected an integer >= {minimum}, got {value!r}")
    return number


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"context '{key}': expected true or false, got {value!r}")


def _parse_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"context '{key}': expected a string, got {value!r}")
    return value.strip()


def _parse_ratio(key: str, value: Any) -> float:
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"context '{key}': expected a number, got {value!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise ConfigError(f"context '{key}': expected a ratio between 0 and 1, got {value!r}")
    return ratio


def _parse_list(key: str, value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):  # -c key='["a", "b"]' or a comma-separated list
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"context '{key}': expected a list of {what}, got {value!r}")
    return tuple(str(v).strip() for v in value)


def _parse_emails(key: str, value: Any) -> tuple[str, ...]:
    emails = _parse_list(key, value, "e-mail addresses")
    for email in emails:
        if not _EMAIL.match(email):
            raise ConfigError(f"context '{key}': {email!r} is not an e-mail address")
    return emails


_MIN_ONE = {
    "crawler_poll_interval_seconds", "crawler_max_polls", "glue_number_of_workers",
    "glue_job_timeout_minutes", "glue_max_concurrent_runs", "glue_concurrency_retry_seconds",
    "event_max_age_hours",
    "staging_expiration_days", "quarantine_expiration_days", "noncurrent_version_expiration_days",
    "access_log_expiration_days", "log_retention_days", "redshift_base_capacity",
}


def _parser_for(field_name: str, default: Any) -> Callable[[str, Any], Any]:
    if field_name == "notification_emails":
        return _parse_emails
    if field_name == "redshift_subnet_az_ids":
        return lambda key, value: _parse_list(key, value, "Availability Zone IDs")
    if field_name == "max_reject_ratio":
        return _parse_ratio
    if isinstance(default, bool):
        return _parse_bool
    if isinstance(default, int):
        minimum = 1 if field_name in _MIN_ONE else 0
        return lambda key, value: _parse_int(key, value, minimum)
    return _parse_str


def config_from_context(context: Mapping[str, Any]) -> PipelineConfig:
    """Build and validate the configuration from a plain mapping of context values."""
    values: dict[str, Any] = {}
    for f in fields(PipelineConfig):
        key = context_key(f.name)
        if key in context and context[key] is not None:
            values[f.name] = _parser_for(f.name, f.default)(key, context[key])
    config = PipelineConfig(**values)
    _validate(config)
    return config


def config_from_node(node: Node) -> PipelineConfig:
    """Read every known key from a construct's context (cdk.json, -c, or App(context=...))."""
    context = {}
    for f in fields(PipelineConfig):
        value = node.try_get_context(context_key(f.name))
        if value is not None:
            context[context_key(f.name)] = value
    return config_from_context(context)


def default_context() -> dict[str, Any]:
    """The documented defaults as cdk.json context (JSON-ready)."""
    out: dict[str, Any] = {}
    for f in fields(PipelineConfig):
        out[context_key(f.name)] = list(f.default) if isinstance(f.default, tuple) else f.default
    return out


def _validate(config: PipelineConfig) -> None:
    if config.glue_worker_type not in WORKER_TYPES:
        raise ConfigError(
            f"context 'glueWorkerType': {config.glue_worker_type!r} is not one of {', '.join(WORKER_TYPES)}"
        )
    if config.glue_flex and config.glue_worker_type not in ("G.1X", "G.2X"):
        raise ConfigError("context 'glueFlex': Flex runs only on G.1X or G.2X workers")
    for name in ("redshift_namespace_name", "redshift_workgroup_name"):
        if not _NAME.match(getattr(config, name)):
            raise ConfigError(
                f"context '{context_key(name)}': {getattr(config, name)!r} must be 3-64 characters "
                "of lower-case letters, digits and hyphens, starting with a letter"
            )
    if config.redshift_subnet_az_ids:
        check_subnet_az_ids(config.redshift_subnet_az_ids, region=None)
    if config.existing_redshift_cluster_id and config.existing_redshift_workgroup_name:
        raise ConfigError(
            "context: set either 'existingRedshiftClusterId' or 'existingRedshiftWorkgroupName', not both"
        )
    if config.redshift_mode == "existing-cluster" and not config.existing_redshift_db_user:
        raise ConfigError(
            "context 'existingRedshiftDbUser': required with 'existingRedshiftClusterId' "
            "(the database user the Glue job connects as)"
        )
    if config.redshift_mode == "existing-serverless" and not config.existing_redshift_workgroup_id:
        raise ConfigError(
            "context 'existingRedshiftWorkgroupId': required with 'existingRedshiftWorkgroupName' "
            "(the workgroup id from its ARN, used to scope IAM permissions)"
        )
    if not config.creates_redshift and not config.existing_redshift_admin_secret_arn:
        raise ConfigError(
            "context 'existingRedshiftAdminSecretArn': required with an existing Redshift "
            "(a Secrets Manager secret of a user allowed to create the schema and grant on it)"
        )
    if config.backfill_tolerated_failure_percentage > 100:
        raise ConfigError("context 'backfillToleratedFailurePercentage': expected a percentage from 0 to 100, "
                          f"got {config.backfill_tolerated_failure_percentage}")
    _validate_glue_concurrency(config)
    if config.crawler_poll_interval_seconds * config.crawler_max_polls > 24 * 3600:
        raise ConfigError(
            "context 'crawlerPollIntervalSeconds' x 'crawlerMaxPolls' exceeds one day of polling"
        )


def _validate_glue_concurrency(config: PipelineConfig) -> None:
    """A backfill must not starve uploads of job runs. With run queuing (standard jobs) an upload
    beyond the limit waits for a run; without it (Flex) it is refused and retried for a bounded
    time, so the backfill must leave it a run (docs/aws-notes.md, "Job run queuing")."""
    runs, backfill = config.glue_max_concurrent_runs, config.backfill_max_concurrency
    if backfill > runs:
        raise ConfigError(f"context 'backfillMaxConcurrency': {backfill} is more than 'glueMaxConcurrentRuns' "
                          f"({runs}); the job never runs more at once")
    if config.glue_job_run_queuing:
        return
    if runs < 2:
        raise ConfigError("context 'glueMaxConcurrentRuns': at least 2 with 'glueFlex' (Flex jobs do not queue "
                          "runs: a backfill would hold the only run and starve the uploads)")
    if backfill >= runs:
        raise ConfigError(f"context 'backfillMaxConcurrency': {backfill} leaves no run of 'glueMaxConcurrentRuns' "
                          f"({runs}) to the uploads, and 'glueFlex' jobs do not queue runs: at most {runs - 1}")


def az_id_prefix(region: str) -> str:
    """The prefix of a region's AZ IDs: eu-west-1 -> euw1, ap-southeast-2 -> apse2, us-gov-west-1
    -> usgw1."""
    *head, direction, number = region.split("-")
    return "".join("g" if part == "gov" else part for part in head) + _DIRECTIONS.get(direction, direction[0]) + number


def check_subnet_az_ids(az_ids: tuple[str, ...], region: str | None) -> None:
    """The rule Redshift Serverless sets for a workgroup's subnets (with enhanced VPC routing):
    three subnets in three Availability Zones, or, in a two-zone region, over two zones with two
    subnets in one of them. `region` None: the stack has no region yet (format checks only)."""
    key = context_key("redshift_subnet_az_ids")
    rule = ("Redshift Serverless needs its workgroup's subnets in three Availability Zones "
            f"(two in {', '.join(TWO_ZONE_REGIONS)}, one of them holding two subnets)")
    if len(az_ids) != SUBNET_COUNT:
        raise ConfigError(f"context '{key}': expected {SUBNET_COUNT} AZ IDs, one per subnet, got {list(az_ids)}. {rule}.")
    for az_id in az_ids:
        if not _AZ_ID.match(az_id):
            raise ConfigError(f"context '{key}': {az_id!r} is not an Availability Zone ID such as 'euw1-az1' "
                              "(IDs, not names: a zone name maps to a different zone in every account)")
    if len({_AZ_ID.match(a).group(1) for a in az_ids}) > 1:
        raise ConfigError(f"context '{key}': {list(az_ids)} are zones of different regions")
    if region is None:
        return
    prefix = az_id_prefix(region)
    if _AZ_ID.match(az_ids[0]).group(1) != prefix:
        raise ConfigError(f"context '{key}': {list(az_ids)} are not zones of {region} (its AZ IDs are {prefix}-az<n>)")
    zones = len(set(az_ids))
    needed = 2 if region in TWO_ZONE_REGIONS else 3
    if zones < needed:
        raise ConfigError(f"context '{key}': {list(az_ids)} span {zones} zone(s) in {region}. {rule}.")
