"""The Redshift Data API (moto.redshiftdata): statements run on the local warehouse
(airline_local.warehouse.redshift_data, PostgreSQL).

Targets moto 5.2.5. Tested in tests/local/test_moto_patches.py (the redshift-data tests) and
tests/local/test_iam_data_api.py. Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME

LOG = logging.getLogger(__name__)


REDSHIFT_DATA_ACTIONS = (
    "batch_execute_statement",
    "execute_statement",
    "describe_statement",
    "get_statement_result",
    "cancel_statement",
    "list_statements",
)


def route_redshift_data_to_local_warehouse() -> None:
    """The Redshift Data API executes SQL: BatchExecuteStatement / ExecuteStatement /
    DescribeStatement / GetStatementResult (and Cancel/ListStatements where the local warehouse
    has them) go to `RUNTIME.data_api`. moto 5.2.5 has no BatchExecuteStatement and executes
    nothing.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/redshift-data/latest/APIReference/API_BatchExecuteStatement.html.
    Test: tests/local/test_moto_patches.py::test_redshift_data_calls_reach_the_local_warehouse.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.redshiftdata.responses import RedshiftDataAPIServiceResponse

    for action in REDSHIFT_DATA_ACTIONS:
        original = RedshiftDataAPIServiceResponse.__dict__.get(action)
        replace(RedshiftDataAPIServiceResponse, action, _data_api_handler(action, original))


def _data_api_handler(action: str, moto_handler: Callable[..., Any] | None) -> Callable[..., Any]:
    from moto.core.exceptions import JsonRESTError

    def handler(self: Any) -> Any:
        data_api = RUNTIME.data_api
        method = getattr(data_api, action, None) if data_api is not None else None
        if method is None:
            if moto_handler is not None and data_api is None:
                return moto_handler(self)
            raise JsonRESTError(
                "ValidationException",
                f"The local Redshift Data API does not support {action} "
                "(no local warehouse is attached to the emulator)" if data_api is None
                else f"The local Redshift Data API does not support {action}",
            )
        body = self.body.decode("utf-8") if isinstance(self.body, bytes) else (self.body or "")
        params = json.loads(body or "{}")
        try:
            result = method(params, **_statement_owner(self, action))
        except Exception as error:
            code = getattr(error, "code", None) or getattr(error, "error_code", None)
            message = getattr(error, "message", None) or str(error)
            if not isinstance(code, str) or not code:
                LOG.exception("local Data API %s failed", action)
                code = "InternalServerException"
            rest_error = JsonRESTError(code, message)
            if code == "InternalServerException":
                rest_error.code = 500
            raise rest_error from error
        return 200, {}, json.dumps(result, default=_json_default)

    handler.__name__ = action
    return handler


def _statement_owner(response: Any, action: str) -> dict[str, Any]:
    """With the IAM check on, who runs a statement becomes its owner (aws:userid of the
    signing identity, which the hook left on the response); its DescribeStatement,
    GetStatementResult and CancelStatement are then authorized with
    redshift-data:statement-owner-iam-userid = that owner."""
    if RUNTIME.iam_check is None or action not in ("execute_statement", "batch_execute_statement"):
        return {}
    identity = getattr(getattr(response, "airline_iam_verdict", None), "identity", None)
    if identity is None:
        raise RuntimeError(f"redshift-data {action} reached the handler without an IAM verdict")
    return {"caller": identity.userid or identity.arn}


def _json_default(value: Any) -> Any:
    # The Data API's JSON protocol carries timestamps as epoch seconds.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


PATCHES = (route_redshift_data_to_local_warehouse,)
