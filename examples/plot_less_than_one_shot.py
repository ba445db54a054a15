"""
================================================
Less than one shot: two prototypes, many classes
================================================

A soft-label prototype carries a distribution over classes instead of a single class. With the
inverse-distance rule (SLaPkNN, ``k = 2``) the class scores between two such prototypes change
linearly along the segment joining them, so two prototypes can give several classes an
interval each: **fewer prototypes than classes**.

:class:`~sklearn_lts.SoftLabelPrototypeClassifier` with ``n_prototypes=2`` shows this on three
two-dimensional data sets:

1. four classes along a line, where two prototypes are enough;
2. three classes at the corners of a triangle, where they are not (and three prototypes are);
3. Iris (petal length and width), three species with two prototypes.

Each prototype is drawn as a pie chart of its soft label. See :ref:`prototypes` for the method.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Wedge
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from sklearn_lts import SoftLabelPrototypeClassifier

COLORS = np.array(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"])


def draw_pie(ax, center, fractions, radius):
    """Draw a soft label as a small pie chart centred on a prototype."""
    start = 90.0
    for j, frac in enumerate(fractions):
        if frac <= 1e-3:
            continue
        ax.add_patch(
            Wedge(center, radius, start, start + 360.0 * frac, facecolor=COLORS[j],
                  edgecolor="black", linewidth=0.8, zorder=5)
        )
        start += 360.0 * frac


def plot_model(ax, clf, X, y, title):
    """Decision regions, training points and the prototypes with their soft labels."""
    pad = 0.15 * (X.max(0) - X.min(0))
    lo, hi = X.min(0) - pad, X.max(0) + pad
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], 300), np.linspace(lo[1], hi[1], 300))
    Z = clf.predict(np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    levels = np.arange(len(clf.classes_) + 1) - 0.5
    ax.contourf(xx, yy, Z, levels=levels, colors=COLORS[: len(clf.classes_)], alpha=0.25)
    ax.scatter(X[:, 0], X[:, 1], c=COLORS[y], s=14, edgecolor="white", linewidth=0.4)
    radius = 0.045 * np.max(hi - lo)
    for p, label in zip(clf.prototypes_, clf.prototype_labels_, strict=True):
        draw_pie(ax, p, label, radius)
    for line in clf.lines_:
        if len(line["prototypes"]) == 2:
            p, q = clf.prototypes_[line["prototypes"]]
            ax.plot([p[0], q[0]], [p[1], q[1]], "k--", linewidth=0.8, zorder=4)
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), title=title)
    ax.set_aspect("equal")


def show_soft_labels(clf):
    with np.printoptions(precision=3, suppress=True):
        for i, label in enumerate(clf.prototype_labels_):
            print(f"  prototype {i}: soft label {label}")


rng = np.random.default_rng(0)

# %%
# Four classes along a line
# -------------------------
# Four Gaussian blobs whose centres lie on one line. With ``n_prototypes=2`` the classifier
# builds a single line through the two outer class centroids; a linear program chooses the two
# soft labels so that each class wins around its own position on the line.

centres = np.array([[0.0, 0.0], [3.0, 1.0], [6.0, 2.0], [9.0, 3.0]])
X_line = np.vstack([c + 0.5 * rng.standard_normal((40, 2)) for c in centres])
y_line = np.repeat(np.arange(len(centres)), 40)
X_tr, X_te, y_tr, y_te = train_test_split(
    X_line, y_line, test_size=0.5, stratify=y_line, random_state=0
)

line_clf = SoftLabelPrototypeClassifier(n_prototypes=2).fit(X_tr, y_tr)
print(f"4 classes on a line, 2 prototypes: test accuracy {line_clf.score(X_te, y_te):.3f}")
show_soft_labels(line_clf)
print("line status:", [line["status"] for line in line_clf.lines_])

# %%
# Three classes at the corners of a triangle
# ------------------------------------------
# Two prototypes make one line, so the third class is attached to it and gets the middle
# interval of the position ``lambda = d1 / (d1 + d2)``. In the plane, ``lambda`` is constant on
# circles around the prototypes (Apollonius circles), so the end classes keep a disc around
# their prototype and the third class gets everything else: the far corner of the triangle,
# but also the middle of the segment, where points of the two other classes are then
# misclassified. Three prototypes (one per class centroid: here one two-prototype line plus a
# single prototype) do not have this problem.

corners = np.array([[0.0, 0.0], [6.0, 0.0], [3.0, 5.0]])
X_tri = np.vstack([c + 0.7 * rng.standard_normal((40, 2)) for c in corners])
y_tri = np.repeat(np.arange(len(corners)), 40)
X_tr3, X_te3, y_tr3, y_te3 = train_test_split(
    X_tri, y_tri, test_size=0.5, stratify=y_tri, random_state=0
)

tri_clfs = {}
for M in (2, 3):
    tri_clfs[M] = SoftLabelPrototypeClassifier(n_prototypes=M).fit(X_tr3, y_tr3)
    acc = tri_clfs[M].score(X_te3, y_te3)
    print(f"triangle, {M} prototypes: test accuracy {acc:.3f}")

# %%
# Iris with two prototypes for three species
# ------------------------------------------
# Petal length and width put the three Iris species almost on a line, which is the favourable
# case for less-than-one-shot learning.

iris = load_iris()
X_iris = iris.data[:, 2:4]
y_iris = iris.target
X_tri_, X_tei, y_tri_, y_tei = train_test_split(
    X_iris, y_iris, test_size=0.5, stratify=y_iris, random_state=0
)
iris_clf = SoftLabelPrototypeClassifier(n_prototypes=2).fit(X_tri_, y_tri_)
print(f"Iris (petal length, width), 2 prototypes: test accuracy "
      f"{iris_clf.score(X_tei, y_tei):.3f}")
show_soft_labels(iris_clf)

# %%
# Decision regions
# ----------------
# Dashed: the prototypical line. Pies: the prototypes' soft labels (class colours as the
# points).

fig, axes = plt.subplots(2, 2, figsize=(10, 9), layout="constrained")
plot_model(axes[0, 0], line_clf, X_line, y_line, "4 classes on a line, 2 prototypes")
plot_model(axes[0, 1], tri_clfs[2], X_tri, y_tri, "triangle, 2 prototypes")
plot_model(axes[1, 0], tri_clfs[3], X_tri, y_tri, "triangle, 3 prototypes")
plot_model(axes[1, 1], iris_clf, X_iris, y_iris, "Iris (petals), 2 prototypes")
axes[1, 1].set(xlabel=iris.feature_names[2], ylabel=iris.feature_names[3])
plt.show()

# %%
# The soft labels along the line
# ------------------------------
# Between the two prototypes the normalised class scores are linear in the position
# ``lambda = d1 / (d1 + d2)``: ``(1 - lambda) * a + lambda * b``, with ``a`` and ``b`` the two
# soft labels printed above. Each class wins on its own interval (shaded), which contains the
# class's position on the line (dotted); the boundaries fall midway between consecutive
# positions.
#
# At the scale of the scores (top), classes 0 and 1 look like one line, and so do 2 and 3:
# their soft labels differ by about 1e-4, the margin the linear program asks for. The bottom
# panel shows each class's lead over the best other class, ``s_j - max_{l != j} s_l``, on a
# scale that is linear near zero and logarithmic beyond. A class wins exactly where its lead is
# positive: class 0 starts ahead of class 1 because its share of ``a`` is a little larger, and
# falls behind where class 1's slightly larger share of ``b`` catches up.

a, b = line_clf.prototype_labels_
lam = np.linspace(0, 1, 801)
scores = (1 - lam)[:, None] * a + lam[:, None] * b
winner = scores.argmax(axis=1)
others = np.array([np.delete(scores, j, axis=1).max(axis=1) for j in range(scores.shape[1])]).T
lead = scores - others

fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, layout="constrained")
edges = np.flatnonzero(np.diff(winner)) + 1
for ax in (top, bottom):
    for lo, hi in zip(np.r_[0, edges], np.r_[edges, len(lam)], strict=True):
        ax.axvspan(lam[lo], lam[hi - 1], color=COLORS[winner[lo]], alpha=0.15, linewidth=0)
    for pos in line_clf.lines_[0]["positions"]:
        ax.axvline(pos, color="grey", linestyle=":", linewidth=0.8)
for j in range(scores.shape[1]):
    top.plot(lam, scores[:, j], color=COLORS[j], label=f"class {j}")
    bottom.plot(lam, lead[:, j], color=COLORS[j])
top.set(ylabel="normalised score", title="Class scores between the two prototypes")
top.legend(loc="upper center", ncols=4)
bottom.axhline(0, color="k", linewidth=0.8)
bottom.set_yscale("symlog", linthresh=1e-4)
bottom.set_ylim(-1, 1)
bottom.set(xlabel="position on the line (lambda)", ylabel="lead over the best other class",
           title="Each class wins where its lead is positive")
plt.show()
