"""Glue job runs (moto.glue): each StartJobRun runs the job's script on the local job runner, with
Glue's run limit and job run queuing.

Targets moto 5.2.5. Tested in tests/local/test_moto_patches.py (the job run tests) and
tests/local/test_glue_run_limit.py. Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME

LOG = logging.getLogger(__name__)


class _EndedRuns:
    """A counter of finished local job runs that waiters can block on (a condition variable)."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def one_more(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_past(self, seen: int, timeout: float) -> None:
        """Return once a run ended after `seen` was read, or after timeout seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.count != seen, timeout=timeout)


#: What a Step Functions glue:startJobRun.sync task waits on (patches/stepfunctions.py).
JOB_RUNS_ENDED = _EndedRuns()

# Job runs change state only when the local runner says so ("manual" progression that never ticks).
_JOB_RUN_TRANSITION = {"progression": "manual", "times": 2**62}
# Glue's per-job run limit (docs/aws-notes.md, "Job run queuing"): runs in these states hold one of
# the job's ExecutionProperty.MaxConcurrentRuns (default 1); WAITING ones wait for one.
_ACTIVE_RUN_STATES = frozenset({"STARTING", "RUNNING", "STOPPING"})
_RUN_SLOTS = threading.Lock()  # a start's check and its run's creation are one step, as in Glue
_START_REQUEST = threading.local()  # the StartJobRun request's own JobRunQueuingEnabled


def run_glue_jobs_locally() -> None:
    """StartJobRun runs the job's script (airline_local.glue.job_runner) in a background thread; the
    run is RUNNING until the script ends, then SUCCEEDED, or FAILED / TIMEOUT with ErrorMessage.
    moto 5.2.5 runs nothing, advances a run to SUCCEEDED on its own and never sets ErrorMessage.

    Run limit and queuing as Glue: at most MaxConcurrentRuns runs of a job at once; a start beyond
    it is refused with ConcurrentRunsExceededException, or, with job run queuing (the run's
    JobRunQueuingEnabled, else the job's), created WAITING and started, oldest first, when a run of
    the job ends. moto 5.2.5 ignores JobRunQueuingEnabled and checks the limit without a lock.
    Tested in tests/local/test_glue_run_limit.py.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/glue/latest/dg/job-run-statuses.html and https://docs.aws.amazon.com/glue/latest/webapi/API_StartJobRun.html.
    Test: tests/local/test_moto_patches.py::test_job_run_is_running_then_ends_with_the_runner_outcome; tests/local/test_glue_run_limit.py.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.glue.models import FakeJob, FakeJobRun
    from moto.glue.responses import GlueResponse
    from moto.moto_api import state_manager

    state_manager.set_transition("glue::job_run", _JOB_RUN_TRANSITION)
    original_create_job = GlueResponse.create_job
    original_start_request = GlueResponse.start_job_run
    original_job_as_dict = FakeJob.as_dict
    original_run_as_dict = FakeJobRun.as_dict

    def create_job(self: Any) -> Any:
        result = original_create_job(self)
        job = self.glue_backend.get_job(self._get_param("Name"))
        job.job_run_queuing_enabled = self._get_param("JobRunQueuingEnabled")
        return result

    def start_job_run_request(self: Any) -> Any:
        _START_REQUEST.queuing = self._get_param("JobRunQueuingEnabled")
        try:
            return original_start_request(self)
        finally:
            _START_REQUEST.queuing = None

    def start_job_run(self: Any, **kwargs: Any) -> str:
        requested = getattr(_START_REQUEST, "queuing", None)
        # "If this field does not match the value set in the job run, then the value from the job
        # run field will be used" (the Job structure, JobRunQueuingEnabled).
        queuing = bool(getattr(self, "job_run_queuing_enabled", None) if requested is None else requested)
        with _RUN_SLOTS:
            full = _active_runs(self) >= _max_concurrent_runs(self)
            if full and not queuing:
                from moto.glue.exceptions import ConcurrentRunsExceededException

                raise ConcurrentRunsExceededException(f"Job with name {self.name} already running")
            job_run = _new_job_run(self, **kwargs)
            job_run.job_run_queuing_enabled = requested if requested is not None else getattr(
                self, "job_run_queuing_enabled", None)
            job_run._local_completed_on = job_run._local_error_message = job_run._local_running_since = None
            job_run.status = "WAITING" if full else "RUNNING"
            if not full:
                job_run._local_running_since = job_run.started_on
            self.job_runs.append(job_run)
        if not full:
            _launch_job_run(self, job_run)
        return job_run.job_run_id

    def job_as_dict(self: Any) -> dict[str, Any]:
        data = original_job_as_dict(self)
        if getattr(self, "job_run_queuing_enabled", None) is not None:
            data["JobRunQueuingEnabled"] = self.job_run_queuing_enabled
        return data

    def run_as_dict(self: Any) -> dict[str, Any]:
        data = original_run_as_dict(self)
        running_since = getattr(self, "_local_running_since", None)
        completed = getattr(self, "_local_completed_on", None)
        end = completed or datetime.now(timezone.utc).replace(tzinfo=None)
        # Seconds the run held resources: none while it waited.
        data["ExecutionTime"] = int((end - running_since).total_seconds()) if running_since else 0
        if completed is None:
            data.pop("CompletedOn", None)
        else:
            data["CompletedOn"] = completed
        if getattr(self, "_local_error_message", None):
            data["ErrorMessage"] = self._local_error_message
        if getattr(self, "job_run_queuing_enabled", None) is not None:
            data["JobRunQueuingEnabled"] = self.job_run_queuing_enabled
        return data

    replace(GlueResponse, "create_job", create_job)
    replace(GlueResponse, "start_job_run", start_job_run_request)
    replace(FakeJob, "start_job_run", start_job_run)
    replace(FakeJob, "as_dict", job_as_dict)
    replace(FakeJobRun, "as_dict", run_as_dict)


def _max_concurrent_runs(job: Any) -> int:
    return int((job.execution_property or {}).get("MaxConcurrentRuns", 1))


def _active_runs(job: Any) -> int:
    return sum(1 for run in job.job_runs if run.status in _ACTIVE_RUN_STATES)


def _new_job_run(job: Any, *, allocated_capacity: Any, max_capacity: Any, timeout: Any, worker_type: Any,
                 security_configuration: Any, number_of_workers: Any, notification_property: Any,
                 previous_run_id: Any, arguments: Any) -> Any:
    """The run moto's FakeJob.start_job_run creates (its arguments and defaults), without its
    unlocked limit check, which the patch makes itself."""
    from moto.glue.models import FakeJobRun

    run_arguments = {**job.default_arguments, **(arguments or {}), **(job.non_overridable_arguments or {})}
    return FakeJobRun(
        job_name=job.name, arguments=run_arguments,
        allocated_capacity=allocated_capacity or job.allocated_capacity,
        max_capacity=max_capacity or job.max_capacity, timeout=timeout or job.timeout,
        worker_type=worker_type or job.worker_type,
        security_configuration=security_configuration or job.security_configuration,
        number_of_workers=number_of_workers or job.number_of_workers,
        notification_property=notification_property or job.notification_property,
        job_run_id=previous_run_id,
    )


def _launch_job_run(job: Any, job_run: Any) -> None:
    threading.Thread(target=_drive_job_run, args=(job, job_run), name=f"glue-job-{job.name}", daemon=True).start()


def _end_job_run(job: Any, job_run: Any, state: str, message: str | None) -> None:
    """Record the run's outcome and give its run to the oldest waiting run of the job."""
    with _RUN_SLOTS:
        job_run._local_error_message = message
        job_run._local_completed_on = datetime.now(timezone.utc).replace(tzinfo=None)
        job_run.modified_on = job_run._local_completed_on
        job_run.status = state
        started = []
        for waiting in [r for r in job.job_runs if r.status == "WAITING"]:
            if _active_runs(job) >= _max_concurrent_runs(job):
                break
            waiting.status = "RUNNING"
            waiting._local_running_since = waiting.modified_on = datetime.now(timezone.utc).replace(tzinfo=None)
            started.append(waiting)
    for waiting in started:
        _launch_job_run(job, waiting)
    JOB_RUNS_ENDED.one_more()


# The session name Glue gives a job run's role session (docs/aws-notes.md, "IAM check").
GLUE_JOB_SESSION_NAME = "GlueJobRunnerSession"


def _drive_job_run(job: Any, job_run: Any) -> None:
    runner = RUNTIME.job_runner
    state, message = "FAILED", None
    if runner is None:
        message = f"No local job runner: the emulator cannot run Glue job {job.name}"
    else:
        timeout = job_run.timeout * 60 if job_run.timeout else None  # Glue's Timeout is minutes
        try:
            outcome = runner.run(job.name, job_run.job_run_id, dict(job_run.arguments or {}), timeout,
                                 credentials=_job_role_credentials(job))
            state, message = outcome.state, outcome.error_message
        except Exception as error:
            LOG.exception("job runner failed for %s", job.name)
            message = f"{type(error).__name__}: {error}"
    _end_job_run(job, job_run, state, message)


def _job_role_credentials(job: Any) -> Any:
    return job_role_credentials(job.role)


def job_role_credentials(role_arn: str) -> Any:
    """With the IAM check on: the job role's session, as Glue assumes it (glue.amazonaws.com);
    a refused trust check raises (the run FAILS naming it). Off: None (the dummy key)."""
    check = RUNTIME.iam_check
    if check is None:
        return None
    return check.role_broker.credentials(role_arn, GLUE_JOB_SESSION_NAME, "glue.amazonaws.com")


PATCHES = (run_glue_jobs_locally,)
