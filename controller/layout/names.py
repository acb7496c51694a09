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
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING

import jellyfish
import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import Indel, JaroWinkler, Levenshtein
from rapidfuzz.process import cdist

from controller.errors import InputError

if TYPE_CHECKING:
    from controller.layout.model import Drug

FloatArray = npt.NDArray[np.float64]

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
    """Case-folded letters and digits of any script, Latin accents removed.

    'Hydroxyzine®' == 'HYDROXYZINE' and 'Héparine' == 'heparine'; 'Аспирин' keeps its
    Cyrillic letters (dropping everything outside a-z left it empty, so two identical
    Cyrillic or Greek names scored 0 instead of 1 and were never seen as look-alikes).
    Combining marks are removed only after a Latin letter: elsewhere (a Devanagari vowel
    sign, a Cyrillic breve) they are part of the letter, not an accent.
    """
    kept: list[str] = []
    latin = False
    for ch in unicodedata.normalize("NFKD", name):
        if unicodedata.combining(ch) or unicodedata.category(ch).startswith("M"):
            if not latin and kept:
                kept.append(ch)
            continue
        if unicodedata.category(ch)[0] in "LN":
            latin = unicodedata.name(ch, "").startswith("LATIN")
            kept.append(ch)
        else:
            latin = False
    return unicodedata.normalize("NFC", "".join(kept)).casefold()


#: A strength written into a name: a number (decimal point or comma, thousands spaces, or
#: English thousands commas) and a unit, optionally per a quantity ("500 mg", "0,25 mg",
#: "5 000 UI/ml", "200 mg/5 ml", "10 %", "2 mg/24 h"), or several ingredients' ("37,5 mg/325
#: mg", "400 mg/57 mg/5 ml"), optionally per dose ("250 µg/dose", "100 µg/bouffée"). Bare
#: numbers stay ("Novomix 30", "B12", "5-FU"): there they are the name.
_NUMBER = (r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?"
           r"|\d+(?:[ \u00a0\u202f]\d{3})*(?:[.,]\d+)?)")

#: Each unit a formulary writes (case-folded, dots taken out: "U.I." is "ui") and what it
#: is in its dimension's unit: mg, ml, UI, mmol, mEq, %. Milli- and mega-units are
#: :data:`_PREFIXED_UI`, read by the case of their "m".
_UNITS: dict[str, tuple[str, Fraction]] = {
    **{u: ("mg", Fraction(1)) for u in ("mg", "milligramme", "milligrammes", "milligram",
                                         "milligrams")},
    **{u: ("mg", Fraction(1000)) for u in ("g", "gramme", "grammes", "gram", "grams")},
    "kg": ("mg", Fraction(10**6)),
    **{u: ("mg", Fraction(1, 1000)) for u in ("µg", "μg", "mcg", "ug", "microgramme",
                                               "microgrammes", "microgram", "micrograms")},
    "ng": ("mg", Fraction(1, 10**6)),
    **{u: ("ml", Fraction(1)) for u in ("ml", "millilitre", "millilitres", "milliliter",
                                         "milliliters")},
    **{u: ("ml", Fraction(1000)) for u in ("l", "litre", "litres", "liter", "liters")},
    "dl": ("ml", Fraction(100)),
    "cl": ("ml", Fraction(10)),
    **{u: ("ml", Fraction(1, 1000)) for u in ("µl", "μl", "ul", "mcl", "microlitre",
                                               "microlitres", "microliter", "microliters")},
    **{u: ("ui", Fraction(1)) for u in ("ui", "iu", "u", "unité", "unités", "unite",
                                         "unites", "unit", "units")},
    "mmol": ("mmol", Fraction(1)),
    "mol": ("mmol", Fraction(1000)),
    **{u: ("mmol", Fraction(1, 1000)) for u in ("µmol", "μmol", "umol")},
    "meq": ("meq", Fraction(1)),
    **{u: ("%", Fraction(1)) for u in ("%", "pourcent", "percent")},
}

#: Units of time, only ever what a strength is per: a patch's "2 mg/24 h", "25 µg/h".
_TIME_UNITS: dict[str, tuple[str, Fraction]] = {
    **{u: ("h", Fraction(1)) for u in ("h", "hr", "hrs", "heure", "heures", "hour", "hours")},
    **{u: ("h", Fraction(1, 60)) for u in ("min", "minute", "minutes")},
    **{u: ("h", Fraction(24)) for u in ("j", "jour", "jours", "day", "days")},
    **{u: ("h", Fraction(168)) for u in ("semaine", "semaines", "week", "weeks")},
}


def _spellings(words: str) -> list[str]:
    """Each word, and the same without its accents ("bouffée", "bouffee"), longest first so
    that "doses" is not read as "dose" and an "s"."""
    out = set(words.split())
    out |= {normalise(w) for w in out}
    return sorted(out, key=len, reverse=True)


#: What a dose is counted in: "250 µg/dose" and "100 µg/bouffée" are 250 µg and 100 µg a
#: dose, the same as "250 µg" (a tablet's "500 mg" is per tablet too); "60 doses" after
#: the strength is the pack, not the drug.
_DOSE_WORDS = _spellings("""
    dose doses bouffée bouffées puff puffs pulvérisation pulvérisations inhalation
    inhalations actuation actuations spray sprays application applications goutte gouttes
    drop drops gélule gélules capsule capsules comprimé comprimés cp tablet tablets tab
    sachet sachets ampoule ampoules amp flacon flacons vial vials patch patchs suppositoire
    suppositoires seringue seringues syringe syringes unidose unidoses dosette dosettes
    """)
_DOSE_WORD = "(?:" + "|".join(re.escape(w) for w in _DOSE_WORDS) + r")(?!\w)"

#: Milli- and mega-units: "mUI" is a thousandth of a unit, "MUI" (Pénicilline G 1 MUI) a
#: million, as on drug labels; with case ignored "mUI" was read a million, 10^9 apart. The
#: only unit whose case is read: "MG", "Mg" and "mg" are all milligrams. Labels also
#: space the mega ("Pénicilline G 5 M UI"); a spaced small "m" ("5 m UI") may be a slip
#: for either, 10^9 apart, and is not read as a unit (the entry is then reported).
_PREFIXED_UI = (r"(?:(?-i:[mM])\.?|(?-i:M)[ \u00a0\u202f])"
                r"(?:u\.?i\.?|i\.?u\.?|u)(?![\w.])")

