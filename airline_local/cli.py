"""`airline-ingest`: the local pipeline from the command line.

    airline-ingest demo                          the bundled sample, end to end, explained
    airline-ingest local up / down               keep the local stack running in the background
    airline-ingest local run FILE [FILE ...]     upload files, wait for their executions
    airline-ingest local backfill DIR_OR_FILES   ingest many files with one backfill execution
    airline-ingest local sql "SELECT ..."        query the local warehouse
    airline-ingest local status [--json]         recent runs, live while some are in progress
    airline-ingest generate --rows N --out FILE  synthetic booking files

Progress goes to stderr; with --json, stdout carries exactly one JSON document.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import nullcontext
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from airline_local.aws.emulator import EmulatorError
from airline_local.glue.java import JavaNotFoundError
from airline_local.local_stack import SYNTH_CACHE_ENV, SynthError
from airline_local.aws.mailbox import read_email
from airline_local.pipeline import (
    DEFAULT_WARM_WORKERS,
    LocalPipeline,
    PipelineError,
    RunResult,
    Upload,
    are_small,
    temporary_state_dir,
)
from airline_local.warehouse.postgres import PostgresError, PostgresServer, check_port_free

SAMPLE_FILE = Path(__file__).resolve().parent.parent / "data" / "sample" / "bookings_sample.csv"
DEFAULT_STATE_DIR = Path(".airline-local")
DEMO_QUERIES = {
    "Rows loaded by run": "SELECT source_file, status, rows_read, rows_quarantined, rows_duplicate, "
                          "rows_inserted, rows_updated, rows_unchanged, rows_stale FROM airline.ingestion_runs "
                          "ORDER BY started_at",
    "Busiest routes": "SELECT origin, destination, COUNT(*) AS bookings, ROUND(AVG(distance_km)) AS km "
                      "FROM airline.bookings GROUP BY origin, destination ORDER BY bookings DESC, origin LIMIT 5",
    "Revenue by cabin": "SELECT cabin_class, currency, COUNT(*) AS bookings, SUM(fare_amount) AS revenue "
                        "FROM airline.bookings GROUP BY cabin_class, currency ORDER BY revenue DESC LIMIT 5",
}

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help=__doc__.split("\n\n")[0])
local_app = typer.Typer(no_args_is_help=True, help="Run files through the local pipeline and query its warehouse.")
app.add_typer(local_app, name="local")
DISTRIBUTION = "airline-booking-pipeline"  # pyproject.toml's [project] name


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"airline-ingest {version(DISTRIBUTION)}")
        raise typer.Exit()


@app.callback()
def root(
    _version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                  help="Print the installed release (CHANGELOG.md) and exit."),
) -> None:
    """Airline booking files through the pipeline, locally."""
err = Console(stderr=True)
KNOWN_ERRORS = (PipelineError, PostgresError, EmulatorError, JavaNotFoundError, SynthError, FileNotFoundError, OSError)

AwsPortOption = typer.Option(None, "--aws-port", help="Port of the local AWS emulator (default: a free one).")
WarehousePortOption = typer.Option(None, "--warehouse-port", help="Port of the local PostgreSQL (default: a free one).")
NoIamCheckOption = typer.Option(False, "--no-iam-check", help="Do not authorize the run's AWS calls "
                                "against the template's IAM policies (on by default; for debugging only).")
StateDirOption = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="Where the local stack keeps its state; "
                              "the warehouse in it persists between invocations.")


@app.command()
def demo(
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Keep the state here (default: a fresh "
                                             "temporary directory, removed afterwards)."),
    no_iam_check: bool = NoIamCheckOption,
) -> None:
    """Run the bundled sample through the whole local pipeline and show what happened."""
    err.print(Panel.fit(
        "Local AWS (moto) + local Spark (the Glue script) + PostgreSQL (standing in for Redshift)\n"
        f"Uploading [bold]{SAMPLE_FILE.name}[/] to s3://<raw bucket>/raw/bookings/",
        title="airline-ingest demo"))
    directory = temporary_state_dir("airline-demo-") if state_dir is None else nullcontext(state_dir)
    with directory as chosen, _started(chosen, show_emails=True, warm_workers=1, small_inputs=True,
                                           iam_check=not no_iam_check) as pipeline:
        results = _run_with_progress(_in_process(pipeline, [SAMPLE_FILE], concurrent=False), [SAMPLE_FILE])
        for result in results:
            _print_result(result)
        for title, query in DEMO_QUERIES.items():
            columns, rows = pipeline.query(query)
            _print_table(title, columns, rows)
    raise typer.Exit(0 if all(r.status == "SUCCEEDED" for r in results) else 1)


@local_app.command("up")
def local_up(
    state_dir: Path = StateDirOption,
    warm_workers: int = typer.Option(DEFAULT_WARM_WORKERS, "--warm-workers", min=0, help="Spark workers kept warm "
                                     "for the Glue job, also the most job runs at once."),
    aws_port: Optional[int] = AwsPortOption,
    warehouse_port: Optional[int] = WarehousePortOption,
    no_iam_check: bool = NoIamCheckOption,
) -> None:
    """Start the local stack in the background; `local run`, `backfill`, `sql` and `status` on this
    state directory use it until `local down`."""
    from airline_local import background

    stack = _stack(state_dir)
    if stack is None:
        os.environ.setdefault(SYNTH_CACHE_ENV, str(user_synth_cache()))
        try:
            with err.status("Starting the local stack in the background (synth, PostgreSQL, AWS emulator)..."):
                stack = background.start(state_dir, warm_workers=warm_workers, iam_check=not no_iam_check,
                                         aws_port=aws_port, warehouse_port=warehouse_port)
        except KNOWN_ERRORS as error:
            _fail(str(error))
        err.print(f"local stack up on {state_dir} (PID {stack.pid})", soft_wrap=True)
    elif not stack.ready:
        _fail(f"the local stack on {state_dir} is already starting (PID {stack.pid}, log {stack.log})")
    else:
        err.print(f"the local stack is already up on {state_dir} (PID {stack.pid})", soft_wrap=True)
    err.print(f"  AWS emulator  {stack.aws_endpoint}\n  PostgreSQL    127.0.0.1:{stack.warehouse_port}\n"
              f"  log           {stack.log}\nstop it with: airline-ingest local down --state-dir {state_dir}",
              soft_wrap=True)


@local_app.command("down")
def local_down(state_dir: Path = StateDirOption) -> None:
    """Stop the background local stack of a state directory and everything it started."""
    from airline_local import background

    _stack(state_dir)
    with err.status("Stopping the local stack..."):
        stopped = background.stop(state_dir)
    if stopped is None:
        err.print(f"no local stack is running on {state_dir}", soft_wrap=True)
    else:
        err.print(f"local stack on {state_dir} stopped (PID {stopped.pid}); its warehouse and run history stay",
                  soft_wrap=True)


@local_app.command("run")
def local_run(
    files: list[Path] = typer.Argument(..., help="Booking files (.csv or .csv.gz)."),
    state_dir: Path = StateDirOption,
    concurrent: bool = typer.Option(False, "--concurrent", help="Upload all files at once."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    timeout: float = typer.Option(600.0, "--timeout", help="Seconds to wait for each execution."),
    aws_port: Optional[int] = AwsPortOption,
    warehouse_port: Optional[int] = WarehousePortOption,
    warm_workers: Optional[int] = typer.Option(
        None, "--warm-workers", min=0, help="Spark workers kept warm for the Glue job, also the "
        f"most job runs at once (default: {DEFAULT_WARM_WORKERS}, at most one per file; 0: a "
        "fresh process per run, as on AWS Glue)."),
    no_iam_check: bool = NoIamCheckOption,
) -> None:
    """Upload each file under raw/bookings/<name> and wait for its execution; exit 0 if all succeeded."""
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        _fail(f"no such file: {', '.join(missing)}", code=2)
    stack = _ready_stack(state_dir)
    if stack is None:  # what fails in a moment first: the synth the rule check needs may take a while
        try:
            for port in (aws_port, warehouse_port):
                if port is not None:
                    check_port_free(port)
        except KNOWN_ERRORS as error:
            _fail(str(error))
    _check_rule_matches(state_dir, files)
    if stack is not None:
        _ignored_while_up(aws_port=aws_port, warehouse_port=warehouse_port, warm_workers=warm_workers,
                          no_iam_check=no_iam_check or None)
        try:
            results = _run_with_progress(_on_stack(stack, files, concurrent=concurrent, timeout=timeout,
                                                   show_emails=not as_json), files, quiet=as_json)
        except KeyboardInterrupt:
            err.print("[yellow]interrupted: the local stack stops the executions this command started[/]")
            raise typer.Exit(130) from None
    else:
        if warm_workers is None:
            warm_workers = min(DEFAULT_WARM_WORKERS, len(files))
        with _started(state_dir, show_emails=not as_json, warm_workers=warm_workers, iam_check=not no_iam_check,
                      small_inputs=are_small(files), aws_port=aws_port, warehouse_port=warehouse_port) as pipeline:
            results = _run_with_progress(_in_process(pipeline, files, concurrent=concurrent, timeout=timeout),
                                         files, quiet=as_json)
    if as_json:
        print(json.dumps({"runs": [r.as_json() for r in results]}, default=_json_default))
    else:
        for result in results:
            _print_result(result)
    raise typer.Exit(0 if all(r.status == "SUCCEEDED" for r in results) else 1)


@local_app.command("backfill")
def local_backfill(
    paths: list[Path] = typer.Argument(..., help="Booking files, or directories of them (.csv, .csv.gz)."),
    state_dir: Path = StateDirOption,
    concurrency: Optional[int] = typer.Option(
        None, "--concurrency", min=1, help="Files in flight at once: the Distributed Map's MaxConcurrency "
        "(default: context backfillMaxConcurrency, else one fewer than the job's max concurrent runs)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds to wait for the backfill."),
    aws_port: Optional[int] = AwsPortOption,
    warehouse_port: Optional[int] = WarehousePortOption,
    no_iam_check: bool = NoIamCheckOption,
) -> None:
    """Upload the files under raw/backfill/<name>/ and run the backfill state machine on that
    prefix; exit 0 if every file succeeded."""
    from airline_local.backfill import booking_files, run_backfill

    try:
        files = booking_files(paths)
    except PipelineError as error:
        _fail(str(error), code=2)
    context = {"backfillMaxConcurrency": concurrency} if concurrency else None
    warm = min(DEFAULT_WARM_WORKERS, concurrency or DEFAULT_WARM_WORKERS, len(files))
    stack = _ready_stack(state_dir)
    if stack is not None:
        if concurrency:
            _fail(f"--concurrency changes the synthesized stack, and a stack is up on {state_dir}: "
                  f"run `airline-ingest local down --state-dir {state_dir}` first, or leave it out", code=2)
        _ignored_while_up(aws_port=aws_port, warehouse_port=warehouse_port, no_iam_check=no_iam_check or None)
        from airline_local import background
        from airline_local.backfill import BackfillFile, BackfillResult

        try:
            with nullcontext() if as_json else err.status(f"Backfilling {len(files)} file(s) on the running stack..."):
                document = background.request(stack, "/backfill", {
                    "files": [str(f.resolve()) for f in files], "timeout": timeout},
                    _on_stack_event(show_emails=not as_json))["backfill"]
        except KNOWN_ERRORS as error:
            _fail(str(error))
        result = BackfillResult(**{**document, "files": [BackfillFile(**f) for f in document["files"]]})
    else:
        with _started(state_dir, show_emails=not as_json, warm_workers=warm, context=context,
                      iam_check=not no_iam_check, aws_port=aws_port, warehouse_port=warehouse_port) as pipeline:
            try:
                with nullcontext() if as_json else err.status(f"Backfilling {len(files)} file(s)..."):
                    result = run_backfill(pipeline, files, timeout=timeout)
            except KNOWN_ERRORS as error:
                _fail(str(error))
    if as_json:
        print(json.dumps(result.as_json(), default=_json_default))
    else:
        table = Table(title=f"Backfill {result.execution_name}: {result.status} in {result.seconds:.0f} s")
        for column in ("file", "status", "rows / error"):
            table.add_column(column)
        for f in result.files:
            detail = f.error or ", ".join(f"{k.removeprefix('rows_')}={v}" for k, v in (f.summary or {}).items())
            table.add_row(Path(f.file).name, f.status, detail)
        err.print(table)
        err.print(f"{len(result.succeeded)} succeeded, {len(result.failed)} failed; rows: "
                  + ", ".join(f"{k}={v}" for k, v in result.rows.items()) + f"; results: {result.results_uri}")
    raise typer.Exit(0 if result.status == "SUCCEEDED" and not result.failed else 1)


@local_app.command("sql")
def local_sql(
    query: str = typer.Argument(..., help="SQL to run on the local warehouse (PostgreSQL); - reads it from stdin."),
    state_dir: Path = StateDirOption,
    as_json: bool = typer.Option(False, "--json", help="Print {\"columns\": [...], \"rows\": [[...]]}."),
) -> None:
    """Run a query on the local warehouse of a state directory."""
    import psycopg

    if query == "-":
        query = sys.stdin.read()
    data_dir = state_dir / "postgres"
    if not data_dir.is_dir():
        _fail(f"no local warehouse in {state_dir}: run `airline-ingest local run FILE --state-dir {state_dir}` first")
    _stack(state_dir)  # a stack left by a killed process: cleaned up, not its PostgreSQL reused
    from airline_local.warehouse.statements import Warehouse  # imported late: psycopg is the only need here
    from airline_local.warehouse.redshift_sql import RedshiftSqlError

    try:
        with PostgresServer(data_dir) as server:
            columns, rows = Warehouse(server.dsn, read_object=None).query(query)
    except psycopg.Error as error:
        _fail(_database_error(error, query))
    except RedshiftSqlError as error:
        _fail(_parse_error(error, query))
    except KNOWN_ERRORS as error:
        _fail(str(error))
    if as_json:
        print(json.dumps({"columns": columns, "rows": [list(r) for r in rows]}, default=_json_default))
    else:
        _print_table(None, columns, rows, console=Console())


def _parse_error(error: Exception, query: str) -> str:
    """The local warehouse's Redshift parser's refusal, pointing at the place (one paragraph)."""
    cause = getattr(error.__cause__, "errors", None)
    if not cause:  # not a syntax error (e.g. two statements): the message says it all
        return f"the local warehouse cannot run the query: {error}"
    first = cause[0]
    line_number, column = first.get("line") or 1, first.get("col") or 1
    line = query.split("\n")[line_number - 1] if line_number <= query.count("\n") + 1 else ""
    return "\n".join([
        f"the query is not Redshift SQL the local warehouse can parse: {first.get('description')}",
        f"at line {line_number}, column {column}:", f"  {line}", "  " + " " * max(column - 1, 0) + "^"])


def _database_error(error: Any, query: str) -> str:
    """PostgreSQL's own message, and where in the query it points (one paragraph, no traceback)."""
    diag = error.diag
    message = diag.message_primary or str(error).strip()
    lines = [f"the warehouse refused the query: {message}" + (f" ({diag.sqlstate})" if diag.sqlstate else "")]
    if diag.statement_position:
        # The position counts characters of the query as sent (Redshift SQL translated for PostgreSQL).
        from airline_local.warehouse.redshift_sql import to_postgres

        sent = to_postgres(query)
        position = int(diag.statement_position)
        line_number = sent.count("\n", 0, position - 1) + 1
        line_start = sent.rfind("\n", 0, position - 1) + 1
        line = sent.split("\n")[line_number - 1]
        lines.append(f"at character {position} (line {line_number}):")
        lines += [f"  {line}", "  " + " " * (position - 1 - line_start) + "^"]
    for extra in (diag.message_detail, diag.message_hint):
        if extra:
            lines.append(extra)
    return "\n".join(lines)


