"""The local IAM check (airline_local.aws.iam) in moto's single authorization choke point
(moto.core.authorization): every request authenticated and authorized as AWS would, a refusal in
the service's own protocol. Off (RUNTIME.iam_check None): moto as shipped.

Targets moto 5.2.5. Tested in tests/local/test_iam_hook.py and the other tests/local/test_iam_*.py.
Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import json
import re
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME
from airline_local.aws.patches.s3 import s3_error


_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")
# sqs: botocore 1.44 speaks the JSON protocol to SQS (AmazonSQS.<Operation>).
_JSON_SERVICES = frozenset({"glue", "stepfunctions", "events", "kms", "redshift-data", "logs", "sqs"})


def check_iam_of_every_call() -> None:
    """AWS authenticates and authorizes every request; moto (INITIAL_NO_AUTH_ACTION_COUNT = inf)
    does neither, and its own IAM enforcement ignores resource policies and most conditions
    (docs/iam-check.md). With `RUNTIME.iam_check` set, moto's single choke point,
    `ActionAuthenticatorMixin._authenticate_and_authorize_action` (every service's call_action and
    each S3 handler call it after parsing, before acting), asks the local IAM check instead, and a
    refusal is the service's own error in its own protocol. Off (None): moto's code, unchanged.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html.
    Test: tests/local/test_iam_hook.py.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin.__dict__["_authenticate_and_authorize_action"]

    def _authenticate_and_authorize_action(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        check = RUNTIME.iam_check
        if check is None:
            return original(self, iam_request_cls, resource)
        try:
            call = _iam_call(self, resource)
        except Exception as error:  # a request the check cannot read: an error, never an allow
            verdict = check.unjudged(f"{self.service_name}: {error}")
        else:
            verdict = check.check(call, *_signed_credentials(self))
        self.airline_iam_verdict = verdict  # the Data API handler reads the caller from here
        if not verdict.allowed:
            raise _iam_error(self.service_name, verdict)
        return None

    replace(ActionAuthenticatorMixin, "_authenticate_and_authorize_action", _authenticate_and_authorize_action)


def _signed_credentials(response: Any) -> tuple[str | None, str | None]:
    """The SigV4 access key id (moto's own parser needs exactly 20 characters) and session token."""
    headers = response.headers
    found = _CREDENTIAL.search(headers.get("Authorization", ""))
    return (found.group(1) if found else None), headers.get("X-Amz-Security-Token")


def _iam_call(response: Any, resource: str) -> Any:
    from airline_local.aws.iam.requests import Call, s3_operation

    from urllib.parse import parse_qsl, unquote, urlparse

    service = response.service_name
    if service == "s3":
        path = resource.split(":::", 1)[-1]
        bucket, _, key = path.partition("/")
        # The URL's own query (moto's S3 querystring also holds the headers and its ACTION_MAP name).
        query = dict(parse_qsl(urlparse(response.uri).query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("x-amz-copy-source")}
        bucket_name = None if bucket in ("", "*") else bucket
        operation = s3_operation(response.method, bucket_name, key or None, query, headers)
        return Call("s3", operation, response.region, response.current_account, {"body": response.raw_body},
                    bucket_name, key or None, headers, query)
    if service == "awslambda":  # REST: a function is named in the path (Invoke's body is its payload)
        function = re.search(r"/functions/([^/]+)", urlparse(response.uri).path)
        if function:
            params = {"FunctionName": unquote(function.group(1))}
        else:  # CreateFunction: the JSON body names it
            body = response.body.decode("utf-8") if isinstance(response.body, bytes) else (response.body or "")
            params = json.loads(body or "{}")
        return Call(service, response._get_action(), response.region, response.current_account, params)
    if service in _JSON_SERVICES:
        body = response.body.decode("utf-8") if isinstance(response.body, bytes) else (response.body or "")
        params = json.loads(body or "{}")
    elif service == "cloudwatch":  # botocore speaks CBOR to CloudWatch, which moto parses into .params
        params = dict(response.params or {})
    else:  # query protocol: form parameters are in the querystring
        params = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in (response.querystring or {}).items()}
    return Call(service, response._get_action(), response.region, response.current_account, params)


def _iam_error(service: str, verdict: Any) -> Exception:
    """The refusal as the service returns it: JSON `__type` (glue, states, events, kms, Data API),
    query XML ErrorResponse (sns, sts, iam), S3 REST XML with a 403 (400 for InvalidToken)."""
    from moto.core.exceptions import JsonRESTError, _RESTError

    json_service = service in _JSON_SERVICES or service == "awslambda"  # Lambda: REST with JSON errors
    if verdict.outcome == "unknown-key":
        code = "InvalidAccessKeyId" if service == "s3" else ("UnrecognizedClientException" if json_service else "InvalidClientTokenId")
        message = ("The AWS Access Key Id you provided does not exist in our records." if service == "s3"
                   else "The security token included in the request is invalid.")
        status = 400 if json_service else 403
    elif verdict.outcome == "bad-token":
        code = "InvalidToken" if service == "s3" else ("UnrecognizedClientException" if json_service else "InvalidClientTokenId")
        message = ("The provided token is malformed or otherwise invalid." if service == "s3"
                   else "The security token included in the request is invalid.")
        status = 400 if (json_service or service == "s3") else 403
    elif verdict.outcome == "unmapped":
        code, message, status = "LocalIamCheckError", verdict.message, 400
    else:
        code = verdict.code or "AccessDenied"
        message = verdict.message
        status = 400 if (json_service or code.startswith("KMS")) else 403
    if verdict.outcome in ("unknown-key", "bad-token"):
        message = f"{message} (local IAM check: {verdict.message})"
    if service == "s3":
        return s3_error(code, message, status)
    if json_service:
        json_error = JsonRESTError(code, message)
        json_error.code = status
        return json_error
    query_error = _RESTError(code, message)
    query_error.code = status
    # AWS's query-protocol error carries a RequestId next to the Error (moto's lacks it, and the
    # state machine's SNS integration reads it to build the task failure's cause).
    from xmltodict import unparse

    query_error.description = unparse({"ErrorResponse": {
        "Error": {"Type": "Sender", "Code": code, "Message": message}, "RequestId": "local-iam-check"}}, full_document=True)
    return query_error


PATCHES = (check_iam_of_every_call,)