#: Percent in words, "5 pour cent", "5 percent", "5 per cent": read as "5 %" (the space
#: inside is taken out with the others, :func:`_unit`).
_PERCENT_WORDS = r"p(?:ou|e)r[ \u00a0\u202f]?cent(?!\w)"

#: What a unit may say of itself that does not change the strength: heparins' "UI anti-Xa",
#: a percentage's "m/v", "p/v", "w/v", "w/w", "v/v" (% is compared as written, whichever
#: it is).
_QUALIFIER = r"(?:\s*anti[-\s]?xa|\s*\(?[mpwv]\s*/\s*[mpwv]\)?)(?!\w)"
_QUALIFIER_RE = re.compile(_QUALIFIER, re.IGNORECASE)


def _alternatives(units: Iterable[str]) -> str:
    return "|".join(re.escape(u) for u in sorted(units, key=len, reverse=True))


# Longest first, so that "mg" is not read as "m" and "mcg" not as "mc"; dotted forms of the
# international unit ("U.I.", "I.U.") spelt out, their last dot optional.
_UNIT = (rf"(?:(?:{_PREFIXED_UI}|{_PERCENT_WORDS}|u\.i\.?|i\.u\.?|{_alternatives(_UNITS)})"
         rf"(?:{_QUALIFIER})?)")
_PER_UNIT = rf"(?:{_UNIT}|(?:{_alternatives(_TIME_UNITS)})(?!\w))"
_STRENGTH = re.compile(
    rf"(?<![\w.,]){_NUMBER}(?:\s*/\s*{_NUMBER})*\s*{_UNIT}"
    rf"(?:\s*/\s*(?:(?:{_NUMBER}\s*)?{_PER_UNIT}|{_DOSE_WORD}))*(?!\w)", re.IGNORECASE)
#: A number of doses or units in the pack ("60 doses", "30 gélules"): not the drug.
_PACK = re.compile(rf"(?<![\w.,/]){_NUMBER}\s*{_DOSE_WORD}", re.IGNORECASE)


def split_strength(name: str) -> tuple[str, str]:
    """(name without the strengths written in it, those strengths), e.g.
    'Paracétamol 500 mg' -> ('Paracétamol', '500 mg').

    Names are compared without their strengths: digits and units are not letters a reader
    confuses, and scored as letters they made 'Paracetamol 500 mg' and 'Metformine 500 mg'
    look alike (0.65) while the names score 0.06. A strength counts as the strength field
    does, as a stated prior (:data:`SAME_STRENGTH_WEIGHT`). The pack's count of doses
    ("60 doses") after a strength goes too: it is not which drug. A name that is nothing
    but a strength is kept whole.
    """
    matches = list(_STRENGTH.finditer(name))
    rest = _STRENGTH.sub(" ", name)
    if matches:  # a pack's count follows a strength; "Vitamine B 12 gouttes" is B12
        rest = _PACK.sub(" ", rest)
    if not normalise(rest):
        return name, ""
    # "calcium 500 mg + vitamine D3 400 UI" is one combination, "500 mg + 400 UI": the
    # "+" between two strengths says so (:func:`parse_strength`) and is kept with them.
    found = [m.group(0) if k == 0 else
             (" + " if "+" in name[matches[k - 1].end():m.start()] else " ") + m.group(0)
             for k, m in enumerate(matches)]
    return " ".join(rest.split()), "".join(found)


def strength_spans(name: str) -> list[tuple[int, int]]:
    """Where in ``name`` the strengths :func:`split_strength` takes out are written (start,
    end): what a display must show exactly as written."""
    return [m.span() for m in _STRENGTH.finditer(name)]


def name_key(name: str) -> str:
    """What two names are compared by: :func:`normalise` of the name without its strength."""
    return normalise(split_strength(name)[0])


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


def bisim_batch(left: Sequence[str], right: Sequence[str], chunk: int = 20_000) -> FloatArray:
    """:func:`bisim` of many pairs at once: the same dynamic programme, run cell by cell but
    vectorised over pairs (about 100 µs per pair in Python, a few µs here)."""
    out = np.zeros(len(left))
    # Chunks of similar lengths: a chunk's table is as wide as its longest name.
    order = np.argsort([max(len(a), len(b)) for a, b in zip(left, right, strict=True)],
                       kind="stable")
    for start in range(0, len(left), chunk):
        idx = order[start:start + chunk]
        a_part, b_part = [left[k] for k in idx], [right[k] for k in idx]
        la = np.array([len(a) for a in a_part])
        lb = np.array([len(b) for b in b_part])
        if len(la) == 0:
            continue
        width = int(max(la.max(), lb.max())) + 1
        # x[k] = padded a: its first letter repeated in front; -1 / -2 past the ends never match
        x = np.full((len(a_part), width), -1, dtype=np.int64)
        y = np.full((len(b_part), width), -2, dtype=np.int64)
        for k, a in enumerate(a_part):
            if a:
                x[k, : len(a) + 1] = [ord(c) for c in a[0] + a]
        for k, b in enumerate(b_part):
            if b:
                y[k, : len(b) + 1] = [ord(c) for c in b[0] + b]
        result = np.zeros(len(a_part))
        prev = np.zeros((len(a_part), width))
        for i in range(1, width):
            cur = np.zeros_like(prev)
            for j in range(1, width):
                ident = ((x[:, i - 1] == y[:, j - 1]).astype(float)
                         + (x[:, i] == y[:, j])) / 2.0
                cur[:, j] = np.maximum(np.maximum(prev[:, j], cur[:, j - 1]),
                                       prev[:, j - 1] + ident)
            done = la == i
            result[done] = cur[done, lb[done]]
            prev = cur
        ok = (la > 0) & (lb > 0)
        result[ok] /= np.maximum(la, lb)[ok]
        result[~ok] = 0.0
        out[idx] = result
    return out


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
    """Probability-like confusability of two names, in [0, 1]; identical names score 1.

    Strengths written in the names are left out (:func:`split_strength`)."""
    a, b = name_key(name_a), name_key(name_b)
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    f = features(a, b)
    z = coefficients[-1] + sum(w * v for w, v in zip(coefficients, f, strict=False))
    return _logistic(z)


#: Pairs whose score cannot reach this floor skip BI-SIM (the one slow feature) in
#: :func:`name_score_matrix`; their score is then a lower estimate, still below the floor.
SCORE_FLOOR = 0.02


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free logistic
    return out


