"""How confusable two drugs are, from what a pharmacy actually has.

A ward rarely has a similarity matrix; it has drug names, strengths, forms and, sometimes, a
hospital LASA list (look-alike/sound-alike pairs). Names are compared orthographically
(normalised edit distance, Jaro-Winkler, bigram overlap, BI-SIM) and phonetically
(Metaphone, NYSIIS, Soundex keys). The features are combined by a logistic regression fitted
on labelled confusable/non-confusable name pairs (``benchmarks/calibrate_lasa.py`` re-fits it
and prints the constants below), so the score reads as a probability of confusion, not an
arbitrary mix of distances.

Same strength and same form raise the score: identical packaging cues add to a name
resemblance. That adjustment is a stated prior, not calibrated (the public pairs carry names
only). A pair on the hospital's LASA list is at least as similar as the list says.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import jellyfish
import numpy as np
from rapidfuzz.distance import Indel, JaroWinkler, Levenshtein

from controller.errors import InputError

if TYPE_CHECKING:
    from controller.layout.model import Drug, FloatArray

FEATURES = ("levenshtein", "indel", "jaro_winkler", "bigram_dice", "bisim", "prefix",
            "metaphone", "nysiis", "soundex", "length_ratio")

#: Logistic-regression weights (one per feature, then the intercept), fitted by
#: ``benchmarks/calibrate_lasa.py`` on ``drug_name_pairs_labelled.csv`` (70 % train split).
COEFFICIENTS: tuple[float, ...] = (
    1.9841, 2.2366, 0.4297, 3.1082, 2.6782, 3.6035, 2.3633, 1.6562, 0.1989, 1.5577,
    -7.0578,
)

#: Prior raise of the score for same strength / same form (see module docstring).
SAME_STRENGTH_WEIGHT = 0.15
SAME_FORM_WEIGHT = 0.15


def normalise(name: str) -> str:
    """Lower case, no accents, letters and digits only: 'Hydroxyzine®' == 'HYDROXYZINE'."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return re.sub(r"[^a-z0-9]+", "", text)


def _bigrams(s: str) -> list[str]:
    padded = f" {s} "
    return [padded[i:i + 2] for i in range(len(padded) - 1)]


def bigram_dice(a: str, b: str) -> float:
    """Dice overlap of padded bigrams: counts shared letter pairs, order-free."""
    ba, bb = _bigrams(a), _bigrams(b)
    if not ba or not bb:
        return 0.0
    pool = list(bb)
    shared = 0
    for g in ba:
        if g in pool:
            pool.remove(g)
            shared += 1
    return 2.0 * shared / (len(ba) + len(bb))


def bisim(a: str, b: str) -> float:
    """BI-SIM (Kondrak & Dorr): an edit-distance-like alignment over bigrams.

    Each aligned bigram pair scores the share of its positions that match, so a transposed
    or swapped letter costs less than in plain edit distance; the first letters are padded
    so that word beginnings, which readers rely on, weigh as much as the rest.
    """
    if not a or not b:
        return 0.0
    x, y = a[0] + a, b[0] + b
    n, m = len(a), len(b)
    prev = [0.0] * (m + 1)
    for i in range(1, n + 1):
        cur = [0.0] * (m + 1)
        for j in range(1, m + 1):
            ident = ((x[i - 1] == y[j - 1]) + (x[i] == y[j])) / 2.0
            cur[j] = max(prev[j], cur[j - 1], prev[j - 1] + ident)
        prev = cur
    return prev[m] / max(n, m)


def _key_similarity(ka: str, kb: str) -> float:
    if not ka or not kb:
        return 0.0
    return float(Levenshtein.normalized_similarity(ka, kb))


