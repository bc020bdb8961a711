"""Overhead of the local IAM hook per emulator call (issue 12; target ≤ 0.3 ms per call).

    python -m bench.iam_hook [--calls 2000]

Deploys the synthesized stack into a fresh emulator, then measures:

1. the check alone, in process (``IamCheck.check`` on a prepared request): memoized decisions (the
   steady state: the template is static) and cold ones (memo cleared before every call);
2. end to end over HTTP, the same calls with the check off and on (GetCrawler as the state machine
   role, PutObject/GetObject as the Glue job role, DescribeExecution as the operator); the
   difference is the hook's overhead, HTTP and moto included.

Prints numbers; asserts nothing (no timed test).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from airline_local.aws.iam.requests import Call
from airline_local.aws.cfn import ACCOUNT_ID
from airline_local.aws.emulator import Emulator
from airline_local.local_stack import CloudAssembly, deploy, synthesize
from airline_local.aws.patches.runtime import RUNTIME
from airline_local.pipeline import LOCAL_CONTEXT


def _per_call_ms(fn: Callable[[], object], calls: int) -> float:
    fn()  # warm
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) * 1000 / calls


def _median_of(runs: int, fn: Callable[[], float]) -> float:
    return statistics.median(fn() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--cdk-out", type=Path, default=Path(tempfile.gettempdir()) / "airline-iam-bench-cdk.out")
    args = parser.parse_args()

    assembly = CloudAssembly.load(synthesize(args.cdk_out, LOCAL_CONTEXT))
    t = assembly.template
    with Emulator(Path(tempfile.mkdtemp(prefix="iam-bench-")), iam_check=True) as emulator:
        check = emulator.start_iam_check(t)
        stack = deploy(assembly, emulator.client, emulator.job_runner)
        (machine,) = [m for m in t.resources_of_type("AWS::StepFunctions::StateMachine") if t.ref(m) == stack.state_machine_arn]
        machine_role = t.properties(machine)["RoleArn"]
        (job,) = t.resources_of_type("AWS::Glue::Job")
        glue_role = t.properties(job)["Role"]
        broker = emulator.role_broker
        sm_glue = broker.client("glue", machine_role, "bench", "states.amazonaws.com", stack.state_machine_arn, ACCOUNT_ID)
        job_s3 = broker.client("s3", glue_role, "bench", "glue.amazonaws.com")
        operator_sfn = emulator.client("stepfunctions")
        execution = operator_sfn.start_execution(stateMachineArn=stack.state_machine_arn, input="{}")["executionArn"]
        job_s3.put_object(Bucket=stack.raw_bucket, Key="staging/bench/part-0", Body=b"x" * 1024)
        crawler = stack.crawler_names[0]

        # 1. the check alone
        sm_key = broker.credentials(machine_role, "bench", "states.amazonaws.com", stack.state_machine_arn, ACCOUNT_ID)
        job_key = broker.credentials(glue_role, "bench", "glue.amazonaws.com")
        prepared = [
            ("glue:GetCrawler (state machine)", Call("glue", "GetCrawler", "us-east-1", ACCOUNT_ID, {"Name": crawler}), sm_key),
            ("s3:PutObject + kms (glue job)", Call("s3", "PutObject", "us-east-1", ACCOUNT_ID, {}, stack.raw_bucket,
                                                   "staging/bench/part-0", {}, {}), job_key),
            ("sns:Publish + kms (state machine)", Call("sns", "Publish", "us-east-1", ACCOUNT_ID,
                                                       {"TopicArn": stack.topic_arns[0]}), sm_key),
        ]
        print(f"IAM hook overhead ({args.calls} calls each; median of 3 runs; ms per call)")
        print("1. the check alone (in process)")
        for label, call, credentials in prepared:
            def warm() -> object:
                return check.check(call, credentials.access_key_id, credentials.session_token)

            def cold() -> object:
                check._memo.clear()
                return check.check(call, credentials.access_key_id, credentials.session_token)

            verdict = warm()
            assert verdict.allowed, verdict.message
            memo = _median_of(3, lambda: _per_call_ms(warm, args.calls))
            nomemo = _median_of(3, lambda: _per_call_ms(cold, max(args.calls // 10, 50)))
            print(f"   {label:40s} memoized {memo:7.4f}   not memoized {nomemo:7.4f}")

        # 2. over HTTP, off vs on
        calls = {
            "glue GetCrawler (state machine role)": lambda: sm_glue.get_crawler(Name=crawler),
            "s3 PutObject (glue job role)": lambda: job_s3.put_object(Bucket=stack.raw_bucket, Key="staging/bench/part-0", Body=b"x"),
            "s3 GetObject (glue job role)": lambda: job_s3.get_object(Bucket=stack.raw_bucket, Key="staging/bench/part-0")["Body"].read(),
            "states DescribeExecution (operator)": lambda: operator_sfn.describe_execution(executionArn=execution),
        }
        http_calls = max(args.calls // 4, 100)
        print(f"2. end to end over HTTP ({http_calls} calls each)")
        for label, fn in calls.items():
            RUNTIME.iam_check = None
            off = _median_of(3, lambda: _per_call_ms(fn, http_calls))
            RUNTIME.iam_check = check
            on = _median_of(3, lambda: _per_call_ms(fn, http_calls))
            print(f"   {label:40s} off {off:7.3f}   on {on:7.3f}   overhead {on - off:+7.3f}")
        emulator.stop_iam_check()


if __name__ == "__main__":
    main()
