#!/usr/bin/env python3
"""Entry point of the CDK app: `npx cdk synth` (cdk.json runs this) or `python app.py`."""

import os

# jsii prints a large end-of-life banner on Node 20 unless its major version is listed here.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from stacks.pipeline_stack import create_app  # noqa: E402  (after the environment is set)

create_app().synth()
