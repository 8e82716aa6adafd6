# %% [markdown]
# # mlflowkit from a notebook: run, compare, load the champion
#
# A notebook in the percent format (Jupyter, VS Code and jupytext open it as cells; `python notebook.py`
# runs it top to bottom, which is what its test does). It runs the reference example twice, lists the runs
# and the registered versions as DataFrames, and scores rows with the champion through ONNX Runtime.
#
# Set `MLFLOWKIT_TRACKING_URI` (or a `tracking:` section in the spec) and every run is also logged to that
# MLflow server: see docs/tracking.md.

# %%
import os
import sys
from pathlib import Path

import pandas as pd

import mlflowkit

here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
SPEC = Path(os.environ.get("SPEC", here.parent / "churn" / "spec.yaml"))
STORE = SPEC.parent / ".mlflowkit"  # the spec's store (no `store:` in it)

# %% [markdown]
# ## Two runs with different params
# `orchestrate=False` runs the steps in this process, which suits a notebook; leave it out to run a Prefect
# flow. In Jupyter, a result shows as a summary with a link to its HTML report (`RunResult._repr_html_`).

# %%
spec = mlflowkit.load_spec(SPEC)
first = mlflowkit.run(spec, orchestrate=False)
assert first.ok, first.error
print(first.run_id, first.status, first.version.label() if first.version else "-")
print("report:", first.report_path)  # absolute: open it in a browser
first  # noqa: B018 (a notebook cell's value is displayed)

# %%
second = mlflowkit.run(mlflowkit.load_spec(SPEC, overrides=["params.n_estimators=40"]), orchestrate=False)
print(second.run_id, second.status, second.verdict.passed if second.verdict else None)
if second.tracking is not None:  # with tracking: where MLflow has it, or why it waits in the outbox
    print("MLflow:", second.tracking.state, second.tracking.url or second.tracking.note)

# %% [markdown]
# ## Runs and models as DataFrames
# Columns follow `mlflow.search_runs()`: `metrics.NAME` (with `metrics.NAME_ci_low`/`_ci_high` for the
# bootstrap intervals) and `params.NAME`.

# %%
runs = mlflowkit.runs(STORE)
pd.set_option("display.width", 200)
print(runs[["run_id", "status", "verdict", "params.n_estimators", "metrics.roc_auc", "metrics.roc_auc_ci_low"]])

# %%
models = mlflowkit.models(STORE)
print(models[["model", "version", "aliases", "verdict", "onnx", "metrics.roc_auc"]])

# %% [markdown]
# ## Score rows with the champion
# `load_model` reads the version through the registry's checked reads and scores with its ONNX graph in
# ONNX Runtime (no pickle). It takes a DataFrame with the model's feature columns: here the raw rows
# go through the project's own feature step first.

# %%
sys.path.insert(0, str(SPEC.parent))
from churn_steps import add_features  # noqa: E402 (the project's feature code, next to its spec)

model = mlflowkit.load_model(f"{first.version.model}@champion", store=STORE)
raw = pd.read_csv(SPEC.parent / "data" / "churn.csv").head(8)
rows = add_features(raw)  # the features the model was trained on (it drops customer_id)
scored = raw[["customer_id"]].assign(
    churn=model.predict(rows), p_yes=model.predict_proba(rows)[:, list(model.classes_).index("yes")].round(3)
)
print(model)
print(scored)

# %% [markdown]
# ## Compare the two runs
# In a terminal (or with `!` in Jupyter):
#
#     mlflowkit runs list --spec spec.yaml --metric roc_auc --param n_estimators --sort roc_auc --desc
#     mlflowkit runs compare RUN_A RUN_B --spec spec.yaml --html compare.html --open
