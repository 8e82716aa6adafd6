"""The ``torch`` kind: data-parallel PyTorch on Ray Train (CPU, gloo) for tabular classification.

The driver fits the preprocessing (scaling, one-hot) on the training split and holds out a validation
share; the workers (``_torch_loop``) train the network on the preprocessed arrays with DDP, checkpoint
every few epochs and resume from the last checkpoint when a worker dies. The stored model
(``_torch_model.TorchTabularModel``) takes raw columns, so evaluate, export and serving see a table.
torch and Ray are imported inside :meth:`TorchTrain.run` only.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field

from mlflowkit.errors import StepFailed
from mlflowkit.handoff import ModelMeta
from mlflowkit.kinds._frames import load_frame
from mlflowkit.kinds._hpo import _address
from mlflowkit.kinds.base import Inputs, Params, SectionIssues, StepContext, StepKind
from mlflowkit.kinds.model_files import save_model

if TYPE_CHECKING:
    from mlflowkit.store import Ref

__all__ = ["TorchParams", "TorchRaySettings", "TorchTrain"]

_MODEL_PATH = r"^mlp$|^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class TorchRaySettings(Params):
    """Which Ray cluster the workers run on."""

    address: Annotated[str | None, AfterValidator(_address)] = Field(
        None,
        description="A Ray cluster to join: `auto`, `host:port`, `ray://host:port`; default: a local instance started on demand.",
    )


class TorchParams(Params):
    """The network, how it is trained, and on how many Ray Train workers."""

    model: str = Field(
        "mlp",
        pattern=_MODEL_PATH,
        description=(
            "`mlp` (built in: Linear-ReLU-Dropout per hidden size) or `module:Class`, a torch.nn.Module taking a float32"
            " [batch, n_inputs] tensor and returning [batch, n_classes] logits, imported from the spec's folder."
        ),
    )
    model_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for `module:Class` (it also gets in_features/out_features when it takes them).",
    )
    hidden: list[Annotated[int, Field(ge=1)]] = Field([64, 32], description="Hidden layer sizes of the built-in `mlp`.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout after each hidden layer of the built-in `mlp`.")
    exclude: list[str] = Field(default_factory=list, description="Columns left out of the features (ids, free text).")
    num_workers: int = Field(2, ge=1, le=256, description="Ray Train workers (data-parallel processes, gloo on CPU).")
    resources_per_worker: dict[str, float] = Field(
        default_factory=lambda: {"CPU": 1.0}, description="Ray resources each worker reserves, e.g. {CPU: 1}."
    )
    epochs: int = Field(20, ge=1, le=100_000, description="Most epochs to train.")
    batch_size: int = Field(64, ge=1, description="Rows per batch on each worker.")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay.")
    validation_fraction: float = Field(
        0.2, gt=0, lt=1, description="Share of the training split held out for the validation loss (stratified, seeded)."
    )
    checkpoint_every: int = Field(1, ge=1, description="Checkpoint every N epochs (and at the last one); a retry resumes there.")
    patience: int | None = Field(None, ge=1, description="Early stopping: stop after this many epochs without improvement.")
    min_delta: float = Field(0.0, ge=0, description="Early stopping: the least decrease of the validation loss that counts.")
    target_loss: float | None = Field(None, gt=0, description="Stop as soon as the validation loss is at most this.")
    max_failures: int = Field(
        2, ge=0, le=100, description="Worker-group failures (a worker died) retried from the last checkpoint; 0: fail at once."
    )
    seed: int = Field(42, description="Seeds the validation split, initial weights, samplers and dropout on every worker.")
    ray: TorchRaySettings | None = Field(None, description="Where the workers run (default: a local Ray instance).")


class TorchTrain(StepKind):
    """Train a torch network data-parallel on Ray Train workers, with checkpoints, retries and early stopping.

    The model keeps the best validation-loss weights. Numbers are imputed and standardised, text is
    one-hot encoded; both are fitted on the training split and saved with the network.

    Example:

    ```yaml
    train:
      kind: torch
      model: mlp                 # or mypkg.nets:TabularNet, with model_params: {...}
      hidden: [64, 32]
      dropout: 0.1
      exclude: [customer_id]
      num_workers: 2
      epochs: 30
      batch_size: 64
      lr: 0.003
      checkpoint_every: 2
      patience: 5
      min_delta: 0.001
      target_loss: 0.45
      max_failures: 2
      seed: 7
    ```
    """

    Params = TorchParams
    summary = "train a torch network data-parallel on Ray Train"
    keeps_columns = True

    @classmethod
    def columns_read(cls, section: Any, spec: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
        for i, column in enumerate(section.exclude):
            yield ("exclude", i), column

    @classmethod
    def check(cls, section: Any, spec: Any) -> SectionIssues:
        from mlflowkit.kinds._estimators import allowed_modules
        from mlflowkit.policy.rules import module_allowed

        if section.model == "mlp":
            if section.model_params:
                yield ("model_params",), "model_params apply to a `module:Class` model", "for `mlp`, set hidden and dropout"
        else:  # hidden and dropout are ignored here: a recipe may default them for its mlp
            from mlflowkit.policy import policy_of

            module = section.model.partition(":")[0]
            allowed = allowed_modules()
            policy = policy_of(spec)
            if policy is not None and policy.modules.estimators is not None:
                pass  # the operations policy owns the allow-list, and reports a refusal at its own rule
            elif not module_allowed(module, allowed):
                yield (
                    ("model",),
                    f"model {section.model!r} is outside the allowed modules",
                    f"allowed: {', '.join(allowed)}",
                )
        if section.patience is None and "min_delta" in section.model_fields_set:
            yield ("min_delta",), "min_delta applies to early stopping, and patience is not set", "set patience"
        if section.checkpoint_every > section.epochs:
            yield ("checkpoint_every",), f"checkpoint_every ({section.checkpoint_every}) is more than epochs", ""
        target = spec.section("data").target if spec.section("data") is not None else None
        if target is not None and target in section.exclude:
            yield ("exclude",), f"{target!r} is the target; it is never a feature", "remove it from exclude"

    def run(self, ctx: StepContext, params: TorchParams, inputs: Inputs) -> dict[str, Ref]:
        import numpy as np

        from mlflowkit.kinds._torch_model import TorchTabularModel, numeric_columns, preprocessor

        ref = inputs["train"]
        frame = load_frame(ctx.store, ref)
        target = ref.meta["target"]
        missing = [c for c in params.exclude if c not in frame.columns]
        if missing:
            raise StepFailed(ctx.step, f"exclude names columns that are not in the data: {missing}")
        x, y = frame.drop(columns=[target, *params.exclude]), frame[target]
        if y.isna().any():
            raise StepFailed(ctx.step, f"the target {target!r} has missing values; a classifier needs a label on every row")
        classes = sorted(y.unique().tolist(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise StepFailed(ctx.step, f"the target {target!r} has one class ({classes}); a classifier needs two or more")
        ctx.logger.info(
            "features: %d numeric, %d one-hot encoded", len(numeric_columns(x)), len(x.columns) - len(numeric_columns(x))
        )
        x_fit, x_val, y_fit, y_val = _validation_split(x, y, params)
        pre = preprocessor(x)
        try:
            arrays = {
                "x_train": np.asarray(pre.fit_transform(x_fit), dtype=np.float32),
                "x_val": np.asarray(pre.transform(x_val), dtype=np.float32),
            }
        except (ValueError, TypeError) as exc:
            raise StepFailed(ctx.step, f"cannot preprocess the features: {exc}") from exc
        index = {c: i for i, c in enumerate(classes)}
        arrays["y_train"] = np.asarray([index[v] for v in y_fit], dtype=np.int64)
        arrays["y_val"] = np.asarray([index[v] for v in y_val], dtype=np.int64)
        network_kwargs = {
            "in_features": int(arrays["x_train"].shape[1]),
            "out_features": len(classes),
            "params": {"hidden": list(params.hidden), "dropout": params.dropout}
            if params.model == "mlp"
            else dict(params.model_params),
        }
        self._check_network(ctx, params, network_kwargs)
        outcome = _fit(ctx, params, arrays, network_kwargs)
        model = TorchTabularModel(
            preprocess=pre,
            features=[str(c) for c in x.columns],
            classes=classes,
            model=params.model,
            network_kwargs=network_kwargs,
            weights=outcome.pop("weights"),
            search_dir=ctx.spec_dir if params.model != "mlp" else None,
        )
        history = outcome["history"]
        last = history[-1] if history else {}
        ctx.logger.info(
            "trained %s on %d workers: %d epochs, best validation loss %.4f (epoch %d)%s",
            params.model,
            params.num_workers,
            last.get("epoch", 0),
            outcome["best_loss"],
            outcome["best_epoch"],
            f", resumed from epoch {outcome['start_epoch']}" if outcome["start_epoch"] else "",
        )
        ctx.report("epochs", f"Training: {len(history)} epochs on {params.num_workers} workers", rows=history)
        meta = ModelMeta(
            estimator=f"torch:{params.model}",
            params=params.model_dump(mode="json", exclude={"ray"}),
            features=tuple(str(c) for c in x.columns),
            target=target,
            classes=tuple(classes),
            task="classification",
            framework="torch",
            data_fingerprint=ref.meta.get("data_fingerprint"),
            positive=ref.meta.get("positive"),
            torch=outcome,
        )
        return {"model": save_model(ctx.store, model, keep_in=ctx.models, **meta.model_dump(mode="json", exclude_none=True))}

    @staticmethod
    def _check_network(ctx: StepContext, params: TorchParams, network_kwargs: dict[str, Any]) -> None:
        """Build the network once in the driver, so that a bad model path or signature fails before Ray starts."""
        import numpy as np
        import torch

        from mlflowkit.kinds._policy import governing_policy
        from mlflowkit.kinds._torch_model import build_network
        from mlflowkit.policy import import_refusal

        # Before anything of the user's module runs: importing it executes its code.
        module = params.model.partition(":")[0]
        if params.model != "mlp" and (refusal := import_refusal(governing_policy(ctx), module, what="estimators")):
            raise StepFailed(ctx.step, refusal)
        try:
            net = build_network(params.model, **network_kwargs, search_dir=ctx.spec_dir)
            with torch.no_grad():
                out = net.eval()(torch.from_numpy(np.zeros((2, network_kwargs["in_features"]), dtype=np.float32)))
        except Exception as exc:  # the user's module may raise anything
            raise StepFailed(
                ctx.step, f"cannot build {params.model} with {network_kwargs['params']}: {type(exc).__name__}: {exc}"
            ) from exc
        if tuple(out.shape) != (2, network_kwargs["out_features"]):
            raise StepFailed(
                ctx.step,
                f"{params.model} returns shape {tuple(out.shape)} for a batch of 2; "
                f"it must return [batch, {network_kwargs['out_features']}] logits (one per class)",
            )


def _validation_split(x: Any, y: Any, params: TorchParams) -> tuple[Any, Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    stratify = y if y.value_counts().min() >= 2 else None
    parts = train_test_split(x, y, test_size=params.validation_fraction, random_state=params.seed, stratify=stratify)
    return parts[0], parts[1], parts[2], parts[3]


def _fit(ctx: StepContext, params: TorchParams, arrays: dict[str, Any], network_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Run the training loop on Ray Train; return rank 0's result plus where each attempt started."""
    import ray
    import ray.train
    from ray.exceptions import RayError
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Empty, Queue

    from mlflowkit.kinds._hpo import RaySettings, start_ray
    from mlflowkit.kinds._torch_loop import KILL_ENV, train_loop

    address = params.ray.address if params.ray else None
    try:
        started = start_ray(RaySettings(address=address))
    except (RayError, RuntimeError, ConnectionError, ValueError) as exc:
        raise StepFailed(
            ctx.step, f"cannot start or join Ray ({address or 'a local instance'}): {type(exc).__name__}: {exc}"
        ) from exc
    storage = _storage(ctx)
    queue: Any = None
    try:
        _check_resources(ctx.step, params, ray.cluster_resources())  # type: ignore[no-untyped-call]
        queue = Queue(actor_options={"num_cpus": 0})
        config: dict[str, Any] = {
            "data": ray.put(arrays),
            "model": params.model,
            "network_kwargs": network_kwargs,
            "search_dir": ctx.spec_dir,
            "seed": params.seed,
            "threads": max(1, int(params.resources_per_worker.get("CPU", 1))),
            "epochs": params.epochs,
            "batch_size": params.batch_size,
            "lr": params.lr,
            "weight_decay": params.weight_decay,
            "checkpoint_every": params.checkpoint_every,
            "patience": params.patience,
            "min_delta": params.min_delta,
            "target_loss": params.target_loss,
            "progress": queue,
        }
        kill_at = os.environ.get(KILL_ENV, "").strip()
        if kill_at:
            config["kill_at_epoch"] = int(kill_at)
            config["kill_marker"] = os.path.join(storage, "fault-injected")
            ctx.logger.warning(
                "%s=%s: a worker will kill itself once in epoch %s (test fault injection)", KILL_ENV, kill_at, kill_at
            )
        trainer = TorchTrainer(
            train_loop,  # type: ignore[arg-type]  # its return value reaches Result.return_value
            train_loop_config=config,
            scaling_config=ray.train.ScalingConfig(
                num_workers=params.num_workers, use_gpu=False, resources_per_worker=dict(params.resources_per_worker)
            ),
            run_config=ray.train.RunConfig(
                name=_run_name(ctx),
                storage_path=storage,
                failure_config=ray.train.FailureConfig(max_failures=params.max_failures),
                checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            ),
        )
        box: dict[str, Any] = {}

        def fit() -> None:
            # Off the main thread: fit() would otherwise install its own SIGINT handler over the runner's.
            try:
                box["result"] = trainer.fit()
            except BaseException as exc:  # handed to the main thread, which raises it as StepFailed
                box["error"] = exc

        thread = threading.Thread(target=fit, name=f"mlflowkit-torch-{ctx.step}", daemon=True)
        began = time.perf_counter()
        thread.start()
        starts: list[int] = []
        while thread.is_alive() or not queue.empty():
            try:
                item = queue.get(timeout=0.5)
            except Empty:
                continue
            _progress(ctx, item, starts)
        thread.join()
        seconds = time.perf_counter() - began
        if "error" in box:
            raise StepFailed(ctx.step, _failure(box["error"], params)) from box["error"]
        value = box["result"].return_value
        if not value:
            raise StepFailed(ctx.step, "Ray Train finished without a result from worker 0")
        value["attempts"] = len(starts) or 1
        value["attempt_start_epochs"] = starts
        value["seconds"] = round(seconds, 3)
        value["num_workers"] = params.num_workers
        value["best_loss"] = value["best_loss"] if math.isfinite(value["best_loss"]) else None
        shutil.rmtree(storage, ignore_errors=True)  # checkpoints served the retries; the model goes to the store
        return dict(value)
    finally:
        if queue is not None:
            queue.shutdown()
        if started:
            ray.shutdown()


