"""The local stack: the synthesized CDK app, deployed into the emulator.

Nothing here describes the pipeline a second time. The app is synthesized into a cloud assembly
(cdk.out) exactly as for `cdk deploy`; this module reads its template and asset manifest and
creates in the emulator the resources the pipeline runs on: the buckets and their EventBridge
notifications, the SNS topics and subscriptions, the SQS queues (and the bucket's notifications to them), the Glue database, crawler and job (whose script is
the deployed asset file), the EventBridge rule with its targets, and the state machine with its
definition's references resolved to local names, the Lambda functions a state machine invokes
(their handlers run in this process: airline_local.aws.lambda_functions), and the IAM roles (name and trust policy: the local
IAM check reads their policies from the template), and, when asked, the Provider-framework custom
resources (the warehouse schema) through their handlers (airline_local.custom_resources). Resources
with no local meaning (KMS, VPC,
CloudTrail, alarms, Redshift Serverless itself) are skipped: the README lists the differences.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airline_local.aws.cfn import ACCOUNT_ID, Template
from airline_local.aws.lambda_functions import deploy_functions
from airline_local.custom_resources import run_custom_resources
from airline_local.glue.job_runner import JobRunner, JobSpec

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_REGION = "us-east-1"  # the emulator's region
# A directory shared by several processes for synthesized apps, keyed by their inputs (tests).
SYNTH_CACHE_ENV = "AIRLINE_LOCAL_SYNTH_CACHE"
# What the synthesized app depends on: a change to any of these means a new synth.
SYNTH_INPUTS = ("app.py", "cdk.json", "stacks", "glue_scripts", "sql")
# Glue job arguments that configure Glue itself, not the script: the job runner supplies what
# they stand for (extra files in the working directory, packages from the project's venv).
GLUE_SYSTEM_ARGUMENTS = frozenset({
    "--extra-py-files", "--extra-files", "--extra-jars", "--additional-python-modules",
    "--python-modules-installer-option", "--TempDir", "--job-language", "--job-bookmark-option",
    "--enable-metrics", "--enable-observability-metrics", "--enable-continuous-cloudwatch-log",
    "--enable-spark-ui", "--spark-event-logs-path", "--enable-glue-datacatalog",
    "--enable-job-insights", "--enable-auto-scaling", "--continuous-log-logGroup",
})


class SynthError(RuntimeError):
    """The CDK app did not synthesize."""


def synthesize(out_dir: Path, context: Mapping[str, Any] | None = None, project_dir: Path = PROJECT_DIR) -> Path:
    """Synthesize the CDK app into out_dir, reusing the last synth when no input changed.

    Runs `python app.py` as `cdk deploy` does: with cdk.json's context (defaults and feature flags)
    handed over in CDK_CONTEXT_JSON (`context` overrides it, e.g. the crawler polling speed), and
    with the account and region the CLI would take from the profile (CDK_DEFAULT_ACCOUNT/REGION):
    the emulator's, so the local run executes the template a deployment would get, literal ARNs
    and region-specific choices included.
    """
    cdk_json = json.loads((project_dir / "cdk.json").read_text())
    context = {**cdk_json.get("context", {}), **(context or {})}
    # The environment is part of what was synthesized (an older cache may be environment-agnostic).
    fingerprint = _inputs_fingerprint(project_dir, {**context, "(environment)": [ACCOUNT_ID, LOCAL_REGION]})
    shared = os.environ.get(SYNTH_CACHE_ENV)
    if shared:
        # One synth per input fingerprint for every process that shares the cache (the test suite
        # starts a dozen pipelines): the first synthesizes under a lock, the others reuse it.
        out_dir = Path(shared) / hashlib.sha256(fingerprint.encode()).hexdigest()[:16] / "cdk.out"
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(out_dir.parent / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return _synthesize_into(out_dir, fingerprint, context, project_dir)
    return _synthesize_into(out_dir, fingerprint, context, project_dir)


def _synthesize_into(out_dir: Path, fingerprint: str, context: Mapping[str, Any], project_dir: Path) -> Path:
    stamp = out_dir / ".inputs-fingerprint"
    if stamp.is_file() and stamp.read_text() == fingerprint and (out_dir / "manifest.json").is_file():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CDK_OUTDIR": str(out_dir),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "CDK_DEFAULT_ACCOUNT": ACCOUNT_ID,
        "CDK_DEFAULT_REGION": LOCAL_REGION,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "1",
    }
    done = subprocess.run(
        [sys.executable, "app.py"], cwd=project_dir, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SynthError(f"`python app.py` failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    stamp.write_text(fingerprint)
    return out_dir


def _inputs_fingerprint(project_dir: Path, context: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode())
    for name in SYNTH_INPUTS:
        root = project_dir / name
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(project_dir)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CloudAssembly:
    """One stack of a synthesized cloud assembly: its template and its file assets."""

    template: Template
    assets: Mapping[str, Path]  # asset object key in the bootstrap bucket -> local file

    @classmethod
    def load(cls, cdk_out: Path, region: str = LOCAL_REGION) -> CloudAssembly:
        manifest = json.loads((cdk_out / "manifest.json").read_text())
        artifacts = manifest.get("artifacts", {})
        stacks = [(n, a) for n, a in artifacts.items() if a.get("type") == "aws:cloudformation:stack"]
        if len(stacks) != 1:
            raise SynthError(f"expected one stack in {cdk_out}, found {[n for n, _ in stacks]}")
        stack_name, stack = stacks[0]
        body = json.loads((cdk_out / stack["properties"]["templateFile"]).read_text())
        assets: dict[str, Path] = {}
        for artifact in artifacts.values():
            if artifact.get("type") != "cdk:asset-manifest":
                continue
            asset_manifest = json.loads((cdk_out / artifact["properties"]["file"]).read_text())
            for asset in asset_manifest.get("files", {}).values():
                for destination in asset["destinations"].values():
                    assets[destination["objectKey"]] = cdk_out / asset["source"]["path"]
        return cls(Template(body, region=region, stack_name=stack_name), assets)

    def asset_path(self, s3_uri: str) -> Path:
        """The local file behind an asset's S3 URI (s3://<bootstrap bucket>/<object key>)."""
        key = s3_uri.split("/", 3)[-1]
        if key not in self.assets:
            raise SynthError(f"{s3_uri} is not a file asset of the cloud assembly")
        return self.assets[key]


