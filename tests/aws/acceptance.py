"""The acceptance steps against a real AWS account, as small functions over boto3 clients.

`make aws-test` runs them for real (tests/aws/test_aws_acceptance.py): synthesize the app under a
unique stack name, check the account is bootstrapped, deploy with the project's CDK CLI, subscribe
an SQS queue to the topic, upload the sample, follow the execution the upload started, read the
notification from the queue and the row count through the Redshift Data API, then destroy the
stack and report what it left. `make test` runs the same functions offline: against the local
emulator (test_acceptance_offline.py) and with botocore's Stubber and an injected command runner
(test_acceptance_unit.py).

Nothing here reads credentials itself: every function takes the clients (or a boto3 Session) it
uses, and the CDK CLI is run through an injected `runner`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT_DIR / "data" / "sample" / "bookings_sample.csv"
RAW_PREFIX = "raw/bookings/"
OPT_IN_VARIABLE = "AIRLINE_AWS_TEST"
KEEP_RETAINED_VARIABLE = "AIRLINE_AWS_TEST_KEEP_RETAINED"
BOOTSTRAP_STACK = "CDKToolkit"
BOOTSTRAP_QUALIFIER = "hnb659fds"  # CDK's default qualifier
# A bootstrap stack in any other state (ROLLBACK_COMPLETE, *_IN_PROGRESS, *_FAILED) is not usable.
USABLE_BOOTSTRAP_STATUSES = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE")
TERMINAL_STATUSES = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
COUNT_SQL = "SELECT COUNT(*) FROM airline.bookings"

Runner = Callable[..., "subprocess.CompletedProcess[str]"]  # runner(argv, *, cwd, env) -> CompletedProcess
Sleep = Callable[[float], None]


class AcceptanceError(AssertionError):
    """A step of the acceptance test found the account or the pipeline not as expected."""


# -- opting in ---------------------------------------------------------------------------------


def skip_reason(session: Any, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the AWS acceptance test must not run here, or None when it may.

    It deploys a billed stack, so it needs both credentials (botocore's own resolution: variables,
    profiles, SSO, instance roles) and an explicit opt-in, so that a developer's credentials never
    deploy anything by accident."""
    if environ.get(OPT_IN_VARIABLE) != "1":
        return (f"deploys a real, billed stack: set {OPT_IN_VARIABLE}=1 (and AWS credentials and a region) "
                "to run it, e.g. `AIRLINE_AWS_TEST=1 make aws-test`")
    if session.get_credentials() is None:
        return f"{OPT_IN_VARIABLE}=1 but botocore finds no AWS credentials (profile, variables, SSO or role)"
    if not session.region_name:
        return f"{OPT_IN_VARIABLE}=1 but no AWS region is configured (AWS_REGION or the profile's region)"
    return None


# -- names and context -------------------------------------------------------------------------


