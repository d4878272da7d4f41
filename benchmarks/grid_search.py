"""``GridSearchCV(n_jobs=2)`` on digits with fastbp's and with scikit-learn's MLPClassifier,
each search alone in a fresh process (its workers' start-up and imports included), the two
alternating for ``--rounds`` rounds: the seconds of the imports, of the search and of the
whole process, medians.  (``examples/sklearn_pipeline.py`` runs both in one process.)

    python benchmarks/grid_search.py [--rounds 3]
"""

import argparse
import statistics
import subprocess
import sys

CHILD = """
import sys, time, warnings
t0 = time.perf_counter()
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
if sys.argv[1] == "fastbp":
    from fastbp.sklearn import MLPClassifier
else:
    from sklearn.neural_network import MLPClassifier
t1 = time.perf_counter()
warnings.filterwarnings("ignore")
X, y = load_digits(return_X_y=True)
X_train, _, y_train, _ = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=60, n_iter_no_change=60, random_state=0))
grid = {"mlpclassifier__hidden_layer_sizes": [(64,), (128,)], "mlpclassifier__alpha": [1e-4, 1e-2]}
GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X_train, y_train)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, t2 - t0)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    times = {"fastbp": [], "sklearn": []}
    for _ in range(rounds):
        for name in times:
            out = subprocess.run([sys.executable, "-c", CHILD, name], capture_output=True, text=True, check=True)
            times[name].append([float(v) for v in out.stdout.split()])
    print(f"{'':10s} {'imports':>9s} {'search':>9s} {'process':>9s}   (medians of {rounds}, seconds)")
    for name, rows in times.items():
        print(f"{name:10s} " + " ".join(f"{statistics.median(col):9.2f}" for col in zip(*rows)))


if __name__ == "__main__":
    main()
