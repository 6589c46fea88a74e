"""Why the model answered what it did: each original feature's share of the predicted class's score.

Free of BentoML (unit tests hand it any fitted pipeline) and of any explanation library: the two
model families cepage trains have exact, cheap decompositions over scikit-learn's own fitted
attributes, so the service image carries nothing more.

- A linear classifier (``LogisticRegression``): the class's logit is ``intercept + sum(coef * x')``
  over the prepared columns ``x'``. Each term goes back to the original feature the column was made
  from (a scaled number, a one-hot column of a category, a missing-value indicator), so
  ``base (the intercept) + sum(contributions) == decision_function`` exactly. With two classes the
  model has one logit (the second class's log-odds): the first class's is its negation.
- A tree ensemble (``RandomForestClassifier``, or one tree): the path-based decomposition of
  Saabas (the ``treeinterpreter`` method). Along a record's path in a tree, each split moves the
  class's share from the parent's value to the child's; the move is credited to the split's
  feature. ``base`` is the root's share (the class's share of the tree's training sample), and the
  leaf's share, which is the tree's probability, is ``base + sum(moves)``. The forest's probability
  is the trees' mean, so the means add up exactly too. It is not TreeSHAP: a feature split on near
  the root gets more credit than Shapley values give it; tests/unit/test_explain.py measures the
  gap and docs/api.md quotes it.

The prepared columns are traced back to the features by the fitted preparation itself: a
``ColumnTransformer``'s per-transformer output slices (``output_indices_``) and, inside each, the
names each step gives its outputs (``get_feature_names_out``) for placeholder input names. No
feature name is written here.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import numpy as np

ScoreKind = Literal["logit", "probability"]
LOGIT: Final = "logit"
PROBABILITY: Final = "probability"


class NotExplainableError(ValueError):
    """The model is of a kind this module cannot decompose; the message says which."""


@dataclass(frozen=True)
class Explanation:
    """One record's explanation of one class's score.

    ``score`` is the model's own figure for ``label`` (``score_kind``: ``logit`` for a linear
    model, ``probability`` for trees) and equals ``base + sum(contributions.values())``.
    """

    label: str
    score_kind: ScoreKind
    score: float
    base: float
    contributions: dict[str, float]

    def is_finite(self) -> bool:
        """Whether every figure is a finite number (a far-out value can overflow a term)."""
        return bool(np.isfinite([self.score, self.base, *self.contributions.values()]).all())


class Explainer(Protocol):
    """Explains rows of model input (what the pipeline's ``predict_proba`` takes)."""

    def explain(self, model_input: Any, classes: Sequence[int]) -> list[Explanation]:
        """Row ``i``'s explanation of the class at index ``classes[i]`` of ``classes_``."""
        ...


def explainer_for(estimator: Any, features: Sequence[str]) -> Explainer:
    """The explainer of a fitted ``prepare -> model`` pipeline (or a bare model) whose input
    columns are ``features``, in order.

    Raises:
        NotExplainableError: the final model or a preparation step is of an unsupported kind.
    """
    steps = getattr(estimator, "steps", None)
    if steps:
        model = steps[-1][1]
        prepare: Any = estimator[:-1] if len(steps) > 1 else None
    else:
        model, prepare = estimator, None
    sources = np.arange(len(features))
    if prepare is not None:
        for _, step in prepare.steps:
            sources = sources[_step_sources(step, len(sources), list(features))]
    if _is_linear(model):
        return LinearExplainer(prepare, model, list(features), _checked(sources, model))
    trees = _trees(model)
    if trees is not None:
        return TreeExplainer(prepare, model, trees, list(features), _checked(sources, model))
    raise NotExplainableError(
        f"a {type(model).__name__} cannot be explained (linear models and tree ensembles can)"
    )


def _is_linear(model: Any) -> bool:
    """A classifier whose decision function is ``X @ coef_.T + intercept_`` (scikit-learn's
    linear classifiers; :class:`LinearExplainer` also checks each answer adds up)."""
    return all(hasattr(model, a) for a in ("coef_", "intercept_", "decision_function", "classes_"))


def _checked(sources: np.ndarray, model: Any) -> np.ndarray:
    width = getattr(model, "n_features_in_", len(sources))
    if len(sources) != width:
        raise NotExplainableError(
            f"the preparation makes {len(sources)} columns, the model takes {width}"
        )
    return sources


class LinearExplainer:
    """Exact: coefficient x prepared value, summed per original feature."""

    def __init__(self, prepare: Any, model: Any, features: list[str], sources: np.ndarray) -> None:
        self.prepare = prepare
        self.model = model
        self.features = features
        self.sources = sources
        self.classes = [str(c) for c in model.classes_]

    def explain(self, model_input: Any, classes: Sequence[int]) -> list[Explanation]:
        # A far-out value may overflow a term: it is reported (Explanation.is_finite), not warned.
        with np.errstate(all="ignore"):
            return self._explain(model_input, classes)

    def _explain(self, model_input: Any, classes: Sequence[int]) -> list[Explanation]:
        prepared = _prepared(self.prepare, model_input)
        coef = np.asarray(self.model.coef_, dtype="float64")
        intercept = np.broadcast_to(
            np.asarray(self.model.intercept_, dtype="float64"), (coef.shape[0],)
        )
        decision = np.asarray(self.model.decision_function(prepared), dtype="float64")
        if decision.ndim == 1:
            decision = decision[:, None]
        results = []
        for row, k in enumerate(classes):
            if coef.shape[0] == 1:  # two classes: one logit, the second class's log-odds
                sign = 1.0 if k == 1 else -1.0
                weights, base, score = sign * coef[0], sign * intercept[0], sign * decision[row, 0]
            else:
                weights, base, score = coef[k], intercept[k], decision[row, k]
            terms = weights * prepared[row]
            # The decision function is the model's own: a model that only looks linear (or a
            # coefficient layout not understood here) would not add up, and is refused.
            total = base + terms.sum()  # not finite: overflow, reported by is_finite instead
            if np.isfinite(total) and abs(total - score) > 1e-6 * (1.0 + abs(score)):
                raise NotExplainableError(
                    f"a {type(self.model).__name__}'s score is not its intercept plus "
                    "coefficient x value"
                )
            results.append(self._explanation(k, LOGIT, score, base, terms))
        return results

    def _explanation(
        self, k: int, kind: ScoreKind, score: float, base: float, terms: np.ndarray
    ) -> Explanation:
        per_feature = np.bincount(self.sources, weights=terms, minlength=len(self.features))
        return Explanation(
            label=self.classes[k],
            score_kind=kind,
            score=float(score),
            base=float(base),
            contributions={f: float(v) for f, v in zip(self.features, per_feature, strict=True)},
        )


class TreeExplainer(LinearExplainer):
    """Path-based (Saabas) decomposition of a tree or an averaging ensemble of trees.

    Every node of every tree is laid out once, end to end: the move of the class shares from its
    parent's value to its own, the original feature of its parent's split, and the parent. To
    explain rows, each tree's Cython ``Tree.apply`` finds their leaves (the ensemble's own
    ``decision_path`` dispatches a job per tree: ~20 ms for 200 trees and one row), then the
    moves are counted per feature while climbing from all leaves at once to the roots, one level
    a step (as many steps as the deepest path).
    """

    def __init__(
        self,
        prepare: Any,
        model: Any,
        trees: list[Any],
        features: list[str],
        sources: np.ndarray,
    ) -> None:
        super().__init__(prepare, model, features, sources)
        moves, origins, parents, roots, offsets = [], [], [], [], []
        offset = 0
        for tree in trees:
            structure = tree.tree_
            value = np.asarray(structure.value[:, 0, :], dtype="float64")
            value = value / value.sum(axis=1, keepdims=True)  # counts in older scikit-learn
            parent = np.full(structure.node_count, -1)
            for children in (structure.children_left, structure.children_right):
                inner = np.flatnonzero(children >= 0)
                parent[children[inner]] = inner
            move = np.zeros_like(value)
            origin = np.zeros(structure.node_count, dtype=np.int64)
            has_parent = parent >= 0
            move[has_parent] = value[has_parent] - value[parent[has_parent]]
            origin[has_parent] = sources[structure.feature[parent[has_parent]]]
            moves.append(move)
            origins.append(origin)
            parents.append(np.where(has_parent, parent + offset, -1))
            roots.append(value[0])
            offsets.append(offset)
            offset += structure.node_count
        self.structures = [tree.tree_ for tree in trees]
        self.offsets = np.array(offsets, dtype=np.int64)
        self.moves = np.concatenate(moves)
        self.origins = np.concatenate(origins)
        self.parents = np.concatenate(parents)
        self.base = np.mean(roots, axis=0)

    def _explain(self, model_input: Any, classes: Sequence[int]) -> list[Explanation]:
        # The trees split float32 values: the same conversion as their predict_proba.
        prepared = np.ascontiguousarray(_prepared(self.prepare, model_input), dtype=np.float32)
        count, width = len(prepared), len(self.features)
        # Each row's leaf in each tree (global node ids), then up to the roots, one level a step.
        leaves = np.stack([s.apply(prepared) for s in self.structures], axis=1) + self.offsets
        node = leaves.ravel()
        row = np.repeat(np.arange(count), len(self.structures))
        wanted = np.asarray(classes, dtype=np.int64)[row]
        totals = np.zeros(count * width)
        while len(node):
            cells = row * width + self.origins[node]
            totals += np.bincount(cells, self.moves[node, wanted], minlength=count * width)
            up = self.parents[node]
            kept = up >= 0
            node, row, wanted = up[kept], row[kept], wanted[kept]
        totals = totals.reshape(count, width) / len(self.structures)
        results = []
        for index, k in enumerate(classes):
            base = float(self.base[k])
            contributions = totals[index]
            results.append(
                Explanation(
                    label=self.classes[k],
                    score_kind=PROBABILITY,
                    # The mean of the leaves' shares: the forest's predict_proba (tested).
                    score=base + float(contributions.sum()),
                    base=base,
                    contributions={
                        f: float(v) for f, v in zip(self.features, contributions, strict=True)
                    },
                )
            )
        return results


def _prepared(prepare: Any, model_input: Any) -> np.ndarray:
    if prepare is None:
        return np.asarray(model_input, dtype="float64")
    return np.asarray(prepare.transform(model_input), dtype="float64")


def _trees(model: Any) -> list[Any] | None:
    """The trees whose mean is the model's probability (None: not such a model)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
    from sklearn.tree import BaseDecisionTree

    if isinstance(model, BaseDecisionTree) and hasattr(model, "classes_"):
        return [model]
    if isinstance(model, RandomForestClassifier | ExtraTreesClassifier):
        return list(model.estimators_)
    return None


# A placeholder input name: control characters no real column or category name holds, so the
# index can be read back out of any output name a step builds from it.
_PLACEHOLDER = re.compile("\x00(\\d+)\x00")


def _placeholders(count: int) -> np.ndarray:
    return np.array([f"\x00{i}\x00" for i in range(count)], dtype=object)


def _step_sources(step: Any, width: int, features: list[str]) -> np.ndarray:
    """For each output column of a fitted step, the index of the input column it comes from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(step, ColumnTransformer):
        return _column_transformer_sources(step, width, features)
    if isinstance(step, Pipeline):
        sources = np.arange(width)
        for _, inner in step.steps:
            sources = sources[_step_sources(inner, len(sources), features)]
        return sources
    if step in ("passthrough", None):
        return np.arange(width)
    return _named_sources(step, width)


def _named_sources(step: Any, width: int) -> np.ndarray:
    """Read a step's output-to-input map off the names it gives placeholder inputs.

    A copy is asked, without the input names it was fitted with, so it accepts placeholders (the
    served model is never changed).
    """
    if not hasattr(step, "get_feature_names_out"):
        raise NotExplainableError(f"its {type(step).__name__} step does not name its outputs")
    probe = copy.copy(step)
    if hasattr(probe, "feature_names_in_"):
        del probe.feature_names_in_
    try:
        names = probe.get_feature_names_out(_placeholders(width))
    except (ValueError, AttributeError, TypeError) as exc:
        raise NotExplainableError(
            f"its {type(step).__name__} step cannot map its outputs back: {exc}"
        ) from None
    sources = []
    for name in names:
        found = set(_PLACEHOLDER.findall(str(name)))
        if len(found) != 1:
            raise NotExplainableError(
                f"an output of its {type(step).__name__} step mixes several inputs"
            )
        sources.append(int(found.pop()))
    return np.array(sources, dtype=np.int64)


def _column_transformer_sources(step: Any, width: int, features: list[str]) -> np.ndarray:
    """Each transformer's outputs fill the slice ``output_indices_[name]`` of the result."""
    names_in = list(getattr(step, "feature_names_in_", features[:width]))
    total = max((s.stop for s in step.output_indices_.values()), default=0)
    sources = np.full(total, -1, dtype=np.int64)
    for name, transformer, columns in step.transformers_:
        where = step.output_indices_[name]
        if transformer == "drop" or where.stop == where.start:
            continue
        inputs = np.array([_position(c, names_in) for c in np.atleast_1d(columns)], dtype=np.int64)
        sources[where] = inputs[_step_sources(transformer, len(inputs), features)]
    if (sources < 0).any():
        raise NotExplainableError("some prepared columns come from no input column")
    return sources


def _position(column: Any, names: list[str]) -> int:
    if isinstance(column, str):
        return names.index(column)
    if isinstance(column, int | np.integer) and not isinstance(column, bool):
        return int(column)
    raise NotExplainableError("a ColumnTransformer selects its columns in a way not supported")
