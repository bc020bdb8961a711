"""Raw bucket, access-log bucket, data key, SNS topic and the CloudTrail trail."""

from __future__ import annotations

from tests.infra.template_helpers import only, render, resources_of


def _bucket(template_json, prefix):
    (found,) = [(k, v["Properties"]) for k, v in resources_of(template_json, "AWS::S3::Bucket").items() if k.startswith(prefix)]
    return found


def _bucket_policy_statements(template_json, bucket_id):
    for policy in resources_of(template_json, "AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": bucket_id}:
            return policy["Properties"]["PolicyDocument"]["Statement"]
    raise AssertionError(f"no bucket policy for {bucket_id}")


BLOCK_ALL = {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}


def _denies_insecure_transport(statements):
    return any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*"
        for s in statements
    )


def test_raw_bucket_is_private_encrypted_versioned_logged_and_sends_events(template_json):
    bucket_id, bucket = _bucket(template_json, "StorageRawBucket")
    assert bucket["PublicAccessBlockConfiguration"] == BLOCK_ALL
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert render(encryption["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]).startswith("<StorageDataKey")
    assert encryption["BucketKeyEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert render(bucket["LoggingConfiguration"]["DestinationBucketName"]).startswith("<StorageAccessLogBucket")
    assert _denies_insecure_transport(_bucket_policy_statements(template_json, bucket_id))


def test_raw_bucket_lifecycle_expires_staging_and_quarantine(template_json):
    _, bucket = _bucket(template_json, "StorageRawBucket")
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-staging"]["Prefix"] == "staging/" and rules["expire-staging"]["ExpirationInDays"] == 7
    assert rules["expire-quarantine"]["Prefix"] == "quarantine/" and rules["expire-quarantine"]["ExpirationInDays"] == 90
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    assert all(r["Status"] == "Enabled" for r in rules.values())
    # raw/ and runs/ are kept: they are the input and the audit of every run.
    assert not any(r.get("Prefix", "").startswith(("raw/", "runs/")) for r in rules.values())


def test_access_log_bucket_accepts_server_access_logs_only_over_tls(template_json):
    bucket_id, bucket = _bucket(template_json, "StorageAccessLogBucket")
    assert bucket["PublicAccessBlockConfiguration"] == BLOCK_ALL
    statements = _bucket_policy_statements(template_json, bucket_id)
    assert _denies_insecure_transport(statements)
    assert any(s.get("Principal") == {"Service": "logging.s3.amazonaws.com"} and s["Action"] == "s3:PutObject" for s in statements)


def test_data_key_rotates_and_lets_logs_and_alarms_use_it(template_json):
    keys = {k: v["Properties"] for k, v in resources_of(template_json, "AWS::KMS::Key").items()}
    assert all(k["EnableKeyRotation"] for k in keys.values())
    data_key = next(v for k, v in keys.items() if k.startswith("StorageDataKey"))
    sids = {s.get("Sid") for s in data_key["KeyPolicy"]["Statement"]}
    assert {"AllowCloudWatchLogs", "AllowCloudWatchAlarmsToPublish"} <= sids


def test_topic_is_kms_encrypted_tls_only_and_has_no_subscription_by_default(template_json):
    topic_id, topic = only(template_json, "AWS::SNS::Topic")
    assert render(topic["KmsMasterKeyId"]).startswith("<StorageDataKey")
    assert resources_of(template_json, "AWS::SNS::Subscription") == {}
    (policy,) = resources_of(template_json, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements)
    outputs = template_json["Outputs"]
    recipients = next(v for k, v in outputs.items() if k.startswith("NotificationsNotificationRecipients"))
    assert recipients["Value"].startswith("NONE")


def test_every_alarm_may_publish_to_the_topic_as_cloudwatch(template_json):
    """enforce_ssl's topic policy replaces SNS's default one: CloudWatch (for this account's alarms
    in this region) needs its own Allow, or no alarm emails (issue 21; tests/local proves it)."""
    topic_id, _ = only(template_json, "AWS::SNS::Topic")
    (policy,) = resources_of(template_json, "AWS::SNS::TopicPolicy").values()
    [statement] = [s for s in policy["Properties"]["PolicyDocument"]["Statement"]
                   if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Allow", "sns:Publish", {"Ref": topic_id})
    condition = statement["Condition"]
    assert render(condition["ArnLike"]["aws:SourceArn"]) == "arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:*"
    assert condition["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    alarms = resources_of(template_json, "AWS::CloudWatch::Alarm")
    assert alarms and all(a["Properties"]["AlarmActions"] == [{"Ref": topic_id}] for a in alarms.values())


def test_missing_emails_produce_a_synth_warning(cloud_assembly):
    import json

    metadata = json.loads((cloud_assembly / "AirlineBookingPipeline.metadata.json").read_text())
    warnings = [e["data"] for entries in metadata.values() for e in entries if e["type"] == "aws:cdk:warning"]
    assert any("No notification e-mail addresses are configured" in str(w) for w in warnings), warnings


def test_trail_logs_data_events_of_the_raw_bucket_validated_and_encrypted(template_json):
    _, trail = only(template_json, "AWS::CloudTrail::Trail")
    assert trail["EnableLogFileValidation"] is True
    assert trail["IsLogging"] is True
    assert render(trail["KMSKeyId"]).startswith("<AuditTrailKey")
    assert render(trail["S3BucketName"]).startswith("<AuditTrailBucket")
    (selector,) = trail["EventSelectors"]
    assert selector["IncludeManagementEvents"] is False and selector["ReadWriteType"] == "All"
    (data_resource,) = selector["DataResources"]
    assert data_resource["Type"] == "AWS::S3::Object"
    assert render(data_resource["Values"][0]).startswith("<StorageRawBucket") and render(data_resource["Values"][0]).endswith("/")
    trail_bucket_id, trail_bucket = _bucket(template_json, "AuditTrailBucket")
    assert trail_bucket["PublicAccessBlockConfiguration"] == BLOCK_ALL
    assert _denies_insecure_transport(_bucket_policy_statements(template_json, trail_bucket_id))
    trail_key = next(v["Properties"] for k, v in resources_of(template_json, "AWS::KMS::Key").items() if k.startswith("AuditTrailKey"))
    cloudtrail = [s for s in trail_key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudtrail.amazonaws.com"}]
    assert any("kms:GenerateDataKey*" in str(s["Action"]) for s in cloudtrail)


def test_the_idle_cost_table_counts_the_templates_alarms_and_dashboards(template_json):
    """docs/deploying.md prices every alarm and dashboard the stack deploys (issue 21: it said 4)."""
    import re
    from pathlib import Path

    table = (Path(__file__).resolve().parents[2] / "docs" / "deploying.md").read_text(encoding="utf-8")
    for resource_type, row in (("AWS::CloudWatch::Alarm", "CloudWatch alarms"), ("AWS::CloudWatch::Dashboard", "CloudWatch dashboard")):
        counted = re.search(rf"^\| {row} \| (\d+)", table, re.MULTILINE)
        assert counted, f"docs/deploying.md has no '| {row} | <count>' row"
        assert int(counted.group(1)) == len(resources_of(template_json, resource_type)), (row, resource_type)
