"""Pair signatures from the trained stacked model, computed only where a query needs them.

The saved model (`combomap.stacking.final_model.StackedModel`) predicts a pair (A, B) as: per fold
net k, net_k's symmetric prediction (net(A, B) + net(B, A)) / 2 becomes the stacker's net_pred feature
beside d1, d2, v1, v2 (canonically ordered), and the stacker outputs are averaged over nets ("per_net";
"mean_net" feeds the mean of the nets' predictions instead). `StackedPairModel` reproduces exactly that,
but fast:
- the first layer splits by input block: its pre-activation for (A as drug1, B as drug2) is
  P1[A] + P2[B] with P1 = [e | v | m]_A W_drug1^T + b and P2 = [e | v | m]_B W_drug2^T, computed once
  per drug (n_drugs x hidden) instead of once per pair;
- only the query genes' outputs are computed (rows of the last layer), and the stacker runs only on
  (pair, query gene) entries;
- with one hidden layer and a ReLU-family activation, act(z) = s z + (1 - s) relu(z): the linear part of
  act(z_AB) + act(z_BA) is s (S_A + S_B) with S = P1 + P2, a per-drug term, so only the relu parts are
  computed per pair, and both input orders share one output matmul.
Pairs arrive in blocks (`combomap.query.pair_scoring.PairBlock`), so memory is bounded by the block size.
- the gene-program projections of a model with features p1/p2 are computed once per drug (on every model
  gene, then kept on the query genes);
- the stacker still runs once per (pair, query gene, fold net) entry (per_net; inference="mean_net": once
  per entry) and dominates the cost, so by default (stacker_predictor="auto") its trees run in the compiled
  kernel of `combomap.stacking.forest`, which also assembles the features from per-drug arrays: the same
  outputs as the backend's predict, about 3x faster than xgboost's and 8x than lightgbm's on 2 cores.

The nets' part is a `PairNet` (FactorizedNet, FactorizedLatentNet), equal to
`combomap.stacking.oof.symmetric_net_prediction`; the stacker's part a `StackerPredictor` (BackendPredictor,
CompiledPredictor), equal to `combomap.stacking.features.stacked_prediction`, the one definition of the stacker's
features and missing-value policy (tests/query/test_stacked.py holds each to its reference).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

import combomap
from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.data.pairs import PairBatch
from combomap.query.pair_scoring import PairBlock
from combomap.query.scores import PreparedQuery
from combomap.query.settings import STACKER_PREDICTORS
from combomap.settings import SettingsError
from combomap.stacking.features import stacked_prediction
from combomap.stacking.final_model import INFERENCE_MODES, StackedModel, additive_where, align_genes
from combomap.stacking.forest import CompiledForest, ForestError, compile_stacker, numba_available
from combomap.stacking.oof import mean_prediction

log = logging.getLogger(__name__)

# act(z) = slope * z + (1 - slope) * max(z, 0) (the activations of combomap.models.portable_base of this form)
LEAKY_SLOPES = {"very_leaky_relu": 1.0 / 3.0, "leaky_relu": 0.01, "relu": 0.0, "identity": 1.0}


class PairNet(Protocol):
    """A fold net on pairs of library drugs: (net(A, B) + net(B, A)) / 2 on the query genes (B x n_query, float32),
    equal to `combomap.stacking.oof.symmetric_net_prediction` of the net on the block's pairs."""

    def symmetric_prediction(self, block: PairBlock) -> np.ndarray: ...


