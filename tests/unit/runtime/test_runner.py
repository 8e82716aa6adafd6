"""The Runner without Prefect: plan order, cache hits and misses, --from, failures that stop what follows,
retryable errors against refusals, and the records it keeps."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from runtime_project import STEPS, Project, Recorder

from mlflowkit.errors import StepFailed
from mlflowkit.kinds.base import Advance
from mlflowkit.runtime.locations import store_root
from mlflowkit.runtime.runner import Runner, progress_line


def runner(spec, plan, **kw):  # type: ignore[no-untyped-def]
    return Runner(spec, plan, store_root(spec), **kw)


def test_steps_run_in_plan_order_and_are_recorded(project: Project) -> None:
    spec, plan = project()
    events = Recorder()
    r = runner(spec, plan, progress=events)
    r.run_inline()
    assert events.started == ["load", "first", "second", "last"]
    assert [(e.name, e.status) for e in events.finished] == [(n, "ran") for n in ("load", "first", "second", "last")]
    assert list(r.records) == ["load", "first", "second", "last"]
    assert r.records["first"].kind == "python" and r.records["first"].key == plan.step("first").key
    assert set(r.records["first"].outputs) == {"dataset"} and r.records["last"].outputs == r.outputs["second"]
    assert r.store.exists(r.outputs["first"]["dataset"])


def test_a_second_run_takes_every_step_from_the_cache(project: Project) -> None:
    spec, plan = project()
    runner(spec, plan).run_inline()
    again = runner(spec, plan)
    assert again.all_cached()
    assert {rec.status for rec in again.records.values()} == {"cached"}
    third = runner(spec, plan)
    third.run_inline()
    assert {rec.status for rec in third.records.values()} == {"cached"}
    assert third.outputs == again.outputs


def test_an_edited_step_reruns_with_what_follows_it_and_nothing_before(project: Project) -> None:
    spec, plan = project()
    runner(spec, plan).run_inline()
    steps = Path(spec.spec_dir) / "chain_steps.py"
    before = steps.stat()
    steps.write_text(STEPS.replace('df["x"] * 2', 'df["x"] * 3'))
    # An edit within the same second, same size: Python's cached bytecode looks fresh and must not be run.
    os.utime(steps, ns=(before.st_atime_ns, before.st_mtime_ns))
    r = runner(spec, plan)
    assert not r.all_cached()
    r.run_inline()
    # `second` reads what `first` wrote, which changed: it reruns; its own code did not change.
    assert {k: v.status for k, v in r.records.items()} == {"load": "cached", "first": "ran", "second": "ran", "last": "ran"}


def test_from_reruns_the_step_and_everything_after_it(project: Project) -> None:
    spec, plan = project()
    runner(spec, plan).run_inline()
    r = runner(spec, plan, from_step="second")
    r.run_inline()
    assert {k: v.status for k, v in r.records.items()} == {"load": "cached", "first": "cached", "second": "ran", "last": "ran"}


def test_an_unexpected_error_stops_the_run_and_may_be_retried(project: Project) -> None:
    spec, plan = project(steps=STEPS.replace("def second(df):\n    return df", "def second(df):\n    raise OSError('disk hiccup')"))
    r = runner(spec, plan)
    with pytest.raises(StepFailed, match="step 'second' failed: OSError: disk hiccup"):
        r.run_inline()
    assert {k: v.status for k, v in r.records.items()} == {"load": "ran", "first": "ran", "second": "failed", "last": "skipped"}
    assert r.records["second"].error == "step 'second' failed: OSError: disk hiccup"
    assert r.retryable("second") and isinstance(r.errors["second"], StepFailed)
    assert len(list(r.store.list_keys("cache"))) == 2  # load and first; nothing for the failed step


def test_a_refusal_is_not_retried(project: Project) -> None:
    spec, plan = project(steps=STEPS.replace("def second(df):\n    return df", "def second(df):\n    return 'not a table'"))
    r = runner(spec, plan)
    r.run_inline_safely()  # recorded, not raised
    assert r.records["second"].status == "failed" and "expected a pandas DataFrame" in (r.records["second"].error or "")
    assert not r.retryable("second") and r.records["last"].status == "skipped"


def test_a_retry_that_passes_clears_the_failure(project: Project) -> None:
    flaky = STEPS.replace(
        "def second(df):\n    return df",
        "import os\ndef second(df):\n    if not os.path.exists(os.path.join(os.path.dirname(__file__), 'ok')):\n"
        "        raise TimeoutError('slow')\n    return df",
    )
    spec, plan = project(steps=flaky)
    r = runner(spec, plan)
    r.execute("load", {})
    r.execute("first", {"load": r.outputs["load"]})
    with pytest.raises(StepFailed):
        r.execute("second", {"first": r.outputs["first"]})
    assert r.retryable("second")
    (Path(spec.spec_dir) / "ok").write_text("")
    r.execute("second", {"first": r.outputs["first"]})
    assert r.records["second"].status == "ran" and not r.retryable("second")


def test_a_missing_source_is_a_miss_that_the_run_reports(project: Project) -> None:
    spec, plan = project()
    (Path(spec.spec_dir) / "t.csv").unlink()
    r = runner(spec, plan)
    assert not r.all_cached()
    r.run_inline_safely()
    assert r.records["load"].status == "failed" and "data.source t.csv: no file at " in (r.records["load"].error or "")
    assert not r.retryable("load")


def test_reports_reach_the_progress_the_store_and_a_sink(project: Project) -> None:
    spec, plan = project(
        steps=STEPS.replace(
            "def second(df):\n    return df",
            "import mlflowkit\n@mlflowkit.step(inputs=['dataset'], outputs=['dataset'])\n"
            "def second(dataset, ctx):\n    ctx.report('rows', 'rows seen', rows=[{'rows': len(dataset)}])\n    return dataset",
        )
    )
    events, sunk = Recorder(), []
    r = runner(spec, plan, progress=events)
    r.execute("load", {})
    r.execute("first", {"load": r.outputs["load"]})
    r.execute("second", {"first": r.outputs["first"]}, on_report=sunk.append)
    assert [rep.key for rep in events.reports] == ["rows"] and sunk == events.reports == r.reports
    assert r.store.read_json(f"reports/{r.run_id}/second-rows.json")["rows"] == [{"rows": 4}]


def test_a_step_s_advances_reach_the_progress_and_its_logger_as_one_line(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    spec, plan = project(
        steps=STEPS.replace(
            "def second(df):\n    return df",
            "import mlflowkit\n@mlflowkit.step(inputs=['dataset'], outputs=['dataset'])\n"
            "def second(dataset, ctx):\n"
            "    for epoch, loss in enumerate([0.9, 0.61234567], start=1):\n"
            "        ctx.advance('epochs', epoch, 2, values=[('loss', loss)], best=loss, best_note=f'epoch {epoch}')\n"
            "    return dataset",
        )
    )
    events = Recorder()
    caplog.set_level(logging.INFO, logger="mlflowkit.step.second")
    runner(spec, plan, progress=events).run_inline()
    assert [(a.step, a.unit, a.done, a.total, a.values) for a in events.advances] == [
        ("second", "epochs", 1, 2, (("loss", 0.9),)),
        ("second", "epochs", 2, 2, (("loss", 0.61234567),)),
    ]
    logged = [r.getMessage() for r in caplog.records if r.name == "mlflowkit.step.second" and r.levelno == logging.INFO]
    assert logged == [
        "epochs 1/2: loss 0.9; best so far 0.9 (epoch 1)",
        "epochs 2/2: loss 0.6123; best so far 0.6123 (epoch 2)",
    ]


def test_a_progress_line_says_what_was_measured_and_the_best_so_far() -> None:
    trial = Advance("train", "trials", 3, 6, (("roc_auc", 0.81234),), note="trial 5: max_depth=8", best=0.9, best_note="trial 1")
    assert progress_line(trial) == "trials 3/6: roc_auc 0.8123 (trial 5: max_depth=8); best so far 0.9 (trial 1)"
    failed = Advance("train", "trials", 1, 6, (), note="trial 2: C=-1 failed: ValueError: C must be positive")
    assert progress_line(failed) == "trials 1/6: trial 2: C=-1 failed: ValueError: C must be positive"
    assert progress_line(Advance("s", "batches", 0, 10)) == "batches 0/10"


def test_a_cache_check_is_part_of_the_start_up(project: Project) -> None:
    spec, plan = project()
    events = Recorder()
    runner(spec, plan, progress=events).all_cached()
    assert events.startup == ["checking the cache"] and events.started == []


MODEL_CHAIN = """\
recipe: fitted
stages:
  load: {kind: load, section: data}
  split: {kind: split, section: data.split, needs: [load]}
  train: {kind: sklearn, needs: [split]}
  evaluate: {kind: evaluate, needs: [train, split]}
  last: {kind: noop, needs: [evaluate]}
