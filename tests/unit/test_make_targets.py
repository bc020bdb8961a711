"""`make test` never deploys to a real account, even with AIRLINE_AWS_TEST=1 exported: its pytest
command deselects the `aws` marker (`make aws-test` is the way in)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _recipe(target: str, **variables: str) -> list[str]:
    """The pytest command of a make target, as make would run it (a dry run: nothing installs)."""
    assignments = [f"{k}={v}" for k, v in variables.items()]
    printed = subprocess.run(["make", "-n", "-C", str(ROOT), target, *assignments], capture_output=True,
                             text=True, check=True).stdout
    (line,) = [line for line in printed.splitlines() if " -m pytest" in line]
    command = shlex.split(line)
    return [sys.executable, *command[command.index("-m"):]]


def _collected(command: list[str], env: dict[str, str]) -> list[str]:
    result = subprocess.run([*command, "--collect-only", "-q", "tests/aws"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_make_test_deselects_the_aws_tests_even_when_opted_in():
    env = {**os.environ, "AIRLINE_AWS_TEST": "1"}
    collected = _collected(_recipe("test", TEST_WORKERS="0"), env)
    assert collected, "make test's command collects no offline acceptance test"  # the offline twins run
    assert not [t for t in collected if "test_aws_acceptance.py" in t], collected


def test_make_aws_test_selects_them():
    command = _recipe("aws-test")
    assert command[command.index("-m", 2) + 1] == "aws" and "tests/aws" in command, command
