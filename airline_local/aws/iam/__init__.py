"""IAM for local mode: deciding requests against the synthesized template's policies."""