def _storage(ctx: StepContext) -> str:
    """Where Ray Train keeps checkpoints: under a local store (kept after a failure, for a look), else a temp folder."""
    import tempfile

    if ctx.store.is_local:
        folder = os.path.join(ctx.store.root, "ray-train", _run_name(ctx))
        os.makedirs(folder, exist_ok=True)
        return folder
    return tempfile.mkdtemp(prefix=f"mlflowkit-{_run_name(ctx)}-")


def _run_name(ctx: StepContext) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{ctx.run_id}-{ctx.step}")


def _check_resources(step: str, params: TorchParams, resources: dict[str, float]) -> None:
    """Fail at once when the cluster cannot hold every worker (Ray Train would otherwise wait for ever)."""
    short = {
        name: (amount * params.num_workers, float(resources.get(name, 0)))
        for name, amount in params.resources_per_worker.items()
        if amount * params.num_workers > float(resources.get(name, 0))
    }
    if short:
        wanted = ", ".join(f"{need:g} {name}" for name, (need, _) in short.items())
        have = ", ".join(f"{got:g} {name}" for name, (_, got) in short.items())
        raise StepFailed(
            step,
            f"{params.num_workers} workers need {wanted} in all, but the Ray cluster has {have}; "
            "lower num_workers or resources_per_worker",
        )


