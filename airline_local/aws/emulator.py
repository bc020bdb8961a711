"""The AWS emulator of the local mode: moto in server mode on 127.0.0.1, made to behave like AWS.

    with Emulator(state_dir) as aws:
        s3 = aws.client("s3")
        aws.job_runner.register_job("ingest", JobSpec(script=...))
        aws.data_api = DataApiEmulator(...)

One server per process: moto keeps its backends (and our patches) process-wide. Step Functions
executions run for real (moto's ASL interpreter); their task integrations call this same server,
which is why MOTO_PORT is set to its port.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config

from airline_local.aws.patches import registry
from airline_local.glue.job_runner import JobRunner
from airline_local.aws.mailbox import Mailbox
from airline_local.aws.patches.runtime import RUNTIME, CrawlerSettings

HOST = "127.0.0.1"
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# With the IAM check on, the emulator's own clients (the data engineer / deployer) sign with this
# key: 20 characters, as moto's parser needs. Its calls are allowed unchecked and recorded
# (docs/iam-check.md, "Built so far").
OPERATOR_CREDENTIALS = {"aws_access_key_id": "LOCALOPERATORKEY0000", "aws_secret_access_key": "local-operator"}



def _on_runtime(name: str) -> Any:
    """A property that reads and sets ``RUNTIME.<name>``."""
    return property(lambda self: getattr(RUNTIME, name), lambda self, value: setattr(RUNTIME, name, value))

class EmulatorError(RuntimeError):
    pass


class Emulator:
    """moto server + patches + the local stand-ins (job runner, mailbox, Data API, crawler)."""

    _running: Emulator | None = None
    _class_lock = threading.Lock()

    def __init__(self, state_dir: Path, port: int | None = None, region: str = "us-east-1", *,
                 warm_workers: int = 0, iam_check: bool = False, small_inputs: bool = False) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.region = region
        with Emulator._class_lock:
            if Emulator._running is not None:
                raise EmulatorError(
                    f"an emulator is already running in this process at {Emulator._running.endpoint_url}; "
                    "moto's state is process-wide, so stop it first"
                )
            registry.apply_all()
            _reset_moto_state()  # moto's backends outlive a server: start empty
            self._server = _start_server(port)
            self.port: int = self._server.get_host_and_port()[1]
            self.endpoint_url = f"http://{HOST}:{self.port}"
            Emulator._running = self
        # Where `airline-ingest local status` finds the emulator of a state directory (while it runs).
        self.endpoint_file = self.state_dir / "endpoint"
        self.endpoint_file.write_text(self.endpoint_url, encoding="utf-8")
        self._previous_moto_port = os.environ.get("MOTO_PORT")
        # Step Functions task integrations (glue, sns, aws-sdk) call moto's own endpoint.
        os.environ["MOTO_PORT"] = str(self.port)
        _enable_state_machine_execution()

        RUNTIME.endpoint_url = self.endpoint_url
        RUNTIME.crawler_settings = CrawlerSettings()
        RUNTIME.data_api = None
        RUNTIME.wait_time_scale = 1.0
        RUNTIME.iam_check = None  # enforced only after start_iam_check (the policies come with the template)
        RUNTIME.denials.clear()
        self.iam_check_requested = iam_check
        self.role_broker: Any = None
        RUNTIME.mailbox = Mailbox(self.state_dir / "mailbox")
        RUNTIME.job_runner = JobRunner(self.state_dir / "glue-job-runs", self.endpoint_url, region,
                                       warm_workers=warm_workers, small_inputs=small_inputs)
        self._stopped = False

    # The stand-ins the patched moto calls; the pipeline wiring replaces them as it needs.
    @classmethod
    def running(cls) -> Emulator | None:
        """The emulator running in this process, if any."""
        with cls._class_lock:
            return cls._running

    # The runtime's pieces live on RUNTIME (moto's handlers read them there); these read and set them.
    job_runner: JobRunner = _on_runtime("job_runner")
    data_api: Any = _on_runtime("data_api")
    mailbox: Mailbox = _on_runtime("mailbox")
    crawler_settings: CrawlerSettings = _on_runtime("crawler_settings")

    @property
    def wait_time_scale(self) -> float:
        """Multiplier for the state machine's Wait states (1.0 = as written; local speed knob)."""
        return RUNTIME.wait_time_scale

    @wait_time_scale.setter
    def wait_time_scale(self, scale: float) -> None:
        if scale < 0:
            raise ValueError(f"wait_time_scale must be >= 0, got {scale}")
        RUNTIME.wait_time_scale = scale

    def start_iam_check(self, template: Any) -> Any:
        """Authorize every request from now on against ``template``'s policies (an
        :class:`airline_local.aws.cfn.Template` already deployed, so its roles exist in the emulated
        IAM). Needs ``Emulator(iam_check=True)``. Returns the installed
        :class:`~airline_local.aws.iam.requests.IamCheck`; ``self.role_broker`` mints role credentials."""
        from airline_local.aws.iam.principals import Credentials, Identity, PrincipalRegistry, RoleBroker
        from airline_local.aws.iam.requests import IamCheck, Resolver
        from airline_local.aws.iam.template_policies import PolicyStore

        if not self.iam_check_requested:
            raise EmulatorError("the IAM check is off for this emulator: create it with iam_check=True")
        store = PolicyStore.from_template(template)
        registry = PrincipalRegistry()
        operator = Credentials(OPERATOR_CREDENTIALS["aws_access_key_id"], OPERATOR_CREDENTIALS["aws_secret_access_key"], None)
        registry.register(Identity("operator", operator, arn=f"arn:aws:iam::{store.account}:user/local-operator"))
        check = IamCheck(store, registry, Resolver.from_template(template, statement_owner=_statement_owner))
        self.role_broker = RoleBroker(store, self.endpoint_url, registry, authorizer=check.authorizer, region=self.region)
        check.role_broker = self.role_broker
        RUNTIME.iam_check = check
        return check

    def stop_iam_check(self) -> None:
        RUNTIME.iam_check = None

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for the emulator (dummy credentials, never a real account; the
        operator's key when the IAM check is requested)."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "config": Config(retries={"max_attempts": 2}),
            **(OPERATOR_CREDENTIALS if self.iam_check_requested else DUMMY_CREDENTIALS),
        }
        options.update(kwargs)
        return boto3.client(service, **options)

    def reset(self) -> None:
        """Forget every emulated resource (buckets, jobs, executions, ...), as a fresh emulator."""
        _reset_moto_state()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if RUNTIME.job_runner is not None:
            RUNTIME.job_runner.close()
        RUNTIME.iam_check = None
        self._server.stop()
        if self._previous_moto_port is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = self._previous_moto_port
        RUNTIME.endpoint_url = None
        self.endpoint_file.unlink(missing_ok=True)
        with Emulator._class_lock:
            if Emulator._running is self:
                Emulator._running = None

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _statement_owner(statement_id: str) -> str | None:
    """Who ran a Data API statement (None: no such statement, or no local warehouse attached)."""
    owner_of = getattr(RUNTIME.data_api, "statement_owner", None)
    return owner_of(statement_id) if owner_of is not None else None


