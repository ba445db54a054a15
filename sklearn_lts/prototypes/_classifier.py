"""SoftLabelPrototypeClassifier: few-shot and less-than-one-shot classification."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from sklearn_lts.prototypes._deep import heads_forward, line_mix_weights, train_line_heads
from sklearn_lts.prototypes._lines import (
    Line,
    class_centroids,
    line_positions,
    lines_from_anchors,
    lines_from_centroids,
    point_segment_distances,
)
from sklearn_lts.prototypes._slapknn import euclidean_distances_fast, slapknn_proba, soft_vote
from sklearn_lts.prototypes._soft_labels import solve_line_lp

__all__ = ["LineFallbackWarning", "SoftLabelPrototypeClassifier"]

_BATCH = 16384  # rows per prediction chunk: bounds memory at ~BATCH * n_prototypes floats


class LineFallbackWarning(UserWarning):
    """A line's linear program was infeasible and the line fell back to one-hot prototypes."""


def _normalize_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


class SoftLabelPrototypeClassifier(ClassifierMixin, BaseEstimator):
    """Few-shot classifier with soft-label prototypes on prototypical lines.

    A handful of prototypes, each carrying a probability distribution over classes (a *soft
    label*), classify queries by the soft-label inverse-distance kNN rule (SLaPkNN,
    Sucholutsky & Schonlau 2021). Prototypes sit at the ends of *prototypical lines* through
    class centroids, and their soft labels come from a linear program per line (Sucholutsky et
    al. 2021; Singh et al., arXiv:2210.17437) that makes every class on the line win around its
    own centroid. Two prototypes can therefore separate three or more classes: fewer
    prototypes than classes ("less than one shot") is possible.

    Read more in the :ref:`User Guide <prototypes>`.

    Parameters
    ----------
    n_prototypes : "n_classes", "auto" or int, default="n_classes"
        Number of prototypes.

        - ``"n_classes"``: one prototype per class, at its centroid; pairs of classes share a
          line. The LP then gives one-hot labels, and the rule is a two-neighbour
          inverse-distance nearest-centroid classifier (the measured best few-shot setting).

        - ``"auto"``: the paper's construction. Class centroids are grouped by complete-linkage
          clustering into ``n_classes - 1`` groups, groups of one class are merged into the
          nearest group, each group becomes a line through its two furthest-apart centroids, and
          every other class is attached to the nearest line. Two prototypes per line.
        - int ``M < n_classes`` (less than one shot): ``M // 2`` lines over the class centroids
          (a group of a single class becomes a line between two k-means sub-centroids of that
          class). For odd ``M`` the class furthest from its line gets a prototype of its own at
          its centroid.
        - int ``M >= n_classes``: one anchor per class centroid (``M = n_classes``), or ``M``
          within-class k-means centres spread evenly over the classes, paired into lines,
          preferring pairs of different classes; an odd anchor left over is a single
          prototype. Fewer prototypes are used if the classes have fewer distinct samples than
          that (with a warning).

    soft_labels : {"lp", "neural"}, default="lp"
        How prototype soft labels are found. ``"lp"``: the per-line linear program, solved with
        SciPy's HiGHS (no commercial solver). Class positions are measured in the coordinate
        the two-prototype rule actually uses, so every class centroid is classified as its own
        class when it is routed to its line. ``"neural"`` (DeepSLP): each prototype of a line
        carries a small head whose output, a function of the query, replaces the fixed soft
        label; the two labels are mixed with normalised inverse-distance weights (SLaPkNN)
        and the heads are trained with cross-entropy on the support set (see
        :mod:`sklearn_lts.prototypes._deep`).
    class_positions : {"support", "centroid"}, default="support"
        Where each class sits on its line, which fixes where the LP makes it win and puts the
        decision boundaries (midway between consecutive classes). ``"centroid"`` is the
        reference: the position of the class centroid, so that the end classes sit exactly at
        the prototypes. ``"support"``: the median position of the class's training points.
        In high dimension training points lie far from their centroid and look "half-way"
        along any line (the end classes' points sit near 0.3 and 0.7, not at 0 and 1), so
        boundaries placed between centroids miss the data; ``"support"`` places them where
        the points are. Measured in ``benchmarks/``.
    n_neighbors : int, default=2
        The ``k`` of SLaPkNN. With ``routing="line"`` the vote is among the prototypes of the
        chosen line, so ``k`` is at most 2 there (more only on a line that fell back to one-hot
        prototypes). The LP optimises soft labels for ``k = 2``; ``k = 1`` (the released
        notebooks of the paper) reads only the nearer prototype's label.
    routing : {"line", "global"}, default="line"
        ``"line"``: route each query to the nearest line segment, then apply SLaPkNN to that
        line's prototypes (HSLaPkNN). ``"global"``: SLaPkNN over all prototypes.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` L2-normalises inputs and centroids and then uses Euclidean (chordal)
        distances, which rank neighbours exactly as cosine distance does.
    hidden_size : int or None, default=None
        DeepSLP only: hidden width of each head; ``None`` is the reference's single linear
        layer.
    head_init : {"lp", "xavier"}, default="lp"
        DeepSLP only. ``"lp"``: heads start as the constant LP soft labels (zero weights, log
        label as bias), so training refines the LP rule. ``"xavier"``: the reference's random
        initialisation.
    learning_rate : float, default=1e-2
        DeepSLP only: AdamW learning rate.
    n_epochs : int, default=100
        DeepSLP only: full-batch training steps per line.
    weight_decay : float, default=1e-2
        DeepSLP only: AdamW weight decay.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means used for sub-centroids (only when a class needs more than one
        prototype) and the DeepSLP head initialisation.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    prototypes_ : ndarray of shape (n_prototypes, n_features)
        Prototype locations (in the normalised space when ``metric="cosine"``).
    prototype_labels_ : ndarray of shape (n_prototypes, n_classes)
        Soft label of each prototype; rows sum to 1, columns follow ``classes_``.
    lines_ : list of dict
        One entry per line: ``"prototypes"`` (row indices into ``prototypes_``), ``"classes"``
        (labels carried by the line, ordered along it), ``"positions"`` (their positions in
        ``[0, 1]``), and ``"status"``: ``"lp"``; ``"lp-no-midpoints"`` (midpoint boundaries
        were infeasible, every class still wins at its centroid); ``"single-class"``;
        ``"point"`` (one prototype); or ``"fallback-one-hot"`` (no soft labels could make each
        class win at its centroid, e.g. two centroids at the same position: the line keeps its
        segment for routing but gets one one-hot prototype per class at the class centroid,
        so no class and no query is ever dropped; a :class:`LineFallbackWarning` is issued).
    heads_ : list
        DeepSLP only (else ``None``): per line, ``None`` or the pair of trained heads as
        ``[(W, b), ...]`` NumPy arrays (see :func:`~sklearn_lts.prototypes._deep.heads_forward`).
        ``prototype_labels_`` then holds each head's label at its own prototype.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features,)
        Names of features seen during ``fit``, when ``X`` has string feature names.

    See Also
    --------
    sklearn.neighbors.NearestCentroid : One hard-label prototype per class.
    sklearn.neighbors.KNeighborsClassifier : With ``weights="distance"``, SLaPkNN on one-hot
        labels of every training point.

    Notes
    -----
    With two prototypes ``p1, p2`` carrying soft labels ``a, b``, SLaPkNN scores class ``j``
    as ``a_j / d1 + b_j / d2``; :meth:`predict_proba` returns these scores normalised to sum
    to one, ``(d2 a + d1 b) / (d1 + d2)``. A query at distance zero from a prototype takes that
    prototype's label (the limit of the rule), so no division by zero happens.

    Examples
    --------
    Three classes along a line, two prototypes:

    >>> import numpy as np
    >>> from sklearn_lts import SoftLabelPrototypeClassifier
    >>> X = np.array([[0.0, 0], [0.2, 0], [4.0, 0], [4.2, 0], [10.0, 0], [10.2, 0]])
    >>> y = np.array([0, 0, 1, 1, 2, 2])
    >>> clf = SoftLabelPrototypeClassifier(n_prototypes=2).fit(X, y)
    >>> clf.prototypes_.shape
    (2, 2)
    >>> clf.predict([[0.1, 0.0], [4.1, 0.0], [10.1, 0.0]])
    array([0, 1, 2])
    >>> clf.predict_proba([[4.1, 0.0]]).sum()
    np.float64(1.0)
    """

    def __init__(
        self,
        n_prototypes="n_classes",
        *,
        soft_labels="lp",
        class_positions="support",
        n_neighbors=2,
        routing="line",
        metric="euclidean",
        hidden_size=None,
        head_init="lp",
        learning_rate=1e-2,
        n_epochs=100,
        weight_decay=1e-2,
        random_state=None,
    ):
        self.n_prototypes = n_prototypes
        self.soft_labels = soft_labels
        self.class_positions = class_positions
        self.n_neighbors = n_neighbors
        self.routing = routing
        self.metric = metric
        self.hidden_size = hidden_size
        self.head_init = head_init
        self.learning_rate = learning_rate
        self.n_epochs = n_epochs
        self.weight_decay = weight_decay
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # Less than one shot (fewer prototypes than classes) cannot reach the 83 % training
        # accuracy that scikit-learn's common checks demand on three blobs that do not lie on
        # one line: two prototypes then have to share three classes along a single segment.
        # "auto" on three classes builds exactly one such line. Settings with at least as many
        # prototypes as the checks' three classes are held to the full threshold.
        M = self.n_prototypes
        tags.classifier_tags.poor_score = M == "auto" or (
            isinstance(M, numbers.Integral) and M < 3
        )
        return tags

    # ------------------------------------------------------------------ validation helpers
    def _validate_params(self) -> None:
        M = self.n_prototypes
        if not (
            (isinstance(M, str) and M in ("auto", "n_classes"))
            or (isinstance(M, numbers.Integral) and not isinstance(M, bool) and M >= 2)
        ):
            raise ValueError(
                f"n_prototypes must be 'n_classes', 'auto' or an int >= 2, got {M!r}."
            )
        if self.soft_labels not in ("lp", "neural"):
            raise ValueError(f"soft_labels must be 'lp' or 'neural', got {self.soft_labels!r}.")
        if self.soft_labels == "neural":
            h = self.hidden_size
            if h is not None and not (isinstance(h, numbers.Integral) and h >= 1):
                raise ValueError(f"hidden_size must be None or an int >= 1, got {h!r}.")
            if self.head_init not in ("lp", "xavier"):
                raise ValueError(f"head_init must be 'lp' or 'xavier', got {self.head_init!r}.")
            if not (isinstance(self.n_epochs, numbers.Integral) and self.n_epochs >= 1):
                raise ValueError(f"n_epochs must be an int >= 1, got {self.n_epochs!r}.")
            if not (isinstance(self.learning_rate, numbers.Real) and self.learning_rate > 0):
                raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
            if not (isinstance(self.weight_decay, numbers.Real) and self.weight_decay >= 0):
                raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        k = self.n_neighbors
        if not (isinstance(k, numbers.Integral) and not isinstance(k, bool) and k >= 1):
            raise ValueError(f"n_neighbors must be an int >= 1, got {k!r}.")
        if self.class_positions not in ("support", "centroid"):
            raise ValueError(
                f"class_positions must be 'support' or 'centroid', got {self.class_positions!r}."
            )
        if self.routing not in ("line", "global"):
            raise ValueError(f"routing must be 'line' or 'global', got {self.routing!r}.")
        if self.metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine', got {self.metric!r}.")

    def _to_space(self, X: np.ndarray) -> np.ndarray:
        return _normalize_rows(X) if self.metric == "cosine" else X

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Fit prototypes and their soft labels on a (small) labelled set.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training vectors, e.g. sentence embeddings.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : SoftLabelPrototypeClassifier
            The fitted estimator.
        """
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        Xs = self._to_space(X)
        rng = check_random_state(self.random_state)
        centroids = class_centroids(Xs, y_enc, n_classes)
        if self.metric == "cosine":
            centroids = _normalize_rows(centroids)

        def kmeans_centres(c: int, n: int) -> np.ndarray:
            pts = Xs[y_enc == c]
            n = min(n, len(np.unique(pts, axis=0)))
            if n <= 1:
                return centroids[c][None, :]
            km = KMeans(n_clusters=n, n_init=4, random_state=rng.randint(2**31 - 1))
            # A few dozen points: OpenMP threads cost more than they save (4x slower on a
            # busy 2-core machine), so cluster on one thread.
            with threadpool_limits(1, user_api="openmp"):
                km.fit(pts)
            centres = km.cluster_centers_
            return _normalize_rows(centres) if self.metric == "cosine" else centres

        def split_class(c: int) -> tuple[np.ndarray, np.ndarray]:
            centres = kmeans_centres(c, 2)
            return centres[0], centres[-1]

        M = n_classes if self.n_prototypes == "n_classes" else self.n_prototypes
        if n_classes == 1:
            lines = [Line(centroids[0], centroids[0], [0], 0, 0, is_point=True)]
        elif M == "auto":
            lines = lines_from_centroids(centroids, None, split_class)
        elif M < n_classes:
            lines = lines_from_centroids(centroids, M // 2, split_class)
            if M % 2 == 1:
                lines = self._split_off_point(lines, centroids)
        else:
            per_class = self._allocate(M, n_classes, y_enc)
            anchors, anchor_classes = [], []
            for c in range(n_classes):
                centres = kmeans_centres(c, per_class[c])
                anchors.append(centres)
                anchor_classes.extend([c] * len(centres))
            anchors = np.vstack(anchors)
            if len(anchors) < M:
                warnings.warn(
                    f"n_prototypes={M} exceeds what the training data supports; using "
                    f"{len(anchors)} prototypes (one per distinct training point at most).",
                    UserWarning,
                    stacklevel=2,
                )
            lines = lines_from_anchors(anchors, np.asarray(anchor_classes))
        self._build_prototypes(lines, centroids, n_classes, Xs, y_enc)
        self.heads_ = None
        if self.soft_labels == "neural":
            self._fit_heads(Xs, y_enc, rng.randint(2**31 - 1))
        return self

    @staticmethod
    def _allocate(M: int, n_classes: int, y_enc: np.ndarray) -> np.ndarray:
        """Spread M prototypes over classes: evenly, remainders to the largest classes."""
        counts = np.bincount(y_enc, minlength=n_classes)
        per = np.full(n_classes, M // n_classes)
        order = np.argsort(-counts, kind="stable")
        per[order[: M % n_classes]] += 1
        return per

    @staticmethod
    def _split_off_point(lines: list[Line], centroids: np.ndarray) -> list[Line]:
        """Give the attached class furthest from its line a prototype of its own."""
        best = None
        for li, ln in enumerate(lines):
            for c in ln.classes:
                if c in (ln.start_class, ln.end_class):
                    continue
                d = point_segment_distances(centroids[c][None], ln.start[None], ln.end[None])[0, 0]
                if best is None or d > best[0]:
                    best = (d, li, c)
        if best is not None:
            _, li, c = best
            lines[li].classes.remove(c)
            lines.append(Line(centroids[c], centroids[c], [c], c, c, is_point=True))
        return lines

    def _build_prototypes(
        self,
        lines: list[Line],
        centroids: np.ndarray,
        n_classes: int,
        Xs: np.ndarray,
        y: np.ndarray,
    ) -> None:
        protos, labels, info, starts, ends = [], [], [], [], []

        def add(point: np.ndarray, label: np.ndarray) -> int:
            protos.append(point)
            labels.append(label)
            return len(protos) - 1

        def one_hot(c: int) -> np.ndarray:
            v = np.zeros(n_classes)
            v[c] = 1.0
            return v

        for ln in lines:
            starts.append(ln.start)
            ends.append(ln.end)
            classes = sorted(set(ln.classes))
            if ln.is_point:
                idx = [add(ln.start, one_hot(classes[0]))]
                info.append(self._line_info(idx, classes, [0.0], "point"))
                continue
            if len(classes) == 1:
                idx = [add(ln.start, one_hot(classes[0])), add(ln.end, one_hot(classes[0]))]
                info.append(self._line_info(idx, classes, [0.0, 1.0], "single-class"))
                continue
            if self.class_positions == "centroid":
                # The reference: centroid positions, the end classes exactly at 0 and 1.
                pos = line_positions(centroids[classes], ln.start, ln.end)
                pos[classes.index(ln.start_class)] = 0.0
                pos[classes.index(ln.end_class)] = 1.0
            else:
                pos = np.array(
                    [np.median(line_positions(Xs[y == c], ln.start, ln.end)) for c in classes]
                )
            order = np.argsort(pos, kind="stable")
            ordered = [classes[i] for i in order]
            pos = pos[order]
            res = solve_line_lp(pos)
            if res is None:
                warnings.warn(
                    f"The soft-label LP of the line carrying classes "
                    f"{list(self.classes_[ordered])} is infeasible (positions {np.round(pos, 4)}"
                    "); using one one-hot prototype per class on that line instead.",
                    LineFallbackWarning,
                    stacklevel=3,
                )
                idx = [add(centroids[c], one_hot(c)) for c in ordered]
                info.append(self._line_info(idx, ordered, pos, "fallback-one-hot"))
                continue
            a = np.zeros(n_classes)
            b = np.zeros(n_classes)
            a[ordered] = res.a
            b[ordered] = res.b
            idx = [add(ln.start, a), add(ln.end, b)]
            info.append(self._line_info(idx, ordered, pos, res.status))

        self.prototypes_ = np.vstack(protos)
        self.prototype_labels_ = np.vstack(labels)
        self.lines_ = info
        self._seg_starts = np.vstack(starts)
        self._seg_ends = np.vstack(ends)
        width = max(len(entry["prototypes"]) for entry in info)
        table = np.full((len(info), width), len(protos), dtype=np.intp)
        for li, entry in enumerate(info):
            table[li, : len(entry["prototypes"])] = entry["prototypes"]
        self._line_table = table
        self._route_matrix = np.vstack([self.prototypes_, self._seg_starts, self._seg_ends])

    def _fit_heads(self, Xs: np.ndarray, y: np.ndarray, seed: int) -> None:
        """DeepSLP: train two heads per soft-label line; lines without soft labels keep theirs."""
        heads = []
        for li, entry in enumerate(self.lines_):
            if entry["status"] not in ("lp", "lp-no-midpoints"):
                heads.append(None)
                continue
            cols = np.searchsorted(self.classes_, entry["classes"])
            mask = np.isin(y, cols)
            y_line = np.searchsorted(cols, y[mask]) if np.all(np.diff(cols) > 0) else np.array(
                [list(cols).index(c) for c in y[mask]]
            )
            p1, p2 = self.prototypes_[entry["prototypes"]]
            d1 = np.linalg.norm(Xs[mask] - p1, axis=1)
            d2 = np.linalg.norm(Xs[mask] - p2, axis=1)
            w1, _ = line_mix_weights(d1, d2)
            init = None
            if self.head_init == "lp":
                init = tuple(self.prototype_labels_[p][cols] for p in entry["prototypes"])
            h1, h2, _ = train_line_heads(
                Xs[mask], y_line, len(cols), w1,
                hidden=self.hidden_size, learning_rate=self.learning_rate,
                n_epochs=self.n_epochs, weight_decay=self.weight_decay, seed=seed + li,
                init_labels=init,
            )
            heads.append((h1, h2))
            for proto, head in zip(entry["prototypes"], (h1, h2)):
                z = heads_forward(head, self.prototypes_[proto][None])[0]
                label = np.zeros(len(self.classes_))
                label[cols] = softmax(z, axis=-1)
                self.prototype_labels_[proto] = label
        self.heads_ = heads

    def _line_info(self, idx, classes, positions, status) -> dict:
        return {
            "prototypes": np.asarray(idx, dtype=np.intp),
            "classes": self.classes_[np.asarray(classes, dtype=np.intp)],
            "positions": np.asarray(positions, dtype=np.float64),
            "status": status,
        }

    # ------------------------------------------------------------------ prediction
    def predict_proba(self, X):
        """Class probabilities: normalised SLaPkNN scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        check_is_fitted(self)
        # float32 input stays float32: the distance products run twice as fast, and the
        # probabilities are still computed in float64.
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        out = np.empty((X.shape[0], len(self.classes_)))
        for sl in gen_batches(X.shape[0], _BATCH):
            out[sl] = self._proba_chunk(self._to_space(X[sl]))
        return out

    def _proba_chunk(self, Xs: np.ndarray) -> np.ndarray:
        M, L = len(self.prototypes_), len(self.lines_)
        if self.routing == "global" or L == 1:
            D = euclidean_distances_fast(Xs, self.prototypes_)
            if self.heads_ is None:
                return slapknn_proba(D, self.prototype_labels_, self.n_neighbors)
            if L == 1 and self.heads_[0] is not None and self.routing == "line":
                return self._heads_proba(Xs, 0, D[:, 0], D[:, 1])
            k = min(self.n_neighbors, M)
            idx = np.argpartition(D, k - 1, axis=1)[:, :k] if k < M else np.broadcast_to(
                np.arange(M), D.shape
            )
            return soft_vote(np.take_along_axis(D, idx, axis=1), self._neural_labels(Xs, idx))
        # One matrix product serves the segment distances and the prototype distances
        # (segment end points are stacked under the prototypes).
        G = Xs @ self._route_matrix.T.astype(Xs.dtype)
        seg = point_segment_distances(
            Xs, self._seg_starts, self._seg_ends, XS=G[:, M : M + L], XE=G[:, M + L :]
        )
        line = np.argmin(seg, axis=1)
        # Only the routed line's prototypes vote: gather their distances, nothing else.
        table = self._line_table[line]  # (n, max prototypes per line); M pads
        valid = table < M
        safe = np.where(valid, table, 0)
        rows = np.arange(len(Xs))[:, None]
        xx = np.einsum("ij,ij->i", Xs, Xs).astype(np.float64)[:, None]
        pp = np.einsum("ij,ij->i", self.prototypes_, self.prototypes_)
        sq = xx + pp[safe] - 2.0 * G[rows, safe]
        D = np.sqrt(np.maximum(sq, 0.0))
        # exact recomputation near zero, as in euclidean_distances_fast
        close = valid & (D <= 1e-3 * np.sqrt(1.0 + pp[safe]))
        if close.any():
            r, c = np.nonzero(close)
            diff = Xs[r].astype(np.float64) - self.prototypes_[safe[r, c]]
            D[r, c] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        D[~valid] = np.inf
        if self.heads_ is not None:
            out = np.empty((len(Xs), len(self.classes_)))
            plain = np.ones(len(Xs), dtype=bool)
            for li, head in enumerate(self.heads_):
                rows = line == li
                if head is None or not rows.any():
                    continue
                plain[rows] = False
                out[rows] = self._heads_proba(Xs[rows], li, D[rows, 0], D[rows, 1])
            if plain.any():
                out[plain] = self._vote(D[plain], safe[plain], table.shape[1])
            return out
        return self._vote(D, safe, table.shape[1])

    def _vote(self, D: np.ndarray, safe: np.ndarray, width: int) -> np.ndarray:
        k = min(self.n_neighbors, width)
        if k < width:
            part = np.argpartition(D, k - 1, axis=1)[:, :k]
            D = np.take_along_axis(D, part, axis=1)
            safe = np.take_along_axis(safe, part, axis=1)
        return soft_vote(D, self.prototype_labels_[safe])

    def _heads_proba(self, Xs, li: int, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
        """DeepSLP rule on one line: distance-weighted mix of the two heads' soft labels."""
        cols = np.searchsorted(self.classes_, self.lines_[li]["classes"])
        h1, h2 = self.heads_[li]
        w1, w2 = line_mix_weights(d1, d2)
        if self.n_neighbors == 1:  # only the nearer prototype votes
            w1 = (d1 <= d2).astype(np.float64)
            w2 = 1.0 - w1
        z1, z2 = softmax(heads_forward(h1, Xs), axis=-1), softmax(heads_forward(h2, Xs), axis=-1)
        out = np.zeros((len(Xs), len(self.classes_)))
        out[:, cols] = w1[:, None] * z1 + w2[:, None] * z2
        return out

    def _neural_labels(self, Xs: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Soft labels of the selected prototypes, evaluated at each query (global routing)."""
        Y = self.prototype_labels_[idx].copy()
        for li, head in enumerate(self.heads_):
            if head is None:
                continue
            cols = np.searchsorted(self.classes_, self.lines_[li]["classes"])
            for proto, h in zip(self.lines_[li]["prototypes"], head):
                hit = idx == proto
                rows = hit.any(axis=1)
                if rows.any():
                    lab = np.zeros((int(rows.sum()), len(self.classes_)))
                    lab[:, cols] = softmax(heads_forward(h, Xs[rows]), axis=-1)
                    Y[hit] = lab[np.nonzero(hit[rows])[0]]
        return Y

    def decision_function(self, X):
        """Confidence scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, ``P(classes_[1]) - P(classes_[0])`` (positive means
            ``classes_[1]``); otherwise the class probabilities.
        """
        check_is_fitted(self)
        proba = self.predict_proba(X)
        if proba.shape[1] == 2:
            return proba[:, 1] - proba[:, 0]
        return proba

    def predict(self, X):
        """Predict the class of each row of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
