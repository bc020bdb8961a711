"""Who calls: access keys of the emulator mapped to principals, and role credentials minted as AWS does.

Local mode gives every actor real credentials from the emulated STS (issue 12, docs/iam-check.md,
"Wiring plan" §2): :class:`RoleBroker` first checks the role's trust policy the way STS does for a
service (``sts:AssumeRole`` by the service principal, with ``aws:SourceArn``/``aws:SourceAccount``
when the service sends them), then calls ``AssumeRole`` over HTTP on the emulated STS and records
the minted key in the :class:`PrincipalRegistry`, where the IAM hook looks a request's access key up.

Role ids: moto's ``AssumedRole.user_id`` is the moto IAM role's id + ``:`` + session name only if the
role exists in moto IAM (otherwise a random id on every access), so the deploy creates every
template role in moto IAM (name + trust policy only: never a policy, which moto would enforce with
its own evaluator), and ``aws:userid`` here is the ``AssumedRoleId`` moto returns, the same string
GetCallerIdentity reports.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from airline_local.aws.iam.authorizer import AccessDeniedError, Authorization, Authorizer
from airline_local.aws.iam.evaluator import Principal
from airline_local.aws.iam.template_policies import PolicyStore

__all__ = [
    "BROKER_ACCESS_KEY",
    "Credentials",
    "Identity",
    "InvalidTokenError",
    "PrincipalRegistry",
    "RoleBroker",
    "TrustDeniedError",
    "UnknownAccessKeyError",
]

#: The key the broker signs its AssumeRole calls with (20 characters, as moto's parser needs). The
#: hook lets it call sts:AssumeRole and nothing else: the broker has already checked the trust
#: policy for the service that assumes the role.
BROKER_ACCESS_KEY = "LOCALROLEBROKERKEY00"
_BROKER_SECRET = "local-role-broker-secret-not-a-real-credential"

# Refresh minted credentials well before AssumeRole's default hour runs out.
_CREDENTIAL_LIFETIME_SECONDS = 50 * 60


class UnknownAccessKeyError(Exception):
    """The request's access key was not issued by this emulator (never read as an allow)."""


class InvalidTokenError(Exception):
    """The request's session token does not belong to its access key."""


class TrustDeniedError(AccessDeniedError):
    """The role's trust policy does not let the service assume it. The message names the trust
    policy (the role's logical id), each of its statements for that service and the context sent."""

    def __init__(self, authorization: Authorization, trust_document: Mapping[str, Any], context: Mapping[str, Any]) -> None:
        super().__init__(authorization)
        service = authorization.principal.arn
        statements = trust_document.get("Statement", [])
        if isinstance(statements, Mapping):
            statements = [statements]
        described = []
        for index, statement in enumerate(statements):
            principals = (statement.get("Principal") or {})
            services = principals.get("Service", []) if isinstance(principals, Mapping) else []
            services = [services] if isinstance(services, str) else list(services)
            if service in services or principals == "*":
                label = statement.get("Sid") or f"Statement[{index}]"
                described.append(f"{label} {statement.get('Effect')} {statement.get('Action')} "
                                 f"condition {json.dumps(statement.get('Condition', {}), sort_keys=True)}")
        sent = json.dumps(dict(context), sort_keys=True)
        policy = authorization.checks[0].decision.request.resource if authorization.checks else ""
        self.trust_statements = tuple(described)
        self.args = (f"{self.args[0]} Trust statements of {policy} for {service}: "
                     f"{'; '.join(described) or 'none'}; request context: {sent}",)


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None

    def as_client_kwargs(self) -> dict[str, str]:
        kwargs = {"aws_access_key_id": self.access_key_id, "aws_secret_access_key": self.secret_access_key}
        if self.session_token:
            kwargs["aws_session_token"] = self.session_token
        return kwargs


