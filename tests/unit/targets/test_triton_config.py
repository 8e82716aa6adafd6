"""The Triton target without a server: the spec shape, config.pbtxt generation, retention, validate-time opset checks."""

from __future__ import annotations

import re
from typing import Any

import fsspec
import pytest

from mlflowkit.errors import SpecError
from mlflowkit.kinds.deploy import Deploy
from mlflowkit.kinds.export import OnnxExport
from mlflowkit.spec.load import load_spec_text
from mlflowkit.targets.contract import Contract, TensorSpec
from mlflowkit.targets.triton import TritonTarget, model_py, render_config
from mlflowkit.targets.triton.rollout import _prune

BASE = """\
spec: mlflowkit/v1
name: t
recipe: tabular-classification
data: {source: d.csv, target: churned}
"""

CONTRACT = Contract(
    layout="columns",
    inputs=(
        TensorSpec(name="age", dtype="float32", shape=(-1, 1), column="age"),
        TensorSpec(name="contract", dtype="string", shape=(-1, 1), column="contract"),
    ),
    outputs=(
        TensorSpec(name="label", dtype="string", shape=(-1,)),
        TensorSpec(name="probabilities", dtype="float32", shape=(-1, 2)),
    ),
    features=("age", "contract"),
    classes=("no", "yes"),
    target="churned",
    label_output="label",
    probability_output="probabilities",
    opset={"": 21, "ai.onnx.ml": 3},
)


def target(**kw: Any) -> TritonTarget:
    return TritonTarget.model_validate({"target": "triton", "url": "http://127.0.0.1:8000", "model_repository": "/m", **kw})


def load(text: str) -> Any:
    return load_spec_text(BASE + text, "t.yaml", read_data=False)


def issues(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        load(text)
    return [f"{i.path}: {i.message} | {i.hint}" for i in info.value.issues]


def test_config_for_the_onnxruntime_platform() -> None:
    config = render_config("churn", 3, CONTRACT, target(instances={"count": 2}))
    assert 'platform: "onnxruntime_onnx"' in config and "backend:" not in config
    assert "max_batch_size: 64" in config
    assert "version_policy: { specific: { versions: [ 3 ] } }" in config
    assert '{ name: "age" data_type: TYPE_FP32 dims: [ 1 ] }' in config
    assert '{ name: "contract" data_type: TYPE_STRING dims: [ 1 ] }' in config
    # A per-row label has no dims after the batch: Triton needs dims [1] reshaped to [].
    assert '{ name: "label" data_type: TYPE_STRING dims: [ 1 ] reshape: { shape: [ ] } }' in config
    assert '{ name: "probabilities" data_type: TYPE_FP32 dims: [ 2 ] }' in config
    assert "dynamic_batching { max_queue_delay_microseconds: 0 }" in config
    assert "instance_group [ { count: 2 kind: KIND_CPU } ]" in config


def test_config_for_the_python_backend_without_batching() -> None:
    config = render_config("churn", 1, CONTRACT, target(backend="python", max_batch_size=0, config_extra="# extra"))
    assert 'backend: "python"' in config and "platform:" not in config
    assert "max_batch_size: 0" in config
    assert "dynamic_batching" not in config  # batching is off without a batch dimension
    assert '{ name: "age" data_type: TYPE_FP32 dims: [ -1, 1 ] }' in config
    assert '{ name: "label" data_type: TYPE_STRING dims: [ -1 ] }' in config
    assert config.rstrip().endswith("# extra")
    compile(model_py(), "model.py", "exec")  # the generated model.py is valid Python


def test_deploy_list_is_a_union_by_target() -> None:
    spec = load("deploy:\n  - {target: triton, url: 'http://t:8000', model_repository: s3://m/triton, backend: python}\n")
    (only,) = spec.deploy.targets
    assert isinstance(only, TritonTarget) and only.backend == "python" and only.keep_versions == 2
    found = issues("deploy:\n  - {target: tritn, url: 'http://t:8000', model_repository: /m}\n")
    assert any("deploy[0]" in f or "deploy.0" in f for f in found), found
    assert any("'triton'" in f for f in found), found


def test_empty_deploy_is_the_default() -> None:
    assert load("").deploy.targets == []


def test_triton_url_and_unknown_keys_are_refused() -> None:
    found = issues("deploy:\n  - {target: triton, url: 't:8000', model_repository: /m, replicas: 2}\n")
    assert any("url" in f for f in found), found
    assert any("replicas" in f for f in found), found


def test_opset_newer_than_a_target_supports_is_refused_at_validate_time() -> None:
    deploy = "deploy:\n  - {target: triton, url: 'http://t:8000', model_repository: /m, max_opset: 17}\n"
    found = issues("export: {opset: 19}\n" + deploy)
    assert any("export.opset: opset 19 is newer than deploy[0] supports (max_opset 17)" in f for f in found), found
    assert any("export.opset: " in f and "set export.opset: 17" in f for f in issues(deploy))  # `auto` may be newer
    assert load("export: {opset: 17}\n" + deploy).export.opset == 17


def test_same_model_to_the_same_server_twice_is_refused() -> None:
    entry = "  - {target: triton, url: 'http://t:8000', model_repository: /m}\n"
    found = issues("deploy:\n" + entry + entry)
    assert any("deploy.1" in f or "deploy[1]" in f for f in found) and any("as deploy[0]" in f for f in found), found


@pytest.mark.parametrize("kind", [OnnxExport, Deploy])
def test_docstring_example_validates(kind: type) -> None:
    example = re.search(r"```yaml\n(.*?)```", kind.__doc__ or "", re.S)
    assert example is not None
    text = "\n".join(line[4:] for line in example.group(1).splitlines())
    spec = load(text)
    assert spec.export is not None and spec.deploy is not None


def test_retention_removes_the_oldest_folders_and_never_the_current() -> None:
    fs = fsspec.filesystem("memory")
    root = "/retention-test/churn"
    for n in (1, 2, 3, 5):
        fs.pipe_file(f"{root}/{n}/model.onnx", b"x")
    fs.pipe_file(f"{root}/config.pbtxt", b"c")
    assert _prune(fs, root, keep=2, current=5) == [1, 2]
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)) == ["3", "5", "config.pbtxt"]
    # Redeploying an older number keeps it, and the newest other one.
    assert _prune(fs, root, keep=1, current=3) == [5]
    fs.rm("/retention-test", recursive=True)


