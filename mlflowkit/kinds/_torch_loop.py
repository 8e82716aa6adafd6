"""The training loop each Ray Train worker runs for the ``torch`` kind: DDP on gloo, checkpoints, early stopping.

Every worker seeds torch, numpy and its sampler from the spec's seed, resumes from the last checkpoint
Ray Train hands it, and reports each epoch (rank 0 attaches the checkpoint). Per-epoch seeds make a
resumed run draw the same batches and dropout masks as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import tempfile
from typing import Any

__all__ = ["KILL_ENV", "train_loop"]

KILL_ENV = "MLFLOWKIT_TEST_KILL_WORKER_AT_EPOCH"
"""Fault injection for tests: the last worker SIGKILLs itself once, in the middle of this (0-based) epoch."""

_STATE_FILE = "state.pt"


def _put(queue: Any, item: dict[str, Any]) -> None:
    if queue is not None:
        with contextlib.suppress(Exception):  # progress is best effort; training must not stop for it
            queue.put(item, timeout=5)


def _die(marker: str, rank: int, epoch: int) -> None:
    """Fault injection: SIGKILL this worker, once (the marker file remembers), after the last checkpoint is committed.

    Waiting for the controller to register the checkpoints reported so far makes the test exact: a
    worker that dies before that resumes from the checkpoint before (at most ``checkpoint_every`` more epochs).
    """
    import ray.train

    ray.train.get_all_reported_checkpoints(timeout_s=60)
    with open(marker, "w") as fh:
        fh.write(f"killed worker rank {rank} (pid {os.getpid()}) in epoch {epoch}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def train_loop(config: dict[str, Any]) -> dict[str, Any]:
    """Train on this worker's shard of the data; rank 0 returns the best weights and the history."""
    import numpy as np
    import ray
    import ray.train
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from ray.train.torch import prepare_model
    from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

    from mlflowkit.kinds._torch_model import build_network

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    distributed = dist.is_available() and dist.is_initialized() and world > 1
    seed = int(config["seed"])
    torch.set_num_threads(int(config["threads"]))
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed)  # the same initial weights on every worker (DDP also broadcasts rank 0's)

    data = ray.get(config["data"])
    x_train, y_train = torch.from_numpy(data["x_train"]), torch.from_numpy(data["y_train"])
    x_val, y_val = torch.from_numpy(data["x_val"]), torch.from_numpy(data["y_val"])
    net = build_network(config["model"], **config["network_kwargs"], search_dir=config.get("search_dir"))
    model = prepare_model(net)  # DistributedDataParallel on gloo when there is more than one worker
    plain = getattr(model, "module", model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    dataset = TensorDataset(x_train, y_train)
    sampler: Any = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    loader = DataLoader(dataset, batch_size=int(config["batch_size"]), sampler=sampler)

    state: dict[str, Any] = {"epoch": 0, "best_loss": math.inf, "best_epoch": 0, "best": None, "bad_epochs": 0, "history": []}
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            saved = torch.load(os.path.join(folder, _STATE_FILE), weights_only=True)
        plain.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
    start = int(state["epoch"])
    queue = config.get("progress")
    if rank == 0:
        _put(queue, {"event": "start", "epoch": start, "world": world})

    epochs, every = int(config["epochs"]), int(config["checkpoint_every"])
    kill_at, marker = config.get("kill_at_epoch"), config.get("kill_marker")
    for epoch in range(start, epochs):
        sampler.set_epoch(epoch)
        torch.manual_seed(seed + 7919 * (epoch + 1) + rank)  # dropout masks per (epoch, worker): the same after a resume
        model.train()
        total, count = 0.0, 0
        for batch, (xb, yb) in enumerate(loader):
            if kill_at == epoch and batch == 1 and rank == world - 1 and marker and not os.path.exists(marker):
                _die(marker, rank, epoch)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            total += float(loss.item()) * len(yb)
            count += len(yb)
        sums = torch.tensor([total, float(count)], dtype=torch.float64)
        plain.eval()
        with torch.no_grad():
            losses = torch.tensor([0.0, float(F.cross_entropy(plain(x_val), y_val).item())], dtype=torch.float64)
        if distributed:
            dist.all_reduce(sums)
            dist.broadcast(losses, src=0)  # every worker decides on rank 0's number, so all stop together
        train_loss, val_loss = float(sums[0]) / max(float(sums[1]), 1.0), float(losses[1])
        if val_loss < state["best_loss"] - float(config["min_delta"]):
            state.update(best_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
            state["best"] = {k: v.detach().clone() for k, v in plain.state_dict().items()}
        else:
            state["bad_epochs"] += 1
        state["history"].append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss})
        state["epoch"] = epoch + 1
        stop = ""
        if config.get("target_loss") is not None and val_loss <= float(config["target_loss"]):
            stop = f"the validation loss reached target_loss {config['target_loss']}"
        elif config.get("patience") is not None and state["bad_epochs"] >= int(config["patience"]):
            stop = f"no improvement of the validation loss for {state['bad_epochs']} epochs (patience)"
        metrics = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "start_epoch": start, "stop": stop}
        if rank == 0:
            best = {"best_loss": state["best_loss"], "best_epoch": state["best_epoch"]}
            _put(queue, {"event": "epoch", **metrics, **best, "epochs": epochs})
        save = (epoch + 1) % every == 0 or bool(stop) or epoch + 1 == epochs
        if save and rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                body = {"model": plain.state_dict(), "optimizer": optimizer.state_dict(), "state": state}
                torch.save(body, os.path.join(folder, _STATE_FILE))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)  # a barrier: every worker reports every epoch
        if stop:
            break
    best = state["best"] if state["best"] is not None else plain.state_dict()
    return {
        "start_epoch": start,
        "history": state["history"],
        "best_epoch": state["best_epoch"],
        "best_loss": state["best_loss"],
        "weights": {k: v.detach().cpu().numpy() for k, v in best.items()},
    }
