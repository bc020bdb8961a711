"""What makes `cdk deploy`, the first upload and its email work in a real account, checked on the
templates as a user's `cdk deploy` synthesizes them (docs/aws-notes.md has the AWS pages).

The CDK CLI runs the app with CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION from the profile, so ARNs
render with literal account and region: synthesize that way too (one app, cdk-nag on, a region
with three zones and us-west-1, which has two), besides the environment-agnostic template of the
session fixture. Each rule below is checked on every template, not on one instance of it.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import PROJECT_ROOT
from tests.infra.template_helpers import as_list, render, resources_of

ACCOUNT = "111122223333"
# stack name -> (region, extra context)
DEPLOYED = {
    "EuWest1": ("eu-west-1", {}),
    "UsWest1": ("us-west-1", {}),
    "EuWest1AzIds": ("eu-west-1", {"redshiftSubnetAzIds": ["euw1-az3", "euw1-az1", "euw1-az2"]}),
}


@pytest.fixture(scope="module")
def deployed_assembly(tmp_path_factory) -> Path:
    """The app as `cdk deploy` synthesizes it, one stack per region/configuration, cdk-nag on:
    synth itself fails on any unacknowledged finding (ValidationFailed)."""
    from aws_cdk import App, Environment, Validations
    from cdk_nag import AwsSolutionsChecks

    from stacks.config import config_from_context
    from stacks.pipeline_stack import PipelineStack

    outdir = tmp_path_factory.mktemp("deployed")
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    app = App(outdir=str(outdir), context=context)
    for name, (region, extra) in DEPLOYED.items():
        PipelineStack(app, name, env=Environment(account=ACCOUNT, region=region),
                      config=config_from_context({**context, **extra}))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    return outdir


@pytest.fixture(scope="module")
def deployed(deployed_assembly: Path) -> dict[str, dict]:
    return {name: json.loads((deployed_assembly / f"{name}.template.json").read_text()) for name in DEPLOYED}


@pytest.fixture(params=["agnostic", *DEPLOYED])
def each_template(request, template_json) -> dict:
    if request.param == "agnostic":
        return template_json
    return request.getfixturevalue("deployed")[request.param]


# -- synthesis as the CLI does it --------------------------------------------------------------

def test_deployed_templates_render_the_account_and_region_as_literals(deployed):
    for name, (region, _) in DEPLOYED.items():
        text = json.dumps(deployed[name])
        assert f":{region}:{ACCOUNT}:" in text, name
        assert f"cdk-hnb659fds-assets-{ACCOUNT}-{region}" in text, name


@pytest.mark.parametrize("name", sorted(DEPLOYED))
def test_cfn_lint_reports_no_errors_on_the_deployed_template(deployed_assembly: Path, name: str):
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), "--format", "parseable", "--", str(deployed_assembly / f"{name}.template.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 4, 8, 12), result.stdout + result.stderr
    rules = [line.split(":")[5] for line in result.stdout.splitlines() if line.count(":") >= 6]
    assert not [r for r in rules if r.startswith("E")], result.stdout


def test_synth_needs_no_context_lookup(deployed_assembly: Path):
    """A lookup (e.g. the region's zones) needs credentials at synth: `cdk synth` would fail offline."""
    manifest = json.loads((deployed_assembly / "manifest.json").read_text())
    assert not manifest.get("missing"), manifest.get("missing")


# -- Redshift Serverless subnets ---------------------------------------------------------------

def _workgroup_subnets(template: dict) -> list[dict]:
    (workgroup,) = resources_of(template, "AWS::RedshiftServerless::Workgroup").values()
    return [template["Resources"][ref["Ref"]]["Properties"] for ref in workgroup["Properties"]["SubnetIds"]]


def _zone_positions(template: dict) -> list[int]:
    return [s["AvailabilityZone"]["Fn::Select"][0] for s in _workgroup_subnets(template)]


def test_workgroup_subnets_span_three_zones_or_two_in_us_west_1(deployed, template_json):
    assert _zone_positions(deployed["EuWest1"]) == [0, 1, 2]
    # us-west-1 has two zones: three subnets, two of them in the first zone.
    assert _zone_positions(deployed["UsWest1"]) == [0, 1, 0]
    # Without a region the template decides at deploy time.
    third = _workgroup_subnets(template_json)[2]["AvailabilityZone"]
    condition, when_two, otherwise = third["Fn::If"]
    assert template_json["Conditions"][condition] == {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-west-1"]}
    assert (when_two["Fn::Select"][0], otherwise["Fn::Select"][0]) == (0, 2)


def test_configured_zone_ids_place_the_subnets_by_id(deployed):
    subnets = _workgroup_subnets(deployed["EuWest1AzIds"])
    assert [s.get("AvailabilityZoneId") for s in subnets] == ["euw1-az3", "euw1-az1", "euw1-az2"]
    assert not any("AvailabilityZone" in s for s in subnets)


@pytest.mark.parametrize("az_ids, region, message", [
    (["euw1-az1", "euw1-az2"], "eu-west-1", "expected 3 AZ IDs"),
    (["euw1-az1", "euw1-az1", "euw1-az2"], "eu-west-1", "span 2 zone"),
    (["usw1-az1", "usw1-az1", "usw1-az1"], "us-west-1", "span 1 zone"),
    (["eu-west-1a", "eu-west-1b", "eu-west-1c"], "eu-west-1", "not an Availability Zone ID"),
    (["use1-az1", "use1-az2", "use1-az4"], "eu-west-1", "not zones of eu-west-1"),
])
def test_zone_ids_that_break_redshifts_rule_fail_synth_naming_it(az_ids, region, message):
    from stacks.config import ConfigError, check_subnet_az_ids

    with pytest.raises(ConfigError, match=message) as error:
        check_subnet_az_ids(tuple(az_ids), region)
    assert "redshiftSubnetAzIds" in str(error.value)


def test_two_zones_with_one_holding_two_subnets_is_enough_in_us_west_1():
    from stacks.config import az_id_prefix, check_subnet_az_ids

    check_subnet_az_ids(("usw1-az1", "usw1-az3", "usw1-az1"), "us-west-1")
    assert [az_id_prefix(r) for r in ("eu-west-1", "ap-southeast-2", "us-gov-west-1", "ca-central-1")] == [
        "euw1", "apse2", "usgw1", "cac1"]


# -- CloudFormation: a failed first deploy can be retried ----------------------------------------

def test_no_resource_survives_a_create_rollback(each_template):
    """`Retain` resources outlive a rolled-back *create*; a named one then blocks the retry with
    "already exists". Kept resources use RetainExceptOnCreate (RETAIN_ON_UPDATE_OR_DELETE)."""
    retained = {k: v["DeletionPolicy"] for k, v in each_template["Resources"].items()
                if v.get("DeletionPolicy", "Delete") not in ("Delete", "RetainExceptOnCreate", "Snapshot")}
    assert retained == {}


# -- KMS: every principal that writes or reads through an encrypted resource can use its key -----

def _identity_statements(template: dict) -> dict[str, list[dict]]:
    """role logical id -> Allow statements of its inline and attached policies."""
    out: dict[str, list[dict]] = {}
    for rtype in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for resource in resources_of(template, rtype).values():
            props = resource["Properties"]
            for role in props.get("Roles", []):
                out.setdefault(role["Ref"], []).extend(
                    s for s in props["PolicyDocument"]["Statement"] if s["Effect"] == "Allow")
    return out


def _allows(statement: dict, action: str, resource: str) -> bool:
    actions, resources = as_list(statement.get("Action", [])), [render(r) for r in as_list(statement.get("Resource", []))]
    return (any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)
            and any(r == "*" or fnmatch.fnmatchcase(resource, r) for r in resources))


def _kms_calls(template: dict, region: str = "us-east-1") -> dict[tuple[str, str, str], bool]:
    """(role, call, resource) -> whether the KMS requests made on its behalf are allowed, for every
    call a role's own policies allow on an encrypted resource, judged by the project's IAM evaluator (identity
    and key policies, encryption context, kms:ViaService: airline_local/aws/iam/authorizer.py):
    object writes and reads of an SSE-KMS bucket (at each prefix the role is granted), publishes to
    an encrypted topic, sends and receives of an encrypted queue, reads of a secret."""
    from airline_local.aws.cfn import ACCOUNT_ID, Template
    from airline_local.aws.iam.authorizer import Authorizer
    from airline_local.aws.iam.template_policies import PolicyStore

    # The deployed templates carry the literal account: the evaluator's principals are the local one's.
    body = json.loads(json.dumps(template).replace(ACCOUNT, ACCOUNT_ID))
    store = PolicyStore.from_template(Template(body, region=region))
    authorizer = Authorizer(store)
    calls_made: dict[tuple[str, str, str], bool] = {}
    for role in store.roles.values():
        session = store.session(role.logical_id, "kms-rule")
        granted = [r for policy in role.policies for s in as_list(policy.document.get("Statement", []))
                   if s.get("Effect") == "Allow" for r in as_list(s.get("Resource", []))]
        for binding in store.encryption.values():
            arn = binding.resource_arn
            calls = {
                "s3": [(action, re.sub(r"[*?]", "x", r)) for r in granted if r.startswith(f"{arn}/")
                       for action in ("s3:PutObject", "s3:GetObject")],
                "sns": [("sns:Publish", arn)],
                "sqs": [("sqs:SendMessage", arn), ("sqs:ReceiveMessage", arn)],
                "secretsmanager": [("secretsmanager:GetSecretValue", arn)],
            }.get(binding.kind, [])
            for action, resource in calls:
                authorization = authorizer.authorize(session, action, resource, {"aws:SecureTransport": True})
                if authorization.checks[0].allowed:
                    call = (role.logical_id, action, binding.logical_id)
                    calls_made[call] = calls_made.get(call, True) and authorization.allowed
    return calls_made


def _kms_gaps(template: dict, region: str = "us-east-1") -> list[tuple[str, str, str]]:
    return sorted(call for call, allowed in _kms_calls(template, region).items() if not allowed)


def _region_of(each_template_id: str) -> str:
    return DEPLOYED[each_template_id][0] if each_template_id in DEPLOYED else "us-east-1"


def test_every_publisher_and_reader_of_an_encrypted_resource_can_use_its_key(each_template, request):
    """SNS asks for a data key as the publisher (kms:GenerateDataKey* and kms:Decrypt); S3 does the
    same for SSE-KMS writes and decrypts for reads; Secrets Manager decrypts a secret's value with
    the caller's kms:Decrypt (docs/aws-notes.md)."""
    calls = _kms_calls(each_template, _region_of(request.node.callspec.params["each_template"]))
    assert sorted(call for call, allowed in calls.items() if not allowed) == []
    # Not vacuous: the email, the job's object reads and writes and the warehouse secret are judged.
    judged = {(action, resource.rstrip("0123456789ABCDEF")) for _, action, resource in calls}
    assert {("sns:Publish", "NotificationsTopic"), ("s3:PutObject", "StorageRawBucket"),
            ("s3:GetObject", "StorageRawBucket"), ("secretsmanager:GetSecretValue", "WarehouseAdminSecret")} <= judged, judged


def test_the_kms_rule_catches_a_publisher_without_the_key(template_json):
    """The rule above is live: the state machine's role without kms:GenerateDataKey* (the defect
    that sent no email) is found."""
    broken = json.loads(json.dumps(template_json))
    for policy in resources_of(broken, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = [a for a in as_list(statement["Action"]) if a != "kms:GenerateDataKey*"]
            statement["Action"] = actions or ["kms:Describe*"]
    assert any(call == "sns:Publish" and role.startswith("OrchestrationStateMachine")
               for role, call, _ in _kms_gaps(broken))


def test_encrypted_log_groups_can_be_written_by_cloudwatch_logs(each_template):
    for group_id, group in resources_of(each_template, "AWS::Logs::LogGroup").items():
        key = group["Properties"].get("KmsKeyId")
        if key is None:
            continue
        key_id = render(key)[1:].split(".")[0]
        statements = each_template["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
        logs = [s for s in statements if any(render(p).startswith("logs.")
                                             for p in as_list(s.get("Principal", {}).get("Service", [])))]
        assert any(_allows({**s, "Resource": "*"}, "kms:GenerateDataKey", "*") for s in logs), group_id


# -- Redshift Data API: a statement is described only by the identity that ran it -------------------

_OWN_STATEMENT_ACTIONS = ("redshift-data:DescribeStatement", "redshift-data:GetStatementResult",
                          "redshift-data:CancelStatement")


def test_only_roles_that_run_statements_read_statements(each_template):
    """Describe/GetStatementResult/Cancel work only on the caller's own statements: a role that
    reads statements but runs none would only ever be denied."""
    for role, statements in _identity_statements(each_template).items():
        reads = [s for s in statements if set(as_list(s["Action"])) & set(_OWN_STATEMENT_ACTIONS)]
        if not reads:
            continue
        runs = any(set(as_list(s["Action"])) & {"redshift-data:ExecuteStatement", "redshift-data:BatchExecuteStatement"}
                   for s in statements)
        assert runs, f"{role} reads Data API statements but runs none"
        for statement in reads:
            assert statement["Condition"] == {"StringEquals": {"redshift-data:statement-owner-iam-userid": "${aws:userid}"}}


def test_a_provider_polls_its_statement_from_the_function_that_ran_it(each_template):
    """aws:userid is the role and the session name, which for Lambda is the function's own: the
    Provider's isComplete must be the very function whose onEvent submitted the batch."""
    functions = resources_of(each_template, "AWS::Lambda::Function")
    checked = 0
    for function in functions.values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        if "USER_IS_COMPLETE_FUNCTION_ARN" in variables:
            assert render(variables["USER_IS_COMPLETE_FUNCTION_ARN"]) == render(variables["USER_ON_EVENT_FUNCTION_ARN"])
            checked += 1
    assert checked >= 1