def unique_stack_name(prefix: str = "AirlineAcceptance", now: datetime | None = None, token: str | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"{prefix}-{now:%Y%m%d%H%M%S}-{token or secrets.token_hex(3)}"


def acceptance_context(stack_name: str) -> dict[str, str]:
    """The -c values of the acceptance deployment: its own stack, namespace and workgroup names
    (the defaults are fixed names, one per account and region), and nothing kept on destroy that
    retainData governs."""
    suffix = stack_name.split("-", 1)[-1].lower()
    warehouse = f"acc-{suffix}"[:64]
    return {
        "stackName": stack_name,
        "retainData": "false",
        "redshiftNamespaceName": warehouse,
        "redshiftWorkgroupName": warehouse,
    }


# -- the CDK CLI -------------------------------------------------------------------------------


def run_command(argv: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The real runner: the CLI's output goes to this process's stderr as it comes (deploys are long)."""
    return subprocess.run(list(argv), cwd=cwd, env=dict(env), stdout=sys.stderr, stderr=sys.stderr, text=True,
                          check=False)


def cli_environment(region: str, base: Mapping[str, str] = os.environ, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """The environment of `npx cdk`: the region of the session, the venv's python first on PATH
    (cdk.json runs `python3 app.py`), no version check or telemetry, jsii's banner silenced."""
    env = dict(base)
    venv_bin = project_dir / ".venv" / "bin"
    env["PATH"] = f"{venv_bin}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        AWS_REGION=region,
        AWS_DEFAULT_REGION=region,
        CDK_DISABLE_VERSION_CHECK="1",
        CDK_DISABLE_CLI_TELEMETRY="true",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=env.get("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"),
    )
    return env


@dataclass
class CdkCli:
    """`npx cdk` of the project (package.json pins it): synth once, then deploy and destroy that
    same cloud assembly (`--app <cdk.out>`), so what was checked is what is deployed."""

    runner: Runner
    env: Mapping[str, str]
    project_dir: Path = PROJECT_DIR
    commands: list[list[str]] = field(default_factory=list)

    BASE = ("npx", "--no-install", "cdk")

    @classmethod
    def synth_argv(cls, out_dir: Path, context: Mapping[str, str]) -> list[str]:
        argv = [*cls.BASE, "synth", "--quiet", "--no-notices", "--output", str(out_dir)]
        for key, value in context.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    @classmethod
    def deploy_argv(cls, assembly: Path, stack_name: str, outputs_file: Path) -> list[str]:
        return [*cls.BASE, "deploy", "--app", str(assembly), stack_name, "--require-approval", "never",
                "--outputs-file", str(outputs_file), "--no-notices"]

    @classmethod
    def destroy_argv(cls, assembly: Path, stack_name: str) -> list[str]:
        return [*cls.BASE, "destroy", "--app", str(assembly), stack_name, "--force", "--no-notices"]

    def _run(self, argv: list[str], what: str, *, check: bool = True) -> bool:
        self.commands.append(argv)
        done = self.runner(argv, cwd=self.project_dir, env=self.env)
        if done.returncode != 0 and check:
            raise AcceptanceError(f"`{' '.join(argv)}` failed (exit {done.returncode}): {what}")
        return done.returncode == 0

    def synth(self, out_dir: Path, context: Mapping[str, str]) -> Path:
        self._run(self.synth_argv(out_dir, context), "the app did not synthesize")
        return out_dir

    def deploy(self, assembly: Path, stack_name: str, outputs_file: Path) -> None:
        self._run(self.deploy_argv(assembly, stack_name, outputs_file), "the stack did not deploy")

    def destroy(self, assembly: Path, stack_name: str) -> bool:
        return self._run(self.destroy_argv(assembly, stack_name), "the stack was not destroyed", check=False)


# -- the synthesized assembly ------------------------------------------------------------------


def stack_artifact(assembly: Path, stack_name: str) -> dict[str, Any]:
    manifest = json.loads((assembly / "manifest.json").read_text())
    artifact = manifest.get("artifacts", {}).get(stack_name)
    if artifact is None or artifact.get("type") != "aws:cloudformation:stack":
        raise AcceptanceError(f"{assembly} has no stack {stack_name}")
    return artifact


def required_bootstrap_version(assembly: Path, stack_name: str) -> int:
    """The bootstrap stack version the synthesized stack needs (CDK records it in the manifest)."""
    return int(stack_artifact(assembly, stack_name)["properties"].get("requiresBootstrapStackVersion", 6))


def stack_template(assembly: Path, stack_name: str) -> dict[str, Any]:
    properties = stack_artifact(assembly, stack_name)["properties"]
    return json.loads((assembly / properties["templateFile"]).read_text())


# -- the state machine definitions, validated before anything is deployed ----------------------


def rendered_definitions(template: Mapping[str, Any], region: str) -> dict[str, tuple[str, str]]:
    """Each state machine of the template: logical id -> (type, definition JSON), the definition's
    references (bucket, crawler, job, topic, functions) rendered with stand-in names of the right
    shape (airline_local.aws.cfn.Template): ARNs, names and the partition as CloudFormation
    would fill them in, which is all that validation reads of them."""
    from airline_local.aws.cfn import Template

    rendered = Template(template, region=region)
    definitions = {}
    for logical_id in rendered.resources_of_type("AWS::StepFunctions::StateMachine"):
        properties = rendered.properties(logical_id)
        definition = properties.get("DefinitionString")
        if definition is None:
            definition = json.dumps(properties["Definition"])
        for name, value in properties.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + name + "}", str(value))
        definitions[logical_id] = (properties.get("StateMachineType", "STANDARD"), definition)
    return definitions


