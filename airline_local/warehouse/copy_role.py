"""Redshift's COPY reads Amazon S3 as the IAM role the COPY names (local IAM check, wiring plan step 9).

On AWS, ``COPY ... IAM_ROLE default | 'arn'`` makes Redshift assume that role (it must be associated
with the namespace; ``default`` is the namespace's default role) and list the prefix and get each
object with the role's session: "COPY must have LIST access to the bucket and GET access for the
bucket objects". :class:`CopyRoleReader` does the same against the emulator: the role from the
template's namespace, a session minted by the role broker as ``redshift.amazonaws.com``, and real
ListObjectsV2 / GetObject calls the IAM check authorizes. A refusal is a :class:`CopySourceError` in
Redshift's words, so the statement (and the batch) FAILS as on AWS. docs/aws-notes.md, "Who an AWS
service calls as".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airline_local.warehouse.statements import CopySourceError

# The session Redshift gives the COPY role (only equality matters locally: docs/aws-notes.md).
REDSHIFT_SESSION_NAME = "RedshiftIamRoleSession"
REDSHIFT_SERVICE_PRINCIPAL = "redshift.amazonaws.com"


class CopyRoleReader:
    """``reader(s3_uri, iam_role)`` → ``[(key, bytes), ...]`` of every object under the prefix, read as
    the COPY's role. ``iam_role``: the COPY's IAM_ROLE value (``default`` or a role ARN).
    ``broker``: returns the role broker in force (each start of the IAM check makes a new one)."""

    def __init__(self, broker: Callable[[], Any], template: Any) -> None:
        namespaces = list(template.resources_of_type("AWS::RedshiftServerless::Namespace"))
        if len(namespaces) != 1:
            raise ValueError(f"the COPY role needs exactly one Redshift Serverless namespace, the template has {namespaces}")
        properties = template.properties(namespaces[0])
        self.broker = broker
        self.namespace = str(properties.get("NamespaceName") or namespaces[0])
        self.default_role: str | None = properties.get("DefaultIamRoleArn")
        self.associated = frozenset(str(r) for r in properties.get("IamRoles") or [])

    def role_arn(self, iam_role: str | None) -> str:
        """The role a COPY runs as: ``default`` → the namespace's default role; an ARN must be
        associated with the namespace (else Redshift refuses to get its credentials)."""
        if iam_role is None:
            raise CopySourceError("COPY from Amazon S3 needs IAM_ROLE: no credentials were given")
        role = self.default_role if iam_role.lower() == "default" else iam_role
        if role is None:
            raise CopySourceError(f"IAM_ROLE default: namespace {self.namespace} has no default IAM role")
        if role not in self.associated:
            raise CopySourceError(f"Not authorized to get credentials of role {role}: it is not associated with "
                                  f"namespace {self.namespace} (IamRoles: {sorted(self.associated)})")
        return role

    def __call__(self, uri: str, iam_role: str | None) -> list[tuple[str, bytes]]:
        role = self.role_arn(iam_role)
        try:
            s3 = self.broker().client("s3", role, REDSHIFT_SESSION_NAME, REDSHIFT_SERVICE_PRINCIPAL)
        except Exception as error:  # a trust policy that does not let Redshift assume the role
            raise CopySourceError(f"Not authorized to get credentials of role {role}: {error}") from error
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            keys = sorted(o["Key"] for page in pages for o in page.get("Contents", []))
            return [(f"s3://{bucket}/{key}", s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]
        except s3.exceptions.ClientError as error:
            # Redshift's wording for an S3 refusal during COPY; the detail names the policy.
            details = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            raise CopySourceError(
                f"S3ServiceException:{details.get('Message', 'Access Denied')},Status {status},"
                f"Error {details.get('Code', 'AccessDenied')},CanRetry 0\n  Details: COPY from {uri} as "
                f"{role} (session {REDSHIFT_SESSION_NAME})") from error
