"""The local stand-in for SNS email: every notification becomes an RFC 5322 .eml file.

In AWS an email subscriber receives each message published to the topic. Locally there is no
mail server, so each published message is written to a directory (one file per message, named so
that a plain `ls` lists them in delivery order) and optionally handed to a callback (the CLI prints
it on the console).
"""

from __future__ import annotations

import email.policy
import email.utils
import itertools
import logging
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

LOG = logging.getLogger(__name__)

SENDER = "AWS Notifications (local) <no-reply@sns.local>"
LOCAL_RECIPIENT = "local-mailbox@sns.local"
# What SNS puts in the subject line of an email notification published without a Subject.
DEFAULT_SUBJECT = "AWS Notification Message"

MessageCallback = Callable[[EmailMessage, Path], None]


class Mailbox:
    """A directory of .eml files, one per SNS notification."""

    def __init__(self, directory: Path, on_message: MessageCallback | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.on_message = on_message
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    def deliver(
        self,
        topic_arn: str,
        subject: str | None,
        message: str,
        recipients: Sequence[str] = (),
    ) -> Path:
        """Write one notification as an .eml file and return its path."""
        sent_at = datetime.now(timezone.utc)
        mail = build_email(topic_arn, subject, message, recipients, sent_at)
        with self._lock:
            number = next(self._sequence)
            path = self.directory / _file_name(sent_at, number, topic_arn)
            path.write_bytes(mail.as_bytes(policy=email.policy.SMTP))
        if self.on_message is not None:
            try:
                self.on_message(mail, path)
            except Exception:  # a broken console printer must not lose the notification
                LOG.exception("mailbox callback failed for %s", path)
        return path

    def paths(self) -> list[Path]:
        """The .eml files, oldest first."""
        return sorted(self.directory.glob("*.eml"))

    def messages(self) -> list[EmailMessage]:
        """Every delivered notification, oldest first."""
        return [read_email(path) for path in self.paths()]


def build_email(
    topic_arn: str,
    subject: str | None,
    message: str,
    recipients: Sequence[str],
    sent_at: datetime,
) -> EmailMessage:
    """The notification as an email, shaped like the one an SNS email subscriber receives."""
    mail = EmailMessage(policy=email.policy.default)
    mail["From"] = SENDER
    mail["To"] = ", ".join(recipients) if recipients else LOCAL_RECIPIENT
    mail["Subject"] = subject or DEFAULT_SUBJECT
    mail["Date"] = email.utils.format_datetime(sent_at)
    mail["Message-ID"] = email.utils.make_msgid(domain="sns.local")
    mail["X-SNS-Topic-Arn"] = topic_arn
    mail.set_content(message, subtype="plain", charset="utf-8")
    return mail


def read_email(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        return BytesParser(policy=email.policy.default).parse(handle)  # type: ignore[return-value]


def _file_name(sent_at: datetime, number: int, topic_arn: str) -> str:
    topic = re.sub(r"[^A-Za-z0-9_-]+", "-", topic_arn.rsplit(":", 1)[-1])[:60] or "topic"
    return f"{sent_at:%Y%m%dT%H%M%S%fZ}-{number:05d}-{topic}.eml"