@local_app.command("status")
def local_status(
    state_dir: Path = StateDirOption,
    as_json: bool = typer.Option(False, "--json", help="Print {\"runs\": [...], \"live\": bool} once."),
    limit: int = typer.Option(20, "--limit", min=1, help="How many runs, newest first."),
    watch: bool = typer.Option(True, "--watch/--no-watch", help="While runs are in progress, keep the "
                               "table live until they end (not with --json)."),
) -> None:
    """Recent runs of a state directory: the warehouse's ingestion_runs and, while a local pipeline
    runs there, the emulator's executions (file, status, rows by outcome, duration)."""
    from botocore.exceptions import EndpointConnectionError

    from airline_local import status as run_status

    data_dir = state_dir / "postgres"
    if not data_dir.is_dir():
        _fail(f"no local warehouse in {state_dir}: run `airline-ingest local run FILE --state-dir {state_dir}` first")
    from airline_local.warehouse.statements import Warehouse

    _stack(state_dir)  # a stack left by a killed process: cleaned up, not its PostgreSQL reused
    endpoint = run_status.emulator_endpoint(state_dir)
    client = None
    if endpoint:
        import boto3
        from botocore.config import Config

        from airline_local.aws.emulator import OPERATOR_CREDENTIALS

        def client(service: str):  # the operator's local key (the IAM check lets it read), never a real account
            return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **OPERATOR_CREDENTIALS,
                                config=Config(retries={"max_attempts": 1}, connect_timeout=2))
        try:
            client("stepfunctions").list_state_machines()
        except EndpointConnectionError:  # a stale endpoint file: that pipeline was killed
            client = endpoint = None
    try:
        with PostgresServer(data_dir) as server:
            warehouse = Warehouse(server.dsn, read_object=None)

            def snapshot() -> list:
                try:
                    return run_status.collect(state_dir, limit=limit, query=warehouse.query, client=client)
                except EndpointConnectionError:  # the pipeline stopped meanwhile: the warehouse alone
                    return run_status.collect(state_dir, limit=limit, query=warehouse.query)

            runs = snapshot()
            if as_json:
                print(json.dumps({"runs": [r.as_json() for r in runs], "live": endpoint is not None},
                                 default=_json_default))
                return
            console = Console()
            if watch and run_status.in_progress(runs):
                err.print(f"{sum(r.status == 'RUNNING' for r in runs)} run(s) in progress: the table "
                          "stays live until they end (Ctrl-C stops watching)")
                with Live(_status_table(runs), console=console, refresh_per_second=2) as live:
                    while run_status.in_progress(runs):
                        time.sleep(1.0)
                        runs = snapshot()
                        live.update(_status_table(runs))
            else:
                console.print(_status_table(runs))
    except KNOWN_ERRORS as error:
        _fail(str(error))
    if not endpoint:
        err.print("[dim]no local pipeline is running on this state directory: the run history and committed loads[/]")