defaults:
  train: {estimator: sklearn.tree.DecisionTreeClassifier}
  evaluate: {metrics: [accuracy], champion: false}
  last: {}
"""


def test_a_model_is_kept_in_memory_while_a_later_step_reads_it(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflowkit.kinds.model_files as model_files

    rows = "x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(40))
    spec, plan = project(MODEL_CHAIN, name="fitted", data=rows)
    rebuilt: list[str] = []
    loads = model_files.loads_model
    monkeypatch.setattr(model_files, "loads_model", lambda data, **kw: rebuilt.append(kw["where"]) or loads(data, **kw))
    kept: dict[str, int] = {}

    class Kept(Recorder):
        def step_finished(self, record):  # type: ignore[no-untyped-def]
            kept[record.name] = len(r.models)

    r = runner(spec, plan, progress=Kept())
    r.run_inline()
    assert {rec.status for rec in r.records.values()} == {"ran"}
    assert kept == {"load": 0, "split": 0, "train": 1, "evaluate": 0, "last": 0}  # released once evaluate has read it
    assert rebuilt == []  # evaluate used the object train stored, not one rebuilt from its bytes
    again = runner(spec, plan, from_step="evaluate")  # train from the cache: nothing in memory, rebuilt
    again.run_inline()
    assert rebuilt == [again.outputs["train"]["model"].key]
