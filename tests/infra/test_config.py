"""The typed configuration: documented defaults (kept equal to cdk.json), parsing, validation."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest

from stacks.config import ConfigError, PipelineConfig, config_from_context, context_key, default_context

CDK_JSON = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())


def test_cdk_json_runs_the_app_and_documents_every_default():
    assert CDK_JSON["app"] == "python3 app.py"
    context = CDK_JSON["context"]
    for key, value in default_context().items():
        assert context[key] == value, key
    assert context["crawlerPollIntervalSeconds"] == 30 and context["crawlerMaxPolls"] == 60
    assert context["notificationEmails"] == []
    assert any(k.startswith("@aws-cdk/") for k in context)  # the feature flags


def test_defaults_and_frozen():
    config = config_from_context({})
    assert config == PipelineConfig()
    assert config.redshift_mode == "serverless" and config.creates_redshift
    with pytest.raises(FrozenInstanceError):
        config.crawler_max_polls = 1  # type: ignore[misc]


def test_command_line_strings_are_parsed():
    config = config_from_context({
        "crawlerPollIntervalSeconds": "1", "glueFlex": "true", "maxRejectRatio": "0.25",
        "notificationEmails": "a@example.com,b@example.org",
    })
    assert config.crawler_poll_interval_seconds == 1 and config.glue_flex is True
    assert config.max_reject_ratio == 0.25
    assert config.notification_emails == ("a@example.com", "b@example.org")
    assert config_from_context({"notificationEmails": '["x@example.com"]'}).notification_emails == ("x@example.com",)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"crawlerMaxPolls": "0"}, "crawlerMaxPolls"),
        ({"crawlerPollIntervalSeconds": "soon"}, "crawlerPollIntervalSeconds"),
        ({"glueWorkerType": "G.3X"}, "glueWorkerType"),
        ({"glueFlex": True, "glueWorkerType": "G.4X"}, "glueFlex"),
        ({"maxRejectRatio": 2}, "maxRejectRatio"),
        ({"notificationEmails": ["not-an-email"]}, "notificationEmails"),
        ({"redshiftWorkgroupName": "Bad_Name"}, "redshiftWorkgroupName"),
        ({"existingRedshiftClusterId": "c1"}, "existingRedshiftDbUser"),
        ({"existingRedshiftWorkgroupName": "wg"}, "existingRedshiftWorkgroupId"),
        ({"existingRedshiftWorkgroupName": "wg", "existingRedshiftWorkgroupId": "id"}, "existingRedshiftAdminSecretArn"),
        ({"retainData": "maybe"}, "retainData"),
    ],
)
def test_invalid_values_are_refused_naming_the_key(context, message):
    with pytest.raises(ConfigError, match=message):
        config_from_context(context)


def test_backfill_leaves_the_uploads_a_job_run_by_default():
    assert config_from_context({}).backfill_concurrency == 4  # glueMaxConcurrentRuns 5, minus one
    assert config_from_context({"glueMaxConcurrentRuns": 1}).backfill_concurrency == 1
    assert config_from_context({"backfillMaxConcurrency": 5}).backfill_concurrency == 5  # runs queue
    assert config_from_context({}).glue_job_run_queuing
    assert not config_from_context({"glueFlex": True}).glue_job_run_queuing


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"backfillMaxConcurrency": 6}, r"'backfillMaxConcurrency': 6 is more than 'glueMaxConcurrentRuns' \(5\)"),
        # Flex jobs do not queue runs: a backfill holding every run would starve the uploads.
        ({"glueFlex": True, "backfillMaxConcurrency": 5}, r"'backfillMaxConcurrency': 5 leaves no run .* at most 4"),
        ({"glueFlex": True, "glueMaxConcurrentRuns": 1}, r"'glueMaxConcurrentRuns': at least 2 with 'glueFlex'"),
    ],
)
def test_a_backfill_that_would_starve_the_uploads_is_refused(context, message):
    with pytest.raises(ConfigError, match=message):
        config_from_context(context)


def test_every_field_has_a_camel_case_key():
    assert context_key("crawler_poll_interval_seconds") == "crawlerPollIntervalSeconds"
    assert len({context_key(f.name) for f in fields(PipelineConfig)}) == len(fields(PipelineConfig))