def _bigram_shared(names: Sequence[str]) -> FloatArray:
    """Multiset bigram overlap of every pair: min(c_a, c_b) = Σ_t [c_a ≥ t][c_b ≥ t]."""
    vocab: dict[str, int] = {}
    counts: list[dict[int, int]] = []
    for name in names:
        c: dict[int, int] = {}
        for g in _bigrams(name):
            k = vocab.setdefault(g, len(vocab))
            c[k] = c.get(k, 0) + 1
        counts.append(c)
    top = max((v for c in counts for v in c.values()), default=0)
    shared = np.zeros((len(names), len(names)))
    for t in range(1, top + 1):
        level = np.zeros((len(names), len(vocab)))
        for i, c in enumerate(counts):
            for k, v in c.items():
                if v >= t:
                    level[i, k] = 1.0
        shared += level @ level.T
    return shared


def name_score_matrix(names: Sequence[str],
                      coefficients: Sequence[float] = COEFFICIENTS) -> FloatArray:
    """:func:`name_score` of every pair at once (zero diagonal).

    Pair by pair, a 1,000-drug cabinet (500,000 pairs) takes about a minute in Python; here
    every feature but BI-SIM is computed for all pairs in C (rapidfuzz) or numpy, and BI-SIM
    only for the pairs that could score at least :data:`SCORE_FLOOR`.
    """
    norm = [name_key(x) for x in names]
    n = len(norm)
    w = np.asarray(coefficients, dtype=float)
    if n == 0:
        return np.zeros((0, 0))
    f = np.zeros((len(FEATURES), n, n))
    for k, scorer in enumerate((Levenshtein, Indel, JaroWinkler)):
        f[k] = cdist(norm, norm, scorer=scorer.normalized_similarity, dtype=np.float64)
    lengths = np.array([len(x) for x in norm], dtype=float)
    f[3] = 2.0 * _bigram_shared(norm) / np.maximum(lengths[:, None] + lengths[None, :] + 2, 1)
    heads = np.full((n, 4), -1, dtype=np.int64)
    for i, x in enumerate(norm):
        for j, ch in enumerate(x[:4]):
            heads[i, j] = ord(ch)
    same = np.ones((n, n), dtype=bool)
    prefix = np.zeros((n, n))
    for j in range(4):
        same &= (heads[:, j][:, None] == heads[:, j][None, :]) & (heads[:, j][:, None] >= 0)
        prefix += same
    f[5] = prefix / 4.0
    for k, coder in ((6, jellyfish.metaphone), (7, jellyfish.nysiis)):
        keys = [coder(x) if x else "" for x in norm]
        sim = cdist(keys, keys, scorer=Levenshtein.normalized_similarity, dtype=np.float64)
        empty = np.array([not key for key in keys])
        sim[empty, :] = 0.0
        sim[:, empty] = 0.0
        f[k] = sim
    codes = np.array([jellyfish.soundex(x) if x else "" for x in norm])
    f[8] = codes[:, None] == codes[None, :]
    f[9] = np.minimum(lengths[:, None], lengths[None, :]) / np.maximum(
        np.maximum(lengths[:, None], lengths[None, :]), 1)
    z_without_bisim = w[-1] + np.tensordot(np.delete(w[:-1], 4), np.delete(f, 4, axis=0), 1)
    # BI-SIM's matches form two common subsequences (of the names, and of the names shifted
    # by the padding letter), so it is at most (2 LCS + 1) / (2 max length); Indel gives LCS.
    total = lengths[:, None] + lengths[None, :]
    lcs = f[1] * total / 2.0
    bisim_max = np.minimum(1.0, (2.0 * lcs + 1.0) / np.maximum(
        2.0 * np.maximum(lengths[:, None], lengths[None, :]), 1.0))
    ceiling = _sigmoid(z_without_bisim + np.maximum(w[4], 0.0) * bisim_max)
    z = z_without_bisim.copy()
    rows, cols = np.nonzero(np.triu(ceiling >= SCORE_FLOOR, 1))
    values = bisim_batch([norm[i] for i in rows], [norm[j] for j in cols])
    z[rows, cols] += w[4] * values
    z[cols, rows] = z[rows, cols]
    score = _sigmoid(z)
    blank = lengths == 0
    score[blank, :] = 0.0
    score[:, blank] = 0.0
    score[np.equal.outer(norm, norm) & ~blank[:, None]] = 1.0
    np.fill_diagonal(score, 0.0)
    return score


def _norm_attr(text: str) -> str:
    return re.sub(r"\s+", "", text.lower())


def _same_strength(strengths: Sequence[tuple[str, str]]) -> FloatArray:
    """1 where two drugs state one strength, in whatever units (:meth:`Dose.agrees`, as the
    LASA matching reads them: "500 mg" = "0,5 g"), 0 where either states none. Each
    strength comes with what its percentages are of (:func:`percent_basis`).

    A cabinet has far fewer strengths than drugs: each distinct strength is read and
    compared once, not each of the n² pairs."""
    texts = sorted(set(strengths))
    readings = [strength_readings(t, basis) for t, basis in texts]
    agree = np.array([[any(x and y and strengths_agree(x, y) for x in a for y in b)
                       for b in readings] for a in readings], dtype=float).reshape(
                           len(texts), len(texts))
    position = {t: k for k, t in enumerate(texts)}
    index = np.array([position[t] for t in strengths], dtype=np.int64)
    out: FloatArray = agree[np.ix_(index, index)]
    return out


def drug_similarity_matrix(drugs: Sequence[Drug],
                           lasa: Iterable[tuple[str, str, float]] = ()) -> FloatArray:
    """Symmetric similarity of every pair of drugs (zero diagonal)."""
    names = [name_key(d.name) for d in drugs]
    sim = name_score_matrix(names)

    def same(values: list[str]) -> FloatArray:
        keys = np.array([_norm_attr(v) for v in values], dtype=object)
        eq: FloatArray = (np.equal.outer(keys, keys) & (keys != "")[:, None]).astype(float)
        return eq

    # A strength written in the name stands for the field when the field is empty.
    raise_by = SAME_STRENGTH_WEIGHT * _same_strength(
        [(d.strength or split_strength(d.name)[1], percent_basis(d.form, d.name))
         for d in drugs]) \
        + SAME_FORM_WEIGHT * same([d.form for d in drugs])
    sim = np.where(sim > 0, 1.0 - (1.0 - sim) * (1.0 - raise_by), sim)
    sim = lasa_floor(sim, drugs, lasa)
    sim = np.minimum(sim, 1.0)
    np.fill_diagonal(sim, 0.0)
    return sim


