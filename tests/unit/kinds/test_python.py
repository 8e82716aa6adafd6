"""The python and noop kinds, driven directly: a user function on every table, a ``@step`` function, and their refusals."""

from __future__ import annotations

import textwrap

import pytest
from kind_harness import Harness, Trained

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import JSON, PARQUET, TableMeta
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds.noop import Noop
from mlflowkit.kinds.python import PythonStep


def module(h: Harness, name: str, source: str) -> None:
    (h.spec_dir / f"{name}.py").write_text(textwrap.dedent(source))


def test_a_function_transforms_every_table_and_keeps_their_meta(trained: Trained, on_trained: Harness) -> None:
    module(on_trained, "feat_steps", """
        def add_ratio(df, scale=1):
            df = df.copy()
            df["ratio"] = df["monthly_charges"] / df["tenure_months"] * scale
            return df
    """)
    params = {"uses": "feat_steps:add_ratio", "params": {"scale": 2}}
    out = on_trained.run(PythonStep, params, {"train": trained.train, "test": trained.test, "model": trained.model})
    assert set(out) == {"train", "test"}  # tables only; the model is not a table
    train = TableMeta.model_validate(out["train"].meta)
    assert out["train"].media_type == PARQUET and train.target == "churned" and train.part == "train"
    assert "ratio" in load_frame(on_trained.store, out["test"]).columns
    fingerprint = PythonStep().fingerprint(on_trained.context(), PythonStep.Params.model_validate(params))
    module(on_trained, "feat_steps", "def add_ratio(df, scale=1):\n    return df\n")
    assert PythonStep().fingerprint(on_trained.context(), PythonStep.Params.model_validate(params)) != fingerprint


def test_a_step_function_gets_its_declared_inputs_and_typed_params(trained: Trained, on_trained: Harness) -> None:
    module(on_trained, "typed_steps", """
        import mlflowkit

        class P(mlflowkit.Params):
            top: int = 3

        @mlflowkit.step(inputs=["train"], outputs=["summary", "train"], params=P)
        def summarise(train, params):
            return {"summary": {"rows": len(train), "top": params.top}, "train": train.head(params.top)}
    """)
    out = on_trained.run(PythonStep, {"uses": "typed_steps:summarise", "params": {"top": 5}}, {"train": trained.train})
    assert out["summary"].media_type == JSON and on_trained.store.read_json(out["summary"].key) == {"rows": 300, "top": 5}
    assert TableMeta.model_validate(out["train"].meta).rows == 5
    with pytest.raises(StepFailed, match="params of typed_steps:summarise: top: Input should be a valid integer"):
        on_trained.run(PythonStep, {"uses": "typed_steps:summarise", "params": {"top": "many"}}, {"train": trained.train})


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        # A module of its own per case: a module imported before would keep a function removed from its file.
        ("drops_target", "def f(df):\n    return df.drop(columns=['churned'])\n", "drops_target:f dropped the target column 'churned'"),
        ("returns_int", "def f(df):\n    return 42\n", "returns_int:f returned int; expected a pandas DataFrame"),
        ("has_no_f", "def g(df):\n    return df\n", "'has_no_f' has no function 'f'"),
        ("raises_at_import", "raise RuntimeError('boom')\n", "importing 'raises_at_import' raised RuntimeError: boom"),
    ],
)
def test_what_a_user_function_gets_wrong_is_named(
    trained: Trained, on_trained: Harness, name: str, source: str, message: str
) -> None:
    module(on_trained, name, source)
    with pytest.raises(StepFailed, match=message):
        on_trained.run(PythonStep, {"uses": f"{name}:f"}, {"train": trained.train})


def test_an_exception_in_the_function_reaches_the_runner_as_it_is(trained: Trained, on_trained: Harness) -> None:
    module(on_trained, "raising_steps", "def f(df):\n    raise ValueError('column is corrupt')\n")
    with pytest.raises(ValueError, match="column is corrupt"):  # the runner names the step and retries it
        on_trained.run(PythonStep, {"uses": "raising_steps:f"}, {"train": trained.train})


def test_noop_passes_its_inputs_through(trained: Trained, on_trained: Harness) -> None:
    assert on_trained.run(Noop, {"label": "x"}, {"train": trained.train, "model": trained.model}) == {
        "train": trained.train,
        "model": trained.model,
    }