def _status_table(runs: list) -> Table:
    from airline_local.status import ROW_FIELDS

    view = Table(title="Runs (newest first)")
    for column in ("file", "status", *(f.removeprefix("rows_") for f in ROW_FIELDS), "seconds"):
        view.add_column(column, justify="right" if column not in ("file", "status") else "left")
    styles = {"SUCCEEDED": "green", "RUNNING": "yellow"}
    for run in runs:
        status = run.status if run.current_state is None else f"{run.status}: {run.current_state}"
        view.add_row(run.file.rsplit("/", 1)[-1], f"[{styles.get(run.status, 'red')}]{status}[/]",
                     *("" if run.rows.get(f) is None else str(run.rows[f]) for f in ROW_FIELDS),
                     "" if run.seconds is None else f"{run.seconds:.1f}")
    return view


@app.command()
def generate(
    rows: int = typer.Option(..., "--rows", min=0, help="How many data rows."),
    out: Path = typer.Option(..., "--out", help="Output file (.csv, or .csv.gz to compress)."),
    seed: int = typer.Option(42, "--seed", help="Same seed, same file."),
    bad_ratio: float = typer.Option(0.01, "--bad-ratio", min=0.0, max=1.0, help="Share of rows that break a rule."),
) -> None:
    """Write a synthetic booking file that follows (or, for a share of rows, breaks) the data contract."""
    from airline_local.generator import write_csv

    started = time.monotonic()
    write_csv(out, rows, seed=seed, bad_ratio=bad_ratio)
    err.print(f"wrote {rows:,} rows to {out} in {time.monotonic() - started:.1f} s")