class FactorizedNet:
    """A PortableMLP split into per-drug first-layer projections and query-gene outputs."""

    def __init__(
        self,
        net: Any,
        effects: np.ndarray,
        variances: np.ndarray | None,
        output_rows: np.ndarray,
    ) -> None:
        """effects / variances: (n_drugs x net genes) in the net's gene order, NaN = unmeasured."""
        self.activation = net.activation
        self._activate = net.activate
        blocks = net.first_layer_blocks()
        if net.uses_variances and variances is None:
            raise DataError("the stacked model's nets use variances, but the library has none")
        inputs = net.drug_inputs(effects, variances)  # the missing-value policy of the net's input, per drug
        self.drug1 = np.repeat(net.biases[0][None, :].astype(np.float32), effects.shape[0], axis=0)
        self.drug2 = np.zeros_like(self.drug1)
        for kind, values in inputs.items():
            self.drug1 += values @ blocks[f"drug1_{kind}"].T
            self.drug2 += values @ blocks[f"drug2_{kind}"].T
        self.hidden_layers = [(w, b) for w, b in zip(net.weights[1:-1], net.biases[1:-1])]
        self.out_weight_t = np.ascontiguousarray(net.weights[-1][output_rows].T)  # (hidden x n_query)
        self.out_bias = net.biases[-1][output_rows].astype(np.float32)
        self.hidden_size = self.drug1.shape[1]
        # act(z) = slope z + (1 - slope) relu(z) for the ReLU family: with one hidden layer, the linear part of
        # act(z_AB) + act(z_BA) is slope (S_A + S_B), S = P1 + P2, so its output is a per-drug term.
        self.slope = LEAKY_SLOPES.get(self.activation) if not self.hidden_layers else None
        if self.slope is not None:
            self.linear_out = (self.drug1 + self.drug2) @ self.out_weight_t * np.float32(self.slope)

    def _act_inplace(self, z: np.ndarray, scratch: np.ndarray) -> np.ndarray:
        if self.activation == "very_leaky_relu":
            np.divide(z, np.float32(3.0), out=scratch)
            np.maximum(scratch, z, out=z)
            return z
        return self._activate(z)

    def _first_hidden(self, block: PairBlock, swapped: bool, z: np.ndarray) -> None:
        """z = P1[drug1] + P2[drug2] for each pair; drug1 = left (or right when swapped)."""
        for piece, (start, stop) in zip(block.pieces, block.spans):
            anchor_is_drug1 = piece.anchor_first != swapped
            anchor_rows, partner_rows = (self.drug1, self.drug2) if anchor_is_drug1 else (self.drug2, self.drug1)
            if piece.contiguous is not None:
                partners = partner_rows[piece.contiguous[0] : piece.contiguous[1]]
            else:
                partners = partner_rows[piece.partners]
            np.add(partners, anchor_rows[piece.anchor], out=z[start:stop])

    def _symmetric_relu_family(self, block: PairBlock) -> np.ndarray:
        z = np.empty((len(block), self.hidden_size), dtype=np.float32)
        z2 = np.empty_like(z)
        self._first_hidden(block, False, z)
        np.maximum(z, np.float32(0.0), out=z)
        self._first_hidden(block, True, z2)
        np.maximum(z2, np.float32(0.0), out=z2)
        z += z2
        out = z @ self.out_weight_t
        if self.slope != 0.0:
            out *= np.float32(1.0 - self.slope)
        out += self.linear_out[block.left]
        out += self.linear_out[block.right]
        out *= np.float32(0.5)
        out += self.out_bias
        return out

    def _rest(self, h: np.ndarray) -> np.ndarray:
        for weight, bias in self.hidden_layers:
            h = self._activate(h @ weight.T + bias)
        return h

    def symmetric_prediction(self, block: PairBlock) -> np.ndarray:
        """(net(A, B) + net(B, A)) / 2 on the query genes, float32 (B x n_query)."""
        n = len(block)
        if self.slope is not None:
            return self._symmetric_relu_family(block)
        z = np.empty((n, self.hidden_size), dtype=np.float32)
        scratch = np.empty_like(z)
        self._first_hidden(block, False, z)
        forward = self._act_inplace(z, scratch)
        z2 = np.empty_like(z)
        self._first_hidden(block, True, z2)
        backward = self._act_inplace(z2, scratch)
        if not self.hidden_layers:
            forward += backward
            out = forward @ self.out_weight_t
            out *= np.float32(0.5)
            out += self.out_bias
            return out
        f = self._rest(forward) @ self.out_weight_t + self.out_bias
        b = self._rest(backward) @ self.out_weight_t + self.out_bias
        return (np.float32(0.5) * (f + b)).astype(np.float32)


