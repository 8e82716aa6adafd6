"""The trained torch model as the store keeps it: fitted preprocessing, the network's recipe and weights.

:class:`TorchTabularModel` takes raw columns (a DataFrame) like a scikit-learn pipeline and exposes
``predict``/``predict_proba``/``classes_``, so evaluate and export treat it like any other model. It pickles
without torch objects (weights as numpy arrays) and rebuilds the network on first use; torch is imported
only then, so loading this module stays light.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["TorchTabularModel", "build_network", "numeric_columns", "preprocessor"]


def build_network(
    model: str, *, in_features: int, out_features: int, params: dict[str, Any], search_dir: str | None = None
) -> Any:
    """An untrained ``torch.nn.Module`` mapping ``[batch, in_features]`` float32 to ``[batch, out_features]`` logits.

    ``model`` is ``mlp`` (the built-in network: Linear-ReLU-Dropout per size in ``params["hidden"]``, then
    Linear) or a ``module:Class`` path; that class is called with ``params``, plus ``in_features`` and
    ``out_features`` when its signature takes them.
    """
    import inspect

    import torch
    from torch import nn

    if model == "mlp":
        layers: list[Any] = []
        width = in_features
        for size in params.get("hidden", [64, 32]):
            layers += [nn.Linear(width, size), nn.ReLU()]
            if params.get("dropout", 0.0) > 0:
                layers.append(nn.Dropout(params["dropout"]))
            width = size
        layers.append(nn.Linear(width, out_features))
        return nn.Sequential(*layers)
    cls = import_model(model, search_dir)
    # Checked before it is called: a stored model names its network, and only a Module may be built from it.
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise TypeError(f"{model} is not a torch.nn.Module class")
    accepted = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    sizes = {"in_features": in_features, "out_features": out_features}
    net = cls(**{**{k: v for k, v in sizes.items() if takes_any or k in accepted}, **params})
    if not isinstance(net, torch.nn.Module):
        raise TypeError(f"{model} built a {type(net).__name__}, not a torch.nn.Module")
    return net


def import_model(path: str, search_dir: str | None = None) -> Any:
    """The class ``module:Class`` (or ``module.Class``) names; ``search_dir`` is tried when the module is not importable."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if not search_dir or search_dir in sys.path:
            raise
        sys.path.insert(0, search_dir)
        module = importlib.import_module(module_name)
    return getattr(module, attr)


def numeric_columns(frame: Any) -> list[str]:
    """The columns fed as numbers (the others are one-hot encoded)."""
    return [str(c) for c in frame.columns if frame[c].dtype.kind in "iuf"]


def preprocessor(frame: Any) -> Any:
    """An unfitted ColumnTransformer: numbers imputed (median) and standardised, text imputed and one-hot encoded."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = numeric_columns(frame)
    categorical = [str(c) for c in frame.columns if str(c) not in numeric]
    steps: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps.append(("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric))
    if categorical:
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        steps.append(
            ("categorical", Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", encode)]), categorical)
        )
    return ColumnTransformer(steps, sparse_threshold=0.0)


class TorchTabularModel:
    """Raw columns in, labels and probabilities out: fitted preprocessing, then the trained network, then softmax.

    Attributes:
        framework: ``"torch"`` (the export step picks the torch.onnx path on it).
        preprocess: the fitted ColumnTransformer.
        features: the feature columns, in training order.
        classes_: the class labels, in the order of the probability columns.
        model: ``mlp`` or the ``module:Class`` path of the network.
        network_kwargs: ``in_features``, ``out_features`` and ``params`` for :func:`build_network`.
        weights: the trained ``state_dict`` as numpy arrays.
        search_dir: the spec's folder, where a user's network module is looked up.
    """

    framework = "torch"

    def __init__(
        self,
        *,
        preprocess: Any,
        features: list[str],
        classes: list[Any],
        model: str,
        network_kwargs: dict[str, Any],
        weights: dict[str, Any],
        search_dir: str | None = None,
    ) -> None:
        import numpy as np

        self.preprocess = preprocess
        self.features = list(features)
        self.classes_ = np.asarray(classes)
        self.model = model
        self.network_kwargs = dict(network_kwargs)
        self.weights = dict(weights)
        self.search_dir = search_dir
        self._net: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_net"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._net = None

    def network(self) -> Any:
        """The trained network followed by softmax, in eval mode (``[batch, n_inputs]`` float32 → probabilities)."""
        if self._net is None:
            import torch

            net = build_network(self.model, **self.network_kwargs, search_dir=self.search_dir)
            net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.weights.items()})
            self._net = torch.nn.Sequential(net, torch.nn.Softmax(dim=1)).eval()
        return self._net

    @property
    def n_inputs(self) -> int:
        """Width of the preprocessed matrix (the network's input)."""
        return int(self.network_kwargs["in_features"])

    def transform(self, frame: Any) -> Any:
        """The preprocessed float32 matrix of ``frame``'s feature columns."""
        import numpy as np

        return np.asarray(self.preprocess.transform(frame[self.features]), dtype=np.float32)

    def predict_proba(self, frame: Any) -> Any:
        """Class probabilities, one column per class in ``classes_`` order."""
        import torch

        with torch.no_grad():
            out = self.network()(torch.from_numpy(self.transform(frame)))
        return out.numpy()

    def predict(self, frame: Any) -> Any:
        """The most probable class of each row."""
        return self.classes_[self.predict_proba(frame).argmax(axis=1)]
