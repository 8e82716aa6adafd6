"""Tables in the artifact store: Parquet, read back by reference (fitted models: `mlflowkit.kinds.model_files`)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from mlflowkit.handoff import PARQUET

if TYPE_CHECKING:
    import pandas as pd

    from mlflowkit.store import ArtifactStore, Ref


__all__ = ["PARQUET", "load_frame", "save_frame"]


def save_frame(store: ArtifactStore, frame: pd.DataFrame, **meta: Any) -> Ref:
    """Store ``frame`` as Parquet; ``meta`` (plus rows and columns) travels with the reference."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    info = {"rows": len(frame), "columns": [str(c) for c in frame.columns], **meta}
    return store.put_bytes(buf.getvalue(), PARQUET, info)


def load_frame(store: ArtifactStore, ref: Ref) -> pd.DataFrame:
    """Read a stored table back: the very bytes checked against the reference's hash are parsed."""
    import pandas as pd

    return pd.read_parquet(io.BytesIO(store.get_bytes(ref)))
