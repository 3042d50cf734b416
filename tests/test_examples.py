"""Every script in examples/ runs end to end as a user would run it, in its own process.

Contract for an example script:
- its docstring states its target as ``DLCORE_TARGET_ACC=<value>`` (e.g. "Set
  DLCORE_TARGET_ACC=0.95 to make the script fail unless ..."); this test reads it from there;
- with ``DLCORE_TARGET_ACC`` set it exits non-zero unless its accuracy reaches the target;
- it prints ``holdout accuracy <value>``.
"""
import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
TIMEOUT_S = 540  # generous: the scripts take seconds on an idle machine, minutes on a busy 2-core one
ACCURACY = re.compile(r"holdout accuracy\s+([0-9]*\.[0-9]+)")
TARGET = re.compile(r"DLCORE_TARGET_ACC=([0-9]*\.[0-9]+)")


def _target(script):
    doc = ast.get_docstring(ast.parse((EXAMPLES / script).read_text(encoding="utf-8"))) or ""
    found = TARGET.findall(doc)
    assert len(found) == 1, f"{script}: its docstring must state its target once as DLCORE_TARGET_ACC=<value>"
    return float(found[0])


def test_examples_exist_and_state_their_targets():
    assert "digits_mlp.py" in SCRIPTS
    assert _target("digits_mlp.py") >= 0.95  # the bar for the digits MLP
    for script in SCRIPTS:
        assert 0 < _target(script) <= 1


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_reaches_its_target(script):
    target = _target(script)
    env = dict(os.environ, DLCORE_TARGET_ACC=str(target), DLCORE_VERBOSE="0", PYTHONHASHSEED="0")
    proc = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=EXAMPLES.parent, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{script} exited with {proc.returncode}:\n{output[-3000:]}"
    found = ACCURACY.findall(proc.stdout)
    assert found, f"{script} did not print 'holdout accuracy <value>':\n{proc.stdout[-3000:]}"
    assert float(found[-1]) >= target, f"{script}: holdout accuracy {found[-1]} < {target}"