# -- helpers ---------------------------------------------------------------------------------

class _started:
    """Start the local pipeline, turning the known start-up failures into clear messages."""

    def __init__(self, state_dir: Path, *, show_emails: bool, warm_workers: int, iam_check: bool = True,
                 context: dict[str, Any] | None = None, small_inputs: bool = False, **ports: int | None) -> None:
        # A new state directory need not pay for a synth this checkout already made (~20 s of
        # CPU): the synthesized app is cached per user, keyed by its inputs.
        os.environ.setdefault(SYNTH_CACHE_ENV, str(user_synth_cache()))
        on_email = _print_email if show_emails else None
        self.pipeline = LocalPipeline(state_dir, on_email=on_email, warm_workers=warm_workers,
                                      context=context, iam_check=iam_check, small_inputs=small_inputs, **ports)

    def __enter__(self) -> LocalPipeline:
        with err.status("Starting the local stack (synth, PostgreSQL, AWS emulator)..."):
            try:
                return self.pipeline.start()
            except KNOWN_ERRORS as error:
                _fail(str(error))
        raise AssertionError("unreachable")

    def __exit__(self, exc_type: Any, *_: object) -> None:
        if exc_type is KeyboardInterrupt:
            err.print("[yellow]interrupted: stopping the local stack this command started[/]")
        self.pipeline.stop()