def lasa_floor(sim: FloatArray, drugs: Sequence[Drug],
               lasa: Iterable[tuple[str, str, float]]) -> FloatArray:
    """``sim`` raised so that each pair of drugs named on the hospital's LASA list is at
    least as similar as the list says (a copy; drugs matched by :func:`lasa_matches`).

    Applied to every similarity, computed or given (matrix, pairs): a list passed with
    ``--lasa`` or ``lasa`` is a pharmacist's statement about real confusions, and a given
    matrix or pair that says less must not quietly put the pair side by side.
    """
    out = np.array(sim, dtype=float)
    for i, j, score in lasa_matches(drugs, lasa).pairs:
        out[i, j] = out[j, i] = max(out[i, j], score)
    return out


# ----------------------------------------------------------------- LASA list to formulary

def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Words that say how a drug is presented, not which drug it is (French and English,
#: accents removed): "HYDROXYZINE 25 mg cp" is the list's "hydroxyzine". Release words
#: (LP, retard, rapide, lente) are not here: they tell two products apart.
FORM_WORDS = _words("""
    cp cpr cpe comp comprime comprimes pellicule pellicules secable secables enrobe enrobes
    effervescent effervescents orodispersible orodispersibles dispersible dispersibles
    gelule gelules capsule capsules caps cap tablet tablets tab tabs pill pills
    inj injectable injectables injection injections sol solution solutions buvable buvables
    oral orale oraux syrup sirop suspension susp emulsion amp ampoule ampoules flacon flacons
    fl vial vials sachet sachets poudre powder granules granule lyophilisat suppositoire
    suppositoires suppo supp suppository suppositories pommade creme cream ointment
    collyre gouttes drops goutte patch patchs transdermique spray pulverisation aerosol
    inhalation inhalateur inhaler nebulisation perfusion infusion iv im sc sl pastille
    pastilles lozenge ovule ovules lavement film seringue syringe preremplie prefilled
    """)

#: Salt and ester words (French and English, accents removed), each with the one word the
#: matching uses for it, so that "chlorhydrate", "hydrochloride" and "HCl" are one salt and
#: "chlorure de sodium" is "sodium chloride"; the mono-, di- and hydrogeno- forms of an ion
#: are that ion (a list's "chlorhydrate" is the formulary's "dichlorhydrate"). "hydroxyzine
#: chlorhydrate", "amlodipine bésilate", "losartan potassique" are the list's hydroxyzine,
#: amlodipine, losartan. Set aside only when another word names the drug: "chlorure de
#: sodium" and "potassium chloride" are nothing but salt words, and keep them all. Procaine
#: and benzathine are here as the salts of penicillin G that they are.
_SALT_SYNONYMS = """
    chloride: chlorhydrate hydrochloride hcl chlorure chloride dichlorhydrate dihydrochloride
    hydrobromide: bromhydrate hydrobromide hbr
    sodium: sodique sodium monosodique monosodium disodique disodium
    potassium: potassique potassium monopotassique monopotassium dipotassique dipotassium
    calcium: calcique calcium
    magnesium: magnesien magnesium
    ferrous: ferreux ferrous
    ferric: ferrique ferric
    zinc: zinc
    lithium: lithium
    aluminium: aluminium aluminum
    sulfate: sulfate sulphate bisulfate hydrogenosulfate
    maleate: maleate hydrogenomaleate
    tartrate: tartrate bitartrate hydrogenotartrate
    besilate: besilate besylate
    mesilate: mesilate mesylate
    tosilate: tosilate tosylate
    acetate: acetate
    citrate: citrate
    phosphate: phosphate diphosphate
    fumarate: fumarate hemifumarate
    succinate: succinate
    lactate: lactate
    gluconate: gluconate
    bromide: bromure bromide
    iodide: iodure iodide
    fluoride: fluorure fluoride
    nitrate: nitrate
    carbonate: carbonate
    bicarbonate: bicarbonate hydrogenocarbonate
    oxide: oxyde oxide
    hydroxide: hydroxyde hydroxide
    oxalate: oxalate
    stearate: stearate
    palmitate: palmitate
    propionate: propionate
    dipropionate: dipropionate
    valerate: valerate
    butyrate: butyrate
    furoate: furoate
    acetonide: acetonide
    pivalate: pivalate
    enantate: enantate enanthate
    decanoate: decanoate
    undecanoate: undecanoate
    cipionate: cipionate cypionate
    trometamol: trometamol tromethamine
    meglumine: meglumine
    lysine: lysine
    arginine: arginine
    procaine: procaine
    benzathine: benzathine
    """


def _salt_words() -> dict[str, str]:
    """Every salt word, and its plural ("phosphates"), to the word that stands for it."""
    out: dict[str, str] = {}
    for line in _SALT_SYNONYMS.strip().splitlines():
        canonical, words = line.split(":")
        for word in words.split():
            out[word] = out[word + "s"] = canonical.strip()
    return out


SALT_WORDS = _salt_words()

#: Water and free base: "amoxicilline trihydratée" is the drug whatever its salt.
HYDRATE_WORDS = _words("""
    hydrate hydratee monohydrate monohydratee dihydrate dihydratee trihydrate trihydratee
    sesquihydrate hemihydrate anhydre anhydrous base
    """)

#: Forms whose percentages are weight in volume (a solution: "5 %" is 5 g/100 ml) and
#: those whose percentages are weight in weight (a cream: 5 g/100 g), accents removed.
LIQUID_WORDS = _words("""
    solution solutions sol inj injectable injectables injection injections perfusion
    infusion buvable buvables sirop syrup collyre
    """)
SEMISOLID_WORDS = _words("creme creams cream pommade pommades ointment ointments gel gels")


def percent_basis(*texts: str) -> str:
    """What a percentage of a drug whose form (or name) is ``texts`` is of: "w/v" for a
    solution, "w/w" for a cream; "" when no word says, or words say both: not guessed."""
    words = {normalise(w) for t in texts for w in re.split(r"[\W_]+", t)}
    liquid, semisolid = bool(words & LIQUID_WORDS), bool(words & SEMISOLID_WORDS)
    return "w/v" if liquid and not semisolid else "w/w" if semisolid and not liquid else ""


#: Linking words: "chlorhydrate de morphine", "sodium chloride and glucose". Not "la", "le":
#: INDERAL LA (long-acting) is not INDERAL.
STOP_WORDS = _words("de du des en et and of the")

#: An elided article, "d'" or "l'": a lone "D" or "L" is a name ("vitamine D").
_ELIDED = re.compile(r"(?<!\w)[dl]['’ʼ]", re.IGNORECASE)


@dataclass(frozen=True)
class LasaName:
    """A drug name taken apart for matching: the words that name the drug, its salt or ester
    words, and its strength (canonical), case and accents set aside."""

    core: tuple[str, ...]
    salts: tuple[str, ...]
    #: The ways its strength reads (:func:`strength_readings`): one, or two for "5,000".
    readings: tuple[frozenset[Dose], ...]
    #: The drug words run together in their order: "Co-Aprovel" is "CoAprovel".
    glued: str = ""
    #: The number that reads both ways ("5,000") when there are two readings.
    comma: str = ""


def _canonical_strength(text: str) -> str:
    """'5 000 UI/ml' == '5000 ui/mL'; '0,5 mg' == '0.5mg'; 'mcg' == 'µg'; 'mUI' (milli) is
    not 'MUI' (mega)."""
    s = re.sub(r"(?<![^\W\d_])(?:([mM])\.?|((?-i:M))\s)"
               r"(?=(?:u\.?i|i\.?u|u)\.?(?![^\W\d_]))",
               lambda m: "milli" if m.group(1) == "m" else "mega", text, flags=re.IGNORECASE)
    s = re.sub(r"[\s\u00a0\u202f]", "", s.casefold()).replace(",", ".")
    s = re.sub(r"(?<![a-zµμ])(?:mcg|ug|μg)(?![a-z])", "µg", s)
    return re.sub(r"(?<![a-z])(?:iu|u|unites?|units?)(?![a-z])", "ui", s)


@dataclass(frozen=True)
class Dose:
    """One strength of a label in canonical units, so that "0,5 g" is "500 mg", "1000 µg"
    is "1 mg", "5 000 U.I." is "5000 IU" and "1 g/10 ml" is "100 mg/ml" in 10 ml.

    ``amounts``: each ingredient's (dimension, value), the dimension being that of mg, ml,
    UI, mmol, mEq or %; per unit of ``per`` (ml, mg…) for a concentration. ``volume``: how
    much of ``per`` the label states ("/10 ml": 10), None for "/ml". ``text``: a strength
    that is not numbers and units ("1 sachet"), compared as written, as before units were
    read. ``basis``: what a percentage is of, "w/v" (grams per 100 ml), "w/w" (per 100 g)
    or "v/v", from its qualifier or the drug's form; "" when neither says.
    """

    amounts: tuple[tuple[str, Fraction], ...]
    per: str = ""
    volume: Fraction | None = None
    text: str = ""
    basis: str = ""

    def _percent(self) -> bool:
        return bool(self.amounts) and not self.per and all(d == "%" for d, _ in self.amounts)

    def _as_concentration(self) -> Dose:
        """A percentage of known basis as the concentration it is: 5 % w/v is 5 g/100 ml,
        50 mg/ml; 2 % w/w 20 mg/g. Any other dose as it is."""
        if not self.basis or not self._percent() or len(self.amounts) != 1:
            return self
        dim, per, factor = _PERCENT_AS[self.basis]
        return Dose(((dim, self.amounts[0][1] * factor),), per)

    def agrees(self, other: Dose) -> bool:
        """Same strength. A concentration naming no volume ("100 mg/ml") is every ampoule
        of it ("1 g/10 ml", "2 g/20 ml"); two ampoules of different volumes are not one,
        nor a dose one concentration (500 mg is not 500 mg/5 ml). A percentage that does
        not say what it is of is that percentage of anything ("5 %" is "5 % w/v" and
        "5 % w/w"), never a concentration in other units: "5 %" is not "50 mg/ml" unless
        the form says a solution (that would guess w/v)."""
        if self._percent() and other._percent():
            return self.amounts == other.amounts and (
                not self.basis or not other.basis or self.basis == other.basis)
        a, b = self._as_concentration(), other._as_concentration()
        if a.per and b.per and a.per == b.per and a.amounts == b.amounts:
            return a.volume is None or b.volume is None or a.volume == b.volume
        return a == b


#: A percentage of each basis as (dimension, what it is per, factor): x % w/v is x g in
#: 100 ml, 10x mg/ml; x % w/w x g in 100 g, x/100 mg/mg; x % v/v x/100 ml/ml.
_PERCENT_AS: dict[str, tuple[str, str, Fraction]] = {
    "w/v": ("mg", "ml", Fraction(10)),
    "w/w": ("mg", "mg", Fraction(1, 100)),
    "v/v": ("ml", "ml", Fraction(1, 100)),
}

#: A percentage's qualifier, letters only, to its basis: French m/v (masse), p/v (poids),
#: English w/v; m/m, p/p, w/w; v/v.
_BASES = {"mv": "w/v", "pv": "w/v", "wv": "w/v", "mm": "w/w", "pp": "w/w", "ww": "w/w",
          "vv": "v/v"}

#: From this mass on (100 g), a mass after "/" is what the others are per ("Fucidine 2 g/100
#: g" is 20 mg/g: no dose weighs 100 g); below it, masses after "/" are ingredients
#: ("Sinemet 25 mg/100 mg": carbidopa and levodopa).
_PER_MASS_FROM = Fraction(100_000)

#: What a concentration may be per: a volume, a mass, a time. Nothing is per "880 UI" or
#: per "2 mmol": "1000 mg/880 UI" is a combination of two ingredients.
_PER_DIMENSIONS = frozenset({"ml", "mg", "h"})


#: A comma then exactly three digits after a number that does not start with 0 ("5,000",
#: "12,500"): English thousands or a French decimal comma; the text cannot say which.
_AMBIGUOUS_COMMA = re.compile(r"[1-9]\d{0,2},\d{3}")


def _quantity(number: str, thousands: bool = False) -> Fraction:
    """'5 000' = 5000, '0,5' = '0.5' = 1/2: exact, so that 0.5 g is exactly 500 mg.
    '1,000,000' and '5,000.5' are English thousands; an ambiguous '5,000' is 5000 when
    ``thousands`` says the label's commas are thousands, 5 otherwise."""
    s = re.sub(r"[\s\u00a0\u202f]", "", number)
    if ("," in s and ("." in s or s.count(",") > 1)) or (
            thousands and _AMBIGUOUS_COMMA.fullmatch(s)):
        return Fraction(s.replace(",", ""))
    return Fraction(s.replace(",", "."))


def _unit(written: str) -> tuple[str, Fraction]:
    """(dimension, size in its unit) of a unit as ``_STRENGTH`` found it; "mUI" is a
    thousandth, "MUI" a million."""
    key = re.sub(r"[.\s]", "", written)
    if re.fullmatch(r"[mM](?:ui|iu|u)", key, re.IGNORECASE):
        return "ui", Fraction(10**6) if key[0] == "M" else Fraction(1, 1000)
    folded = key.casefold()
    return _UNITS[folded] if folded in _UNITS else _TIME_UNITS[folded]


def _dose(written: str, thousands: bool = False) -> Dose | None:
    """The :class:`Dose` of one strength found by ``_STRENGTH``; None if it reads as none.

    Numbers before a unit share it ("150/12,5 mg"); the last quantity is what the others
    are per when it has no number ("mg/ml") or another dimension ("1 g/10 ml", "2 mg/24 h")
    or is a mass of 100 g or more ("2 g/100 g"); otherwise they are the ingredients of a
    combination, in order ("37,5 mg/325 mg": not 325/37,5; "1000 mg/880 UI": nothing is per
    a number of units). A number of units per a smaller mass ("880 UI/1000 mg") reads both
    ways and is None, as is a percentage qualifier no one writes ("v/m"). "/dose" says what
    the strength already is, a dose, and is passed over. ``thousands``: how to read an
    ambiguous "5,000" (:func:`_quantity`).
    """
    found: list[tuple[str, Fraction | None, Fraction]] = []  # dimension, value, unit
    waiting: list[Fraction] = []
    basis = ""
    for qualifier in _QUALIFIER_RE.finditer(written):
        letters = re.sub(r"[^a-z]", "", qualifier.group(0).casefold())
        if letters != "antixa":
            if letters not in _BASES:  # "v/m", "m/p": no basis anyone writes
                return None
            basis = _BASES[letters]
    for part in _QUALIFIER_RE.sub("", written).split("/"):
        if re.fullmatch(rf"\s*{_DOSE_WORD}\s*", part, re.IGNORECASE):
            continue
        m = re.fullmatch(rf"\s*({_NUMBER})?\s*({_PER_UNIT})?\s*", part, re.IGNORECASE)
        if m is None or not (m.group(1) or m.group(2)):
            return None
        number = _quantity(m.group(1), thousands) if m.group(1) else None
        if m.group(2) is None:
            if number is not None:
                waiting.append(number)
            continue
        dim, unit = _unit(m.group(2))
        found += [(dim, n * unit, unit) for n in waiting]
        found.append((dim, None if number is None else number * unit, unit))
        waiting = []
    if waiting or not found:
        return None
    per, stated, unit = found[-1]
    values = [(d, v) for d, v, _ in found if v is not None]
    per_mass = per == "mg" and stated is not None  # "/1000 mg", "/100 g"
    heavy = per_mass and stated is not None and stated >= _PER_MASS_FROM
    if len(found) > 1 and per not in _PER_DIMENSIONS:
        # "1000 mg/880 UI": two ingredients; "mg/UI" is no strength anyone writes
        return Dose(tuple(values)) if stated is not None and len(values) == len(found) \
            else None
    if len(found) > 1 and per_mass and not heavy and per != found[0][0]:
        return None  # "880 UI/1000 mg": 880 UI per gram, or two ingredients? Not guessed.
    if len(found) > 1 and (stated is None or per != found[0][0] or heavy):
        if len(values) != len(found) - (stated is None):
            return None
        ingredients = values[:-1] if stated is not None else values
        size = stated if stated is not None else unit  # "/ml" is per 1 ml, "/l" per 1000
        return Dose(tuple((d, v / size) for d, v in ingredients), per, stated)
    if len(values) != len(found):
        return None
    return Dose(tuple(values), basis=basis if len(values) == 1 and values[0][0] == "%"
                else "")


def _combination(doses: Sequence[Dose | None]) -> Dose | None:
    """The strengths of a combination joined by "+" ("500 mg + 400 UI") as one dose,
    ingredient by ingredient in order; None when they are not alike (a dose and a
    concentration, two volumes): which is meant is not guessed."""
    if any(d is None for d in doses):
        return None
    parts = [d for d in doses if d is not None]
    first = parts[0]
    if len(parts) == 1:
        return first
    if any((d.per, d.volume, d.basis, d.text) != (first.per, first.volume, "", "")
           for d in parts):
        return None
    return Dose(tuple(a for d in parts for a in d.amounts), first.per, first.volume)


def parse_strength(text: str, thousands: bool = False, basis: str = "") -> frozenset[Dose]:
    """The doses a strength field, or the strengths written in a name, state: one, or
    several ("0,9 % (9 mg/ml)" is 0.9 % and 9 mg/ml); strengths joined by "+" are one
    combination ("500 mg + 400 UI": neither 500 mg alone nor 400 UI alone). Text that is
    not all numbers and units, or whose numbers read two ways, is one :class:`Dose` of
    ``text``, compared as written. ``thousands``: read an ambiguous "5,000" as 5000 rather
    than 5 (:func:`strength_readings` knows when). ``basis``: what a percentage that does
    not say it is of (:func:`percent_basis` of the drug's form)."""
    if not normalise(text):
        return frozenset()
    matches = list(_STRENGTH.finditer(text))
    groups: list[list[Dose | None]] = []
    for k, m in enumerate(matches):
        dose = _dose(m.group(0), thousands)
        if k and "+" in text[matches[k - 1].end():m.start()]:
            groups[-1].append(dose)
        else:
            groups.append([dose])
    doses = [_combination(g) for g in groups]
    if not doses or normalise(_STRENGTH.sub(" ", text)) or None in doses:
        return frozenset({Dose((), text=_canonical_strength(text))})
    return frozenset(replace(d, basis=basis) if basis and d._percent() and not d.basis
                     else d for d in doses if d is not None)


def _commas(text: str) -> tuple[str, bool | None]:
    """(the first number of ``text``'s strengths that reads both ways, "" if none; whether
    its commas are thousands, None when the label does not show it).

    A label shows its convention by another number: a decimal point or several thousands
    groups ("0.5 ml", "1,000,000") are English, a comma not followed by exactly three
    digits ("0,5 ml") French; both or neither leave it open."""
    numbers = [re.sub(r"[\s\u00a0\u202f]", "", n) for m in _STRENGTH.finditer(text)
               for n in re.findall(_NUMBER, m.group(0))]
    ambiguous = [n for n in numbers if _AMBIGUOUS_COMMA.fullmatch(n)]
    if not ambiguous:
        return "", None
    english = any("." in n or n.count(",") > 1 for n in numbers)
    french = any("," in n and not english and not _AMBIGUOUS_COMMA.fullmatch(n)
                 for n in numbers)
    return ambiguous[0], english if english != french else None


def strength_readings(text: str, basis: str = "") -> tuple[frozenset[Dose], ...]:
    """Every way ``text``'s strength can be read: one, or two when a comma may be English
    thousands or a French decimal ("5,000 UI": 5000 or 5) and the label does not say
    which. The LASA matching keeps the reading(s) the formulary has. ``basis``: see
    :func:`parse_strength`."""
    number, thousands = _commas(text)
    if not number or thousands is not None:
        return (parse_strength(text, bool(thousands), basis),)
    decimal, grouped = parse_strength(text, False, basis), parse_strength(text, True, basis)
    return (decimal,) if decimal == grouped else (decimal, grouped)


def strengths_agree(a: frozenset[Dose], b: frozenset[Dose]) -> bool:
    """``a`` and ``b`` name one strength, or one of them names none. A label that states
    its strength twice ("0,9 % (9 mg/ml)") agrees with either; every dose of the one that
    states fewer must agree with one of the other's."""
    if not a or not b:
        return True
    fewer, more = (a, b) if len(a) <= len(b) else (b, a)
    return all(any(d.agrees(e) for e in more) for d in fewer)


def lasa_name(name: str, strength: str = "", form: str = "") -> LasaName:
    """``name`` (and the drug's ``strength`` field, which a strength written in the name
    stands in for, and its ``form``, which tells what a percentage is of) taken apart as
    :class:`LasaName`. Words are sorted: "chlorhydrate d'hydroxyzine" is "hydroxyzine
    chlorhydrate"."""
    rest, written = split_strength(name)
    rest = _ELIDED.sub(" ", rest)
    words = [w for w in (normalise(part) for part in re.split(r"[\W_]+", rest)) if w]
    named = [w for w in words
             if w not in FORM_WORDS and w not in STOP_WORDS and w not in HYDRATE_WORDS]
    if not named:  # a name made of form words only ("Gel") is its own name
        named = words
    core = [w for w in named if w not in SALT_WORDS]
    salts = [SALT_WORDS[w] for w in named if w in SALT_WORDS]
    if not core:  # the salt is the drug: "chlorure de sodium", "potassium chloride"
        core, salts = salts, []
    readings = strength_readings(strength or written, percent_basis(form, name))
    return LasaName(tuple(sorted(core)), tuple(sorted(salts)), readings, "".join(core),
                    _commas(strength or written)[0] if len(readings) > 1 else "")


def _within(part: tuple[str, ...], whole: tuple[str, ...]) -> bool:
    """Every word of ``part`` in ``whole``, as many times (both sorted)."""
    need = Counter(part)
    have = Counter(whole)
    return all(have[w] >= k for w, k in need.items())


@dataclass(frozen=True)
class LasaWarning:
    """An entry of the list that does not name exactly one drug of the formulary.

    ``LASA_UNMATCHED``: ``name`` matches no drug, so the entry keeps nothing apart.
    ``LASA_AMBIGUOUS``: ``name`` matches several different drugs (``drugs``) and none of
    them exactly, or its strength's ``number`` ("10,000") reads both ways and each reading
    reaches a drug the other does not; the entry is applied to each of them, the safe side,
    and the list should say which one it means.
    ``LASA_SAME_DRUG``: both names are one drug once strength, form and salt are set aside;
    the entry keeps that drug's variants (``drugs``) apart from one another.
    """

    code: str
    entry: int
    name: str
    #: The entry's two names, in the list's order.
    pair: tuple[str, str]
    drugs: tuple[str, ...] = ()
    #: The number of an ambiguous strength ("10,000": ten or ten thousand), if that is why.
    number: str = ""

    def message(self, lang: str = "en") -> str:
        a, b = self.pair
        pair = f"« {a} » ↔ « {b} »" if lang == "fr" else f"“{a}” ↔ “{b}”"
        ids = ", ".join(self.drugs)
        if self.code == "LASA_AMBIGUOUS" and self.number:
            decimal = self.number.replace(",", ".").rstrip("0").rstrip(".")
            grouped = self.number.replace(",", "")
            if lang == "fr":
                return (f"liste LASA {pair} : « {self.name} » correspond à plusieurs "
                        f"médicaments différents ({ids}) : « {self.number} » se lit "
                        f"{decimal.replace('.', ',')} (virgule décimale) ou {grouped} "
                        "(séparateur des milliers) ; la paire s'applique à chacun, "
                        "précisez la liste")
            return (f"LASA list {pair}: “{self.name}” matches several different drugs "
                    f"({ids}): “{self.number}” reads {decimal} (decimal comma) or {grouped} "
                    "(thousands separator); the pair applies to each, make the list precise")
        if lang == "fr":
            return {
                "LASA_UNMATCHED": f"liste LASA {pair} : « {self.name} » ne correspond à aucun "
                                  "médicament ; cette paire ne sépare rien",
                "LASA_AMBIGUOUS": f"liste LASA {pair} : « {self.name} » correspond à "
                                  f"plusieurs médicaments différents ({ids}) ; la paire "
                                  "s'applique à chacun, précisez la liste",
                "LASA_SAME_DRUG": f"liste LASA {pair} : les deux noms désignent le même "
                                  f"médicament ; ses variantes ({ids}) sont séparées entre "
                                  "elles",
            }[self.code]
        return {
            "LASA_UNMATCHED": f"LASA list {pair}: “{self.name}” matches no drug; this pair "
                              "keeps nothing apart",
            "LASA_AMBIGUOUS": f"LASA list {pair}: “{self.name}” matches several different "
                              f"drugs ({ids}); the pair applies to each, make the list "
                              "precise",
            "LASA_SAME_DRUG": f"LASA list {pair}: both names are the same drug; its variants "
                              f"({ids}) are kept apart from one another",
        }[self.code]


@dataclass
class LasaMatch:
    """What a LASA list means for a list of drugs: the floors ``(i, j, score)`` with i < j,
    and the entries to report."""

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    warnings: list[LasaWarning] = field(default_factory=list)


def lasa_matches(drugs: Sequence[Drug], lasa: Iterable[tuple[str, str, float]]) -> LasaMatch:
    """Match each entry of a LASA list to the drugs it names.

    A hospital writes "hydroxyzine" where the formulary has "Hydroxyzine (chlorhydrate d')
    25 mg cp": matched on exact names, the entry reached no drug and its floor on similarity
    was lost without a word. A side of an entry matches a drug when the entry's drug words
    (:func:`lasa_name`: case, accents, strength, form, salt and linking words set aside) are
    all among the drug's: "tramadol" reaches "Tramadol LP 100 mg" (left out, it could sit
    by the listed look-alike), and "insuline rapide" never reaches "insuline lente". Such a
    side is ambiguous, and reported, only when none of its drugs is exactly what it names
    ("insuline" with only "insuline rapide" and "insuline lente": the list must say which
    it means; it is applied to both meanwhile). A side that names a strength matches only
    that strength (or a drug with none); a strength that reads two ways ("10,000 UI":
    English ten thousand or French ten) matches the drugs of either, and is reported when
    each reading reaches a drug the other does not. When both sides have the same drug
    words, the entry is about the salt or the strength ("morphine sulfate" / "morphine
    chlorhydrate"), and salts must then match too. A side that names a salt never reaches
    a drug named with other salts only ("penicillin G potassium" is not "penicillin G
    procaine"); a drug whose name gives no salt may be any, and is reached. Drugs of
    identical name, strength and form (two pockets of one drug) are never kept apart.
    """
    taken = [lasa_name(d.name, d.strength, d.form) for d in drugs]
    same_as = [(name_key(d.name), t.readings, _norm_attr(d.form)) for d, t in zip(
        drugs, taken, strict=True)]
    floors: dict[tuple[int, int], float] = {}
    warnings: list[LasaWarning] = []

    # Drugs by word: a list of hundreds of entries against a formulary of thousands of
    # drugs compares each entry with the few drugs that share a word, not with all.
    having: dict[str, set[int]] = {}
    glued: dict[str, set[int]] = {}
    for i, t in enumerate(taken):
        glued.setdefault(t.glued, set()).add(i)
        for w in t.core:
            having.setdefault(w, set()).add(i)

    def side(entry: LasaName, by_salt: bool) -> tuple[list[int], bool, bool]:
        """(the drugs ``entry`` reaches, whether one is exactly it, whether its strength's
        two readings each reach a drug the other does not)."""
        near = set.intersection(*(having.get(w, set()) for w in entry.core)) \
            if entry.core else set()
        same_glued = glued.get(entry.glued, set()) if entry.glued else set()
        named = [i for i in sorted(near | same_glued)
                 if (i in same_glued or _within(entry.core, taken[i].core))
                 and (not by_salt or _within(entry.salts, taken[i].salts))
                 # both name a salt, and not one in common: another salt of the drug
                 and not (entry.salts and taken[i].salts
                          and not set(entry.salts) & set(taken[i].salts))]
        by_reading = [{i for i in named
                       if any(strengths_agree(r, d) for d in taken[i].readings)}
                      for r in entry.readings]
        found = sorted(set().union(*by_reading))
        exact = any(taken[i].core == entry.core or i in same_glued for i in found)
        two_ways = len(by_reading) == 2 and all(
            x - y for x, y in (by_reading, by_reading[::-1]))
        return found, exact, two_ways

    for k, (name_a, name_b, score) in enumerate(lasa):
        a, b = lasa_name(name_a), lasa_name(name_b)
        by_salt = a.core == b.core
        found: list[list[int]] = []
        for name, entry in ((name_a, a), (name_b, b)):
            hits, exact, two_ways = side(entry, by_salt)
            found.append(hits)
            if not hits:
                warnings.append(LasaWarning("LASA_UNMATCHED", k, name, (name_a, name_b)))
            elif two_ways:
                warnings.append(LasaWarning("LASA_AMBIGUOUS", k, name, (name_a, name_b),
                                            tuple(sorted(drugs[i].id for i in hits)),
                                            entry.comma))
            elif not exact and len({taken[i].core for i in hits}) > 1 \
                    and len({taken[i].glued for i in hits}) > 1:
                warnings.append(LasaWarning("LASA_AMBIGUOUS", k, name, (name_a, name_b),
                                            tuple(sorted(drugs[i].id for i in hits))))
        if a == b and found[0]:
            warnings.append(LasaWarning("LASA_SAME_DRUG", k, name_a, (name_a, name_b),
                                        tuple(sorted(drugs[i].id for i in found[0]))))
        for i in found[0]:
            for j in found[1]:
                if i != j and same_as[i] != same_as[j]:
                    key = (min(i, j), max(i, j))
                    floors[key] = max(floors.get(key, 0.0), score)
    return LasaMatch([(i, j, s) for (i, j), s in sorted(floors.items())], warnings)


def read_lasa_csv(text: str, source: str = "LASA list") -> list[tuple[str, str, float]]:
    """Parse ``name_a,name_b[,score]`` lines (optional header); a missing score means 1."""
    out: list[tuple[str, str, float]] = []
    first = True
    # A BOM (files saved by spreadsheet software) is not part of the first name; the header
    # is the first non-blank line, wherever it is, so it is never scored as a pair.
    for lineno, row in enumerate(csv.reader(io.StringIO(text.removeprefix("\ufeff"))),
                                 start=1):
        if not row or all(not c.strip() for c in row):
            continue
        cells = [c.strip() for c in row]
        header, first = first and [c.lower() for c in cells[:2]] == ["name_a", "name_b"], False
        if header:
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
    lines = text.removeprefix("\ufeff").splitlines()
    first = next((line for line in lines if line.strip()), "")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if [c.strip().lower() for c in first.split(",")][:2] == ["name_a", "name_b"]:
        writer.writerow(["name_a", "name_b", "score"])
    for a, b, _ in pairs:
        writer.writerow([a, b, f"{name_score(a, b):.4f}"])
    return buf.getvalue()
