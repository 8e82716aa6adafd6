"""Fitted models as the store and the registry keep them: skops files read with a trusted-type list, never a pickle.

Whoever can write to a store can rewrite a cache entry *and* the object it points to with a matching
hash, so a hash alone does not make bytes safe to unpickle. Models are therefore written with skops
(`save_model`) and read back only when every type the file names is one a model may be made of
(`load_model`). A registered version is scored through its ONNX graph in ONNX Runtime when it has one
(`registered_model`); a pickle (``model.joblib``, from versions registered before skops) is loaded only
from a version whose signature a trusted key verified.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlflowkit.errors import MlflowkitError, RegistryError
from mlflowkit.handoff import JOBLIB, SKOPS
from mlflowkit.kinds._skops import skops_io
from mlflowkit.kinds.memo import ModelMemo

if TYPE_CHECKING:
    import numpy as np

    from mlflowkit.policy.model import Policy
    from mlflowkit.store import ArtifactStore, ModelRegistry, ModelVersion, Ref
    from mlflowkit.targets.contract import Contract

__all__ = [
    "JOBLIB",
    "SKOPS",
    "OnnxClassifier",
    "OnnxModel",
    "UntrustedModel",
    "load_model",
    "loads_model",
    "model_file_name",
    "model_refusal",
    "registered_model",
    "save_model",
]


_FILE_NAMES = {SKOPS: "model.skops", JOBLIB: "model.joblib"}
# What a stored model may be made of besides skops' own trusted types: classes of scikit-learn (pipelines,
# encoders, trees, kernels, losses) and of the estimator allow-list, and numpy's and scipy's data types
# (dtypes, scalars, sparse matrices: a KNN keeps its one-hot encoded training rows as one).
# skops rebuilds a named class from the file's state (``__new__`` + ``__setstate__``) or calls it with the
# file's arguments, so every class is a capability: numpy's ``memmap`` creates the file it is given, its
# ``DataSource`` removes the folder its state names when it is collected. Other numpy and scipy classes
# are therefore refused, and a class counts only under its own name (``numpy.distutils.fcompiler.gnu.Popen``
# is subprocess.Popen).
_CLASS_MODULES = ("sklearn",)
_DATA_TYPE_MODULES = ("numpy", "scipy")
_TORCH_MODEL = "mlflowkit.kinds._torch_model.TorchTabularModel"
_RETRAIN = "rerun the step that trained it (mlflowkit run SPEC --from train) to store it with skops"


class UntrustedModel(MlflowkitError):
    """A stored model names types it may not be made of, or is a pickle that nothing vouches for."""


def save_model(store: ArtifactStore, model: Any, *, keep_in: ModelMemo | None = None, **meta: Any) -> Ref:
    """Store a fitted model with skops; ``meta`` travels with the reference; ``keep_in`` keeps the object for the run.

    Raises:
        UntrustedModel: skops cannot write this model (an object it does not know how to rebuild).
    """
    sio = skops_io()

    try:
        data = sio.dumps(model)
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise UntrustedModel(
            f"cannot store a {type(model).__module__}.{type(model).__name__} without pickle: skops cannot write it ({exc})"
        ) from exc
    # The types the file names beyond skops' own trusted ones, so that a reader parses it once: the reader
    # still judges each name, and skops refuses a file that names any other.
    ref = store.put_bytes(data, SKOPS, {**meta, "skops_types": sorted(sio.get_untrusted_types(data=data))})
    if keep_in is not None:
        keep_in.keep(ref.sha256, model)
    return ref


def model_file_name(ref: Ref) -> str:
    """The file name a model stored under ``ref`` gets in a registry version (``model.skops``)."""
    return _FILE_NAMES.get(ref.media_type, "model.skops")


def _allowed_modules(policy: Policy | None) -> tuple[str, ...]:
    """The estimator modules in force: the policy's when it sets them, else the built-in allow-list and its variable."""
    import os

    if policy is not None and policy.modules.estimators is not None:
        return tuple(policy.modules.estimators)
    # The train kind's allow-list (kinds.train imports this module, so it is read here rather than imported).
    extra = [p.strip() for p in os.environ.get("MLFLOWKIT_ALLOWED_MODULES", "").split(",") if p.strip()]
    return ("sklearn", "xgboost", "lightgbm", *extra)