@dataclass(frozen=True)
class DeployedStack:
    """What the local pipeline needs to know about the stack it deployed."""

    state_machine_arn: str
    raw_bucket: str
    topic_arns: tuple[str, ...]
    crawler_names: tuple[str, ...]
    job_names: tuple[str, ...]
    buckets: tuple[str, ...] = field(default=())
    # The backfill state machine (stacks/backfill.py): the one the stack outputs as such.
    backfill_state_machine_arn: str | None = None


def deploy(assembly: CloudAssembly, clients: Any, job_runner: JobRunner, *,
           function_client: Any = None) -> DeployedStack:
    """Create the stack's resources in the emulator. `clients(service)` returns a boto3 client.

    With ``function_client(function logical id, service)`` (a client signing as that Lambda
    function's role: airline_local.custom_resources.function_session_client), the stack's
    Provider-framework custom resources are created too, their handlers run as CloudFormation
    would have them run (the schema: its Data API batch on the local warehouse); a failure fails
    the deploy with the handler's error (CustomResourceError). Without it they are skipped."""
    template = assembly.template
    # Roles exist in the emulated IAM (name, path, trust policy) so that AssumeRole gives stable
    # role ids (aws:userid). Their policies stay out of moto (it would enforce them with its own
    # evaluator): the local IAM check reads them from the template (docs/iam-check.md).
    iam = clients("iam")
    for lid in template.resources_of_type("AWS::IAM::Role"):
        _create_role(template, lid, iam)
    # A custom resource needs only its functions and their roles: CloudFormation creates it while
    # it creates the resources that do not depend on it, and so does this deploy.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom-resources") as pool:
        custom = pool.submit(run_custom_resources, assembly, function_client) if function_client is not None else None
        stack = _create_resources(assembly, clients, job_runner)
        # The functions a state machine invokes run in this process, as their roles.
        deploy_functions(assembly, [stack.state_machine_arn, stack.backfill_state_machine_arn or ""], clients)
        if custom is not None:
            custom.result()  # a handler's error fails the deploy
    return stack


