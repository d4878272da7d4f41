"""A scikit-learn Pipeline + GridSearchCV with fastbp's MLPClassifier, next to the same search
with scikit-learn's own MLPClassifier: the best settings, the test accuracy and the time of
each search, measured in this run.

    python examples/sklearn_pipeline.py [--quick]

Digits (1,797 8x8 images, bundled with scikit-learn), a stratified 75 / 25 split;
``StandardScaler`` then the MLP; the grid: two hidden-layer sizes x two ``alpha``; 3-fold
cross-validation over 2 processes (``n_jobs=2``: the estimators are pickled to the workers).
The only change between the two searches is the import.
"""

import argparse
import time
import warnings

try:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV, train_test_split
    from sklearn.neural_network import MLPClassifier as SkMLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
except ImportError:
    raise SystemExit("this example needs scikit-learn: pip install 'fastbp[sklearn]'") from None

from fastbp.sklearn import MLPClassifier


def search(classifier, X, y, max_iter):
    pipe = make_pipeline(StandardScaler(), classifier(max_iter=max_iter, n_iter_no_change=max_iter, random_state=0))
    grid = {"mlpclassifier__hidden_layer_sizes": [(64,), (128,)], "mlpclassifier__alpha": [1e-4, 1e-2]}
    return GridSearchCV(pipe, grid, cv=3, n_jobs=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few epochs (a smoke test)")
    args = parser.parse_args()
    max_iter = 3 if args.quick else 60
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    # compile fastbp's kernels once in this process (the workers load them from the cache)
    MLPClassifier((64,), max_iter=1).fit(X_train, y_train)
    # Start the two worker processes before either search is timed: the first search would
    # otherwise pay for starting them (and importing scikit-learn there), the second reuse them.
    # Each search still pays for importing its own classifier in the workers.
    from joblib import Parallel, delayed
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))
    seconds = {}
    for name, classifier in (("fastbp.sklearn", MLPClassifier), ("sklearn.neural_network", SkMLPClassifier)):
        grid = search(classifier, X_train, y_train, max_iter)
        start = time.perf_counter()
        grid.fit(X_train, y_train)
        seconds[name] = time.perf_counter() - start
        best = {k.split("__")[1]: v for k, v in grid.best_params_.items()}
        print(f"{name:24s} search {seconds[name]:6.2f} s  best {best}  "
              f"cv accuracy {grid.best_score_:.4f}  test accuracy {grid.score(X_test, y_test):.4f}")
    print(f"speed-up of the search: {seconds['sklearn.neural_network'] / seconds['fastbp.sklearn']:.1f}x "
          f"({max_iter} epochs per fit, 12 fits + the refit, 2 processes)")


if __name__ == "__main__":
    main()
