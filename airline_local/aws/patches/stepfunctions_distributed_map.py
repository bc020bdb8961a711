"""Distributed Map in moto 5.2.5's Step Functions interpreter, made to behave as on AWS for the
backfill state machine (stacks/backfill.py). Registered in patches/registry.py; each patch is
tested in tests/local/test_distributed_map.py and listed in docs/local-mode.md's "Differences from AWS".

What moto 5.2.5 does, and what AWS does (docs/aws-notes.md, "Distributed Map"):
- ItemReader over an S3 listing: moto reads the first page only (1,000 keys) and fails on an
  empty prefix (KeyError 'Contents'); its items are boto3's (`ETag`, a datetime `LastModified`).
  AWS lists every object under the prefix; an item is {Etag, Key, LastModified (epoch seconds),
  Size, StorageClass}.
- Failed items: moto counts them and goes on; the Map always succeeds. AWS fails the Map with
  States.ExceedToleratedFailureThreshold once the failures exceed ToleratedFailureCount /
  ToleratedFailurePercentage (both 0 when absent: one failure fails the Map).
- ResultWriter: moto writes a manifest that lists no result file. AWS writes the child
  executions' results to <Prefix><map run id>/SUCCEEDED_0.json and FAILED_0.json and lists them
  in manifest.json.
- ToleratedFailurePercentage: moto's grammar takes only a decimal number ("10.0"); AWS takes
  any number from 0 to 100, and CDK writes an integer ("10"): moto refuses the definition.
- JSONata: moto 5.2.5 evaluates it with a JVM bridge it does not ship ('NoneType' object is not
  callable). Here the pure-Python port of the same implementation (jsonata-python) evaluates it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from airline_local.aws.patches.patching import replace

LOG = logging.getLogger(__name__)
RESULTS_LOCK = threading.Lock()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_INTEGER_PERCENTAGE = re.compile(r'("ToleratedFailurePercentage"\s*:\s*)(-?\d+)(?=\s*[,}])')


def decimal_percentage(definition: str) -> str:
    """The definition with an integer ToleratedFailurePercentage written as a decimal."""
    return _INTEGER_PERCENTAGE.sub(lambda m: f"{m.group(1)}{m.group(2)}.0", definition)


def accept_integer_tolerated_failure_percentage() -> None:
    """ToleratedFailurePercentage: 10 parses as on AWS (moto's grammar wants 10.0).

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html.
    Test: tests/local/test_distributed_map.py::test_integer_tolerated_failure_percentage_parses_as_on_aws.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser


    original = AmazonStateLanguageParser.parse

    def parse(definition: str) -> Any:
        return original(decimal_percentage(definition))

    replace(AmazonStateLanguageParser, "parse", staticmethod(parse))


def s3_listing_item(obj: dict[str, Any]) -> dict[str, Any]:
    """One ListObjectsV2 entry as a Distributed Map item on AWS."""
    modified = obj.get("LastModified")
    if isinstance(modified, datetime):
        modified = int(modified.replace(tzinfo=modified.tzinfo or timezone.utc).timestamp())
    return {"Etag": obj.get("ETag"), "Key": obj["Key"], "LastModified": modified,
            "Size": obj.get("Size"), "StorageClass": obj.get("StorageClass", "STANDARD")}


def list_every_object_like_aws() -> None:
    """ItemReader arn:aws:states:::s3:listObjectsV2: every page, items shaped as on AWS.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-itemreader.html.
    Test: tests/local/test_distributed_map.py::test_item_reader_lists_every_page_with_aws_item_shape.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import resource_eval_s3


    def _handle_list_objects_v2(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(resource_runtime_part, state_credentials)
        parameters = env.stack.pop()
        pages = s3.get_paginator("list_objects_v2").paginate(**parameters)
        env.stack.append([s3_listing_item(obj) for page in pages for obj in page.get("Contents", [])])

    replace(resource_eval_s3.ResourceEvalS3, "_handle_list_objects_v2", staticmethod(_handle_list_objects_v2))


def _results(map_run_record: Any) -> list[dict[str, Any]]:
    with RESULTS_LOCK:
        if not hasattr(map_run_record, "local_results"):
            map_run_record.local_results = []
        return map_run_record.local_results


def result_entry(map_run_arn: str, index: int, child_input: Any, status: str, started: str,
                 output: Any = None, error: str | None = None, cause: str | None = None) -> dict[str, Any]:
    """One child execution as the ResultWriter writes it on AWS (Input and Output as JSON text)."""
    # A child's ARN: the map run's, with "mapRun" -> "execution" and the child's name appended.
    name = f"{uuid.uuid4()}"
    entry: dict[str, Any] = {
        "ExecutionArn": map_run_arn.replace(":mapRun:", ":execution:", 1) + ":" + name,
        "Input": json.dumps(child_input), "InputDetails": {"Included": True}, "Name": name,
        "StartDate": started, "StopDate": _now(), "Status": status, "Index": index,
    }
    if status == "SUCCEEDED":
        entry.update(Output=json.dumps(output), OutputDetails={"Included": True})
    else:
        entry.update(Error=error or "States.Runtime", Cause=cause or "")
    return entry


def record_child_results() -> None:
    """Each item's input, output, or error and cause, kept on the map run for the ResultWriter
    and the failure threshold (moto keeps only counters and drops a failed item's error).

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html.
    Test: tests/local/test_distributed_map.py::test_result_writer_writes_results_and_a_manifest_like_aws.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker,
    )
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramError, ProgramStopped
    from moto.stepfunctions.parser.asl.eval.states import ItemData, MapData


    def _eval_job(self: Any, env: Any, job: Any) -> None:
        record = self._map_run_record
        for counter in (record.item_counter, record.execution_counter):
            counter.total.count()
            counter.running.count()
        started, child_input, outcome = _now(), job.job_input, None
        job_output = None
        try:
            env.states.context_object.context_object_data["Map"] = MapData(
                Item=ItemData(Index=job.job_index, Value=job.job_input))
            env.states.reset(job.job_input)
            env.stack.append(env.states.get_input())
            self._eval_input(env_frame=env)
            child_input = env.states.get_input()
            job.job_program.eval(env)
            state = env.program_state()
            if isinstance(state, ProgramError):
                error = state.error or {}
                outcome = ("FAILED", error.get("error"), error.get("cause"))
            elif isinstance(state, ProgramStopped):
                outcome = ("ABORTED", "States.Aborted", "")
            else:
                job_output = env.states.get_input()
                outcome = ("SUCCEEDED", None, None)
        except FailureEventException as failure:
            outcome = ("FAILED", *(failure.extract_error_cause_pair() or ("States.Runtime", "")))
        except Exception as error:  # an interpreter error fails the item, as a Runtime error
            outcome = ("FAILED", "States.Runtime", f"{type(error).__name__}: {error}")
        finally:
            status, error_name, cause = outcome or ("FAILED", "States.Runtime", "")
            counter_name = {"SUCCEEDED": "succeeded", "ABORTED": "aborted"}.get(status, "failed")
            for counter in (record.item_counter, record.execution_counter):
                getattr(counter, counter_name).count()
                counter.running.offset(-1)
            entry = result_entry(record.map_run_arn, job.job_index, child_input, status, started,
                                 job_output, error_name, cause)
            _results(record).append(entry)
            if status != "SUCCEEDED":
                LOG.warning("map run item %s %s: %s: %s", job.job_index, status, error_name, cause)
            job.job_output = job_output

    replace(worker.DistributedItemProcessorWorker, "_eval_job", _eval_job)


def threshold_exceeded(failed: int, total: int, count: int, percentage: float) -> bool:
    """AWS fails a map run when failures exceed both-or-either tolerance (0 = none tolerated)."""
    if failed == 0:
        return False
    return failed > count or (total > 0 and 100.0 * failed / total > percentage)


def enforce_tolerated_failures() -> None:
    """The map run fails with States.ExceedToleratedFailureThreshold past the tolerance.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/state-map-distributed.html.
    Test: tests/local/test_distributed_map.py::test_failures_past_the_tolerated_percentage_fail_the_map.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as component,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails


    original = component.DistributedIterationComponent._map_run

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        original(self, env, eval_input)
        results = _results(eval_input.map_run_record)
        failed = sum(1 for r in results if r["Status"] != "SUCCEEDED")
        count = eval_input.tolerated_failure_count or 0
        percentage = eval_input.tolerated_failure_percentage or 0.0
        # Both absent means "no failure tolerated"; one given: only that one applies.
        if eval_input.tolerated_failure_count and not eval_input.tolerated_failure_percentage:
            percentage = 100.0
        elif eval_input.tolerated_failure_percentage and not eval_input.tolerated_failure_count:
            count = len(results)
        if threshold_exceeded(failed, len(results), count, percentage):
            error = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
            cause = (f"The specified tolerated failure threshold was exceeded: {failed} of {len(results)} "
                     "items failed")
            raise FailureEventException(FailureEvent(
                env=env, error_name=error, event_type=HistoryEventType.MapRunFailed,
                event_details=EventDetails(mapRunFailedEventDetails=MapRunFailedEventDetails(
                    error=error.error_name, cause=cause))))

    replace(component.DistributedIterationComponent, "_map_run", _map_run)


def write_results_like_aws() -> None:
    """ResultWriter arn:aws:states:::s3:putObject: SUCCEEDED_0.json / FAILED_0.json and a
    manifest that lists them, under <Prefix><map run id>/.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html.
    Test: tests/local/test_distributed_map.py::test_result_writer_writes_results_and_a_manifest_like_aws.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )


    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        env.stack.pop()  # the map's outputs: on AWS too, the Map's output is the manifest's location
        s3 = resource_eval_s3.ResourceEvalS3._get_s3_client(resource_runtime_part, state_credentials)
        record = env.map_run_record_pool_manager.get_all().pop()
        prefix = parameters.get("Prefix", "")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        folder = f"{prefix}{record.map_run_arn.split(':')[-1]}/"
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        results = sorted(_results(record), key=lambda r: r["Index"])
        for status in ("SUCCEEDED", "FAILED"):
            entries = [{k: v for k, v in r.items() if k != "Index"} for r in results
                       if (r["Status"] == "SUCCEEDED") == (status == "SUCCEEDED")]
            if entries:
                body = json.dumps(entries).encode("utf-8")
                key = f"{folder}{status}_0.json"
                s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": parameters["Bucket"], "MapRunArn": record.map_run_arn, "ResultFiles": files}
        key = f"{folder}manifest.json"
        s3.put_object(Bucket=parameters["Bucket"], Key=key, Body=json.dumps(manifest).encode("utf-8"))
        env.stack.append({"MapRunArn": record.map_run_arn,
                          "ResultWriterDetails": {"Bucket": parameters["Bucket"], "Key": key}})

    replace(resource_eval_s3.ResourceEvalS3, "_handle_put_object", staticmethod(_handle_put_object))


def evaluate_jsonata() -> None:
    """JSONata states evaluated by jsonata-python (a port of the implementation moto's JVM
    bridge would load).

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/step-functions/latest/dg/transforming-data.html.
    Test: tests/local/test_distributed_map.py::test_jsonata_state_sums_the_results.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    import jsonata
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata

    def evaluate(expression: str) -> Any:
        try:
            result = jsonata.Jsonata(expression).evaluate(None)
        except Exception as error:
            raise moto_jsonata.JSONataException("UNKNOWN", str(error)) from error
        return json.loads(json.dumps(result))  # plain JSON values, as the JVM bridge returns

    if getattr(moto_jsonata._eval_jsonata, "__local_patch__", False):
        return
    evaluate.__local_patch__ = True
    moto_jsonata._eval_jsonata = evaluate


PATCHES = (accept_integer_tolerated_failure_percentage, list_every_object_like_aws, record_child_results, enforce_tolerated_failures,
           write_results_like_aws, evaluate_jsonata)
