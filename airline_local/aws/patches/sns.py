"""SNS (moto.sns): a publish reaches the local mailbox, as AWS emails a topic's subscribers.

Targets moto 5.2.5. Tested in tests/local/test_moto_patches.py
(test_publish_reaches_the_mailbox_with_or_without_email_subscribers). Newer moto: getmoto/moto@0af643a5 (5.2.4.dev, the newest stored snapshot) still has the gap.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airline_local.aws.patches.patching import replace
from airline_local.aws.patches.runtime import RUNTIME

LOG = logging.getLogger(__name__)


def deliver_sns_to_mailbox() -> None:
    """A message published to a topic reaches its email subscribers (AWS sends the email). Locally
    every publish is written to the mailbox, with the email subscriptions as recipients, or to the
    local mailbox alone when there are none (local mode shows every notification). moto 5.2.5
    only records the message.

    Targets moto 5.2.5. AWS: https://docs.aws.amazon.com/sns/latest/dg/sns-email-notifications.html.
    Test: tests/local/test_moto_patches.py::test_publish_reaches_the_mailbox_with_or_without_email_subscribers.
    Newer moto: no fix known (the package's note, airline_local/aws/patches/__init__.py).
    """
    from moto.sns.models import Topic

    original = Topic.publish

    def publish(self: Any, message: str, subject: str | None = None, *args: Any, **kwargs: Any) -> str:
        message_id = original(self, message, subject, *args, **kwargs)
        mailbox = RUNTIME.mailbox
        if mailbox is None:
            return message_id
        try:
            subscriptions, _ = self.sns_backend.list_subscriptions_by_topic(topic_arn=self.arn)
            recipients = [s.endpoint for s in subscriptions if s.protocol in ("email", "email-json")]
            body = _email_body(message, kwargs.get("message_structure"))
            mailbox.deliver(self.arn, subject, body, recipients)
        except Exception:  # delivery is asynchronous in AWS: Publish itself still succeeds
            LOG.exception("could not deliver SNS message %s to the local mailbox", message_id)
        return message_id

    replace(Topic, "publish", publish)


def _email_body(message: str, message_structure: str | None) -> str:
    if message_structure != "json":
        return message
    per_protocol = json.loads(message)
    return per_protocol.get("email") or per_protocol.get("default", "")


PATCHES = (deliver_sns_to_mailbox,)