def _create_resources(assembly: CloudAssembly, clients: Any, job_runner: JobRunner) -> DeployedStack:
    template = assembly.template
    s3, glue, sns = clients("s3"), clients("glue"), clients("sns")

    buckets = [template.ref(lid) for lid in template.resources_of_type("AWS::S3::Bucket")]
    for lid, bucket in zip(template.resources_of_type("AWS::S3::Bucket"), buckets):
        s3.create_bucket(Bucket=bucket)
        # Versioned as the template says: S3's events then carry `version-id`, which the state
        # machine's idempotency gate keys on (a re-upload is a new version, a new run).
        if template.properties(lid).get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    _create_queues(template, clients("sqs"))
    eventbridge_buckets = _enable_eventbridge_notifications(template, s3)

    topics = []
    for lid in template.resources_of_type("AWS::SNS::Topic"):
        topics.append(sns.create_topic(Name=template.name_of(lid))["TopicArn"])
    for lid in template.resources_of_type("AWS::SNS::Subscription"):
        props = template.properties(lid)
        sns.subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])

    for lid in template.resources_of_type("AWS::Glue::Database"):
        database_input = template.properties(lid)["DatabaseInput"]
        glue.create_database(DatabaseInput=database_input)
    crawlers = [_create_crawler(template, lid, glue) for lid in template.resources_of_type("AWS::Glue::Crawler")]
    jobs = [_create_job(assembly, lid, glue, job_runner) for lid in template.resources_of_type("AWS::Glue::Job")]

    # The pipeline's state machine is the one an EventBridge rule starts (the template has others,
    # such as the custom-resource provider's waiter, which have no local meaning).
    targeted = {t["Arn"] for lid in template.resources_of_type("AWS::Events::Rule")
                for t in template.properties(lid).get("Targets", [])}
    machines = [_create_state_machine(template, lid, clients("stepfunctions"))
                for lid in template.resources_of_type("AWS::StepFunctions::StateMachine")
                if template.ref(lid) in targeted]
    if len(machines) != 1:
        raise SynthError(f"expected one state machine targeted by a rule, found {len(machines)}")
    for lid in template.resources_of_type("AWS::Events::Rule"):
        _create_rule(template, lid, clients("events"))
    backfill_output = template.body.get("Outputs", {}).get("BackfillStateMachineArn", {}).get("Value")
    backfill = None
    if isinstance(backfill_output, dict) and backfill_output.get("Ref") in template.resources_of_type(
            "AWS::StepFunctions::StateMachine"):
        backfill = _create_state_machine(template, backfill_output["Ref"], clients("stepfunctions"))

    if len(eventbridge_buckets) != 1:
        raise SynthError(f"expected one bucket with EventBridge notifications, found {eventbridge_buckets}")
    return DeployedStack(
        state_machine_arn=machines[0],
        raw_bucket=eventbridge_buckets[0],
        topic_arns=tuple(topics),
        crawler_names=tuple(crawlers),
        job_names=tuple(jobs),
        buckets=tuple(buckets),
        backfill_state_machine_arn=backfill,
    )


def _create_role(template: Template, lid: str, iam: Any) -> str:
    props = template.properties(lid)
    options: dict[str, Any] = {
        "RoleName": template.name_of(lid),
        "AssumeRolePolicyDocument": json.dumps(props["AssumeRolePolicyDocument"]),
        **_present(props, "Path", "Description", "MaxSessionDuration"),
    }
    arn = iam.create_role(**options)["Role"]["Arn"]
    expected = template.get_att(lid, "Arn")
    if arn != expected:
        raise SynthError(f"the emulated IAM created {arn} for role {lid}, but the template's ARN is {expected}")
    return arn


def _create_queues(template: Template, sqs: Any) -> None:
    """The template's SQS queues (the crawler's S3 events queue and the DLQs), with their
    retention, visibility and redrive policy; the DLQs first exist, then the redrives point at them."""
    redrives = {}
    for lid in template.resources_of_type("AWS::SQS::Queue"):
        props = template.properties(lid)
        attributes = {name: str(props[key]) for key, name in (("MessageRetentionPeriod", "MessageRetentionPeriod"),
                                                               ("VisibilityTimeout", "VisibilityTimeout")) if key in props}
        url = sqs.create_queue(QueueName=template.name_of(lid), Attributes=attributes)["QueueUrl"]
        if "RedrivePolicy" in props:
            redrives[url] = json.dumps(props["RedrivePolicy"])
    for url, redrive in redrives.items():
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": redrive})