def validate_definitions(sfn: Any, definitions: Mapping[str, tuple[str, str]],
                         log: Callable[[str], None] = print) -> None:
    """Step Functions' ValidateStateMachineDefinition on every definition: the check
    CreateStateMachine makes. Its `result` decides (AWS: rely only on OK / FAIL, not on the
    diagnostics' codes or wording); the diagnostics are quoted: a FAIL raises AcceptanceError
    naming the state machine and each diagnostic, an OK's warnings are logged."""
    refused = []
    for logical_id, (machine_type, definition) in definitions.items():
        answer = sfn.validate_state_machine_definition(definition=definition, type=machine_type,
                                                       severity="WARNING")
        lines = [f"{logical_id}: {d['severity']} {d['code']} at {d.get('location') or '(definition)'}: "
                 f"{d['message']}" for d in answer.get("diagnostics", [])]
        if answer.get("truncated"):
            lines.append(f"{logical_id}: (more diagnostics than ValidateStateMachineDefinition returns)")
        if answer["result"] == "OK":
            for line in lines:
                log(line)
        else:
            refused.extend(lines or [f"{logical_id}: ValidateStateMachineDefinition answered {answer['result']}"])
    if refused:
        raise AcceptanceError("Step Functions refuses the state machine definition(s), so the deploy would "
                              "fail; nothing was deployed:\n  " + "\n  ".join(refused))


def fixed_names(template: Mapping[str, Any]) -> dict[str, list[str]]:
    """Physical names the template fixes (not generated per stack): a second stack with the same
    name fails to create, and a retained one survives the stack. Keys: resource type."""
    names: dict[str, list[str]] = {}
    for resource in template.get("Resources", {}).values():
        kind, props = resource.get("Type"), resource.get("Properties", {})
        name = None
        if kind == "AWS::Glue::Database":
            name = props.get("DatabaseInput", {}).get("Name")
        elif kind == "AWS::RedshiftServerless::Namespace":
            name = props.get("NamespaceName")
        elif kind == "AWS::RedshiftServerless::Workgroup":
            name = props.get("WorkgroupName")
        if isinstance(name, str):
            names.setdefault(kind, []).append(name)
    return names


# -- account checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bootstrap:
    stack_status: str
    version: int