class FactorizedLatentNet:
    """A latent net (combomap.models.portable_latent) split into per-drug terms: each drug's program
    coefficients c and embedding phi(c) once per drug, then per pair rho(phi_A + phi_B) and the decoder rows of
    the query genes. Symmetric by construction, so one pass serves both drug orders."""

    def __init__(self, net: Any, effects: np.ndarray, output_rows: np.ndarray) -> None:
        self.net = net
        self.coefficients = net.basis.coefficients(effects).astype(np.float32)
        self.embedding = net.embed(self.coefficients).astype(np.float32)
        self.decoder = np.ascontiguousarray(net.basis.components[output_rows].T.astype(np.float32))  # k x n_query

    def symmetric_prediction(self, block: PairBlock) -> np.ndarray:
        left, right = block.left, block.right
        programs = self.net.programs_from(self.coefficients[left] + self.coefficients[right],
                                          self.embedding[left] + self.embedding[right])
        return (programs @ self.decoder).astype(np.float32)


def factorized_net(net: Any, effects: np.ndarray, variances: np.ndarray | None, output_rows: np.ndarray) -> PairNet:
    """The per-drug factorization that fits the net's kind (the original MLP or the latent net)."""
    if hasattr(net, "basis"):
        return FactorizedLatentNet(net, effects, output_rows)
    return FactorizedNet(net, effects, variances, output_rows)


