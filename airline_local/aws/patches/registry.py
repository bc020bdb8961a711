"""Which patches are in force, in which order, and the moto version they are written for.

`apply_all` (called by airline_local.aws.emulator.Emulator) checks the installed moto against the
pin, then applies every patch of this package once per process, in the order below (the order
they were written and tested in; a patch wrapping what another one replaced would depend on it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import moto

from airline_local.aws.patches import (
    awslambda,
    events,
    glue_crawler,
    glue_jobs,
    iam_check,
    redshift_data,
    s3,
    service_deliveries,
    sns,
    stepfunctions,
    stepfunctions_data_limit,
    stepfunctions_distributed_map,
)

PINNED_MOTO_VERSION = "5.2.5"

PATCHES: tuple[Callable[[], None], ...] = (
    events.emit_s3_events_to_eventbridge_like_aws,
    events.start_executions_from_eventbridge_targets,
    stepfunctions.support_glue_start_job_run_sync,
    stepfunctions.name_aws_sdk_errors_like_aws,
    stepfunctions.return_aws_sdk_bodies_as_text,
    stepfunctions.keep_task_results_json,
    stepfunctions.scale_wait_states,
    stepfunctions.read_workflow_variables_without_jsonata,
    glue_crawler.run_crawlers_like_aws,
    glue_jobs.run_glue_jobs_locally,
    sns.deliver_sns_to_mailbox,
    redshift_data.route_redshift_data_to_local_warehouse,
    iam_check.check_iam_of_every_call,
    stepfunctions.sign_state_machine_tasks_with_its_role,
    *stepfunctions_distributed_map.PATCHES,
    *service_deliveries.PATCHES,
    *s3.PATCHES,
    *stepfunctions_data_limit.PATCHES,
    *awslambda.PATCHES,
)

_APPLY_LOCK = threading.Lock()
_APPLIED: list[str] = []


def apply_all() -> list[str]:
    """Apply every patch (once per process). Returns the names of the patches in force."""
    with _APPLY_LOCK:
        if _APPLIED:
            return list(_APPLIED)
        check_moto_version(moto.__version__)
        for patch in PATCHES:  # each is idempotent: a failed attempt can simply be retried
            patch()
        _APPLIED.extend(patch.__name__ for patch in PATCHES)
        return list(_APPLIED)


def check_moto_version(installed: str) -> None:
    """The patches reach into moto's internals, which move between releases: insist on the pin."""
    if installed != PINNED_MOTO_VERSION:
        raise RuntimeError(
            f"airline_local's moto patches are written for moto=={PINNED_MOTO_VERSION}, but moto "
            f"{installed} is installed. Install the pinned version "
            f"(pip install 'moto[server]=={PINNED_MOTO_VERSION}') or port airline_local/aws/patches/."
        )

