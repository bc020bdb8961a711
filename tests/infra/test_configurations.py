"""Other configurations synthesize with cdk-nag too: an existing Serverless workgroup, an existing
provisioned cluster (with Flex workers, e-mail subscriptions and local mode's 1 s poll interval)."""

from __future__ import annotations

import json

import pytest

from tests.infra.template_helpers import (machine_definition, only, policy_statements, render, resources_of,
                                          state_machine_definition)

SECRET = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:redshift-admin-AbCdEf"
VARIANTS = {
    "ExistingWorkgroup": {
        "existingRedshiftWorkgroupName": "analytics", "existingRedshiftWorkgroupId": "0123abcd",
        "existingRedshiftAdminSecretArn": SECRET,
    },
    "ExistingCluster": {
        "existingRedshiftClusterId": "warehouse-1", "existingRedshiftDbUser": "etl_user",
        "existingRedshiftAdminSecretArn": SECRET, "glueFlex": "true", "crawlerPollIntervalSeconds": "1",
        "notificationEmails": '["ops@example.com", "data@example.com"]',
    },
}


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    from aws_cdk import App, Validations
    from cdk_nag import AwsSolutionsChecks

    from stacks.config import config_from_context
    from stacks.pipeline_stack import PipelineStack

    from pathlib import Path

    outdir = tmp_path_factory.mktemp("variants")
    cdk_json = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())
    feature_flags = {k: v for k, v in cdk_json["context"].items() if k.startswith("@aws-cdk")}
    app = App(outdir=str(outdir), context=feature_flags)
    for name, context in VARIANTS.items():
        PipelineStack(app, name, config=config_from_context(context))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # raises on any unacknowledged finding
    return {name: json.loads((outdir / f"{name}.template.json").read_text()) for name in VARIANTS}


def test_existing_workgroup_creates_no_redshift_and_scopes_iam_to_it(templates):
    template = templates["ExistingWorkgroup"]
    assert resources_of(template, "AWS::RedshiftServerless::Workgroup") == {}
    assert resources_of(template, "AWS::EC2::VPC") == {}
    _, job = only(template, "AWS::Glue::Job")
    assert job["DefaultArguments"]["--redshift_workgroup"] == "analytics"
    role_id = job["Role"]["Fn::GetAtt"][0]
    creds = next(s for s in policy_statements(template, role_id) if s.get("Sid") == "RedshiftServerlessCredentials")
    assert render(creds["Resource"]).endswith(":workgroup/0123abcd")
    _, schema = only(template, "Custom::RedshiftSchema")
    assert schema["WorkgroupName"] == "analytics" and schema["SecretArn"] == SECRET


def test_existing_cluster_uses_the_db_user_and_cluster_credentials(templates):
    template = templates["ExistingCluster"]
    _, job = only(template, "AWS::Glue::Job")
    args = job["DefaultArguments"]
    assert (args["--redshift_workgroup"], args["--redshift_cluster_id"], args["--redshift_db_user"]) == ("-", "warehouse-1", "etl_user")
    assert job["ExecutionClass"] == "FLEX"
    # Flex jobs cannot queue runs: the backfill leaves the uploads a run instead (stacks/config.py).
    assert job["JobRunQueuingEnabled"] is False  # CDK writes it for Flex jobs
    assert machine_definition(template, "Backfill")["States"]["Ingest each file"]["MaxConcurrency"] == 4
    role_id = job["Role"]["Fn::GetAtt"][0]
    creds = next(s for s in policy_statements(template, role_id) if s.get("Sid") == "RedshiftClusterCredentials")
    resources = sorted(render(r) for r in creds["Resource"])
    assert resources[0].endswith(":dbname:warehouse-1/dev") and resources[1].endswith(":dbuser:warehouse-1/etl_user")
    _, schema = only(template, "Custom::RedshiftSchema")
    assert schema["ClusterIdentifier"] == "warehouse-1" and schema["EtlDbUser"] == "etl_user"


def test_local_mode_poll_interval_and_email_subscriptions(templates):
    template = templates["ExistingCluster"]
    assert state_machine_definition(template)["States"]["Wait for crawler"]["Seconds"] == 1
    emails = sorted(s["Properties"]["Endpoint"] for s in resources_of(template, "AWS::SNS::Subscription").values())
    assert emails == ["data@example.com", "ops@example.com"]
    assert all(s["Properties"]["Protocol"] == "email" for s in resources_of(template, "AWS::SNS::Subscription").values())