def check_bootstrapped(cfn: Any, ssm: Any, *, required_version: int, qualifier: str = BOOTSTRAP_QUALIFIER,
                       account: str = "ACCOUNT", region: str = "REGION") -> Bootstrap:
    """The account/region has CDK's bootstrap stack, and its version parameter is recent enough."""
    fix = f"run `npx cdk bootstrap aws://{account}/{region}` once for this account and region"
    try:
        [stack] = cfn.describe_stacks(StackName=BOOTSTRAP_STACK)["Stacks"]
    except cfn.exceptions.ClientError as error:
        if "does not exist" in str(error):
            raise AcceptanceError(f"not bootstrapped: no {BOOTSTRAP_STACK} stack in {region}; {fix}") from None
        raise
    status = stack["StackStatus"]
    if status not in USABLE_BOOTSTRAP_STATUSES:
        raise AcceptanceError(f"the {BOOTSTRAP_STACK} stack is {status}, not usable; {fix}")
    parameter = f"/cdk-bootstrap/{qualifier}/version"
    try:
        version = int(ssm.get_parameter(Name=parameter)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        raise AcceptanceError(f"not bootstrapped: no SSM parameter {parameter} (qualifier {qualifier}); {fix}") from None
    if version < required_version:
        raise AcceptanceError(
            f"bootstrap version {version} < {required_version} that this app needs; {fix} (it upgrades in place)"
        )
    return Bootstrap(status, version)


def existing_fixed_names(names: Mapping[str, Sequence[str]], glue: Any, redshift_serverless: Any) -> list[str]:
    """The fixed names that already exist in the account (a deploy would fail on them)."""
    lookups = (  # resource type, what to call it, the lookup, the "no such thing" error
        ("AWS::Glue::Database", "Glue database",
         lambda n: glue.get_database(Name=n), glue.exceptions.EntityNotFoundException),
        ("AWS::RedshiftServerless::Namespace", "Redshift Serverless namespace",
         lambda n: redshift_serverless.get_namespace(namespaceName=n), redshift_serverless.exceptions.ResourceNotFoundException),
        ("AWS::RedshiftServerless::Workgroup", "Redshift Serverless workgroup",
         lambda n: redshift_serverless.get_workgroup(workgroupName=n), redshift_serverless.exceptions.ResourceNotFoundException),
    )
    found = []
    for resource_type, label, lookup, not_found in lookups:
        for name in names.get(resource_type, []):
            try:
                lookup(name)
                found.append(f"{label} {name}")
            except not_found:
                pass
    return found


# -- the deployed stack ------------------------------------------------------------------------

_OUTPUT_HASH = re.compile(r"[0-9A-F]{8}$")


def stack_outputs(cfn: Any, stack_name: str) -> dict[str, str]:
    """Outputs by name; an output declared inside a construct (WarehouseWorkgroupName2BCED4DC) is
    also found under its short name (WorkgroupName)."""
    [stack] = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    outputs: dict[str, str] = {}
    for output in stack.get("Outputs", []):
        outputs[output["OutputKey"]] = output["OutputValue"]
    for key, value in list(outputs.items()):
        short = _OUTPUT_HASH.sub("", key)
        for construct in ("Warehouse", "Notifications", "Storage", "Orchestration", "Etl", "Catalog", "Audit"):
            if short.startswith(construct) and short != construct:
                outputs.setdefault(short[len(construct):], value)
    return outputs


def stack_resources(cfn: Any, stack_name: str) -> list[dict[str, Any]]:
    pages = cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
    return [r for page in pages for r in page["StackResourceSummaries"]]


def physical_id(resources: Iterable[Mapping[str, Any]], resource_type: str, logical_prefix: str) -> str:
    matches = [r["PhysicalResourceId"] for r in resources
               if r["ResourceType"] == resource_type and r["LogicalResourceId"].startswith(logical_prefix)]
    if len(matches) != 1:
        raise AcceptanceError(f"expected one {resource_type} {logical_prefix}*, found {matches}")
    return matches[0]


@dataclass(frozen=True)
class Deployment:
    """What the steps need to know about a deployed (or locally emulated) pipeline."""

    stack_name: str
    raw_bucket: str
    state_machine_arn: str
    topic_arn: str
    workgroup_name: str
    database: str = "dev"
    secret_arn: str | None = None  # the admin secret: the Data API caller's own IAM user has no grants


def describe_deployment(cfn: Any, stack_name: str, database: str = "dev") -> Deployment:
    outputs = stack_outputs(cfn, stack_name)
    missing = [k for k in ("RawBucketName", "StateMachineArn", "TopicArn", "WorkgroupName") if k not in outputs]
    if missing:
        raise AcceptanceError(f"stack {stack_name} has no output(s) {missing}: {sorted(outputs)}")
    secret = physical_id(stack_resources(cfn, stack_name), "AWS::SecretsManager::Secret", "WarehouseAdminSecret")
    return Deployment(stack_name, outputs["RawBucketName"], outputs["StateMachineArn"], outputs["TopicArn"],
                      outputs["WorkgroupName"], database, secret)


@dataclass(frozen=True)
class Resource:
    logical_id: str
    resource_type: str
    physical_id: str | None


def retained_resources(cfn: Any, stack_name: str) -> list[Resource]:
    """Resources that `cdk destroy` leaves behind: DeletionPolicy Retain (or RetainExceptOnCreate)
    in the deployed template. Read before the destroy (afterwards the stack is gone)."""
    body = cfn.get_template(StackName=stack_name, TemplateStage="Processed")["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    physical = {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in stack_resources(cfn, stack_name)}
    return [
        Resource(logical_id, resource["Type"], physical.get(logical_id))
        for logical_id, resource in sorted(template.get("Resources", {}).items())
        if resource.get("DeletionPolicy") in ("Retain", "RetainExceptOnCreate")
    ]


def stack_buckets(resources: Iterable[Mapping[str, Any]]) -> list[str]:
    return [r["PhysicalResourceId"] for r in resources
            if r["ResourceType"] == "AWS::S3::Bucket" and r.get("PhysicalResourceId")]


def empty_bucket(s3: Any, bucket: str) -> int:
    """Delete every object version and delete marker (CloudFormation deletes only empty buckets)."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                   for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for start in range(0, len(objects), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[start:start + 1000], "Quiet": True})
        deleted += len(objects)
    return deleted


# -- the run -----------------------------------------------------------------------------------


def subscribe_queue(sqs: Any, sns: Any, topic_arn: str, queue_name: str) -> tuple[str, str, str]:
    """An SQS queue subscribed to the topic: (queue URL, queue ARN, subscription ARN).

    The topic is KMS-encrypted; SNS decrypts before it delivers, so the queue only needs SSE of
    its own that SNS may write to without a key grant (SQS-managed SSE), and a policy letting
    sns.amazonaws.com send from this topic alone."""
    url = sqs.create_queue(QueueName=queue_name, Attributes={"SqsManagedSseEnabled": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TopicDelivers",
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
        }],
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, ReturnSubscriptionArn=True)
    return url, arn, subscription["SubscriptionArn"]


def upload(s3: Any, bucket: str, file: Path, key: str | None = None) -> tuple[str, datetime]:
    """Upload under raw/bookings/, as a data engineer does; returns (key, time just before)."""
    key = key or RAW_PREFIX + file.name
    uploaded_at = datetime.now(timezone.utc)
    s3.upload_file(str(file), bucket, key)
    return key, uploaded_at


def find_execution(sfn: Any, state_machine_arn: str, key: str, since: datetime, *, timeout: float = 120,
                   poll: float = 2.0, skew: timedelta = timedelta(minutes=2), sleep: Sleep = time.sleep) -> str:
    """The execution the upload of `key` started: listed after the upload time (less a clock
    skew allowance), whose input event names the key."""
    deadline = time.monotonic() + timeout
    while True:
        pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=state_machine_arn)
        executions = [e for page in pages for e in page["executions"]]
        for execution in sorted(executions, key=lambda e: e["startDate"]):
            if execution["startDate"] < since - skew:
                continue
            event = json.loads(sfn.describe_execution(executionArn=execution["executionArn"]).get("input") or "{}")
            if event.get("detail", {}).get("object", {}).get("key") == key:
                return execution["executionArn"]
        if time.monotonic() >= deadline:
            raise AcceptanceError(f"no execution of {state_machine_arn} started for {key} within {timeout:.0f} s")
        sleep(poll)


def wait_execution(sfn: Any, execution_arn: str, *, timeout: float = 1800, poll: float = 10.0,
                   sleep: Sleep = time.sleep) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        description = sfn.describe_execution(executionArn=execution_arn)
        if description["status"] in TERMINAL_STATUSES:
            return description
        if time.monotonic() >= deadline:
            raise AcceptanceError(f"{execution_arn} still {description['status']} after {timeout:.0f} s")
        sleep(poll)


def receive_notification(sqs: Any, queue_url: str, execution_name: str, *, timeout: float = 120,
                         sleep: Sleep = time.sleep) -> dict[str, str]:
    """The SNS notification for this execution from the queue: {"subject", "message"}."""
    deadline = time.monotonic() + timeout
    while True:
        response = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            envelope = json.loads(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if execution_name in envelope.get("Message", ""):
                return {"subject": envelope.get("Subject") or "", "message": envelope["Message"]}
        if time.monotonic() >= deadline:
            raise AcceptanceError(f"no notification for {execution_name} reached {queue_url} within {timeout:.0f} s")
        sleep(1)


def check_success_notification(notification: Mapping[str, str], *, rows_read: int) -> dict[str, int]:
    """The success email's text: "succeeded" and the counts; returns the counts it names."""
    text = notification["message"]
    if "succeeded" not in text or "succeeded" not in notification.get("subject", "succeeded"):
        raise AcceptanceError(f"not a success notification: {notification}")
    counts = {k: int(v) for k, v in re.findall(r"\b(rows_\w+)=(\d+)", text)}
    if counts.get("rows_read") != rows_read:
        raise AcceptanceError(f"expected rows_read={rows_read} in the notification: {text}")
    return counts


ACCOUNTED = ("rows_quarantined", "rows_duplicate", "rows_inserted", "rows_updated", "rows_unchanged",
             "rows_stale")


def check_counts(counts: Mapping[str, int], warehouse_rows: int) -> None:
    """Every row read is accounted for, and a first file into an empty warehouse leaves exactly
    the rows it inserted (the sample has rejected and duplicate rows: 1,000 read, fewer loaded)."""
    if sum(counts.get(k, 0) for k in ACCOUNTED) != counts.get("rows_read"):
        raise AcceptanceError(f"rows_read is not the sum of {', '.join(ACCOUNTED)}: {counts}")
    if warehouse_rows != counts.get("rows_inserted"):
        raise AcceptanceError(f"{COUNT_SQL} = {warehouse_rows}, but the run inserted {counts.get('rows_inserted')}")


def warehouse_count(rsd: Any, deployment: Deployment, sql: str = COUNT_SQL, *, timeout: float = 300,
                    poll: float = 1.0, sleep: Sleep = time.sleep) -> int:
    """One integer from the warehouse through the Redshift Data API."""
    request = {"WorkgroupName": deployment.workgroup_name, "Database": deployment.database, "Sql": sql}
    if deployment.secret_arn:
        request["SecretArn"] = deployment.secret_arn
    statement = rsd.execute_statement(**request)["Id"]
    deadline = time.monotonic() + timeout
    while True:
        described = rsd.describe_statement(Id=statement)
        if described["Status"] == "FINISHED":
            break
        if described["Status"] in ("FAILED", "ABORTED"):
            raise AcceptanceError(f"{sql!r} {described['Status']}: {described.get('Error')}")
        if time.monotonic() >= deadline:
            raise AcceptanceError(f"{sql!r} still {described['Status']} after {timeout:.0f} s")
        sleep(poll)
    [[value]] = rsd.get_statement_result(Id=statement)["Records"]
    return int(value["longValue"])


@dataclass(frozen=True)
class RunCheck:
    execution_arn: str
    status: str
    notification: dict[str, str]
    counts: dict[str, int]
    warehouse_rows: int


def run_file(clients: Callable[[str], Any], deployment: Deployment, file: Path, queue_url: str, *,
             rows_read: int, execution_timeout: float = 1800, poll: float = 10.0,
             sleep: Sleep = time.sleep) -> RunCheck:
    """Upload one file and check it end to end: execution SUCCEEDED, the notification, the count.
    `poll`: seconds between two looks at the execution (and the statement)."""
    key, uploaded_at = upload(clients("s3"), deployment.raw_bucket, file)
    sfn = clients("stepfunctions")
    execution = find_execution(sfn, deployment.state_machine_arn, key, uploaded_at, poll=min(poll, 2.0), sleep=sleep)
    described = wait_execution(sfn, execution, timeout=execution_timeout, poll=poll, sleep=sleep)
    if described["status"] != "SUCCEEDED":
        raise AcceptanceError(f"{execution} {described['status']}: {described.get('error')} {described.get('cause')}")
    notification = receive_notification(clients("sqs"), queue_url, described["name"], sleep=sleep)
    counts = check_success_notification(notification, rows_read=rows_read)
    rows = warehouse_count(clients("redshift-data"), deployment, poll=min(poll, 1.0), sleep=sleep)
    check_counts(counts, rows)
    return RunCheck(execution, described["status"], notification, counts, rows)


# -- leftovers ---------------------------------------------------------------------------------


def still_exists(session: Any, resource: Resource) -> bool | None:
    """Whether a retained resource is still there (None: not a type this knows how to look up)."""
    pid = resource.physical_id
    if not pid:
        return None
    from botocore.exceptions import ClientError

    kind = resource.resource_type
    try:
        if kind == "AWS::S3::Bucket":
            session.client("s3").head_bucket(Bucket=pid)
        elif kind == "AWS::KMS::Key":
            return session.client("kms").describe_key(KeyId=pid)["KeyMetadata"]["KeyState"] != "PendingDeletion"
        elif kind == "AWS::Logs::LogGroup":
            groups = session.client("logs").describe_log_groups(logGroupNamePrefix=pid)["logGroups"]
            return any(g["logGroupName"] == pid for g in groups)
        elif kind == "AWS::Glue::Database":
            session.client("glue").get_database(Name=pid)
        elif kind == "AWS::Glue::SecurityConfiguration":
            session.client("glue").get_security_configuration(Name=pid)
        elif kind == "AWS::SecretsManager::Secret":
            return "DeletedDate" not in session.client("secretsmanager").describe_secret(SecretId=pid)
        elif kind == "AWS::RedshiftServerless::Namespace":
            session.client("redshift-serverless").get_namespace(namespaceName=pid)
        elif kind == "AWS::RedshiftServerless::Workgroup":
            session.client("redshift-serverless").get_workgroup(workgroupName=pid)
        else:
            return None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFoundException", "EntityNotFoundException",
                    "ResourceNotFoundException"):
            return False
        raise
    return True


def delete_glue_database(glue: Any, name: str) -> None:
    """The stack always retains its Glue database, whose name is fixed: a second deploy in the
    same account and region would fail on it. The acceptance test removes the one it created."""
    glue.delete_database(Name=name)


def leftover_report(session: Any, retained: Sequence[Resource], *, destroyed: bool,
                    deleted: Sequence[str] = ()) -> str:
    lines = [f"cdk destroy {'succeeded' if destroyed else 'FAILED: the stack or some of its resources remain'}"]
    if deleted:
        lines.append("deleted by the test after destroy: " + ", ".join(deleted))
    if not retained:
        lines.append("no resource of the stack has DeletionPolicy Retain")
    for resource in retained:
        try:
            state = {True: "still exists", False: "gone", None: "not checked"}[still_exists(session, resource)]
        except Exception as error:  # a report: never hide the rest of it
            state = f"unknown ({type(error).__name__})"
        lines.append(f"retained: {resource.resource_type} {resource.physical_id} ({resource.logical_id}): {state}")
    return "\n".join(lines)


# -- all of it ---------------------------------------------------------------------------------


@dataclass
class AcceptanceResult:
    stack_name: str
    bootstrap: Bootstrap | None = None
    deployment: Deployment | None = None
    run: RunCheck | None = None
    report: str = ""
    destroyed: bool = False


def run_acceptance(session: Any, cli: CdkCli, work_dir: Path, *, stack_name: str | None = None,
                   sample: Path = SAMPLE, rows: int = 1000, keep_retained: bool = False,
                   log: Callable[[str], None] = print, poll: float = 10.0) -> AcceptanceResult:
    """Synthesize, validate the state machine definitions, check the account, deploy, run the
    sample, destroy (always, once deploy was attempted) and report the leftovers. Raises
    AcceptanceError on the first failed check. `poll`: seconds between two looks at the execution
    (run_file)."""
    stack_name = stack_name or unique_stack_name()
    result = AcceptanceResult(stack_name)
    context = acceptance_context(stack_name)
    clients = session.client
    account = clients("sts").get_caller_identity()["Account"]
    region = session.region_name
    assembly = cli.synth(work_dir / "cdk.out", context)
    template = stack_template(assembly, stack_name)
    validate_definitions(clients("stepfunctions"), rendered_definitions(template, region), log)
    result.bootstrap = check_bootstrapped(clients("cloudformation"), clients("ssm"),
                                          required_version=required_bootstrap_version(assembly, stack_name),
                                          account=account, region=region)
    names = fixed_names(template)
    taken = existing_fixed_names(names, clients("glue"), clients("redshift-serverless"))
    if taken:
        raise AcceptanceError(
            f"already in {account}/{region}, so a deploy would fail: {', '.join(taken)} "
            "(left by an earlier deploy: the stack retains its Glue database); delete them or pick another region"
        )
    cfn = clients("cloudformation")
    retained: list[Resource] = []
    deployed_attempted = False
    try:
        log(f"deploying {stack_name} to {account}/{region} (Redshift Serverless takes a while)")
        deployed_attempted = True
        cli.deploy(assembly, stack_name, work_dir / "outputs.json")
        retained = retained_resources(cfn, stack_name)
        deployment = result.deployment = describe_deployment(cfn, stack_name, database=template_database(template))
        queue_url, _, _ = subscribe_queue(clients("sqs"), clients("sns"), deployment.topic_arn, f"{stack_name}-notifications")
        try:
            result.run = run_file(clients, deployment, sample, queue_url, rows_read=rows, poll=poll)
        finally:
            clients("sqs").delete_queue(QueueUrl=queue_url)
    finally:
        if deployed_attempted:
            result.destroyed, deleted = _destroy(session, cli, assembly, stack_name, names, keep_retained)
            result.report = leftover_report(session, retained, destroyed=result.destroyed, deleted=deleted)
            log(result.report)
    if not result.destroyed:
        raise AcceptanceError(f"{stack_name} was not destroyed:\n{result.report}")
    return result


def template_database(template: Mapping[str, Any]) -> str:
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::RedshiftServerless::Namespace":
            name = resource.get("Properties", {}).get("DbName")
            if isinstance(name, str):
                return name
    return "dev"


def _destroy(session: Any, cli: CdkCli, assembly: Path, stack_name: str, names: Mapping[str, Sequence[str]],
             keep_retained: bool) -> tuple[bool, list[str]]:
    """Empty the stack's deletable buckets (CloudFormation deletes only empty ones), destroy; once
    more if late log deliveries refilled a bucket. Then the Glue database, unless kept."""
    cfn, s3 = session.client("cloudformation"), session.client("s3")
    destroyed = False
    for _attempt in range(2):
        try:
            for bucket in stack_buckets(stack_resources(cfn, stack_name)):
                empty_bucket(s3, bucket)
        except Exception as error:  # the stack may never have been created
            print(f"could not empty the stack's buckets: {error}", file=sys.stderr)
        destroyed = cli.destroy(assembly, stack_name)
        if destroyed:
            break
    deleted = []
    if destroyed and not keep_retained:
        glue = session.client("glue")
        for name in names.get("AWS::Glue::Database", []):
            try:
                delete_glue_database(glue, name)
                deleted.append(f"Glue database {name}")
            except glue.exceptions.EntityNotFoundException:
                pass
    return destroyed, deleted


def write_definitions(template_file: Path, out_dir: Path, region: str) -> list[Path]:
    """Write each state machine's rendered definition to out_dir/<logical id>.asl.json (for
    `aws stepfunctions validate-state-machine-definition`, docs/deploying.md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for logical_id, (_type, definition) in rendered_definitions(json.loads(template_file.read_text()), region).items():
        path = out_dir / f"{logical_id}.asl.json"
        path.write_text(definition + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m tests.aws.acceptance <template.json> <out dir> [region]
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python -m tests.aws.acceptance cdk.out/<stack>.template.json <out dir> [region]")
    for written in write_definitions(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) == 4 else "us-east-1"):
        print(written)
