"""CDK integration test of the pipeline (aws-cdk integ-tests-alpha), for integ-runner.

integ-runner's Python preset finds files named `integ_*.py` and runs `python3 <file>`; its snapshot
is `<file>.snapshot/` next to it. From the project root, with the venv's python first on PATH:

    # snapshot check only (synth, no AWS):
    PATH="$PWD/.venv/bin:$PATH" npx --yes @aws-cdk/integ-runner@2.197.10 --language python --directory tests/integ
    # deploy, run the assertions, destroy (AWS credentials; billed; ~30-40 min):
    PATH="$PWD/.venv/bin:$PATH" npx --yes @aws-cdk/integ-runner@2.197.10 --language python --directory tests/integ \
        --force --update-on-failed

Caveat (checked): integ-runner 2.197.10, the newest on npm as this was written, reads cloud
assembly schemas up to 53.x; aws-cdk-lib 2.275.0 writes 55.0.0, so that integ-runner stops with
"Cloud assembly schema version mismatch" even for the snapshot check. Use a release that reads
schema 55 (one that ships with, or after, CDK CLI 2.1148.0).

`make test` checks the committed snapshot offline (tests/integ/test_integ_snapshot.py);
`make integ-snapshot` rewrites it after a deliberate change of the stack.

What it deploys: the app's stack as `AirlineBookingPipelineInteg` (its own Redshift namespace and
workgroup, retainData=false), plus integ-runner's assertion stack, which puts a 5-row booking file
under raw/bookings/, waits for a SUCCEEDED execution of the state machine, then counts the rows
in airline.bookings through the Redshift Data API (as the admin user of the secret the stack
generates: an IAM caller has no grants on the schema).

Before running it for real: the stack always retains its Glue database, whose name is fixed
(`airline_bookings`), so the deploy fails in an account/region where the pipeline, or an earlier
run of this test, left one; delete it first (`aws glue delete-database --name airline_bookings`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
if str(PROJECT_DIR) not in sys.path:  # integ-runner runs `python3 tests/integ/integ_pipeline.py`
    sys.path.insert(0, str(PROJECT_DIR))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

STACK_NAME = "AirlineBookingPipelineInteg"
INTEG_NAME = "AirlineBookingIntegTest"
WAREHOUSE_NAME = "airline-integ"
FIXTURE = Path(__file__).resolve().parent / "bookings_integ.csv"
FIXTURE_KEY = "raw/bookings/integ/bookings_integ.csv"
FIXTURE_ROWS = 5  # new, valid, distinct bookings (airline_local.generator, seed 2026, no bad rows)
COUNT_SQL = "SELECT COUNT(*) FROM airline.bookings"

# The same context whoever synthesizes: integ-runner (which also hands CDK's recommended feature
# flags over; cdk.json sets each to the same value) or the offline snapshot test.
INTEG_CONTEXT: dict[str, Any] = {
    "stackName": STACK_NAME,
    "retainData": False,
    "redshiftNamespaceName": WAREHOUSE_NAME,
    "redshiftWorkgroupName": WAREHOUSE_NAME,
    # integ-runner synthesizes without path/asset metadata or version reporting
    "aws:cdk:enable-path-metadata": False,
    "aws:cdk:enable-asset-metadata": False,
    "aws:cdk:version-reporting": False,
}


def build(outdir: str | None = None):
    """(app, integ test, stack under test): environment-agnostic, cdk-nag off."""
    from aws_cdk import Duration
    from aws_cdk.integ_tests_alpha import ExpectedResult, IntegTest, Match

    from stacks.pipeline_stack import create_app

    # Environment-agnostic whatever the caller's credentials: the snapshot must not name an account.
    for variable in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
        os.environ.pop(variable, None)
    app = create_app(context=INTEG_CONTEXT, outdir=outdir, nag=False)
    stack = app.node.find_child(STACK_NAME)
    warehouse = stack.warehouse

    integ = IntegTest(
        app,
        INTEG_NAME,
        test_cases=[stack],
        diff_assets=False,
        # Deploying the previous snapshot first would double a Redshift deploy for little gain.
        stack_update_workflow=False,
        cdk_command_options={"destroy": {"args": {"force": True}}},
    )
    assertions = integ.assertions

    put = assertions.aws_api_call("S3", "putObject", {
        "Bucket": stack.storage.raw_bucket.bucket_name,
        "Key": FIXTURE_KEY,
        "Body": FIXTURE.read_text(encoding="utf-8"),
    })
    put.provider.add_to_role_policy({
        "Effect": "Allow", "Action": ["kms:GenerateDataKey"], "Resource": [stack.storage.key.key_arn],
    })

    machine_arn = stack.orchestration.state_machine.state_machine_arn
    succeeded = assertions.aws_api_call("SFN", "listExecutions", {
        "stateMachineArn": machine_arn, "statusFilter": "SUCCEEDED",
    }).expect(ExpectedResult.object_like({
        "executions": Match.array_with([Match.object_like({"status": "SUCCEEDED"})]),
    })).wait_for_assertions(total_timeout=Duration.minutes(30), interval=Duration.seconds(30), backoff_rate=1)
    _waiter_policy(succeeded, {"Effect": "Allow", "Action": ["states:ListExecutions"], "Resource": [machine_arn]})

    count = assertions.aws_api_call("RedshiftData", "executeStatement", {
        "WorkgroupName": WAREHOUSE_NAME,
        "Database": stack.config.redshift_database,
        "SecretArn": warehouse.admin_secret.secret_arn,
        "Sql": COUNT_SQL,
    })
    count.provider.add_to_role_policy({
        "Effect": "Allow", "Action": ["redshift-data:ExecuteStatement"],
        "Resource": [warehouse.workgroup.attr_workgroup_workgroup_arn],
    })
    count.provider.add_to_role_policy({
        "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [warehouse.admin_secret.secret_arn],
    })
    count.provider.add_to_role_policy({
        "Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": [stack.storage.key.key_arn],
    })
    finished = assertions.aws_api_call("RedshiftData", "describeStatement", {
        "Id": count.get_att_string("Id"),
    }).expect(ExpectedResult.object_like({"Status": "FINISHED"})).wait_for_assertions(
        total_timeout=Duration.minutes(5), interval=Duration.seconds(5), backoff_rate=1)
    _waiter_policy(finished, {"Effect": "Allow", "Action": ["redshift-data:DescribeStatement"], "Resource": ["*"]})
    result = assertions.aws_api_call("RedshiftData", "getStatementResult", {"Id": count.get_att_string("Id")})
    result.provider.add_to_role_policy({
        "Effect": "Allow", "Action": ["redshift-data:GetStatementResult"], "Resource": ["*"],
    })
    result.expect(ExpectedResult.object_like({"Records": [[{"longValue": FIXTURE_ROWS}]]}))

    put.next(succeeded).next(count).next(finished).next(result)
    return app, integ, stack


def _waiter_policy(api_call: Any, statement: dict[str, Any]) -> None:
    """waitForAssertions runs the call from a waiter state machine's function: it needs the grant."""
    api_call.waiter_provider.add_to_role_policy(statement)


if __name__ == "__main__":
    build()[0].synth()
