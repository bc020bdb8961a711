"""The acceptance test on a real AWS account: `AIRLINE_AWS_TEST=1 make aws-test`.

Deploys the app under a unique stack name into the account and region of the environment (botocore
resolves them: AWS_PROFILE, variables, SSO, role), runs data/sample/bookings_sample.csv through it,
checks the notification (via an SQS queue subscribed to the topic) and the warehouse (Data API),
then destroys the stack, always, and prints what it left. Billed: Redshift Serverless, Glue, and
about 20-40 minutes of wall time. Skipped unless opted in; `make test` deselects the `aws` marker, so
it never deploys, even with AIRLINE_AWS_TEST=1 exported (tests/unit/test_make_targets.py).
The steps are tests/aws/acceptance.py; make test runs them offline (test_acceptance_offline.py,
test_acceptance_unit.py).
"""

from __future__ import annotations

import os

import boto3
import pytest

from tests.aws.acceptance import (
    KEEP_RETAINED_VARIABLE,
    CdkCli,
    cli_environment,
    run_acceptance,
    run_command,
    skip_reason,
)

_SESSION = boto3.Session()
_SKIP = skip_reason(_SESSION)  # resolves credentials only once opted in
pytestmark = [pytest.mark.aws, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]


def test_deploy_run_the_sample_and_destroy(tmp_path):
    cli = CdkCli(run_command, cli_environment(_SESSION.region_name))
    result = run_acceptance(_SESSION, cli, tmp_path, keep_retained=os.environ.get(KEEP_RETAINED_VARIABLE) == "1",
                            log=lambda line: print(line, flush=True))
    assert result.run is not None and result.run.status == "SUCCEEDED"
    assert result.run.counts["rows_read"] == 1000
    assert result.run.warehouse_rows == result.run.counts["rows_inserted"] > 0
    assert result.destroyed, result.report