def _reset_moto_state() -> None:
    from moto.moto_api._internal.models import moto_api_backend

    moto_api_backend.reset()


def _enable_state_machine_execution() -> None:
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"] = {"execute_state_machine": True}


def _start_server(port: int | None) -> Any:
    from moto.server import ThreadedMotoServer

    class _Server(ThreadedMotoServer):
        # moto's server thread dies silently when the port is taken and start() then waits
        # forever: record the failure and release the waiter.
        startup_error: BaseException | None = None

        def _server_entry(self) -> None:
            try:
                super()._server_entry()
            except BaseException as error:
                self.startup_error = error
                self._server_ready_event.set()

    # werkzeug logs every request to stderr; the CLI's progress view is the place for progress.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto's state machine interpreter logs every Fail state and caught error at ERROR, with its
    # whole parse tree, to stderr. The execution history carries the same error and cause (the
    # CLI and LocalPipeline.wait report it from there), so these lines are only noise.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    server = _Server(ip_address=HOST, port=port or 0, verbose=False)
    server.start()
    if server.startup_error is not None:
        # werkzeug reports a taken port by printing and exiting (SystemExit), not with OSError.
        if isinstance(server.startup_error, (OSError, SystemExit)) and port and not port_is_free(port):
            raise EmulatorError(
                f"cannot start the AWS emulator on {HOST}:{port}: the port is already in use; "
                "choose another port or leave it unset for a free one"
            ) from None
        raise EmulatorError(f"cannot start the AWS emulator: {server.startup_error}") from server.startup_error
    return server


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True