def _refusal(name: str, allowed: tuple[str, ...]) -> str:  # noqa: PLR0911 - one return per reason
    """Why a stored model may not name ``name`` (``""``: it may): see ``_CLASS_MODULES``."""
    import warnings

    from mlflowkit.policy import module_allowed

    if name == _TORCH_MODEL:
        return ""
    module, _, attr = name.rpartition(".")
    data_type = not module_allowed(name, list(allowed)) and module_allowed(name, list(_DATA_TYPE_MODULES))
    if not module or any(part.startswith("__") for part in name.split(".")):
        return "not an import path of a class"  # importing numpy.f2py.__main__ would run f2py
    if not module_allowed(name, list(allowed)) and not data_type:
        return "outside the allowed modules"
    try:
        with warnings.catch_warnings():  # a deprecated module warns on import; the name is judged all the same
            warnings.simplefilter("ignore")
            found = getattr(importlib.import_module(module), attr)
    except Exception:  # no such module or class, or its import fails: either way it is not loaded
        return "no such class"
    if not isinstance(found, type):
        return "not a class: a function would be called with the file's arguments"
    defined = f"{found.__module__}.{found.__qualname__}"
    if defined != name:
        return f"it is {defined}, under another name"
    if data_type and not issubclass(found, _data_types()):
        return "a numpy or scipy class that is not a data type"
    return ""


def _data_types() -> tuple[type, ...]:
    """The numpy and scipy classes a model may hold: dtypes, scalar types, sparse matrices and arrays (data, no behaviour)."""
    import numpy as np
    from scipy import sparse

    return (np.dtype, np.generic, sparse.spmatrix, sparse.sparray)


def _refused(names: list[str], allowed: tuple[str, ...]) -> list[str]:
    """The names among ``names`` a stored model may not be made of, each with why."""
    return [f"{name} ({why})" for name in names if (why := _refusal(name, allowed))]


def _judged(data: bytes, *, where: str, policy: Policy | None, names: Sequence[str] | None) -> tuple[list[str], tuple[str, ...]]:
    """The types the skops bytes name (``names`` when the reference declares them), judged; and the modules allowed.

    Raises:
        UntrustedModel: a type it may not be made of, or bytes that are no skops file.
    """
    sio = skops_io()

    allowed = tuple(dict.fromkeys((*_CLASS_MODULES, *(m.rstrip(".") for m in _allowed_modules(policy)))))
    try:
        named = list(sio.get_untrusted_types(data=data)) if names is None else [str(n) for n in names]
    except Exception as exc:  # not a skops file at all: zip or schema errors of any kind
        raise UntrustedModel(f"{where} is not a model file mlflowkit can read ({type(exc).__name__}: {exc})") from exc
    refused = _refused(named, allowed)
    if refused:
        raise UntrustedModel(
            f"{where} names {', '.join(refused)}: a model may be made of classes of {', '.join(allowed)} and of "
            "numpy and scipy data types only; it was not loaded"
        )
    return named, allowed


def model_refusal(data: bytes, *, where: str, policy: Policy | None = None) -> str | None:
    """Why `loads_model` would refuse these skops bytes, judged from the names they hold (nothing is rebuilt); None if not.

    ``mlflowkit store verify`` asks it of every model a cache entry names.
    """
    try:
        _judged(data, where=where, policy=policy, names=None)
    except UntrustedModel as exc:
        return str(exc)
    return None


