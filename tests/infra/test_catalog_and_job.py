"""Glue database, crawler, security configuration, the ETL job and its least-privilege role."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from tests.infra.template_helpers import as_list, only, policy_statements, render, resources_of


def test_database_and_crawler_over_raw_bookings(template_json):
    _, database = only(template_json, "AWS::Glue::Database")
    assert database["DatabaseInput"]["Name"] == "airline_bookings"
    _, crawler = only(template_json, "AWS::Glue::Crawler")
    assert crawler["DatabaseName"] == "airline_bookings"
    (target,) = crawler["Targets"]["S3Targets"]
    path = render(target["Path"])
    assert path.startswith("s3://<StorageRawBucket") and path.endswith(">/raw/bookings/")
    sec_id, _ = only(template_json, "AWS::Glue::SecurityConfiguration")
    assert crawler["CrawlerSecurityConfiguration"] == {"Ref": sec_id}
    assert json.loads(crawler["Configuration"])["Grouping"]["TableGroupingPolicy"] == "CombineCompatibleSchemas"


def _crawler_queue(template_json):
    """The crawler's S3 events queue: the one its S3 target names."""
    _, crawler = only(template_json, "AWS::Glue::Crawler")
    (target,) = crawler["Targets"]["S3Targets"]
    queue_id = target["EventQueueArn"]["Fn::GetAtt"][0]
    return queue_id, template_json["Resources"][queue_id]["Properties"]


def test_crawler_recrawls_in_s3_event_mode_from_its_queue(template_json):
    _, crawler = only(template_json, "AWS::Glue::Crawler")
    assert crawler["RecrawlPolicy"] == {"RecrawlBehavior": "CRAWL_EVENT_MODE"}
    (target,) = crawler["Targets"]["S3Targets"]  # event mode supports a single target
    queue_id, queue = _crawler_queue(template_json)
    assert target["EventQueueArn"] == {"Fn::GetAtt": [queue_id, "Arn"]} and "DlqEventQueueArn" not in target
    # SSE-SQS (S3 may send without a key policy), 14 days, hidden longer than a crawl, a DLQ.
    assert queue["SqsManagedSseEnabled"] is True and "KmsMasterKeyId" not in queue
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600 and queue["VisibilityTimeout"] == 900
    dlq_id = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 10 and dlq_id != queue_id
    assert template_json["Resources"][dlq_id]["Properties"]["SqsManagedSseEnabled"] is True


