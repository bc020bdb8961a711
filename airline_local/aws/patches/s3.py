"""S3 PutObject as AWS does it: a conditional write is atomic; and a lost reply, on demand.

moto 5.2.5 checks `If-None-Match: *` (and `If-Match`) and then writes, with no lock between the
two: two concurrent create-only writes of one key can both pass the check and both answer 200.
S3 lets exactly one of them succeed, the other gets 412 Precondition Failed (or 409
ConditionalRequestConflict; docs/aws-notes.md, "Conditional writes"). The state machine's
idempotency gate relies on that, so `make_conditional_writes_atomic` runs each PutObject's check
and write under a lock of its bucket and key.

`S3_FAULTS` lets a test lose the reply of a PutObject that S3 stored: the object is written,
and the caller gets a 500 InternalError (a retryable error, as S3 answers one in rare cases),
so the caller's retry finds its own object there. It can also refuse PutObjects with 503 SlowDown
without storing them (S3 busy for longer than the caller retries).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from airline_local.aws.patches.patching import replace

__all__ = ["PATCHES", "S3_FAULTS", "S3Faults", "make_conditional_writes_atomic", "s3_error"]


class S3Faults:
    """Faults a test injects into the emulated S3 (each is used once)."""

    def __init__(self) -> None:
        self._lost_replies: deque[str] = deque()
        self._refusals: deque[str] = deque()
        self._lock = threading.Lock()
        self.lost: list[str] = []  # the keys whose reply was lost, oldest first
        self.refused: list[str] = []  # the keys of the PutObjects refused, oldest first

    def refuse_next_puts(self, key_prefix: str, times: int) -> None:
        """The next `times` PutObjects of keys under `key_prefix` store nothing and get 503."""
        with self._lock:
            self._refusals.extend([key_prefix] * times)

    def take_refusal(self, key: str) -> bool:
        return self._take(self._refusals, self.refused, key)

    def lose_reply_of_next_put(self, key_prefix: str) -> None:
        """The next PutObject of a key under `key_prefix` is stored, then answered 500."""
        with self._lock:
            self._lost_replies.append(key_prefix)

    def take_lost_reply(self, key: str) -> bool:
        return self._take(self._lost_replies, self.lost, key)

    def _take(self, pending: list[str], taken: list[str], key: str) -> bool:
        """Consume the first pending fault whose prefix the key has; record the key."""
        with self._lock:
            for prefix in pending:
                if key.startswith(prefix):
                    pending.remove(prefix)
                    taken.append(key)
                    return True
        return False

    def clear(self) -> None:
        with self._lock:
            self._lost_replies.clear()
            self._refusals.clear()
            self.lost.clear()
            self.refused.clear()


S3_FAULTS = S3Faults()

_key_locks: dict[tuple[str, str], threading.Lock] = {}
_key_locks_guard = threading.Lock()


def _lock_of(bucket: str, key: str) -> threading.Lock:
    with _key_locks_guard:
        return _key_locks.setdefault((bucket, key), threading.Lock())


def make_conditional_writes_atomic() -> None:
    """PutObject's precondition check and write run under one lock per bucket and key (every
    PutObject takes it, so an unconditional write cannot slip in between either).

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html.
    Test: tests/local/test_s3_writes.py::test_concurrent_create_only_writes_of_one_key_let_exactly_one_through.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.s3.responses import S3Response


    original: Callable[..., Any] = S3Response.__dict__["put_object"]

    def put_object(self: Any) -> Any:
        key = self.parse_key_name()
        if S3_FAULTS.take_refusal(key):
            raise s3_error("SlowDown", "Please reduce your request rate. "
                            "(local fault injection: nothing was stored)", 503)
        with _lock_of(self.bucket_name, key):
            response = original(self)
        if S3_FAULTS.take_lost_reply(key):
            raise s3_error("InternalError", "We encountered an internal error. Please try again. "
                            "(local fault injection: the object was stored, its reply lost)", 500)
        return response

    replace(S3Response, "put_object", put_object)


def s3_error(code: str, message: str, status: int) -> Exception:
    """S3's REST-XML error (`<Error><Code>`), with S3's status. Raised through the S3 handler as a
    werkzeug HTTPException, which Flask sends as is (moto would serialize an S3ClientError with
    the model's status, 400 for the unmodeled AccessDenied)."""
    from xml.sax.saxutils import escape

    from werkzeug.exceptions import HTTPException

    class S3IamError(HTTPException):
        def get_body(self, *args: Any, **kwargs: Any) -> str:
            return self.description or ""

        def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
            return [("Content-Type", "application/xml"), ("x-amz-request-id", "local-iam-check")]

    error = S3IamError()
    error.code = status
    error.description = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                         f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
                         "<RequestId>local-iam-check</RequestId></Error>")
    return error


PATCHES: tuple[Callable[[], None], ...] = (make_conditional_writes_atomic,)