@dataclass(frozen=True)
class DrugInputs:
    """The stacker's per-drug inputs on the query genes, (n_drugs x n_query): effects, variances, projections."""

    effects: np.ndarray
    variances: np.ndarray | None
    projected: np.ndarray | None
    learned: "LearnedTerms | None" = None

    def pairs(self, left: np.ndarray, right: np.ndarray) -> PairBatch:
        return PairBatch.from_drugs(self.effects, self.variances, left, right)

    def projected_pairs(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        return None if self.projected is None else (self.projected[left], self.projected[right])

    def learned_pairs(self, left: np.ndarray, right: np.ndarray) -> np.ndarray | None:
        return None if self.learned is None else self.learned.pairs(left, right)


@dataclass
class LearnedTerms:
    """A learned baseline (`combomap.models.learned.LinearComboModel`) factorized per drug on the query genes:
    pair (A, B) = shift + term[A] + term[B], term = slope * effect + the drug's interaction profile (0 for a drug
    of no training combination); a gene where neither drug was measured is NaN, as in the model's predict."""

    shift: np.ndarray  # (n_query,)
    terms: np.ndarray  # (n_drugs x n_query) float64
    measured: np.ndarray  # (n_drugs x n_query) bool

    @classmethod
    def of(cls, learned: Any, library: DrugLibrary, model_columns: np.ndarray, output_rows: np.ndarray) -> "LearnedTerms":
        effects = library.effects[:, model_columns][:, output_rows].astype(np.float64)
        slope, shift = learned.slope[output_rows], learned.shift[output_rows]
        profiles = learned.drug_terms(library.drugs, library.n_drugs)[:, output_rows]
        return cls(shift=shift, terms=slope * np.nan_to_num(effects, nan=0.0) + profiles, measured=~np.isnan(effects))

    def pairs(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        values = self.shift + self.terms[left] + self.terms[right]
        return np.where(self.measured[left] | self.measured[right], values, np.nan).astype(np.float32)


def unseen_as_additive(signatures: np.ndarray, left: np.ndarray, right: np.ndarray, unseen: np.ndarray | None,
                       effects: np.ndarray) -> np.ndarray:
    """A saved model with unseen_pairs=additive: pairs of two drugs outside its training combinations get d1 + d2
    on the query genes (`effects`: n_drugs x n_query), as `StackedModel.predict` does."""
    if unseen is None:
        return signatures
    both = unseen[left] & unseen[right]
    return additive_where(signatures, both, effects[left[both]], effects[right[both]])


class LearnedPairModel:
    """A saved model of kind "linear" on the query genes (exact: the same numbers as its predict)."""

    def __init__(self, model: StackedModel, library: DrugLibrary, prepared: PreparedQuery) -> None:
        check_query_genes_only(prepared)
        model_columns = align_genes(model.genes, library.genes, library.source)
        position = {g: i for i, g in enumerate(model.genes)}
        rows = np.array([position[g] for g in prepared.genes], dtype=np.int64)
        self.terms = LearnedTerms.of(model.learned, library, model_columns, rows)
        self.n_seen = int(model.learned.seen(library.drugs).sum())
        self.effects = library.effects[:, prepared.columns].astype(np.float32)
        self.unseen = model.unseen(library.drugs, library.n_drugs) if model.unseen_pairs == "additive" else None
        if self.n_seen == 0:
            log.info("no library drug has a learned interaction profile: every pair gets the shared part only (none seen)")

    def signatures(self, block: PairBlock) -> np.ndarray:
        signatures = self.terms.pairs(block.left, block.right)
        return unseen_as_additive(signatures, block.left, block.right, self.unseen, self.effects).astype(np.float64)


class StackerPredictor(Protocol):
    """The stacker on pairs (left[i], right[i]) of library drugs, one net_pred per net prediction, as float32
    (pairs x n_query): equal to `combomap.stacking.features.stacked_prediction` on those pairs."""

    name: str

    def predict(self, left: np.ndarray, right: np.ndarray, net_predictions: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass
class BackendPredictor:
    """The reference: the pairs' features by build_features, the GBM library's own predict."""

    stacker: Any  # a fitted combomap.stacking.backends.StackerBackend
    features: list[str]
    symmetric: bool
    drugs: DrugInputs
    name = "backend"

    def predict(self, left: np.ndarray, right: np.ndarray, net_predictions: Sequence[np.ndarray]) -> np.ndarray:
        return stacked_prediction(self.stacker, self.features, self.drugs.pairs(left, right), net_predictions,
                                  self.symmetric, self.drugs.projected_pairs(left, right),
                                  self.drugs.learned_pairs(left, right))


@dataclass
class CompiledPredictor:
    """The stacker's trees in the numba kernel, which assembles each row from the per-drug arrays itself."""

    forest: CompiledForest
    features: list[str]
    symmetric: bool
    drugs: DrugInputs
    n_threads: int | None = None
    name = "compiled"

    def predict(self, left: np.ndarray, right: np.ndarray, net_predictions: Sequence[np.ndarray]) -> np.ndarray:
        return self.forest.predict_pairs(
            self.features, self.drugs.effects, self.drugs.variances, left, right, list(net_predictions),
            symmetric=self.symmetric, n_threads=self.n_threads, projected=self.drugs.projected,
        )


class StackedPairModel:
    """The stacked model's pair signatures on a prepared query's genes (see module docstring)."""

    def __init__(
        self,
        model: StackedModel,
        library: DrugLibrary,
        prepared: PreparedQuery,
        inference: str | None = None,
        stacker_predictor: str = "auto",
    ) -> None:
        """stacker_predictor: "compiled" (the numba tree kernel), "backend" (the GBM library's own predict) or
        "auto" (compiled where the stacker's trees can be compiled, else backend)."""
        check_query_genes_only(prepared)
        self.model = model
        self.inference = inference or model.inference
        if self.inference not in INFERENCE_MODES:
            raise SettingsError(f"pairs.inference must be one of {list(INFERENCE_MODES)}, got {self.inference!r}")
        model_columns = align_genes(model.genes, library.genes, library.source)
        model_position = {g: i for i, g in enumerate(model.genes)}
        unknown = [g for g in prepared.genes if g not in model_position]
        if unknown:
            raise DataError(f"query genes {unknown[:5]} are not predicted by the stacked model; prepare the query with its genes")
        output_rows = np.array([model_position[g] for g in prepared.genes], dtype=np.int64)
        projected = None  # per-drug gene-program projections on the query genes (features p1, p2), computed once
        if model.basis is not None:
            projected = np.ascontiguousarray(model.basis.project(library.effects[:, model_columns])[:, output_rows])
        drugs = DrugInputs(
            effects=library.effects[:, prepared.columns].astype(np.float32),
            variances=None if library.variances is None else library.variances[:, prepared.columns].astype(np.float32),
            projected=projected,
            learned=LearnedTerms.of(model.learned, library, model_columns, output_rows) if model.learned is not None else None,
        )
        self.nets: list[PairNet] = []
        if model.uses_nets:
            effects = library.effects[:, model_columns]
            variances = None if library.variances is None else library.variances[:, model_columns]
            self.nets = [factorized_net(net, effects, variances, output_rows) for net in model.nets]
        self.n_query = len(output_rows)
        self.unseen = model.unseen(library.drugs, library.n_drugs) if model.unseen_pairs == "additive" else None
        if model.learned is not None and stacker_predictor != "backend":
            if stacker_predictor == "compiled":
                raise SettingsError("pairs.stacker_predictor=compiled does not assemble the lin_pred feature; "
                                    "use pairs.stacker_predictor=backend")
            stacker_predictor = "backend"  # the compiled kernel assembles d1..p2 and net_pred, not lin_pred
        forest = _stacker_forest(model.stacker, stacker_predictor)
        if self.nets and not combomap.OPENBLAS_SPIN_LIMITED:
            log.warning(
                "numpy was imported before combomap without OPENBLAS_THREAD_TIMEOUT set: OpenBLAS threads spin between "
                "the nets' products and slow the stacker (up to 2x); export OPENBLAS_THREAD_TIMEOUT=4 or import combomap first"
            )
        threads = model.stacker.settings.threads() if hasattr(model.stacker, "settings") else None
        self.predictor: StackerPredictor = (
            BackendPredictor(model.stacker, model.features, model.symmetric, drugs) if forest is None
            else CompiledPredictor(forest, model.features, model.symmetric, drugs, threads)
        )
        self.stacker_predictor = self.predictor.name

    def signatures(self, block: PairBlock) -> np.ndarray:
        """(B x n_query) float64 predicted pair signatures, pair = (left, right)."""
        return self.signatures_from(block, [net.symmetric_prediction(block) for net in self.nets])

    def signatures_from(self, block: PairBlock, net_predictions: list[np.ndarray]) -> np.ndarray:
        """The stacker's part, given each net's symmetric prediction for the block (float32, B x n_query)."""
        if net_predictions and self.inference == "mean_net":
            net_predictions = [mean_prediction(net_predictions)]
        signatures = self.predictor.predict(block.left, block.right, net_predictions)
        return unseen_as_additive(signatures, block.left, block.right, self.unseen, self.predictor.drugs.effects).astype(np.float64)


def check_query_genes_only(prepared: PreparedQuery) -> None:
    """The stacked model predicts a pair's signature on the query genes only: a score that ranks it over every
    library gene cannot use it."""
    if prepared.needs_universe:
        raise SettingsError(
            f"score {prepared.score!r} ranks the pair signature over every library gene; the stacked model is "
            "scored on the query genes only (pearson, cosine, spearman, or xsum with xsum_extreme=null)"
        )


def _stacker_forest(stacker: Any, predictor: str) -> Any:
    """The stacker compiled for the query kernel, or None to use the backend's own predict."""
    if predictor not in STACKER_PREDICTORS:
        raise SettingsError(f"pairs.stacker_predictor must be one of {list(STACKER_PREDICTORS)}, got {predictor!r}")
    if predictor == "backend":
        return None
    if not numba_available():
        if predictor == "compiled":
            raise SettingsError("pairs.stacker_predictor=compiled needs numba (pip install numba); "
                                "use pairs.stacker_predictor=backend")
        log.warning("numba is not installed: the stacker runs through its backend's predict (3x slower for xgboost, 8x for lightgbm)")
        return None
    try:
        return compile_stacker(stacker)
    except ForestError as error:
        if predictor == "compiled":
            raise SettingsError(f"pairs.stacker_predictor=compiled: {error}") from error
        log.warning("stacker not compiled (%s): it runs through its backend's predict", error)
        return None


def load_stacked_model(model_dir: str, inference: str | None = None) -> StackedModel:
    """The saved stacked model (fold nets + stacker + manifest) from its directory; a directory that holds none
    is a ModelFormatError naming it."""
    return StackedModel.load(model_dir, inference=inference)