@dataclass(frozen=True)
class Identity:
    """What an access key stands for.

    ``kind``: ``"role-session"`` (``principal`` is the evaluator's principal of the session),
    ``"broker"`` (the role broker: sts:AssumeRole only) or ``"operator"`` (the emulator's own
    clients: the data engineer / deployer; see docs/iam-check.md).
    """

    kind: str
    credentials: Credentials
    principal: Principal | None = None
    arn: str = ""  # session ARN, or the operator's/broker's ARN
    userid: str = ""  # aws:userid (ROLE-ID:SESSION for a role session)

    @property
    def role_arn(self) -> str | None:
        return self.principal.role_arn if self.principal is not None else None

    @property
    def session_name(self) -> str | None:
        return self.principal.session_name if self.principal is not None else None


class PrincipalRegistry:
    """access key id → :class:`Identity`. Reads are a plain dict lookup; writes take a lock."""

    def __init__(self) -> None:
        self._by_key: dict[str, Identity] = {}
        self._lock = threading.Lock()

    def register(self, identity: Identity) -> None:
        with self._lock:
            self._by_key = {**self._by_key, identity.credentials.access_key_id: identity}

    def get(self, access_key_id: str) -> Identity | None:
        return self._by_key.get(access_key_id)

    def identities(self) -> list[Identity]:
        """Every identity issued so far (the operator, the broker, each role session)."""
        return list(self._by_key.values())

    def resolve(self, access_key_id: str | None, session_token: str | None) -> Identity:
        """The identity of a request: unknown key → :class:`UnknownAccessKeyError`; a token that is
        not the key's → :class:`InvalidTokenError`. Never a default identity."""
        identity = self._by_key.get(access_key_id or "")
        if identity is None:
            raise UnknownAccessKeyError(f"the access key {access_key_id!r} was not issued by the local emulator")
        expected = identity.credentials.session_token
        if (session_token or None) != (expected or None):
            raise InvalidTokenError(f"the security token of access key {access_key_id} is not the one issued with it")
        return identity

    def __len__(self) -> int:
        return len(self._by_key)


