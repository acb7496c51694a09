"""Re-fit the LASA name-score weights and report their AUC on a held-out split.

Run ``python benchmarks/calibrate_lasa.py``: it reads the labelled public pairs from
``../shared/data`` (never copied into the repository), fits a logistic regression on 70 % of
the pairs (seeded split, stratified by label), prints the AUC on the other 30 % and the
constant to paste into ``controller/layout/names.py`` as ``COEFFICIENTS``.
"""

from __future__ import annotations

import csv
import platform
import sys
from pathlib import Path

import numpy as np

from controller.layout.names import COEFFICIENTS, FEATURES, features

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PAIRS = DATA / "drug_name_pairs_labelled.csv"


def load(path: Path = PAIRS) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    x = np.array([features(r["name_a"], r["name_b"]) for r in rows])
    y = np.array([int(r["confusable"]) for r in rows], dtype=float)
    return x, y


def split(y: np.ndarray, seed: int = 20261123,
          test_share: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split, so both halves keep the data's 814/862 balance."""
    rng = np.random.default_rng(seed)
    test: list[int] = []
    for label in (0, 1):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        test.extend(idx[: round(len(idx) * test_share)])
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 50) -> np.ndarray:
    """Newton's method on the L2-penalised log-likelihood (the intercept is not penalised)."""
    xa = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xa.shape[1])
    pen = np.full(xa.shape[1], l2)
    pen[-1] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xa @ w)))
        grad = xa.T @ (p - y) + pen * w
        hess = (xa * (p * (1 - p))[:, None]).T @ xa + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ w[:-1] + w[-1])))


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney AUC, ties counted half: the chance a confusable pair outscores a safe one."""
    pos, neg = scores[y == 1], scores[y == 0]
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def main() -> int:
    print(f"platform: {platform.platform()}; python {sys.version.split()[0]}")
    x, y = load()
    train, test = split(y)
    w = fit(x[train], y[train])
    print(f"pairs: {len(y)} ({int(y.sum())} confusable); train {len(train)}, held-out {len(test)}")
    for name, col in zip(FEATURES, x.T, strict=True):
        print(f"  single feature {name:13s} held-out AUC {auc(col[test], y[test]):.3f}")
    print(f"fitted model: train AUC {auc(predict(w, x[train]), y[train]):.3f}, "
          f"held-out AUC {auc(predict(w, x[test]), y[test]):.3f}")
    shipped = np.array(COEFFICIENTS)
    print(f"shipped COEFFICIENTS: held-out AUC {auc(predict(shipped, x[test]), y[test]):.3f}")
    print("COEFFICIENTS: tuple[float, ...] = (")
    print("    " + ", ".join(f"{v:.4f}" for v in w[:-1]) + ",")
    print(f"    {w[-1]:.4f},")
    print(")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
