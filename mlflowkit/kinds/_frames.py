"""Tables and fitted models in the artifact store: Parquet and joblib, read back by reference.

The joblib files stay inside the store; only ONNX crosses to a deploy target.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from mlflowkit.handoff import JOBLIB, PARQUET

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.store import ArtifactStore, Ref


__all__ = ["JOBLIB", "PARQUET", "load_frame", "load_model", "save_frame", "save_model"]


def save_frame(store: ArtifactStore, frame: pd.DataFrame, **meta: Any) -> Ref:
    """Store ``frame`` as Parquet; ``meta`` (plus rows and columns) travels with the reference."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    info = {"rows": len(frame), "columns": [str(c) for c in frame.columns], **meta}
    return store.put_bytes(buf.getvalue(), PARQUET, info)


def load_frame(store: ArtifactStore, ref: Ref) -> pd.DataFrame:
    """Read a stored table back."""
    import pandas as pd

    path = store.local_path(ref)
    return pd.read_parquet(path if path else io.BytesIO(store.get_bytes(ref)))


def save_model(store: ArtifactStore, model: Any, **meta: Any) -> Ref:
    """Store a fitted model with joblib; ``meta`` travels with the reference."""
    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf)
    return store.put_bytes(buf.getvalue(), JOBLIB, meta)


def load_model(store: ArtifactStore, ref: Ref) -> Any:
    """Read a fitted model back from the store."""
    import joblib

    return joblib.load(io.BytesIO(store.get_bytes(ref)))
