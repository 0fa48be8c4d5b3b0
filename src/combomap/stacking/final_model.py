"""The saved stacked model: fold nets + stacker + manifest, and prediction of new drug pairs.

Directory layout (format version 2; version 1, without the kind and the basis, is still read):

    manifest.json         format, version, kind, features, backend, files, library versions, training summary
    genes.txt             the model's genes, one per line, in column order
    stacker.ubj|.txt      the stacker in its library's own format (xgboost UBJSON, lightgbm text)
    nets/fold<k>.*        each fold net's portable weights (only when net_pred is a feature)
    basis/basis.npz|json  the gene-program basis (only when p1/p2 are features)
    learned/linear.npz|json  the learned interaction baseline (kind "linear", or when lin_pred is a feature)

Kinds: "stacked" (the stacker on its features), "average" ((d1 + d2) / 2) or "additive" (d1 + d2) (what the
guard of `combomap-stack` saves when nothing beats them), or "linear" (a learned baseline of
`combomap.models.learned`: shared slope and shift per gene, plus per-drug interaction profiles for the drugs
of its training combinations; the pairs' drug names select them).

Inference ("per_net", the default): the stacker was trained on ONE fold net's out-of-fold
prediction per entry, so a new pair goes through the stacker once per fold net (net k's
symmetric prediction as net_pred) and the K stacker outputs are averaged. Every stacker input is
then distributed as in training. "mean_net" (the original's shipped predictor: the mean of the
nets as one net_pred) is kept for measuring that mismatch (`stacking.holdout_fraction`).
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from combomap.data.atomic import atomic_directory
from combomap.data.dataset import DataError
from combomap.data.pairs import PairBatch
from combomap.errors import UserError
from combomap.evaluation.baselines import additive, average
from combomap.stacking.backends import StackerBackend, load_backend
from combomap.models.latent import BasisError, GeneProgramBasis
from combomap.models.learned import LearnedModelError, LinearComboModel
from combomap.models.portable import load_net
from combomap.stacking.features import (
    check_feature_names,
    needs_learned,
    needs_projections,
    needs_variances,
    stacked_prediction,
)
from combomap.stacking.oof import mean_net_prediction, symmetric_net_prediction

log = logging.getLogger(__name__)

FORMAT = "combomap-stacked-model"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
KINDS = ("stacked", "average", "additive", "linear")
SIMPLE_KINDS = ("average", "additive")
BASIS_DIR = "basis"
LEARNED_DIR = "learned"
MANIFEST = "manifest.json"
INFERENCE_MODES = ("per_net", "mean_net")
UNSEEN_PAIRS = ("model", "additive")
MAX_ROWS_PER_CHUNK = 2_000_000


class ModelFormatError(UserError):
    """A model directory that is missing, damaged or from an incompatible combomap version."""


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _load_net(path: Path) -> Any:
    try:
        return load_net(path)
    except (ValueError, KeyError, TypeError) as error:
        detail = f"no entry {error} in its header" if isinstance(error, KeyError) else str(error)
        raise ModelFormatError(detail if detail.startswith(str(path)) else f"{path}: {detail}") from error


def _net_suffix(net: Any) -> str:
    return str(getattr(net, "suffix", getattr(type(net), "suffix", ".safetensors")))


@dataclass
class StackedModel:
    """Fold nets (may be empty when net_pred is not a feature) + a fitted stacker (+ the gene-program basis
    when p1/p2 are features), on fixed genes; or, with stacker None, the average of the two drugs."""

    stacker: StackerBackend | None
    features: list[str]
    genes: list[str]
    nets: list[Any] = field(default_factory=list)
    symmetric: bool = True
    inference: str = "per_net"
    info: dict[str, Any] = field(default_factory=dict)  # training summary kept in the manifest
    basis: Any = None  # combomap.models.latent.GeneProgramBasis on `genes`
    learned: LinearComboModel | None = None  # kind "linear" alone, or the source of the lin_pred feature
    unseen_pairs: str = "model"  # "additive": a pair of two drugs outside training_drugs gets d1 + d2 (the guard)
    simple: str = "average"  # without stacker and learned model: "average" (d1 + d2) / 2 or "additive" d1 + d2
    training_drugs: list[str] = field(default_factory=list)  # the drugs of the training combinations

    def __post_init__(self) -> None:
        if self.inference not in INFERENCE_MODES:
            raise ValueError(f"unknown inference mode {self.inference!r}; choose one of {INFERENCE_MODES}")
        if self.simple not in SIMPLE_KINDS:
            raise ValueError(f"unknown simple model {self.simple!r}; choose one of {SIMPLE_KINDS}")
        if self.unseen_pairs not in UNSEEN_PAIRS:
            raise ValueError(f"unknown unseen_pairs {self.unseen_pairs!r}; choose one of {UNSEEN_PAIRS}")
        self.training_drugs = [str(d) for d in self.training_drugs]
        if self.learned is not None and list(self.learned.genes) != list(self.genes):
            raise ValueError("the learned baseline is not on the model's genes")
        if self.stacker is None:
            if self.features or self.nets or self.basis is not None:
                raise ValueError("an average or linear model has no stacker, features, nets or basis")
            return
        if needs_learned(self.features) and self.learned is None:
            raise ValueError("the stacker uses lin_pred but the model has no learned baseline")
        self.features = check_feature_names(self.features)
        if "net_pred" in self.features and not self.nets:
            raise ValueError("the stacker uses net_pred but the model has no nets")
        if needs_projections(self.features):
            if self.basis is None:
                raise ValueError("the stacker uses p1/p2 but the model has no gene-program basis")
            if list(self.basis.genes) != list(self.genes):
                raise ValueError("the gene-program basis is not on the model's genes")

    @classmethod
    def average(cls, genes: Sequence[str], info: dict[str, Any] | None = None) -> "StackedModel":
        """The average baseline as a saved model (the guard's fallback)."""
        return cls(stacker=None, features=[], genes=list(genes), info=dict(info or {}))

    @classmethod
    def additive(cls, genes: Sequence[str], info: dict[str, Any] | None = None) -> "StackedModel":
        """The additive baseline as a saved model: the guard's choice where nothing beats it (it ties the average on
        sign accuracy and top-k Pearson delta, and is the better of the two on L2 wherever combinations add up)."""
        return cls(stacker=None, features=[], genes=list(genes), info=dict(info or {}), simple="additive")

    @classmethod
    def linear(cls, learned: LinearComboModel, info: dict[str, Any] | None = None) -> "StackedModel":
        """A learned baseline alone as the saved model (the guard chose it)."""
        return cls(stacker=None, features=[], genes=list(learned.genes), info=dict(info or {}), learned=learned)

    @property
    def kind(self) -> str:
        if self.stacker is None:
            return self.simple if self.learned is None else "linear"
        return "stacked"

    @property
    def uses_nets(self) -> bool:
        return "net_pred" in self.features

    @property
    def backend_name(self) -> str:
        if self.stacker is None:
            return f"none ({self.simple})" if self.learned is None else f"none ({self.learned.kind})"
        return self.stacker.name

    def predict(self, pairs: PairBatch, inference: str | None = None) -> np.ndarray:
        """(n_pairs x n_genes) combination effects; the pairs' genes are in the model's gene order."""
        mode = inference or self.inference
        if mode not in INFERENCE_MODES:
            raise ValueError(f"unknown inference mode {mode!r}; choose one of {INFERENCE_MODES}")
        if pairs.n_genes != len(self.genes):
            raise DataError(f"inputs must be (n_pairs x {len(self.genes)}) in the model's gene order, got {pairs.shape}")
        if self.stacker is None:
            if self.learned is not None:
                out = self.learned.predict(pairs)
            else:
                out = (additive if self.simple == "additive" else average)(pairs.drug1_effect, pairs.drug2_effect)
            return self._unseen_as_additive(pairs, out)
        if needs_variances(self.features) and not pairs.has_variances:
            log.warning("the stacker was trained with variances; none given, so v1/v2 are missing (NaN) at inference")
        chunk = max(1, MAX_ROWS_PER_CHUNK // pairs.n_genes)
        out = np.empty(pairs.shape, dtype=np.float32)
        for start in range(0, pairs.n_pairs, chunk):
            rows = slice(start, min(start + chunk, pairs.n_pairs))
            out[rows] = self._predict_chunk(pairs.take(rows), mode)
        return self._unseen_as_additive(pairs, out)

    def unseen(self, names: Sequence[str] | None, n_pairs: int) -> np.ndarray:
        """True per drug (names) outside the training combinations; all True without names."""
        if names is None:
            return np.ones(n_pairs, dtype=bool)
        known = set(self.training_drugs)
        return np.array([str(name) not in known for name in names], dtype=bool)

    def _unseen_as_additive(self, pairs: PairBatch, out: np.ndarray) -> np.ndarray:
        """With unseen_pairs=additive, a pair of two drugs outside the training combinations gets d1 + d2: the
        guard found the model no better than that on such pairs in CV (the none_seen regime)."""
        if self.unseen_pairs != "additive":
            return out
        both = self.unseen(pairs.drug1_name, pairs.n_pairs) & self.unseen(pairs.drug2_name, pairs.n_pairs)
        return additive_where(out, both, pairs.drug1_effect[both], pairs.drug2_effect[both])

    def _predict_chunk(self, pairs: PairBatch, mode: str) -> np.ndarray:
        projected = None
        if needs_projections(self.features):
            projected = (self.basis.project(pairs.drug1_effect), self.basis.project(pairs.drug2_effect))
        if not self.uses_nets:
            net_predictions = []
        elif mode == "mean_net":
            net_predictions = [mean_net_prediction(self.nets, pairs)]
        else:
            net_predictions = [symmetric_net_prediction(net, pairs) for net in self.nets]
        learned = self.learned.predict(pairs) if needs_learned(self.features) else None
        return stacked_prediction(self.stacker, self.features, pairs, net_predictions, self.symmetric, projected, learned)

    def save(self, directory: str | Path) -> Path:
        """Write the model folder as a whole (staged beside it, then swapped in): a kill leaves no half model."""
        directory = Path(directory)
        with atomic_directory(directory) as staging:
            self._write(staging)
        return directory

    def _write(self, directory: Path) -> None:
        stacker_info = None
        if self.stacker is not None:
            stacker_file = self.stacker.file_name("stacker")
            self.stacker.save(directory / stacker_file)
            stacker_info = {"backend": self.stacker.name, "file": stacker_file, "n_trees": self.stacker.n_trees,
                            "settings": {k: v for k, v in self.stacker.settings.__dict__.items() if k != "n_threads"}}
        basis_info = None
        if self.basis is not None:
            files = self.basis.save(directory / BASIS_DIR)
            basis_info = {"dir": BASIS_DIR, "files": [f"{BASIS_DIR}/{f.name}" for f in files], "rank": self.basis.rank,
                          "ridge": self.basis.ridge, "source": self.basis.source}
        learned_info = None
        if self.learned is not None:
            files = self.learned.save(directory / LEARNED_DIR)
            learned_info = {"dir": LEARNED_DIR, "files": [f"{LEARNED_DIR}/{f.name}" for f in files],
                            "kind": self.learned.kind, "ridge": self.learned.ridge, "n_drugs": len(self.learned.drugs)}
        net_files = []
        if self.uses_nets:
            (directory / "nets").mkdir(exist_ok=True)
            for fold, net in enumerate(self.nets):
                name = f"nets/fold{fold}{_net_suffix(net)}"
                net.save(directory / name)
                net_files.append(name)
        (directory / "genes.txt").write_text("\n".join(self.genes) + "\n")
        versions = {"combomap": _version("combomap"), "python": platform.python_version(), "numpy": np.__version__,
                    "torch": _version("torch") if net_files else None}
        if self.stacker is not None:
            versions[self.stacker.name] = getattr(importlib.import_module(self.stacker.name), "__version__", None)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "features": self.features,
            "symmetric": self.symmetric,
            "inference": self.inference,
            "n_genes": len(self.genes),
            "genes_file": "genes.txt",
            "stacker": stacker_info,
            "basis": basis_info,
            "learned": learned_info,
            "unseen_pairs": self.unseen_pairs,
            "training_drugs": self.training_drugs,
            "nets": net_files,
            "versions": versions,
            "training": self.info,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable) + "\n")

    @classmethod
    def load(cls, directory: str | Path, inference: str | None = None) -> "StackedModel":
        directory = Path(directory)
        manifest = read_manifest(directory)
        genes_path = model_file(directory, manifest["genes_file"], "genes_file")
        try:
            genes = [g for g in genes_path.read_text(encoding="utf-8").split("\n") if g != ""]
        except (UnicodeDecodeError, OSError) as error:
            raise ModelFormatError(f"{genes_path}: unreadable gene list ({error})") from error
        if len(genes) != manifest["n_genes"]:
            raise ModelFormatError(f"{genes_path}: lists {len(genes)} genes, the manifest says {manifest['n_genes']}")
        info = dict(manifest.get("training") or {})
        kind = manifest.get("kind", "stacked")
        if kind not in KINDS:
            raise ModelFormatError(f"{directory}: model kind {kind!r} is not one of {list(KINDS)}")
        learned = _load_part(directory, manifest, "learned", "learned baseline", LinearComboModel.load, LearnedModelError, genes)
        unseen = {"unseen_pairs": manifest.get("unseen_pairs", "model"), "training_drugs": manifest.get("training_drugs") or []}
        if unseen["unseen_pairs"] not in UNSEEN_PAIRS or not isinstance(unseen["training_drugs"], list):
            raise ModelFormatError(f"{directory / MANIFEST}: unseen_pairs must be one of {list(UNSEEN_PAIRS)} and "
                                   f"training_drugs a list, got {unseen['unseen_pairs']!r}")
        if kind in SIMPLE_KINDS:
            return cls(stacker=None, features=[], genes=genes, info=info, simple=kind)
        if kind == "linear":
            if learned is None:
                raise ModelFormatError(f"{directory / MANIFEST}: a linear model must name its 'learned' directory")
            return replace(cls.linear(learned, info=info), **unseen)
        stacker_info = manifest["stacker"]
        if not isinstance(stacker_info, dict) or "backend" not in stacker_info or "file" not in stacker_info:
            raise ModelFormatError(f"{directory / MANIFEST}: 'stacker' must name its backend and file, got {stacker_info!r}")
        stacker_path = model_file(directory, stacker_info["file"], "stacker file")
        stacker = load_backend(str(stacker_info["backend"]), stacker_path)
        if stacker_info.get("n_trees") is not None and stacker.n_trees != int(stacker_info["n_trees"]):
            # a truncated file can still parse (LightGBM may read a header-only model as 0 trees)
            raise ModelFormatError(f"{stacker_path}: the {stacker.name} stacker has {stacker.n_trees} trees, the manifest "
                                   f"says {stacker_info['n_trees']}: the file is damaged or was replaced")
        if stacker.feature_names and stacker.feature_names != list(manifest["features"]):
            raise ModelFormatError(f"{directory}: stacker features {stacker.feature_names} != manifest {manifest['features']}")
        basis = _load_part(directory, manifest, "basis", "gene-program basis", GeneProgramBasis.load, BasisError, genes)
        nets = []
        if not isinstance(manifest["nets"], list):
            raise ModelFormatError(f"{directory / MANIFEST}: 'nets' must list the net files, got {manifest['nets']!r}")
        for name in manifest["nets"]:
            nets.append(_load_net(model_file(directory, name, "net file")))
        return cls(
            stacker=stacker,
            features=list(manifest["features"]),
            genes=genes,
            nets=nets,
            symmetric=bool(manifest["symmetric"]),
            inference=inference or manifest["inference"],
            info=info,
            basis=basis,
            learned=learned,
            **unseen,
        )


