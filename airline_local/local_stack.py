"""The local stack: the synthesized CDK app, deployed into the emulator.

Nothing here describes the pipeline a second time. The app is synthesized into a cloud assembly
(cdk.out) exactly as for `cdk deploy`; this module reads its template and asset manifest and
creates in the emulator the resources the pipeline runs on: the buckets and their EventBridge
notifications, the SNS topics and subscriptions, the SQS queues (and the bucket's notifications to them), the Glue database, crawler and job (whose script is
the deployed asset file), the EventBridge rule with its targets, and the state machine with its
definition's references resolved to local names, the Lambda functions a state machine invokes
(their handlers run in this process: airline_local.aws.patches.awslambda), and the IAM roles (name and trust policy: the local
IAM check reads their policies from the template), and, when asked, the Provider-framework custom
resources (the warehouse schema) through their handlers (airline_local.custom_resources), and the
CloudWatch alarms (their actions: airline_local.aws.patches.service_deliveries). Resources with no local
meaning (KMS, VPC, CloudTrail, dashboards, Redshift Serverless itself) are skipped: docs/local-mode.md lists
the differences. Every resource, skipped or not, is created in CloudFormation's order and first goes
through what AWS checks at its creation (`deploy`).
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
from airline_local.aws.cfn_order import creation_order, dependencies
from airline_local.aws.iam.creation_checks import CreationChecks
from airline_local.aws.patches.awslambda import deploy_function, invoked_functions
from airline_local.aws.patches.service_deliveries import create_alarm
from airline_local.custom_resources import provider_resources, run_custom_resources
from airline_local.glue.job_runner import JobRunner, JobSpec

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_REGION = "us-east-1"  # the emulator's region
# A directory shared by several processes for synthesized apps, keyed by their inputs (tests).
SYNTH_CACHE_ENV = "AIRLINE_LOCAL_SYNTH_CACHE"
# What the synthesized app depends on: a change to any of these means a new synth.
SYNTH_INPUTS = ("app.py", "cdk.json", "pyproject.toml", "stacks", "glue_scripts", "sql")  # pyproject: the version tag
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

    Resources are created in CloudFormation's order (airline_local.aws.cfn_order: each after
    everything it references or DependsOn), once each has passed what AWS authorizes while creating
    it, judged against only the policies of the resources sure to exist by then
    (airline_local.aws.iam.creation_checks): a missing dependency fails the deploy with a
    CreationCheckError naming both resources, where the first `cdk deploy` would roll back.

    With ``function_client(function logical id, service)`` (a client signing as that Lambda
    function's role: airline_local.custom_resources.function_session_client), the stack's
    Provider-framework custom resources are created too, their handlers run as CloudFormation
    would have them run (the schema: its Data API batch on the local warehouse); a failure fails
    the deploy with the handler's error (CustomResourceError). Without it they are skipped."""
    template = assembly.template
    order = creation_order(template.body)
    # A creation AWS would refuse fails the deploy before anything is created (CloudFormation's
    # rollback leaves nothing either).
    checks = CreationChecks(template)
    for lid in order:
        checks.verify(lid)
    creator = _Creator(assembly, clients, job_runner)
    providers = [r.logical_id for r in provider_resources(template)] if function_client is not None else []
    # The custom resources run in a thread (CloudFormation creates them while it creates the
    # resources that do not depend on them) from when the loop reaches the last of them: their
    # dependencies exist then.
    direct = dependencies(template.body)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="custom-resources") as pool:
        custom = None
        for lid in order:
            if custom is not None and direct[lid] & set(providers):
                custom.result()  # a resource that depends on a custom resource waits for it
            if providers and lid == providers[-1]:
                custom = pool.submit(run_custom_resources, assembly, function_client)
            creator.create(lid)
        if custom is not None:
            custom.result()  # a handler's error fails the deploy
    return creator.deployed()