def test_only_s3_of_this_bucket_and_account_may_send_to_the_crawler_queue(template_json):
    queue_id, _ = _crawler_queue(template_json)
    [policy] = [p["Properties"] for p in resources_of(template_json, "AWS::SQS::QueuePolicy").values()
                if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
    statements = policy["PolicyDocument"]["Statement"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and deny["Action"] == "sqs:*"
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    assert render(allow["Resource"]) == f"<{queue_id}.Arn>"
    assert render(allow["Condition"]["ArnEquals"]["aws:SourceArn"]).startswith("<StorageRawBucket")
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_raw_bucket_sends_raw_bookings_events_to_the_queue_and_all_events_to_eventbridge(template_json):
    queue_id, _ = _crawler_queue(template_json)
    _, notifications = only(template_json, "Custom::S3BucketNotifications")
    assert render(notifications["BucketName"]).startswith("<StorageRawBucket")
    configuration = notifications["NotificationConfiguration"]
    assert configuration["EventBridgeConfiguration"] == {}  # the pipeline's trigger stays
    queues = configuration["QueueConfigurations"]
    assert sorted(e for q in queues for e in q["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    for queue in queues:
        assert queue["QueueArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
        assert queue["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "raw/bookings/"}]}}


def test_crawler_role_consumes_its_queue_and_nothing_else_of_sqs(template_json):
    from stacks.catalog import CRAWLER_QUEUE_ACTIONS

    queue_id, _ = _crawler_queue(template_json)
    _, crawler = only(template_json, "AWS::Glue::Crawler")
    statements = policy_statements(template_json, crawler["Role"]["Fn::GetAtt"][0])
    sqs = [s for s in statements if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    [grant] = sqs
    assert grant["Sid"] == "ConsumeS3EventsQueue"
    assert sorted(as_list(grant["Action"])) == sorted(CRAWLER_QUEUE_ACTIONS)
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueUrl"} <= set(CRAWLER_QUEUE_ACTIONS)
    assert "sqs:SendMessage" not in CRAWLER_QUEUE_ACTIONS
    assert grant["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_crawler_depends_on_its_role_policy_and_its_queue_policy(template_json):
    """CreateCrawler reads the event queue as the crawler role (docs/aws-notes.md, "Checked at
    creation"): CloudFormation must have created the role's policy first."""
    crawler_id, crawler = only(template_json, "AWS::Glue::Crawler")
    role_id = crawler["Role"]["Fn::GetAtt"][0]
    queue_id, _ = _crawler_queue(template_json)
    [role_policy] = [lid for lid, p in resources_of(template_json, "AWS::IAM::Policy").items()
                     if {"Ref": role_id} in p["Properties"]["Roles"]]
    [queue_policy] = [lid for lid, p in resources_of(template_json, "AWS::SQS::QueuePolicy").items()
                      if p["Properties"]["Queues"] == [{"Ref": queue_id}]]
    assert {role_policy, role_id, queue_policy} <= set(template_json["Resources"][crawler_id]["DependsOn"])


def test_security_configuration_encrypts_logs_bookmarks_and_s3(template_json):
    _, sec = only(template_json, "AWS::Glue::SecurityConfiguration")
    enc = sec["EncryptionConfiguration"]
    assert enc["CloudWatchEncryption"]["CloudWatchEncryptionMode"] == "SSE-KMS"
    assert enc["JobBookmarksEncryption"]["JobBookmarksEncryptionMode"] == "CSE-KMS"
    assert enc["S3Encryptions"][0]["S3EncryptionMode"] == "SSE-KMS"
    for key_arn in (enc["CloudWatchEncryption"]["KmsKeyArn"], enc["JobBookmarksEncryption"]["KmsKeyArn"], enc["S3Encryptions"][0]["KmsKeyArn"]):
        assert render(key_arn).startswith("<StorageDataKey")


def test_job_is_glue5_pyspark_with_the_script_and_a_module_bundle_as_file_assets(template_json, cloud_assembly):
    _, job = only(template_json, "AWS::Glue::Job")
    assert job["GlueVersion"] == "5.0"
    assert job["Command"]["Name"] == "glueetl" and job["Command"]["PythonVersion"] == "3"
    assert job["WorkerType"] == "G.1X" and job["NumberOfWorkers"] == 2
    assert job["Timeout"] == 60 and job["MaxRetries"] == 0
    assert job["ExecutionProperty"]["MaxConcurrentRuns"] == 5
    # Runs past MaxConcurrentRuns wait (WAITING) instead of being refused: an upload during a
    # backfill is never starved (issue 21, defect 4). Queuing requires MaxRetries 0.
    assert job["JobRunQueuingEnabled"] is True
    sec_id, _ = only(template_json, "AWS::Glue::SecurityConfiguration")
    assert job["SecurityConfiguration"] == {"Ref": sec_id}
    assets = json.loads((cloud_assembly / "AirlineBookingPipeline.assets.json").read_text())["files"]
    file_assets = {d["objectKey"]: a["source"] for a in assets.values() for d in a["destinations"].values()}
    root = Path(__file__).resolve().parents[2]

    script_key = render(job["Command"]["ScriptLocation"]).rsplit("/", 1)[1]
    assert file_assets[script_key]["packaging"] == "file"
    assert (cloud_assembly / file_assets[script_key]["path"]).read_text() == (
        root / "glue_scripts" / "ingest_bookings.py").read_text()

    # Glue names extra py files after their S3 keys (hashes), so the modules travel in one zip
    # where they keep their import names, with the load SQL beside them.
    [bundle_uri] = render(job["DefaultArguments"]["--extra-py-files"]).split(",")
    bundle_key = bundle_uri.rsplit("/", 1)[1]
    assert bundle_key.endswith(".zip") and file_assets[bundle_key]["packaging"] == "file"
    assert "--extra-files" not in job["DefaultArguments"]
    expected = {p.name: p.read_bytes() for p in [*(root / "glue_scripts").glob("bookings_*.py"), root / "sql" / "load_bookings.sql"]}
    with zipfile.ZipFile(cloud_assembly / file_assets[bundle_key]["path"]) as bundle:
        assert {name: bundle.read(name) for name in bundle.namelist()} == expected


def test_module_bundle_is_reproducible(tmp_path):
    from stacks.etl_job import build_module_bundle

    first = build_module_bundle(tmp_path / "a.zip").read_bytes()
    second = build_module_bundle(tmp_path / "b.zip").read_bytes()
    assert first == second


def test_job_default_arguments_follow_the_contract(template_json):
    _, job = only(template_json, "AWS::Glue::Job")
    args = job["DefaultArguments"]
    assert render(args["--data_root_uri"]).startswith("s3://<StorageRawBucket")
    assert args["--redshift_database"] == "dev"
    assert args["--redshift_workgroup"] == "airline-bookings"
    assert args["--redshift_cluster_id"] == "-" and args["--redshift_db_user"] == "-"
    assert render(args["--redshift_copy_role_arn"]).startswith("<WarehouseCopyRole") and render(args["--redshift_copy_role_arn"]).endswith(".Arn>")
    assert args["--max_reject_ratio"] == "0.1"
    assert args["--additional-python-modules"] == "airportsdata==20260905"
    assert args["--enable-continuous-cloudwatch-log"] == "true"


def _role_statements(template_json):
    _, job = only(template_json, "AWS::Glue::Job")
    role_id = job["Role"]["Fn::GetAtt"][0]
    return policy_statements(template_json, role_id)


def _grants(statements, action):
    return [render(r) for s in statements if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def test_job_role_s3_access_is_limited_to_its_prefixes(template_json):
    statements = _role_statements(template_json)
    write_resources = _grants(statements, "s3:PutObject")
    raw = [r.split(">/", 1)[1] for r in write_resources if "StorageRawBucket" in r and ">/" in r]
    assert sorted(raw) == ["quarantine/*", "runs/*", "staging/*"]
    # Object writes go nowhere else (the bucket-level entry is for List/GetBucket).
    assert all("StorageRawBucket" in r for r in write_resources)
    read_resources = [r.split(">/", 1)[1] for r in _grants(statements, "s3:GetObject*") if "StorageRawBucket" in r and ">/" in r]
    # raw/backfill/*: the backfill state machine runs the same job on the files under that prefix.
    assert sorted(read_resources) == ["quarantine/*", "raw/backfill/*", "raw/bookings/*", "runs/*", "staging/*"]
    others = [r for r in _grants(statements, "s3:GetObject*") if "StorageRawBucket" not in r]
    assert others and all("cdk-hnb659fds-assets-" in r for r in others)  # the script assets only
    assert not [s for s in statements if "s3:*" in as_list(s["Action"])]


def test_job_role_redshift_access_is_scoped_to_the_workgroup(template_json):
    statements = _role_statements(template_json)
    by_sid = {s.get("Sid"): s for s in statements}
    run = by_sid["RedshiftDataApiOnTheWarehouse"]
    assert sorted(run["Action"]) == ["redshift-data:BatchExecuteStatement", "redshift-data:ExecuteStatement"]
    assert render(run["Resource"]).startswith("<WarehouseWorkgroup") and render(run["Resource"]).endswith(".Workgroup.WorkgroupArn>")
    own = by_sid["RedshiftDataApiOwnStatements"]
    # CancelStatement: bookings_load cancels its own batch when the load times out.
    assert sorted(own["Action"]) == [
        "redshift-data:CancelStatement", "redshift-data:DescribeStatement", "redshift-data:GetStatementResult"]
    assert own["Condition"] == {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}
    creds = by_sid["RedshiftServerlessCredentials"]
    assert creds["Action"] == "redshift-serverless:GetCredentials"
    assert render(creds["Resource"]) == render(run["Resource"])
    metrics = by_sid["GlueMetrics"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "Glue"}}
    kms = [s for s in statements if "kms:Decrypt" in as_list(s["Action"])]
    assert kms and all(render(r).startswith("<StorageDataKey") for s in kms for r in as_list(s["Resource"]))