def loads_model(
    data: bytes,
    *,
    where: str,
    spec_dir: str | None = None,
    policy: Policy | None = None,
    names: Sequence[str] | None = None,
) -> Any:
    """A model from skops bytes, if every type they name is one a model may be made of (see ``_CLASS_MODULES``).

    Args:
        data: the skops file's bytes (already checked against their hash by the caller).
        where: the file or object, for messages.
        spec_dir: the folder of the spec running now: a torch model looks up its network's module there
            (never where the file says).
        policy: the operations policy governing the run: its estimator modules replace the built-in ones.
        names: the types the file says it names (a reference's ``skops_types``), so it is parsed once; each
            is judged here all the same, and a file that names any other type is refused by skops.

    Raises:
        UntrustedModel: the file names a function, a type outside the allowed modules, a numpy or scipy class
            that is not a data type, or a class under a name not its own; or it is no skops file.
    """
    sio = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    named, allowed = _judged(data, where=where, policy=policy, names=names)
    try:
        model = sio.loads(data, trusted=named)
    except UntrustedTypesFoundException as exc:
        raise UntrustedModel(f"{where}: {exc}; it was not loaded") from exc
    except Exception as exc:  # not a skops file at all: zip or schema errors of any kind
        raise UntrustedModel(f"{where} is not a model file mlflowkit can read ({type(exc).__name__}: {exc})") from exc
    return _confined(model, where=where, spec_dir=spec_dir, allowed=allowed)


def _confined(model: Any, *, where: str, spec_dir: str | None, allowed: tuple[str, ...]) -> Any:
    """A torch model's network module must be allowed, and is looked up in the spec's folder, not the file's."""
    from mlflowkit.kinds._torch_model import TorchTabularModel

    if not isinstance(model, TorchTabularModel):
        return model
    network = str(model.model)
    if network != "mlp":
        from mlflowkit.policy import module_allowed

        module = network.partition(":")[0]
        if not module_allowed(module, list(allowed)):
            raise UntrustedModel(f"{where}: its network {network!r} is outside the allowed modules ({', '.join(allowed)})")
    model.search_dir = spec_dir if network != "mlp" else None
    return model


def load_model(
    store: ArtifactStore,
    ref: Ref,
    *,
    spec_dir: str | None = None,
    policy: Policy | None = None,
    kept: ModelMemo | None = None,
) -> Any:
    """Read a fitted model back from the store (its bytes checked against their hash, then loaded without pickle).

    With ``kept``, a model this run stored is not rebuilt: once the bytes verify and their types are judged
    as for any file, the object that was written as those bytes is returned (callers must not change it).

    Raises:
        IntegrityError: the object does not hash as the reference says.
        UntrustedModel: a pickle from an older mlflowkit, or a file naming types it may not be made of.
    """
    if ref.media_type == JOBLIB:
        raise UntrustedModel(f"{ref.key} is a pickled model from an older mlflowkit, and pickles are not loaded; {_RETRAIN}")
    names = ref.meta.get("skops_types")
    declared = names if isinstance(names, list) else None
    data = store.get_bytes(ref)  # verified against ref.sha256 (IntegrityError otherwise)
    model = kept.get(ref.sha256) if kept is not None and ref.media_type == SKOPS else None
    if model is None:
        return loads_model(data, where=ref.key, spec_dir=spec_dir, policy=policy, names=declared)
    _, allowed = _judged(data, where=ref.key, policy=policy, names=declared)
    return _confined(model, where=ref.key, spec_dir=spec_dir, allowed=allowed)


class OnnxModel:
    """A registered version's ONNX graph in ONNX Runtime, used like a fitted estimator (``predict``, ``classes_``).

    Classifiers exported with probabilities get ``predict_proba`` too (see `OnnxClassifier`).
    """

    def __init__(self, onnx: bytes, contract: Contract) -> None:
        import numpy as np
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initializers are noise here
        self.contract = contract
        self._session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
        self._names = [o.name for o in self._session.get_outputs()]
        self._last: tuple[Any, dict[str, Any]] | None = None  # predict and predict_proba of one frame: one run
        if contract.classes:
            self.classes_ = np.asarray(contract.classes)

    def _outputs(self, frame: Any) -> dict[str, Any]:
        from mlflowkit.targets.contract import feeds

        if self._last is not None and self._last[0] is frame:
            return self._last[1]
        outputs = dict(zip(self._names, self._session.run(self._names, feeds(self.contract, frame)), strict=True))
        self._last = (frame, outputs)
        return outputs

    def predict(self, frame: Any) -> np.ndarray[Any, Any]:
        """The predicted label (or value) of each row."""
        import numpy as np

        contract = self.contract
        raw = np.asarray(self._outputs(frame)[contract.label_output or contract.outputs[0].name]).reshape(len(frame), -1)[:, 0]
        if not contract.classes:
            return raw.astype(np.float64)
        labels = [v.decode() if isinstance(v, bytes) else v for v in raw]
        return np.asarray(labels, dtype=self.classes_.dtype)


