"""skops imported without torch: the same trusted types as a plain import, torch still importable after, and
a model round trip in a process that never loads torch. Each case runs in a fresh interpreter (imports are
per process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("torch")  # without torch there is nothing to leave out

# skops' trusted-type lists, by name, as JSON on the last line.
_TRUSTED = """
import json, sys
{importer}
import skops.io._trusted_types as t
lists = {{k: sorted(x if isinstance(x, str) else f"{{x.__module__}}.{{x.__qualname__}}" for x in v)
          for k, v in vars(t).items() if k.isupper() and isinstance(v, list)}}
print(json.dumps({{"torch": "torch" in sys.modules, "lists": lists}}))
"""


def _python(script: str) -> str:
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_skops_io_leaves_torch_out_and_trusts_the_same_types() -> None:
    ours = json.loads(_python(_TRUSTED.format(importer="from mlflowkit.kinds._skops import skops_io; skops_io()")))
    plain = json.loads(_python(_TRUSTED.format(importer="import skops.io")))
    assert plain["torch"] is True  # what the plain import costs (if not, this test proves nothing)
    assert ours["torch"] is False
    assert ours["lists"] == plain["lists"]
    assert len(ours["lists"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100


def test_torch_imports_after_and_models_round_trip_without_it() -> None:
    script = """
import sys
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from mlflowkit.kinds.model_files import loads_model
from mlflowkit.kinds._skops import skops_io
x = np.arange(40, dtype=float).reshape(20, 2); y = np.arange(20) % 2
model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y)
back = loads_model(skops_io().dumps(model), where="model")
assert (back.predict_proba(x) == model.predict_proba(x)).all()
before = "torch" in sys.modules
import torch  # left out of skops' import only: the process can still import it
print(before, torch.tensor([1.0]).shape == (1,))
"""
    assert _python(script) == "False True"


def test_nothing_is_left_out_once_torch_is_loaded() -> None:
    # sklearn's torch wrapper (which imports more of torch) then imports as it would without mlflowkit
    script = "import sys, torch\nfrom mlflowkit.kinds._skops import skops_io\nskops_io()\n"
    script += "print('sklearn.externals.array_api_compat.torch' in sys.modules)"
    assert _python(script) == "True"
