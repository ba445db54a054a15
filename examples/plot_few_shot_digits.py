"""
=================================
Few-shot classification of digits
=================================

Handwritten digits (:func:`sklearn.datasets.load_digits`: 8x8 images, 10 classes) with only 4
or 8 labelled images per class. We compare
:class:`~sklearn_lts.SoftLabelPrototypeClassifier` with 10 and 20 soft-label prototypes
(``routing="global"``: SLaPkNN over all prototypes) against two standard baselines,
:class:`~sklearn.linear_model.LogisticRegression` and
:class:`~sklearn.neighbors.NearestCentroid` (one hard-label prototype per class), over 5
random episodes, then choose ``n_prototypes`` by cross-validation with
:class:`~sklearn.model_selection.GridSearchCV`.

Each episode draws a support set of ``k`` images per class and tests on all remaining images.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_lts import SoftLabelPrototypeClassifier

# NearestCentroid warns that some pixels are constant within a class (the image borders are
# always blank); that is expected here.
warnings.filterwarnings("ignore", message=".*within_class_std_dev_", category=UserWarning)

X, y = load_digits(return_X_y=True)
classes = np.unique(y)
N_EPISODES = 5
SHOTS = (4, 8)


def episode(k, seed):
    """Indices of a support set with ``k`` examples per class, and of the rest."""
    rng = np.random.default_rng(seed)
    support = np.concatenate([rng.choice(np.flatnonzero(y == c), k, replace=False)
                              for c in classes])
    query = np.setdiff1d(np.arange(len(y)), support)
    return support, query


models = {
    "SLP, 10 prototypes": SoftLabelPrototypeClassifier(
        n_prototypes=10, routing="global", random_state=0),
    "SLP, 20 prototypes": SoftLabelPrototypeClassifier(
        n_prototypes=20, routing="global", random_state=0),
    "LogisticRegression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "NearestCentroid": NearestCentroid(),
}

# %%
# Episodes
# --------
# The same support sets for every model. With 4 shots, 20 prototypes are 2 per class: the
# k-means centres of each class, paired into lines with soft labels.

accuracy = {(name, k): [] for name in models for k in SHOTS}
for k in SHOTS:
    for seed in range(N_EPISODES):
        support, query = episode(k, seed)
        for name, model in models.items():
            model.fit(X[support], y[support])
            accuracy[name, k].append(model.score(X[query], y[query]))

print(f"{'model':<22}" + "".join(f"{f'{k}-shot':>18}" for k in SHOTS))
for name in models:
    cells = "".join(
        f"{np.mean(accuracy[name, k]):>11.3f} ± {np.std(accuracy[name, k]):.3f}" for k in SHOTS
    )
    print(f"{name:<22}{cells}")

# %%
# Accuracy over the episodes (mean and standard deviation):

fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
width = 0.8 / len(models)
for i, name in enumerate(models):
    means = [np.mean(accuracy[name, k]) for k in SHOTS]
    stds = [np.std(accuracy[name, k]) for k in SHOTS]
    ax.bar(np.arange(len(SHOTS)) + (i - (len(models) - 1) / 2) * width, means, width,
           yerr=stds, capsize=3, label=name)
ax.set_xticks(np.arange(len(SHOTS)), [f"{k} shots per class" for k in SHOTS])
ax.set(ylabel="test accuracy", ylim=(0.5, 1.0),
       title=f"load_digits, {N_EPISODES} episodes")
ax.legend(loc="upper left", ncols=2, fontsize="small")
plt.show()

# %%
# Choosing the number of prototypes
# ---------------------------------
# ``SoftLabelPrototypeClassifier`` is a regular scikit-learn estimator, so its
# hyper-parameters can be tuned by cross-validation on the support set itself. With 8 shots, a
# 4-fold stratified split leaves 6 images per class for fitting.

support, query = episode(8, seed=0)
search = GridSearchCV(
    SoftLabelPrototypeClassifier(routing="global", random_state=0),
    {"n_prototypes": [5, 10, 20, 30]},
    cv=StratifiedKFold(4, shuffle=True, random_state=0),
)
search.fit(X[support], y[support])
print("best parameters:", search.best_params_)
print(f"cross-validated accuracy on the support set: {search.best_score_:.3f}")
print(f"test accuracy of the refitted model: {search.score(X[query], y[query]):.3f}")

# %%
# Fewer prototypes than classes (``n_prototypes=5``) puts two classes or more on each line.
# That works when classes lie along lines (see the less-than-one-shot example), not for ten
# digit classes in pixel space.

cv = search.cv_results_
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.errorbar(cv["param_n_prototypes"].astype(int), cv["mean_test_score"],
            yerr=cv["std_test_score"], marker="o", capsize=3)
ax.set(xlabel="n_prototypes", ylabel="cross-validated accuracy",
       title="GridSearchCV on one 8-shot support set")
plt.show()