class _Creator:
    """Creates one resource at a time in the emulator, by type; resources with no local meaning
    (KMS, VPC, CloudTrail, dashboards, policies: the IAM check reads those from the template) are
    skipped."""

    def __init__(self, assembly: CloudAssembly, clients: Any, job_runner: JobRunner) -> None:
        self.assembly, self.template, self.job_runner = assembly, assembly.template, job_runner
        self._make_client = clients
        self._clients: dict[str, Any] = {}
        template = self.template
        # The pipeline's state machine is the one an EventBridge rule starts, and the backfill the
        # one the stack outputs as such (others, such as the custom-resource provider's waiter,
        # have no local meaning).
        self.targeted = {t["Arn"] for lid in template.resources_of_type("AWS::Events::Rule")
                         for t in template.properties(lid).get("Targets", [])}
        backfill = template.body.get("Outputs", {}).get("BackfillStateMachineArn", {}).get("Value")
        self.backfill_id = backfill.get("Ref") if isinstance(backfill, dict) else None
        # The functions those state machines invoke run in this process, as their roles.
        machines = self.targeted | ({template.ref(self.backfill_id)} if self.backfill_id else set())
        self.invoked_functions = set(invoked_functions(template, machines))
        self.buckets: list[str] = []
        self.eventbridge_buckets: list[str] = []
        self.topics: list[str] = []
        self.crawlers: list[str] = []
        self.jobs: list[str] = []
        self.machines: list[str] = []
        self.backfill: str | None = None

    def clients(self, service: str) -> Any:
        """One client per service (making one costs tens of milliseconds)."""
        if service not in self._clients:
            self._clients[service] = self._make_client(service)
        return self._clients[service]

    def create(self, lid: str) -> None:
        create = {
            "AWS::IAM::Role": lambda: _create_role(self.template, lid, self.clients("iam")),
            "AWS::S3::Bucket": lambda: self._bucket(lid),
            "AWS::SQS::Queue": lambda: _create_queue(self.template, lid, self.clients("sqs")),
            "Custom::S3BucketNotifications": lambda: self._notifications(lid),
            "AWS::SNS::Topic": lambda: self.topics.append(
                self.clients("sns").create_topic(Name=self.template.name_of(lid))["TopicArn"]),
            "AWS::SNS::Subscription": lambda: self._subscription(lid),
            "AWS::Glue::Database": lambda: self.clients("glue").create_database(
                DatabaseInput=self.template.properties(lid)["DatabaseInput"]),
            "AWS::Glue::Crawler": lambda: self.crawlers.append(_create_crawler(self.template, lid, self.clients("glue"))),
            "AWS::Glue::Job": lambda: self.jobs.append(
                _create_job(self.assembly, lid, self.clients("glue"), self.job_runner)),
            "AWS::StepFunctions::StateMachine": lambda: self._state_machine(lid),
            "AWS::Events::Rule": lambda: _create_rule(self.template, lid, self.clients("events")),
            # Its actions publish as CloudWatch does (airline_local.aws.patches.service_deliveries).
            "AWS::CloudWatch::Alarm": lambda: create_alarm(self.template, lid, self.clients("cloudwatch")),
            "AWS::Lambda::Function": lambda: self._function(lid),
        }.get(str(self.template.resources[lid].get("Type")))
        if create is not None:
            create()

    def _bucket(self, lid: str) -> None:
        s3, props = self.clients("s3"), self.template.properties(lid)
        bucket = self.template.ref(lid)
        s3.create_bucket(Bucket=bucket)
        self.buckets.append(bucket)
        # Versioned as the template says: S3's events then carry `version-id`, which the state
        # machine's idempotency gate keys on (a re-upload is a new version, a new run).
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        if props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled") in (True, "true"):
            s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"EventBridgeConfiguration": {}})
            self.eventbridge_buckets.append(bucket)

    def _notifications(self, lid: str) -> None:
        """CDK's notifications resource: EventBridge on, and its SQS destinations (the crawler's
        S3 events queue)."""
        props = self.template.properties(lid)
        config = props.get("NotificationConfiguration", {})
        notification: dict[str, Any] = {}
        if "EventBridgeConfiguration" in config:
            notification["EventBridgeConfiguration"] = {}
            self.eventbridge_buckets.append(props["BucketName"])
        if config.get("QueueConfigurations"):
            notification["QueueConfigurations"] = list(config["QueueConfigurations"])
        if notification:
            self.clients("s3").put_bucket_notification_configuration(
                Bucket=props["BucketName"], NotificationConfiguration=notification)

    def _subscription(self, lid: str) -> None:
        props = self.template.properties(lid)
        self.clients("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])

    def _function(self, lid: str) -> None:
        if lid in self.invoked_functions:
            deploy_function(self.assembly, lid, self.clients)

    def _state_machine(self, lid: str) -> None:
        if lid == self.backfill_id:
            self.backfill = _create_state_machine(self.template, lid, self.clients("stepfunctions"))
        elif self.template.ref(lid) in self.targeted:
            self.machines.append(_create_state_machine(self.template, lid, self.clients("stepfunctions")))

    def deployed(self) -> DeployedStack:
        if len(self.machines) != 1:
            raise SynthError(f"expected one state machine targeted by a rule, found {len(self.machines)}")
        if len(self.eventbridge_buckets) != 1:
            raise SynthError(f"expected one bucket with EventBridge notifications, found {self.eventbridge_buckets}")
        return DeployedStack(
            state_machine_arn=self.machines[0],
            raw_bucket=self.eventbridge_buckets[0],
            topic_arns=tuple(self.topics),
            crawler_names=tuple(self.crawlers),
            job_names=tuple(self.jobs),
            buckets=tuple(self.buckets),
            backfill_state_machine_arn=self.backfill,
        )


def _create_role(template: Template, lid: str, iam: Any) -> str:
    # Roles exist in the emulated IAM (name, path, trust policy) so that AssumeRole gives stable
    # role ids (aws:userid). Their policies stay out of moto (it would enforce them with its own
    # evaluator): the local IAM check reads them from the template (docs/iam-check.md).
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


def _create_queue(template: Template, lid: str, sqs: Any) -> None:
    """An SQS queue (the crawler's S3 events queue, the DLQs) with its retention, visibility and
    redrive policy (its DLQ, a dependency, exists already)."""
    props = template.properties(lid)
    attributes = {name: str(props[name]) for name in ("MessageRetentionPeriod", "VisibilityTimeout") if name in props}
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
    sqs.create_queue(QueueName=template.name_of(lid), Attributes=attributes)


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
                   "ExecutionClass", "MaxRetries", "JobRunQueuingEnabled"),
    )
    job_runner.register_job(name, job_spec(assembly, lid))
    return name


def job_spec(assembly: CloudAssembly, lid: str) -> JobSpec:
    """What the job runner runs for the Glue job `lid`: its script and extra files (the assembly's
    asset files) and its script arguments."""
    props = assembly.template.properties(lid)
    arguments: dict[str, str] = {k: str(v) for k, v in props.get("DefaultArguments", {}).items()}
    return JobSpec(
        script=assembly.asset_path(props["Command"]["ScriptLocation"]),
        extra_py_files=_asset_list(assembly, arguments.get("--extra-py-files")),
        extra_files=_asset_list(assembly, arguments.get("--extra-files")),
        default_arguments={k: v for k, v in arguments.items() if k not in GLUE_SYSTEM_ARGUMENTS},
    )


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
