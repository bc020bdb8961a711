"""Every change the local runtime makes to moto: one module per AWS service, as moto is laid out.

moto is the AWS emulator of the local mode. Where moto 5.2.5 behaves differently from AWS in a way
the pipeline depends on, a small named function bends moto back to AWS's behaviour (the CDK app, the
state machine and the Glue script stay written for AWS). Each patch says which AWS behaviour it
restores (the AWS page is in docs/aws-notes.md), is applied once (idempotent), and has a test
against a real moto server (mostly tests/local/test_moto_patches.py).

Where to look:

- registry.py: the list of patches in force, `apply_all`, the moto version pin.
- runtime.py: `RUNTIME`, what the patched moto delegates to (set by airline_local.aws.emulator),
  and the emulator clients a patch calls AWS with; patching.py: `replace`, how a patch is applied.
- events.py (EventBridge, S3 -> EventBridge), stepfunctions.py (integrations, state data, tasks
  signed as the role), stepfunctions_distributed_map.py, stepfunctions_data_limit.py (256 KiB),
  glue_crawler.py, glue_jobs.py, s3.py (atomic conditional writes, injected faults), sns.py
  (-> the mailbox), redshift_data.py (-> the local warehouse), awslambda.py (invoked functions run
  in this process), service_deliveries.py (CloudWatch alarm actions and S3 -> SQS, judged as the
  service principals), iam_check.py (every call authorized by the local IAM check).

Each patch's docstring ends with the moto version it targets, the AWS page, its test and whether a
newer moto fixed the gap. That last one was checked against getmoto/moto@0af643a5 (2026-08-22,
"5.2.4.dev"), the newest moto source this project could fetch: it is older than the 5.2.5 pin, so
no release after the pin has been read and no fix is known. The gaps looked at in that source are
all still there: S3 -> EventBridge event shape (epoch `time`, `eTag`), no Step Functions targets in
EventBridge, STOPPED not a failure of glue:startJobRun.sync, `_SERVICE_ERROR_NAMES` without Glue /
S3, JSONPath variable references sent to JSONata, the crawler's COMPLETED LastCrawl, the payload
size check with `<`. Re-check when moving the pin (registry.check_moto_version insists on it).

This package's __init__ imports nothing: the modules import runtime.py and patching.py, and
registry.py imports the modules, so there is no import cycle among them (tests/unit/test_import_cycles.py).
"""
