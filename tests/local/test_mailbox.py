"""The local SNS email stand-in: one RFC 5322 .eml per notification, in delivery order."""

from __future__ import annotations

import email.utils

from airline_local.aws.mailbox import DEFAULT_SUBJECT, LOCAL_RECIPIENT, Mailbox

TOPIC = "arn:aws:sns:us-east-1:123456789012:pipeline-notifications"


def test_delivered_message_is_a_complete_email(tmp_path):
    mailbox = Mailbox(tmp_path / "mail")
    path = mailbox.deliver(TOPIC, "Bookings loaded", "Loaded s3://b/raw/bookings/x.csv — 3 rows ✓", ["a@example.com", "b@example.com"])

    assert path.suffix == ".eml" and path.parent == tmp_path / "mail"
    raw = path.read_bytes()
    assert b"\r\n" in raw  # RFC 5322 line endings
    [mail] = mailbox.messages()
    assert mail["To"] == "a@example.com, b@example.com"
    assert mail["From"].addresses[0].domain == "sns.local"
    assert mail["Subject"] == "Bookings loaded"
    assert mail["X-SNS-Topic-Arn"] == TOPIC
    assert mail["Message-ID"].startswith("<") and mail["Message-ID"].endswith("@sns.local>")
    assert email.utils.parsedate_to_datetime(mail["Date"]).tzinfo is not None
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content_charset() == "utf-8"
    assert mail.get_content().rstrip("\n") == "Loaded s3://b/raw/bookings/x.csv — 3 rows ✓"


def test_no_subscribers_and_no_subject_use_the_local_mailbox_and_sns_default_subject(tmp_path):
    mailbox = Mailbox(tmp_path)
    mailbox.deliver(TOPIC, None, "hello", [])
    [mail] = mailbox.messages()
    assert mail["To"] == LOCAL_RECIPIENT
    assert mail["Subject"] == DEFAULT_SUBJECT


def test_messages_come_back_in_delivery_order_and_callback_sees_each(tmp_path):
    seen = []
    mailbox = Mailbox(tmp_path, on_message=lambda mail, path: seen.append((mail["Subject"], path.name)))
    for number in range(12):
        mailbox.deliver(TOPIC, f"message {number}", "body", [])
    assert [m["Subject"] for m in mailbox.messages()] == [f"message {n}" for n in range(12)]
    assert [subject for subject, _ in seen] == [f"message {n}" for n in range(12)]
    assert [p.name for p in mailbox.paths()] == sorted(name for _, name in seen)


def test_a_failing_callback_does_not_lose_the_message(tmp_path):
    def broken(mail, path):
        raise RuntimeError("console is gone")

    mailbox = Mailbox(tmp_path, on_message=broken)
    path = mailbox.deliver(TOPIC, "still delivered", "body", [])
    assert path.exists()
    assert [m["Subject"] for m in mailbox.messages()] == ["still delivered"]