def user_synth_cache() -> Path:
    """Where the CLI keeps synthesized apps: $XDG_CACHE_HOME (or ~/.cache)/airline-local/synth."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = base / "airline-local" / "synth"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    return cache


def _stack(state_dir: Path) -> Any:
    """The background stack running on this state directory (airline_local.background), if any;
    one a killed process left behind is cleaned up first, saying so."""
    from airline_local import background

    for line in background.clean_stale(state_dir):
        err.print(f"[yellow]{escape(line)}[/]", soft_wrap=True)
    return background.running_stack(state_dir)


def _ready_stack(state_dir: Path) -> Any:
    """The background stack to run on, if one is up; a stack still starting is an error."""
    stack = _stack(state_dir)
    if stack is not None and not stack.ready:
        _fail(f"the local stack on {state_dir} is still starting (PID {stack.pid}, log {stack.log}): "
              "run again once `airline-ingest local up` has returned")
    return stack


def _ignored_while_up(**options: Any) -> None:
    given = [name.replace("_", "-") for name, value in options.items() if value is not None]
    if given:
        err.print(f"[yellow]the local stack is up: --{', --'.join(given)} ignored (they are `local up`'s)[/]")


def _check_rule_matches(state_dir: Path, files: list[Path]) -> None:
    """Refuse at once a file the EventBridge rule would ignore (the synthesized template's filter)."""
    from airline_local.local_stack import CloudAssembly, synthesize
    from airline_local.pipeline import LOCAL_CONTEXT, RAW_PREFIX
    from airline_local.upload_rule import refusal

    os.environ.setdefault(SYNTH_CACHE_ENV, str(user_synth_cache()))
    try:
        template = CloudAssembly.load(synthesize(Path(state_dir).resolve() / "cdk.out", LOCAL_CONTEXT)).template
    except KNOWN_ERRORS as error:
        _fail(str(error))
    refused = [r for r in (refusal(template, RAW_PREFIX + f.name) for f in files) if r]
    if refused:
        _fail("; ".join(refused), code=2)


Runner = Any  # Callable[[on_state(key, file name, state)], list[RunResult]]


def _in_process(pipeline: LocalPipeline, files: list[Path], *, concurrent: bool, timeout: float = 600) -> Runner:
    def run(on_state: Any) -> list[RunResult]:
        return pipeline.run(files, concurrent=concurrent, timeout=timeout,
                            on_state=lambda upload, _event, state: on_state(upload.key, upload.file.name, state))
    return run


def _on_stack_event(*, show_emails: bool, on_state: Any = None) -> Any:
    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "state" and on_state is not None:
            on_state(event["key"], Path(event["file"]).name, event["state"])
        elif event["event"] == "note":
            err.print(f"[cyan]{event['message']}[/]")
        elif event["event"] == "email" and show_emails:
            _print_email(Path(event["path"]))
    return on_event


def _on_stack(stack: Any, files: list[Path], *, concurrent: bool, timeout: float, show_emails: bool) -> Runner:
    from airline_local import background

    def run(on_state: Any) -> list[RunResult]:
        final = background.request(stack, "/run", {
            "files": [str(f.resolve()) for f in files], "concurrent": concurrent, "timeout": timeout},
            _on_stack_event(show_emails=show_emails, on_state=on_state))
        return [RunResult(**r) for r in final["runs"]]
    return run


def _run_with_progress(runner: Runner, files: list[Path], *, quiet: bool = False) -> list[RunResult]:
    """Run the files while a live table shows each execution's current state."""
    progress: dict[str, tuple[str, float]] = {}
    started = time.monotonic()
    lock = threading.Lock()

    def on_state(key: str, name: str, state: str) -> None:
        with lock:
            progress[key] = (state, time.monotonic() - started)
        if not quiet:
            err.print(f"  [dim]{time.monotonic() - started:6.1f}s[/]  {name}: {state}")

    def table() -> Table:
        view = Table(title="Executions", expand=False)
        view.add_column("file")
        view.add_column("current state")
        view.add_column("at", justify="right")
        with lock:
            for key, (state, at) in progress.items():
                view.add_row(key, state, f"{at:.1f}s")
        return view

    try:
        if quiet:
            return runner(on_state)
        with Live(table(), console=err, refresh_per_second=4, transient=True) as live:
            done: list[RunResult] = []
            failed: list[BaseException] = []

            def work() -> None:
                try:
                    done.extend(runner(on_state))
                except Exception as error:  # shown by the main thread
                    failed.append(error)

            # A daemon: after Ctrl-C, the stop of what this command started ends it, not the other way round.
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            while worker.is_alive():
                live.update(table())
                worker.join(0.25)
            if failed:
                raise failed[0]
            if len(done) != len(files):
                raise PipelineError("the run stopped early: see the messages above")
            return done
    except KNOWN_ERRORS as error:
        _fail(str(error))
    raise AssertionError("unreachable")


def _print_email(path: Path) -> None:
    message = read_email(path)
    headers = "\n".join(f"{name}: {message[name]}" for name in ("From", "To", "Date", "Subject"))
    body = message.get_body(preferencelist=("plain",))
    text = body.get_content().strip() if body is not None else ""
    err.print(Panel(f"{headers}\n\n{text}", title=f"email delivered: {path}", border_style="cyan"))


def _print_result(result: RunResult) -> None:
    style = "green" if result.status == "SUCCEEDED" else "red"
    lines = [f"[{style}]{result.status}[/]  {result.key}  (execution {result.execution_name}, {result.seconds:.1f} s)",
             "states: " + " → ".join(result.states)]
    if result.summary:
        counts = ("rows_read", "rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated", "rows_unchanged",
                  "rows_stale")
        lines.append("  ".join(f"{k}={result.summary.get(k)}" for k in counts))
        if result.summary.get("quarantine_uri"):
            lines.append(f"quarantine: {result.summary['quarantine_uri']}")
    if result.error:
        lines.append(f"[red]error:[/] {result.error}")
    err.print(Panel("\n".join(lines), title="run summary", border_style=style))


def _print_table(title: str | None, columns: list[str], rows: list[tuple[Any, ...]], console: Console = err) -> None:
    view = Table(title=title)
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if v is None else str(v) for v in row))
    console.print(view)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _fail(message: str, code: int = 1) -> None:
    # Unwrapped (a path or an error stays whole, to copy or grep, whatever the terminal's width)
    # and escaped (an error's own "[...]" is not markup).
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def main() -> None:  # pragma: no cover - console entry point
    # Ctrl-C stops what the command started, also when a shell started it with SIGINT ignored (`&`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        app()
    except SystemExit as done:  # how every command ends (typer's standalone mode)
        _exit_at_once(done.code)


def _exit_at_once(code: int | str | None) -> None:
    """Exit without the interpreter's teardown: freeing what a local stack leaves in memory
    (moto's state, the AWS service models, Spark's and sqlglot's modules) took 1.5-2 s after every
    command that started one. Everything the command started has stopped by now; what remains is
    flushed first."""
    if isinstance(code, str):
        err.print(code, soft_wrap=True, highlight=False, markup=False)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