class OnnxClassifier(OnnxModel):
    """An `OnnxModel` whose graph outputs class probabilities."""

    def predict_proba(self, frame: Any) -> np.ndarray[Any, Any]:
        """Class probabilities, one column per class in ``classes_`` order."""
        import numpy as np

        assert self.contract.probability_output is not None  # made only for contracts that have one
        proba = np.asarray(self._outputs(frame)[self.contract.probability_output], dtype=np.float64)
        # The graph computes in float32: rows sum to 1 within ~1e-7; make them sum to 1 in float64 again.
        normalised: np.ndarray[Any, Any] = proba / proba.sum(axis=1, keepdims=True)
        return normalised


def _onnx_model(registry: ModelRegistry, version: ModelVersion) -> OnnxModel:
    """A version's ONNX graph in ONNX Runtime; bytes that are no contract or no graph are a RegistryError naming the file.

    Without trusted keys a registry writer can replace a file and its digest alike (docs/threat-model.md):
    the bytes then pass ``read_file`` and only the parser can tell.
    """
    from pydantic import ValidationError

    from mlflowkit.targets.contract import Contract

    name, number = version.model, version.version
    hint = "it was damaged or replaced: mlflowkit store verify lists what else does not verify, and trusted keys refuse a forgery"
    try:
        contract = Contract.model_validate_json(registry.read_file(name, number, "contract.json"))
    except ValidationError as exc:
        where = registry.file_path(name, number, "contract.json")
        raise RegistryError(f"{name} v{number}: {where} is not a model contract ({exc.error_count()} errors); {hint}") from exc
    cls = OnnxClassifier if contract.probability_output else OnnxModel
    try:
        return cls(registry.read_file(name, number, "model.onnx"), contract)
    except RegistryError:
        raise
    except Exception as exc:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...), none importable up front
        where = registry.file_path(name, number, "model.onnx")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RegistryError(f"{name} v{number}: ONNX Runtime cannot load {where} ({reason}); {hint}") from exc


def registered_model(
    registry: ModelRegistry, version: ModelVersion, *, spec_dir: str | None = None, policy: Policy | None = None
) -> Any:
    """A registered version as something to score with: its ONNX graph when it has one, else its skops file.

    A pickle (``model.joblib``) is loaded only when the version's signature was verified by a trusted key.

    Raises:
        RegistryError: a file is missing, damaged, or (with trusted keys) the version does not verify.
        UntrustedModel: only a pickle, and nothing vouches for it; or a skops file naming refused types.
    """
    name, number = version.model, version.version
    if {"model.onnx", "contract.json"} <= set(version.files):
        return _onnx_model(registry, version)
    if "model.skops" in version.files:
        data = registry.read_file(name, number, "model.skops")
        return loads_model(data, where=registry.file_path(name, number, "model.skops"), spec_dir=spec_dir, policy=policy)
    if "model.joblib" in version.files:
        signature = registry.signature(name, number)
        if signature.state != "verified":
            raise UntrustedModel(
                f"{name} v{number} keeps its model only as a pickle (model.joblib) and {signature.describe()}; a pickle is "
                f"loaded only from a version signed by a trusted key. Re-register it ({_RETRAIN}), or review and sign it "
                f"(mlflowkit models sign {name} {number}, with a trusted key configured)"
            )
        import joblib

        # Signed by a trusted key, and read_file checked its bytes against the signed digest.
        return joblib.load(io.BytesIO(registry.read_file(name, number, "model.joblib")))
    raise UntrustedModel(f"{name} v{number} has no model file mlflowkit can load (files: {', '.join(version.files)})")