def test_deploy_without_an_onnx_export_is_refused() -> None:
    found = issues("export: {kind: noop}\ndeploy:\n  - {target: triton, url: 'http://t:8000', model_repository: /m}\n")
    assert any("no step of kind `onnx` runs" in f for f in found), found


def test_validate_loads_no_onnx_or_triton_library(tmp_path: Any) -> None:
    import json
    import subprocess
    import sys

    spec = tmp_path / "spec.yaml"
    (tmp_path / "d.csv").write_text("x,churned\n1,yes\n2,no\n")
    spec.write_text(
        BASE
        + "export: {opset: 17}\ndeploy:\n  - {target: triton, url: 'http://t:8000', model_repository: s3://m, max_opset: 17}\n"
    )
    script = (
        "import json, sys\nfrom mlflowkit.cli import app\nsys.argv = ['mlflowkit', 'validate', sys.argv[1]]\n"
        "try:\n    app()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(json.dumps([code, sorted({m.split('.')[0] for m in sys.modules})]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(spec)], capture_output=True, text=True, check=True)
    code, modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert code in (0, None), done.stdout
    assert not {"onnx", "onnxruntime", "skl2onnx", "tritonclient", "numpy", "sklearn"} & set(modules)


def test_an_opset_older_than_the_converter_supports_is_refused() -> None:
    found = issues("export: {opset: 5}\n")
    assert any(f.startswith("export.opset") and "greater than or equal to 9" in f for f in found), found


def test_model_py_copies_of_mlflowkit_names_match() -> None:
    """model.py runs where mlflowkit is not installed: its copies of the manifest format, the trusted-key
    variable and the candidate suffix must be mlflowkit's."""
    import ast

    from mlflowkit.edge.bundle import BUNDLE_FORMAT
    from mlflowkit.targets.triton import candidate_name, model_py
    from mlflowkit.targets.triton_local import TRUSTED_KEY_ENV

    tree = ast.parse(model_py(), "model.py")
    constants = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
    }
    assert constants["BUNDLE_FORMAT"] == BUNDLE_FORMAT
    assert constants["TRUSTED_KEY_ENV"] == TRUSTED_KEY_ENV
    assert candidate_name("m") == "m" + constants["CANDIDATE_SUFFIX"]
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "mlflowkit" not in imported  # the server's environment has no mlflowkit


def test_the_deploy_writes_the_shipped_backend_module() -> None:
    """The model.py a deploy writes is the package's backend module, byte for byte (linted and type-checked there)."""
    from pathlib import Path

    import mlflowkit.targets.triton.backend as backend
    from mlflowkit.targets.triton import model_py

    assert model_py() == (Path(backend.__file__).parent / "model.py").read_text(encoding="utf-8")
    assert "class TritonPythonModel" in model_py()


def test_candidate_names_are_reserved() -> None:
    from mlflowkit.targets.triton import TritonDeployError, deploy

    with pytest.raises(TritonDeployError, match=r"'churn__candidate': names ending in __candidate are reserved"):
        deploy(target(), name="churn__candidate", version=1, model=b"", contract=CONTRACT, smoke=None)
