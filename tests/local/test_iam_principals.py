"""Role credentials from the emulated STS (issue 12, wiring plan step 1), on the REAL synthesized
template deployed into a real moto server: every role can be assumed by the service its trust policy
names, sessions are what GetCallerIdentity reports, and a trust check AWS would refuse is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airline_local.aws.iam.principals import (
    BROKER_ACCESS_KEY,
    InvalidTokenError,
    PrincipalRegistry,
    RoleBroker,
    TrustDeniedError,
    UnknownAccessKeyError,
)
from airline_local.aws.iam.template_policies import PolicyStore
from airline_local.aws.cfn import ACCOUNT_ID
from airline_local.local_stack import CloudAssembly, DeployedStack, deploy, synthesize
from airline_local.pipeline import LOCAL_CONTEXT


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> CloudAssembly:
    # One synth per session for the IAM modules (synthesize reuses an unchanged cdk.out).
    return CloudAssembly.load(synthesize(tmp_path_factory.getbasetemp() / "iam-cdk.out", LOCAL_CONTEXT))


@pytest.fixture(scope="module")
def deployed(emulator, assembly) -> DeployedStack:
    return deploy(assembly, emulator.client, emulator.job_runner)


@pytest.fixture(scope="module")
def store(assembly) -> PolicyStore:
    return PolicyStore.from_template(assembly.template)


@pytest.fixture()
def broker(emulator, store, deployed) -> Iterator[RoleBroker]:
    yield RoleBroker(store, emulator.endpoint_url)


def trusted_services(store: PolicyStore, lid: str) -> list[str]:
    services: list[str] = []
    for statement in store.role(lid).trust_policy.document["Statement"]:
        named = statement["Principal"]["Service"]
        services += [named] if isinstance(named, str) else named
    return services


def machine_role(assembly: CloudAssembly, deployed: DeployedStack) -> str:
    t = assembly.template
    (lid,) = [m for m in t.resources_of_type("AWS::StepFunctions::StateMachine") if t.ref(m) == deployed.state_machine_arn]
    return t.properties(lid)["RoleArn"]


def test_deploy_creates_every_template_role_in_the_emulated_iam_without_policies(emulator, store, deployed):
    iam = emulator.client("iam")
    for role in store.roles.values():
        found = iam.get_role(RoleName=role.name)["Role"]
        assert found["Arn"] == role.arn
        assert found["AssumeRolePolicyDocument"] == role.trust_policy.document
        # Policies stay out of moto: it would enforce them with its own evaluator.
        assert iam.list_role_policies(RoleName=role.name)["PolicyNames"] == []
        assert iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"] == []


def test_each_template_role_is_assumed_by_the_services_its_trust_policy_names(store, broker, assembly, deployed):
    assert len(store.roles) >= 10
    for lid, role in store.roles.items():
        for service in trusted_services(store, lid):
            # A state machine role's trust (per-file and backfill) requires a source state machine
            # of this account: the per-file machine's ARN is one.
            extra = (deployed.state_machine_arn, ACCOUNT_ID) if service == "states.amazonaws.com" else ()
            identity = broker.identity(lid, "check", service, *extra)
            assert identity.principal.arn == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{role.name}/check"
            assert broker.registry.resolve(identity.credentials.access_key_id,
                                           identity.credentials.session_token) is identity


def test_caller_identity_carries_the_session_name_and_a_stable_userid(store, broker, assembly, deployed):
    role = machine_role(assembly, deployed)
    sts = broker.client("sts", role, "ExecutionSession", "states.amazonaws.com", deployed.state_machine_arn, ACCOUNT_ID)
    first, second = sts.get_caller_identity(), sts.get_caller_identity()
    name = store.role(role).name
    assert first["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{name}/ExecutionSession"
    assert first["UserId"] == second["UserId"]
    assert first["UserId"].startswith("AROA") and first["UserId"].endswith(":ExecutionSession")
    identity = broker.identity(role, "ExecutionSession", "states.amazonaws.com", deployed.state_machine_arn, ACCOUNT_ID)
    assert identity.userid == first["UserId"]  # what aws:userid is in the check
    assert identity.principal.context_keys()["aws:userid"] == first["UserId"]
    # A new broker (fresh credentials, same role and session) sees the same role id: the role exists in IAM.
    other = RoleBroker(store, broker.endpoint_url).identity(role, "ExecutionSession", "states.amazonaws.com",
                                                            deployed.state_machine_arn, ACCOUNT_ID)
    assert other.credentials.access_key_id != identity.credentials.access_key_id
    assert other.userid == identity.userid


def test_credentials_and_clients_are_cached_per_role_and_session(broker, store):
    lid = next(lid for lid in store.roles if "glue.amazonaws.com" in trusted_services(store, lid))
    a = broker.credentials(lid, "GlueJobRunnerSession", "glue.amazonaws.com")
    assert broker.credentials(lid, "GlueJobRunnerSession", "glue.amazonaws.com") is a
    assert broker.credentials(lid, "other", "glue.amazonaws.com").access_key_id != a.access_key_id
    assert broker.client("s3", lid, "GlueJobRunnerSession", "glue.amazonaws.com") is broker.client(
        "s3", lid, "GlueJobRunnerSession", "glue.amazonaws.com")


def test_a_foreign_source_arn_is_refused_naming_the_trust_statement(broker, assembly, deployed, store):
    role = machine_role(assembly, deployed)
    foreign = "arn:aws:states:us-east-1:999999999999:stateMachine:someone-elses"
    with pytest.raises(TrustDeniedError) as denied:
        broker.credentials(role, "session", "states.amazonaws.com", foreign, ACCOUNT_ID)
    message = str(denied.value)
    lid = store.role(role).logical_id
    assert "User: states.amazonaws.com is not authorized to perform: sts:AssumeRole" in message
    assert f"the trust policy of {role} ({lid})" in message
    assert "Statement[0] Allow sts:AssumeRole condition" in message and "aws:SourceArn" in message
    assert foreign in message
    # Nor without the source ARN the trust statement requires, nor by a service it does not name.
    assert not broker.check_trust(role, "states.amazonaws.com")
    assert not broker.check_trust(role, "glue.amazonaws.com", deployed.state_machine_arn, ACCOUNT_ID)
    assert broker.check_trust(role, "states.amazonaws.com", deployed.state_machine_arn, ACCOUNT_ID)


def test_the_registry_never_defaults_an_unknown_key_or_a_wrong_token(broker, store):
    lid = next(lid for lid in store.roles if "glue.amazonaws.com" in trusted_services(store, lid))
    credentials = broker.credentials(lid, "session", "glue.amazonaws.com")
    with pytest.raises(UnknownAccessKeyError):
        broker.registry.resolve("AKIA" + "EXAMPLE000000000", None)
    with pytest.raises(InvalidTokenError):
        broker.registry.resolve(credentials.access_key_id, "not-the-token")
    with pytest.raises(InvalidTokenError):
        broker.registry.resolve(credentials.access_key_id, None)
    assert broker.registry.resolve(BROKER_ACCESS_KEY, None).kind == "broker"
    assert len(PrincipalRegistry()) == 0

