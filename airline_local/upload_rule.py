"""Which uploads start a run: the object-key filter of the template's S3 "Object Created" rule.

`airline-ingest local run` refuses a file whose key that filter would ignore before anything is
uploaded, instead of waiting for an execution that never comes. The filter is read from the
synthesized template (never restated here) and matched by the emulator's own EventBridge matcher.
"""

from __future__ import annotations

import json
from typing import Any

from airline_local.aws.cfn import Template


def key_filters(template: Template) -> dict[str, list[Any]]:
    """The object-key filter of each S3 Object Created rule, by the rule's logical id."""
    found = {}
    for logical_id, resource in template.resources_of_type("AWS::Events::Rule").items():
        pattern = resource.get("Properties", {}).get("EventPattern") or {}
        key = ((pattern.get("detail") or {}).get("object") or {}).get("key")
        if "aws.s3" in (pattern.get("source") or []) and "Object Created" in (pattern.get("detail-type") or []) and key:
            found[logical_id] = key
    return found


def refusal(template: Template, key: str) -> str | None:
    """Why no rule would start a run for an upload under `key` (None: one would)."""
    from moto.events.models import EventPattern

    filters = key_filters(template)
    for key_filter in filters.values():
        if EventPattern.load(json.dumps({"object": {"key": key_filter}})).matches_event({"object": {"key": key}}):
            return None
    named = "; ".join(f"rule {logical_id} matches detail.object.key {json.dumps(f)}" for logical_id, f in filters.items())
    return f"{key} would start no execution: {named or 'the template has no S3 Object Created rule'}"