def _progress(ctx: StepContext, item: dict[str, Any], starts: list[int]) -> None:
    if item.get("event") == "start":
        starts.append(int(item["epoch"]))
        if len(starts) > 1 or item["epoch"]:
            ctx.logger.warning(
                "attempt %d: workers restarted; resuming from the checkpoint after epoch %d", len(starts), item["epoch"]
            )
        else:
            ctx.logger.info("training on %d workers", item["world"])
        return
    best = item.get("best_loss")
    ctx.advance(
        "epochs",
        int(item["epoch"]),
        int(item["epochs"]),
        values=[("train loss", item["train_loss"]), ("validation loss", item["val_loss"])],
        note=f"stopping: {item['stop']}" if item.get("stop") else "",
        best=best if isinstance(best, float) and math.isfinite(best) else None,
        best_note=f"epoch {item['best_epoch']}" if item.get("best_epoch") else "",
    )


def _failure(exc: BaseException, params: TorchParams) -> str:
    """The cause in words: which worker died or raised, and after how many retries."""
    failures = getattr(exc, "worker_failures", None)
    budget = f"after max_failures={params.max_failures} retries" if params.max_failures else "with max_failures=0 (no retries)"
    if failures:
        causes = []
        for rank, error in sorted(failures.items()):
            text = str(error).strip().splitlines()
            died = "ActorDiedError" in type(error).__name__ or "died" in str(error).lower() or "unexpectedly" in str(error)
            what = "worker died (its process exited)" if died else f"{type(error).__name__}: {text[-1] if text else ''}"
            causes.append(f"worker rank {rank}: {what}")
        return f"Ray Train failed {budget}: " + "; ".join(causes)
    text = str(exc).strip().splitlines()
    first = f"{type(exc).__name__}: {text[0] if text else ''}"
    if type(exc).__name__ in {"ControllerError", "TrainingFailedError", "PreemptionError"}:
        return f"Ray Train failed {budget}: {first}"
    return f"Ray Train could not run: {first}"