def features(name_a: str, name_b: str) -> list[float]:
    """The feature vector of :data:`FEATURES`, every value in [0, 1]."""
    a, b = normalise(name_a), normalise(name_b)
    if not a or not b:
        return [0.0] * len(FEATURES)
    prefix = 0
    for ca, cb in zip(a, b, strict=False):
        if ca != cb:
            break
        prefix += 1
    return [
        float(Levenshtein.normalized_similarity(a, b)),
        float(Indel.normalized_similarity(a, b)),
        float(JaroWinkler.normalized_similarity(a, b)),
        bigram_dice(a, b),
        bisim(a, b),
        min(prefix, 4) / 4.0,
        _key_similarity(jellyfish.metaphone(a), jellyfish.metaphone(b)),
        _key_similarity(jellyfish.nysiis(a), jellyfish.nysiis(b)),
        float(jellyfish.soundex(a) == jellyfish.soundex(b)),
        min(len(a), len(b)) / max(len(a), len(b)),
    ]


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def name_score(name_a: str, name_b: str,
               coefficients: Sequence[float] = COEFFICIENTS) -> float:
    """Probability-like confusability of two names, in [0, 1]; identical names score 1."""
    a, b = normalise(name_a), normalise(name_b)
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    f = features(a, b)
    z = coefficients[-1] + sum(w * v for w, v in zip(coefficients, f, strict=False))
    return _logistic(z)


def _norm_attr(text: str) -> str:
    return re.sub(r"\s+", "", text.lower())


def drug_similarity_matrix(drugs: Sequence[Drug],
                           lasa: Iterable[tuple[str, str, float]] = ()) -> FloatArray:
    """Symmetric similarity of every pair of drugs (zero diagonal)."""
    listed: dict[frozenset[str], float] = {}
    for a, b, s in lasa:
        key = frozenset((normalise(a), normalise(b)))
        listed[key] = max(listed.get(key, 0.0), s)
    n = len(drugs)
    sim = np.zeros((n, n))
    names = [normalise(d.name) for d in drugs]
    for i in range(n):
        for j in range(i + 1, n):
            s = name_score(names[i], names[j])
            di, dj = drugs[i], drugs[j]
            raise_by = 0.0
            if di.strength and _norm_attr(di.strength) == _norm_attr(dj.strength):
                raise_by += SAME_STRENGTH_WEIGHT
            if di.form and _norm_attr(di.form) == _norm_attr(dj.form):
                raise_by += SAME_FORM_WEIGHT
            if s > 0:
                s = 1.0 - (1.0 - s) * (1.0 - raise_by)
            s = max(s, listed.get(frozenset((names[i], names[j])), 0.0))
            sim[i, j] = sim[j, i] = min(1.0, s)
    return sim


def read_lasa_csv(text: str, source: str = "LASA list") -> list[tuple[str, str, float]]:
    """Parse ``name_a,name_b[,score]`` lines (optional header); a missing score means 1."""
    out: list[tuple[str, str, float]] = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        if lineno == 1 and [c.lower() for c in cells[:2]] == ["name_a", "name_b"]:
            continue
        if len(cells) not in (2, 3) or not cells[0] or not cells[1]:
            raise InputError(f"{source} line {lineno}: expected name_a,name_b[,score]",
                             f"{source} ligne {lineno} : attendu nom_a,nom_b[,score]",
                             field=f"line {lineno}")
        score = 1.0
        if len(cells) == 3 and cells[2]:
            try:
                score = float(cells[2])
            except ValueError:
                score = math.nan
            if not 0.0 <= score <= 1.0:
                raise InputError(f"{source} line {lineno}: score must be a number in [0, 1]",
                                 f"{source} ligne {lineno} : le score doit être un nombre "
                                 "dans [0, 1]", field=f"line {lineno}")
        out.append((cells[0], cells[1], score))
    return out


def score_csv(text: str, source: str = "input") -> str:
    """``armoire lasa score``: ``name_a,name_b`` lines in, ``name_a,name_b,score`` out.

    The output has a header line only when the input had one, so that a script piping bare
    pairs gets bare scored pairs back.
    """
    pairs = read_lasa_csv(text, source)
    first = next((line for line in text.splitlines() if line.strip()), "")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if [c.strip().lower() for c in first.split(",")][:2] == ["name_a", "name_b"]:
        writer.writerow(["name_a", "name_b", "score"])
    for a, b, _ in pairs:
        writer.writerow([a, b, f"{name_score(a, b):.4f}"])
    return buf.getvalue()