class RoleBroker:
    """Role credentials as AWS services get them: trust check, then a real AssumeRole on the emulated STS.

    ``credentials(role, session_name, service_principal, source_arn=None, source_account=None)``:
    the trust check runs on every call (its decision is memoized: the template is static), the
    AssumeRole once per ``(role ARN, session name)`` (cached under a lock, renewed after 50 minutes).
    ``client(service, ...)``: a boto3 client signed with those credentials, cached per (service, key).
    """

    def __init__(self, store: PolicyStore, endpoint_url: str, registry: PrincipalRegistry | None = None, *,
                 authorizer: Authorizer | None = None, region: str | None = None) -> None:
        self.store = store
        self.authorizer = authorizer or Authorizer(store)
        self.endpoint_url = endpoint_url
        self.region = region or store.region
        self.registry = registry if registry is not None else PrincipalRegistry()
        broker_credentials = Credentials(BROKER_ACCESS_KEY, _BROKER_SECRET, None)
        self.registry.register(Identity("broker", broker_credentials, arn="local-role-broker"))
        self._lock = threading.Lock()
        self._credentials: dict[tuple[str, str], tuple[float, Identity]] = {}
        self._trust: dict[tuple[str, str, str | None, str | None], Authorization] = {}
        self._clients: dict[tuple[str, str], Any] = {}
        self._sts: Any = None
        # One boto3 session for every client the broker makes (always under self._lock): a new
        # session per client re-reads the service's model, ~0.5 s a client on a loaded machine.
        self._session = boto3.session.Session()

    # -- trust ----------------------------------------------------------------------------------

    def check_trust(self, role: str, service_principal: str, source_arn: str | None = None,
                    source_account: str | None = None) -> Authorization:
        """May ``service_principal`` assume ``role`` (logical id, ARN or name)? The Authorization
        of sts:AssumeRole against the role's trust policy (authoritative); raises nothing."""
        role_arn = self.store.role(role).arn
        key = (role_arn, service_principal, source_arn, source_account)
        found = self._trust.get(key)
        if found is None:
            context: dict[str, Any] = {}
            if source_arn is not None:
                context["aws:SourceArn"] = source_arn
            if source_account is not None:
                context["aws:SourceAccount"] = source_account
            found = self.authorizer.authorize(Principal.service(service_principal), "sts:AssumeRole", role_arn, context)
            with self._lock:
                self._trust[key] = found
        return found

    # -- credentials ----------------------------------------------------------------------------

    def identity(self, role: str, session_name: str, service_principal: str, source_arn: str | None = None,
                 source_account: str | None = None) -> Identity:
        """The registered identity of ``role``'s session ``session_name``, as ``service_principal``
        assumes it. A refused trust check raises :class:`TrustDeniedError` (AWS's AccessDenied)."""
        trust = self.check_trust(role, service_principal, source_arn, source_account)
        role_arn = self.store.role(role).arn
        if not trust.allowed:
            context = {k: v for k, v in (("aws:SourceArn", source_arn), ("aws:SourceAccount", source_account)) if v}
            raise TrustDeniedError(trust, self.store.role(role).trust_policy.document, context)
        key = (role_arn, session_name)
        cached = self._credentials.get(key)
        if cached is not None and time.monotonic() - cached[0] < _CREDENTIAL_LIFETIME_SECONDS:
            return cached[1]
        with self._lock:
            cached = self._credentials.get(key)
            if cached is not None and time.monotonic() - cached[0] < _CREDENTIAL_LIFETIME_SECONDS:
                return cached[1]
            identity = self._assume_role(role_arn, session_name)
            self.registry.register(identity)
            self._credentials[key] = (time.monotonic(), identity)
            return identity

    def credentials(self, role: str, session_name: str, service_principal: str, source_arn: str | None = None,
                    source_account: str | None = None) -> Credentials:
        return self.identity(role, session_name, service_principal, source_arn, source_account).credentials

    def client(self, service: str, role: str, session_name: str, service_principal: str,
               source_arn: str | None = None, source_account: str | None = None, **kwargs: Any) -> Any:
        """A boto3 client for the emulator signed as ``role``'s session (cached)."""
        credentials = self.credentials(role, session_name, service_principal, source_arn, source_account)
        key = (service, credentials.access_key_id)
        client = self._clients.get(key) if not kwargs else None
        if client is not None:
            return client
        with self._lock:  # creating boto3 clients is not thread-safe; using them is
            client = self._clients.get(key) if not kwargs else None
            if client is None:
                client = self._new_client(service, credentials, **kwargs)
                if not kwargs:
                    self._clients[key] = client
            return client

    def _new_client(self, service: str, credentials: Credentials, **kwargs: Any) -> Any:
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "config": Config(retries={"max_attempts": 2}),
            **credentials.as_client_kwargs(),
            **kwargs,
        }
        return self._session.client(service, **options)

    def _assume_role(self, role_arn: str, session_name: str) -> Identity:
        if self._sts is None:
            self._sts = self._new_client("sts", Credentials(BROKER_ACCESS_KEY, _BROKER_SECRET, None))
        answer = self._sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)
        minted = answer["Credentials"]
        credentials = Credentials(minted["AccessKeyId"], minted["SecretAccessKey"], minted.get("SessionToken"))
        assumed = answer["AssumedRoleUser"]  # AssumedRoleId = ROLE-ID:SESSION, Arn = session ARN
        role_id = assumed["AssumedRoleId"].split(":", 1)[0]
        principal = Principal.role_session(role_arn, session_name, role_id)
        if principal.arn != assumed["Arn"]:
            raise RuntimeError(f"emulated STS returned session ARN {assumed['Arn']}, expected {principal.arn}")
        return Identity("role-session", credentials, principal, arn=principal.arn, userid=assumed["AssumedRoleId"])