def _load_part(directory: Path, manifest: dict[str, Any], key: str, what: str, load: Any, errors: type[Exception],
               genes: list[str]) -> Any:
    """An optional part the manifest names by its folder (the basis, the learned baseline): loaded, its own errors
    raised as ModelFormatError, and checked to be on the model's genes; None when the manifest names none."""
    entry = manifest.get(key)
    if not entry:
        return None
    if not isinstance(entry, dict):
        raise ModelFormatError(f"{directory / MANIFEST}: '{key}' must name its directory, got {entry!r}")
    try:
        part = load(model_file(directory, entry.get("dir"), f"{key} dir"))
    except errors as error:
        raise ModelFormatError(str(error)) from error
    if list(part.genes) != list(genes):
        raise ModelFormatError(f"{directory}: the {what} is not on the model's genes")
    return part


def additive_where(prediction: np.ndarray, rows: np.ndarray, drug1_effect: np.ndarray,
                   drug2_effect: np.ndarray) -> np.ndarray:
    """`prediction` with the pairs at `rows` (a mask) replaced by d1 + d2 of those pairs (`drug1_effect`,
    `drug2_effect`: their rows only): the rule of unseen_pairs=additive, shared by predict and the query engines."""
    if not rows.any():
        return prediction
    prediction = prediction.copy()
    prediction[rows] = additive(drug1_effect, drug2_effect)
    return prediction


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest, checked for format and version before anything else is read."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelFormatError(f"no model directory at {directory}")
    if not path.is_file():
        raise ModelFormatError(f"{directory} has no {MANIFEST}: not a combomap stacked model (run combomap-stack first)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFormatError(f"{path}: unreadable manifest ({error})") from error
    if not isinstance(manifest, dict):
        raise ModelFormatError(f"{path}: the manifest must be a JSON object, got a JSON {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: format {manifest.get('format')!r} is not {FORMAT!r}")
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        written_by = (manifest.get("versions") or {}).get("combomap")
        raise ModelFormatError(
            f"{directory}: model format version {version} (written by combomap {written_by}) is incompatible with this "
            f"combomap {_version('combomap')}, which reads format version(s) {list(READABLE_VERSIONS)}; "
            "retrain with combomap-stack or use a matching combomap release"
        )
    missing = [k for k in ("features", "genes_file", "n_genes", "stacker", "nets", "symmetric", "inference") if k not in manifest]
    if missing:
        raise ModelFormatError(f"{path}: manifest lacks {missing}")
    if isinstance(manifest["n_genes"], bool) or not isinstance(manifest["n_genes"], int):
        raise ModelFormatError(f"{path}: n_genes must be an integer, got {manifest['n_genes']!r}")
    return manifest


def model_file(directory: Path, name: Any, what: str) -> Path:
    """A file the manifest names: a relative path that stays inside the model directory (symlinks resolved)
    and exists; a manifest cannot make a command read /etc/passwd."""
    manifest = directory / MANIFEST
    if not isinstance(name, str) or not name.strip():
        raise ModelFormatError(f"{manifest}: {what} must be a file name, got {name!r}")
    root = directory.resolve()
    path = directory / name
    resolved = path.resolve()
    if Path(name).is_absolute() or (resolved != root and root not in resolved.parents):
        raise ModelFormatError(f"{manifest}: {what} {name!r} is outside the model directory {directory}")
    if not path.exists():
        raise ModelFormatError(f"{path}: {what} is missing")
    return path


def align_genes(model_genes: Sequence[str], source_genes: Sequence[str], source: str) -> np.ndarray:
    """Column positions in `source` for each model gene; a clear error when genes are missing.

    Extra source genes are dropped (logged): the model predicts its own genes only.
    """
    position = {gene: i for i, gene in enumerate(source_genes)}
    missing = [g for g in model_genes if g not in position]
    if missing:
        raise DataError(
            f"{source}: gene set does not match the model's: {len(missing)} of the model's {len(model_genes)} genes "
            f"are missing (e.g. {missing[:5]}); the library must cover every model gene"
        )
    extra = len(source_genes) - len(model_genes)
    if extra:
        log.info("%s: %d gene(s) not in the model are ignored", source, extra)
    return np.array([position[g] for g in model_genes], dtype=np.int64)
