"""Two emulator faults the corpus found, each checked on its own (cheap: no Spark job).

- A crawl failed as a whole on one unreadable object under the prefix, so one bad upload made
  every later run fail at "Crawl failed" (an AWS crawler classifies such a file UNKNOWN).
- moto evaluated the synthesized definition's workflow variable (`States.MathAdd($polls, 1)`,
  the Choice on `$polls`) with a JSONata engine it does not ship: any run whose first poll found
  the crawler still busy died with a TypeError, no failure path, no email.
"""

from __future__ import annotations

import json
import time
import uuid

from airline_local.glue.crawler import CrawlerDefinition, S3Target, run_crawl


def test_a_crawl_skips_unreadable_objects_instead_of_failing(pipeline):
    s3, glue = pipeline.emulator.client("s3"), pipeline.emulator.client("glue")
    bucket, database = f"rl-crawl-{uuid.uuid4().hex[:8]}", f"rl_crawl_{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    glue.create_database(DatabaseInput={"Name": database})
    s3.put_object(Bucket=bucket, Key="in/good.csv", Body=b"id,route\n1,AB\n")
    s3.put_object(Bucket=bucket, Key="in/broken.csv.gz", Body=b"not gzip")
    s3.put_object(Bucket=bucket, Key="in/latin1.csv", Body="café,x\n".encode("latin-1"))
    s3.put_object(Bucket=bucket, Key="in/dupes.csv", Body=b"id,ID\n1,2\n")
    definition = CrawlerDefinition("c", database, (S3Target(f"s3://{bucket}/in/"),))

    result = run_crawl(definition, s3, glue, skip_unreadable=True)

    assert result.tables_created == ("in",)
    assert len(result.objects_skipped) == 3
    assert all(f"s3://{bucket}/in/" in reason for reason in result.objects_skipped)
    columns = glue.get_table(DatabaseName=database, Name="in")["Table"]["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == ["id", "route"]


def test_workflow_variables_are_read_in_jsonpath_states(pipeline):
    sfn = pipeline.emulator.client("stepfunctions")
    definition = {
        "StartAt": "Init",
        "States": {
            "Init": {"Type": "Pass", "Assign": {"polls": 0, "info": {"limit": 3}}, "Next": "Count"},
            "Count": {"Type": "Pass", "Assign": {"polls.$": "States.MathAdd($polls, 1)"}, "Next": "Enough?"},
            "Enough?": {"Type": "Choice",
                        "Choices": [{"Variable": "$polls", "NumericGreaterThanEquals": 3,
                                     "Next": "Report"}],
                        "Default": "Count"},
            "Report": {"Type": "Pass",
                       "Parameters": {"text.$": "States.Format('{} polls of {}', $polls, $info.limit)"},
                       "End": True},
        },
    }
    arn = sfn.create_state_machine(name=f"rl-vars-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition),
                                   roleArn="arn:aws:iam::123456789012:role/rl")["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="vars")["executionArn"]
    deadline = time.monotonic() + 30
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert described["status"] == "SUCCEEDED", described
    assert json.loads(described["output"]) == {"text": "3 polls of 3"}
