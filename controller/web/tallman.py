"""Tall Man lettering: write look-alike drug names so that the letters that differ stand out.

People misread *hydroxyzine* for *hydralazine* when both sit on one list; writing them
``hydrOXYzine`` and ``hydrALAZINE`` breaks the shape the eye expects. Regulators publish the
official forms for known pairs (FDA, ISMP), and those are what people are trained on, so a
known pair always gets its official form. Any other pair of formulary names that looks alike
(a long shared beginning and end) gets the differing middle part in capitals.

Plain Python on purpose: the formulary of one cabinet is a few hundred names at most, and the
rule must behave the same on every cabinet whatever is installed.

A strength written in a name ("Sufentanil 5 µg/ml") is never shouted: upper-cased, "µg"
became "ΜG" (a Greek capital mu, read "MG", a thousand times the dose) and "mUI" (a
thousandth) "MUI" (a million). Names are compared without their strengths
(:func:`~controller.layout.names.split_strength`), which are shown as written.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from controller.layout.names import split_strength, strength_spans

#: Official forms (FDA / ISMP lists) for pairs people are trained to read.
OFFICIAL: dict[str, str] = {
    "hydroxyzine": "hydrOXYzine",
    "hydralazine": "hydrALAZINE",
    "prednisone": "predniSONE",
    "prednisolone": "prednisoLONE",
    "glipizide": "glipiZIDE",
    "glyburide": "glyBURIDE",
    "chlorpromazine": "chlorproMAZINE",
    "chlorpropamide": "chlorproPAMIDE",
    "vinblastine": "vinBLAStine",
    "vincristine": "vinCRIStine",
    "clonazepam": "clonazePAM",
    "clonidine": "cloNIDine",
}

#: A pair is look-alike when its shared start and end cover this share of the longer name...
MIN_SHARED = 0.5
#: ...and they share at least this many first letters (the part the eye reads first).
MIN_PREFIX = 3


def fold(name: str) -> str:
    """Compare without case or accents: "hydroxyzine" and "HYDROXYZINE" are one name."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _common_ends(a: str, b: str) -> tuple[int, int]:
    """Length of the common prefix and of the common suffix, never overlapping."""
    limit = min(len(a), len(b))
    p = 0
    while p < limit and a[p] == b[p]:
        p += 1
    s = 0
    while s < limit - p and a[-1 - s] == b[-1 - s]:
        s += 1
    return p, s


def look_alike(a: str, b: str) -> bool:
    """Names alike once their strengths are set aside: two strengths of one drug are one
    name, and a strength's digits neither make nor hide a look-alike."""
    fa, fb = fold(split_strength(a)[0]), fold(split_strength(b)[0])
    if fa == fb or len(fa) < 4 or len(fb) < 4:
        return False
    p, s = _common_ends(fa, fb)
    return p >= MIN_PREFIX and (p + s) / max(len(fa), len(fb)) >= MIN_SHARED


def tall_man_pair(a: str, b: str) -> tuple[str, str]:
    """The two names with their differing middle part in capitals (the computed form).

    When one middle is empty (*prednisone* is *prednisolone* without "ol") that name has
    nothing to shout, so the shared ending is shouted on both sides instead.
    """
    fa, fb = fold(a), fold(b)
    if len(fa) != len(a) or len(fb) != len(b):  # a folding that changed lengths: leave as is
        return a, b
    p, s = _common_ends(fa, fb)
    if len(a) - p - s == 0 or len(b) - p - s == 0:
        s = 0
    return (_keep_strengths(a, a[:p] + a[p:len(a) - s].upper() + a[len(a) - s:]),
            _keep_strengths(b, b[:p] + b[p:len(b) - s].upper() + b[len(b) - s:]))


def _keep_strengths(name: str, shouted: str) -> str:
    """``shouted`` with the strengths written in ``name`` put back as written: the case of
    a unit is part of what it says (µg, mUI)."""
    out = list(shouted)
    for start, end in strength_spans(name):
        out[start:end] = name[start:end]
    return "".join(out)


def tall_man(names: Iterable[str]) -> dict[str, str]:
    """Display form for each name: official form if it has one and a look-alike is present,
    else the computed one; names with no look-alike in the list stay as they are."""
    unique = sorted(set(names))
    shown = {n: n for n in unique}
    official: set[str] = set()
    for i, a in enumerate(unique):
        for b in unique[i + 1:]:
            if not look_alike(a, b):
                continue
            for name, form in zip((a, b), tall_man_pair(a, b), strict=True):
                known = OFFICIAL.get(fold(name))
                if known is not None and fold(name) == name.casefold():
                    shown[name] = known
                    official.add(name)
                # A name alike to several others keeps the form shouting the most letters.
                elif name not in official and _shouted(form) > _shouted(shown[name]):
                    shown[name] = form
    return shown


def _shouted(form: str) -> int:
    return sum(c.isupper() for c in form)