def _enable_eventbridge_notifications(template: Template, s3: Any) -> list[str]:
    """Buckets with EventBridge on: set on the bucket itself or through CDK's notifications
    resource, with that resource's SQS destinations (the crawler's S3 events queue) beside it."""
    enabled = []
    queues: dict[str, list[dict[str, Any]]] = {}
    for lid in template.resources_of_type("AWS::S3::Bucket"):
        config = template.properties(lid).get("NotificationConfiguration", {})
        if config.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true"):
            enabled.append(template.ref(lid))
    for lid in template.resources_of_type("Custom::S3BucketNotifications"):
        props = template.properties(lid)
        if "EventBridgeConfiguration" in props.get("NotificationConfiguration", {}):
            enabled.append(props["BucketName"])
        queues[props["BucketName"]] = list(props.get("NotificationConfiguration", {}).get("QueueConfigurations", []))
    for bucket in enabled:
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={"EventBridgeConfiguration": {},
                                       **({"QueueConfigurations": queues[bucket]} if queues.get(bucket) else {})},
        )
    return enabled


def _create_crawler(template: Template, lid: str, glue: Any) -> str:
    props = template.properties(lid)
    name = template.name_of(lid)
    glue.create_crawler(
        Name=name,
        Role=props["Role"],
        DatabaseName=props.get("DatabaseName", ""),
        Targets=props["Targets"],
        **_present(props, "TablePrefix", "SchemaChangePolicy", "RecrawlPolicy", "Configuration",
                   "CrawlerSecurityConfiguration"),
    )
    return name


def _create_job(assembly: CloudAssembly, lid: str, glue: Any, job_runner: JobRunner) -> str:
    template = assembly.template
    props = template.properties(lid)
    name = template.name_of(lid)
    arguments: dict[str, str] = {k: str(v) for k, v in props.get("DefaultArguments", {}).items()}
    glue.create_job(
        Name=name,
        Role=props["Role"],
        Command=props["Command"],
        DefaultArguments=arguments,
        **_present(props, "GlueVersion", "WorkerType", "NumberOfWorkers", "Timeout", "ExecutionProperty",
                   "ExecutionClass", "MaxRetries"),
    )
    job_runner.register_job(name, JobSpec(
        script=assembly.asset_path(props["Command"]["ScriptLocation"]),
        extra_py_files=_asset_list(assembly, arguments.get("--extra-py-files")),
        extra_files=_asset_list(assembly, arguments.get("--extra-files")),
        default_arguments={k: v for k, v in arguments.items() if k not in GLUE_SYSTEM_ARGUMENTS},
    ))
    return name


def _asset_list(assembly: CloudAssembly, comma_separated: str | None) -> list[Path]:
    return [assembly.asset_path(uri) for uri in (comma_separated or "").split(",") if uri]


def _create_state_machine(template: Template, lid: str, sfn: Any) -> str:
    props = template.properties(lid)
    definition = props["DefinitionString"]
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    json.loads(definition)  # a definition that is not JSON is a synth problem: fail here, clearly
    return sfn.create_state_machine(
        name=template.name_of(lid),
        definition=definition,
        roleArn=props["RoleArn"],
        type=props.get("StateMachineType", "STANDARD"),
    )["stateMachineArn"]


def _create_rule(template: Template, lid: str, events: Any) -> None:
    props = template.properties(lid)
    name = template.name_of(lid)
    events.put_rule(
        Name=name,
        EventPattern=json.dumps(props["EventPattern"]),
        State=props.get("State", "ENABLED"),
        **_present(props, "Description"),
    )
    targets = [_target(t) for t in props.get("Targets", [])]
    if targets:
        events.put_targets(Rule=name, Targets=targets)


def _target(target: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("Id", "Arn", "RoleArn", "Input", "InputPath", "RetryPolicy", "DeadLetterConfig")
    return {k: target[k] for k in keys if k in target}


def _present(props: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: props[k] for k in keys if k in props}
