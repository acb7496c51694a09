"""Problem and solution formats of ``contracts/layout.md``, validated once at the border.

Everything downstream (search, exact model, thesis protocol) works on dense integer arrays
built here, so that validation errors name the user's field (``drugs[3].pinned.drawer``)
instead of surfacing as an ``IndexError`` deep inside numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from controller.errors import InputError

if TYPE_CHECKING:
    from controller.layout.names import LasaWarning

DRAWER_TYPES = ("matrix", "cubie", "carousel")
#: Most pockets a problem may have. Far above any cabinet (the measured engine handles 1,000
#: drugs); pockets are built one by one, so ten billion of them hung the command.
MAX_POCKETS = 100_000
#: Most drugs a problem may have. Similarity is scored for every pair (a few n x n tables):
#: 1,000 drugs take about 6 s (docs/layout.md), 3,000 took 28 s and 1.6 GB before the
#: solve's time limit even started, and 100,000 asked for 745 GiB. A ward cabinet holds a
#: few hundred.
MAX_DRUGS = 2_000
#: Named pocket/package sizes, for pharmacies that think in S/M/L rather than millimetres.
NAMED_SIZES = {"XS": 0.5, "S": 1.0, "M": 2.0, "L": 3.0, "XL": 4.0}

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


def bad(field_name: str, en: str, fr: str) -> InputError:
    """Build the one error shape the CLI prints: the field first, so people find it fast."""
    return InputError(f"{field_name}: {en}", f"{field_name} : {fr}", field=field_name)


@dataclass(frozen=True)
class Drawer:
    id: str
    type: str
    rows: int
    cols: int
    size: float | None = None

    @property
    def lidded(self) -> bool:
        """Only a cubie pocket opens alone; matrix and carousel drawers expose neighbours."""
        return self.type == "cubie"


@dataclass(frozen=True)
class Pin:
    drawer: str
    row: int
    col: int


@dataclass(frozen=True)
class Drug:
    id: str
    name: str = ""
    strength: str = ""
    form: str = ""
    size: float | None = None
    high_alert: bool = False
    controlled: bool = False
    pinned: Pin | None = None


@dataclass(frozen=True)
class Placement:
    drug: str
    drawer: str
    row: int
    col: int

    def to_dict(self) -> dict[str, Any]:
        return {"drug": self.drug, "drawer": self.drawer, "row": self.row, "col": self.col}


@dataclass
class Problem:
    """A validated problem plus the dense arrays the engines share.

    Pocket ``p`` is ``pockets[p] = (drawer index, row, col)``, drawer by drawer, row-major.
    Drug index ``n`` (one past the last drug) is the *empty* pseudo-drug, compatible with
    everything and allowed everywhere, so that "swap with an empty pocket" is an ordinary swap.
    """

    drawers: list[Drawer]
    drugs: list[Drug]
    similarity: FloatArray
    threshold: float
    current: list[Placement] | None = None
    max_moves: int | None = None
    pockets: list[tuple[int, int, int]] = field(default_factory=list)
    edges: IntArray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    incompatible: npt.NDArray[np.int8] = field(
        default_factory=lambda: np.zeros((1, 1), dtype=np.int8))
    allowed: BoolArray = field(default_factory=lambda: np.zeros((1, 0), dtype=bool))
    home: IntArray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    #: Entries of the problem's ``lasa`` list that match no drug or several different ones
    #: (:func:`controller.layout.names.lasa_matches`): told to the pharmacist, never dropped
    #: in silence. Not part of the solution file, whose fields are the contract's.
    lasa_warnings: list[LasaWarning] = field(default_factory=list)

    @property
    def n_drugs(self) -> int:
        return len(self.drugs)

    @property
    def n_pockets(self) -> int:
        return len(self.pockets)

    def pocket_index(self, drawer: str, row: int, col: int) -> int:
        return self._pocket_of[(drawer, row, col)]

    def pocket_label(self, p: int) -> tuple[str, int, int]:
        k, r, c = self.pockets[p]
        return self.drawers[k].id, r, c

    def __post_init__(self) -> None:
        self._pocket_of: dict[tuple[str, int, int], int] = {}
        self._build()

    def _build(self) -> None:
        pockets: list[tuple[int, int, int]] = []
        edges: list[tuple[int, int]] = []
        for k, d in enumerate(self.drawers):
            base = len(pockets)
            for r in range(d.rows):
                for c in range(d.cols):
                    self._pocket_of[(d.id, r, c)] = len(pockets)
                    pockets.append((k, r, c))
            for r in range(d.rows):
                for c in range(d.cols):
                    p = base + r * d.cols + c
                    if c + 1 < d.cols:
                        edges.append((p, p + 1))
                    if r + 1 < d.rows:
                        edges.append((p, p + d.cols))
                    # A carousel's row is a ring: its last slot comes round next to its first.
                    if d.type == "carousel" and c == d.cols - 1 and d.cols > 2:
                        edges.append((base + r * d.cols, p))
        self.pockets = pockets
        self.edges = np.array(edges, dtype=np.int64).reshape(-1, 2)
        n = self.n_drugs
        inc = np.zeros((n + 1, n + 1), dtype=np.int8)
        # Either cell at the threshold: a matrix is accepted as symmetric to 1e-9, and a pair
        # incompatible one way round only was proposed side by side as "0 conflicts".
        high = np.asarray(self.similarity).reshape(n, n) >= self.threshold
        inc[:n, :n] = high | high.T
        np.fill_diagonal(inc, 0)
        self.incompatible = inc
        self.allowed = self._allowed()
        home = np.full(n + 1, -1, dtype=np.int64)
        if self.current:
            index = {d.id: i for i, d in enumerate(self.drugs)}
            for pl in self.current:
                home[index[pl.drug]] = self.pocket_index(pl.drawer, pl.row, pl.col)
        self.home = home

    def _allowed(self) -> BoolArray:
        n, npk = self.n_drugs, len(self.pockets)
        allowed = np.ones((n + 1, npk), dtype=bool)
        sizes = np.array([self.drawers[k].size if self.drawers[k].size is not None else math.inf
                          for k, _, _ in self.pockets])
        lidded = np.array([self.drawers[k].lidded for k, _, _ in self.pockets])
        for i, d in enumerate(self.drugs):
            if d.size is not None:
                allowed[i] &= sizes >= d.size
            if d.high_alert or d.controlled:
                allowed[i] &= lidded
            if d.pinned is not None:
                p = self.pocket_index(d.pinned.drawer, d.pinned.row, d.pinned.col)
                only = np.zeros(npk, dtype=bool)
                only[p] = allowed[i, p]
                allowed[i] = only
        return allowed


@dataclass
class Solution:
    placements: list[Placement]
    adjacent_conflicts: int
    same_drawer_conflicts: int
    lower_bound: int | None
    seconds: float
    moved: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "placements": [p.to_dict() for p in self.placements],
            "adjacent_conflicts": self.adjacent_conflicts,
            "same_drawer_conflicts": self.same_drawer_conflicts,
            "lower_bound": self.lower_bound,
            "seconds": round(self.seconds, 3),
        }
        if self.moved is not None:
            out["moved"] = self.moved
        return out


# ---------------------------------------------------------------------------------- parsing

#: The fields each object of a problem may have (contract and documented extensions).
FIELDS: dict[str, frozenset[str]] = {
    "problem": frozenset({"cabinet", "drugs", "similarity", "threshold", "current",
                          "max_moves", "lasa"}),
    "cabinet": frozenset({"drawers"}),
    "drawer": frozenset({"id", "type", "rows", "cols", "size"}),
    "drug": frozenset({"id", "name", "strength", "form", "size", "high_alert", "controlled",
                       "pinned"}),
    "pocket": frozenset({"drawer", "row", "col"}),
    "placement": frozenset({"drug", "drawer", "row", "col"}),
    "similarity": frozenset({"matrix", "pairs"}),
}


def _obj(value: Any, name: str, kind: str | None = None) -> Mapping[str, Any]:
    """``value`` as a JSON object; with ``kind``, one naming only the fields of that kind.

    A misspelt field is refused rather than ignored: ``"treshold": 0.25`` left the default
    0.5 in force and ``"highalert": true`` put a high-alert drug in an open drawer, with no
    word to the pharmacist.
    """
    if not isinstance(value, Mapping):
        raise bad(name, "must be a JSON object", "doit être un objet JSON")
    if kind is not None:
        unknown = sorted(str(k) for k in value if k not in FIELDS[kind])
        if unknown:
            known = ", ".join(sorted(FIELDS[kind]))
            raise bad(f"{name}.{unknown[0]}", f"unknown field (known: {known})",
                      f"champ inconnu (champs connus : {known})")
    return value


def _list(value: Any, name: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise bad(name, "must be a JSON list", "doit être une liste JSON")
    return value


def _int(value: Any, name: str, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise bad(name, f"must be an integer ≥ {lo}", f"doit être un entier ≥ {lo}")
    return value


def _str(value: Any, name: str, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise bad(name, "must be a non-empty string", "doit être une chaîne non vide")
    return value


def _num01(value: Any, name: str) -> float:
    # Compared before float(): a 400-digit integer does not fit a float (OverflowError), and
    # NaN fails both comparisons.
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            0 <= value <= 1):
        raise bad(name, "must be a number in [0, 1]", "doit être un nombre dans [0, 1]")
    return float(value)


def _size(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str) and value.upper() in NAMED_SIZES:
        return NAMED_SIZES[value.upper()]
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise bad(name, f"must be a positive number or one of {', '.join(NAMED_SIZES)}",
                  f"doit être un nombre positif ou l'un de {', '.join(NAMED_SIZES)}")
    return float(value)


def _bool(value: Any, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad(name, "must be true or false", "doit valoir true ou false")
    return value


def _pocket_ref(value: Any, name: str, drawers: Mapping[str, Drawer],
                kind: str | None = None) -> tuple[str, int, int]:
    obj = _obj(value, name, "pocket" if kind is None else kind)
    did = _str(obj.get("drawer"), f"{name}.drawer", required=True)
    if did not in drawers:
        raise bad(f"{name}.drawer", f"unknown drawer {did!r}", f"tiroir inconnu {did!r}")
    d = drawers[did]
    row = _int(obj.get("row"), f"{name}.row")
    col = _int(obj.get("col"), f"{name}.col")
    if row >= d.rows:
        raise bad(f"{name}.row", f"row {row} outside drawer {did} ({d.rows} rows)",
                  f"rangée {row} hors du tiroir {did} ({d.rows} rangées)")
    if col >= d.cols:
        raise bad(f"{name}.col", f"col {col} outside drawer {did} ({d.cols} columns)",
                  f"colonne {col} hors du tiroir {did} ({d.cols} colonnes)")
    return did, row, col


def parse_problem(data: Any) -> Problem:
    """Validate a decoded problem file; raise :class:`InputError` naming the first bad field.

    Similarity not given (wholly or for some pairs) is computed from the drugs' names,
    strengths and forms, and from the problem's optional ``lasa`` list.
    """
    root = _obj(data, "problem", "problem")
    cab = _obj(root.get("cabinet"), "cabinet", "cabinet")
    drawers: dict[str, Drawer] = {}
    dlist = _list(cab.get("drawers"), "cabinet.drawers")
    if not dlist:
        raise bad("cabinet.drawers", "needs at least one drawer", "il faut au moins un tiroir")
    n_pockets = 0
    for k, raw in enumerate(dlist):
        name = f"cabinet.drawers[{k}]"
        o = _obj(raw, name, "drawer")
        did = _str(o.get("id"), f"{name}.id", required=True)
        if did in drawers:
            raise bad(f"{name}.id", f"duplicate drawer id {did!r}", f"tiroir {did!r} en double")
        dtype = o.get("type", "matrix")
        if dtype not in DRAWER_TYPES:
            raise bad(f"{name}.type", f"must be one of {', '.join(DRAWER_TYPES)}",
                      f"doit être l'un de {', '.join(DRAWER_TYPES)}")
        drawers[did] = Drawer(did, dtype, _int(o.get("rows"), f"{name}.rows", 1),
                              _int(o.get("cols"), f"{name}.cols", 1),
                              _size(o.get("size"), f"{name}.size"))
        n_pockets += drawers[did].rows * drawers[did].cols
        if n_pockets > MAX_POCKETS:
            raise bad(name, f"the cabinet would have {n_pockets} pockets, more than "
                      f"{MAX_POCKETS}", f"l'armoire aurait {n_pockets} emplacements, plus de "
                      f"{MAX_POCKETS}")

    drugs: list[Drug] = []
    seen: set[str] = set()
    dr_list = _list(root.get("drugs"), "drugs")
    if len(dr_list) > MAX_DRUGS:
        raise bad("drugs", f"{len(dr_list)} drugs, more than {MAX_DRUGS}",
                  f"{len(dr_list)} médicaments, plus de {MAX_DRUGS}")
    if len(dr_list) > n_pockets:
        raise bad("drugs", f"{len(dr_list)} drugs but only {n_pockets} pockets",
                  f"{len(dr_list)} médicaments mais seulement {n_pockets} emplacements")
    pinned_at: dict[tuple[str, int, int], str] = {}
    for i, raw in enumerate(dr_list):
        name = f"drugs[{i}]"
        o = _obj(raw, name, "drug")
        mid = _str(o.get("id"), f"{name}.id", required=True)
        if mid in seen:
            raise bad(f"{name}.id", f"duplicate drug id {mid!r}", f"médicament {mid!r} en double")
        seen.add(mid)
        pin = None
        size = _size(o.get("size"), f"{name}.size")
        if o.get("pinned") is not None:
            did, row, col = _pocket_ref(o["pinned"], f"{name}.pinned", drawers)
            if (did, row, col) in pinned_at:
                raise bad(f"{name}.pinned", f"pocket already pinned to {pinned_at[did, row, col]}",
                          f"emplacement déjà réservé à {pinned_at[did, row, col]}")
            pinned_at[did, row, col] = mid
            dsize = drawers[did].size
            if size is not None and dsize is not None and size > dsize:
                raise bad(f"{name}.pinned", f"pocket {did}/{row}/{col} (size {dsize:g}) is too "
                          f"small for the drug (size {size:g})",
                          f"l'emplacement {did}/{row}/{col} (taille {dsize:g}) est trop petit "
                          f"pour le médicament (taille {size:g})")
            pin = Pin(did, row, col)
        drug = Drug(mid, _str(o.get("name"), f"{name}.name"),
                    _str(o.get("strength"), f"{name}.strength"),
                    _str(o.get("form"), f"{name}.form"), size,
                    _bool(o.get("high_alert"), f"{name}.high_alert"),
                    _bool(o.get("controlled"), f"{name}.controlled"), pin)
        if pin is not None and (drug.high_alert or drug.controlled) \
                and not drawers[pin.drawer].lidded:
            raise bad(f"{name}.pinned", "a high-alert or controlled drug must be in a cubie "
                      "(lidded) pocket", "un médicament à haut risque ou stupéfiant doit être "
                      "dans un casier à couvercle (cubie)")
        drugs.append(drug)

    threshold = 0.5 if root.get("threshold") is None else _num01(root["threshold"], "threshold")
    lasa = _parse_lasa(root.get("lasa"))
    similarity = _parse_similarity(root.get("similarity"), drugs, lasa)

    current: list[Placement] | None = None
    index = {d.id: i for i, d in enumerate(drugs)}
    if root.get("current") is not None:
        current = []
        used: dict[tuple[str, int, int], str] = {}
        placed: set[str] = set()
        for i, raw in enumerate(_list(root["current"], "current")):
            name = f"current[{i}]"
            o = _obj(raw, name, "placement")
            mid = _str(o.get("drug"), f"{name}.drug", required=True)
            if mid not in index:
                raise bad(f"{name}.drug", f"unknown drug {mid!r}", f"médicament inconnu {mid!r}")
            if mid in placed:
                raise bad(f"{name}.drug", f"drug {mid!r} placed twice",
                          f"médicament {mid!r} placé deux fois")
            placed.add(mid)
            ref = _pocket_ref(o, name, drawers, "placement")
            if ref in used:
                raise bad(name, f"pocket already holds {used[ref]}", f"emplacement déjà occupé "
                          f"par {used[ref]}")
            used[ref] = mid
            current.append(Placement(mid, *ref))
    max_moves = None
    if root.get("max_moves") is not None:
        max_moves = _int(root["max_moves"], "max_moves")

    problem = Problem(list(drawers.values()), drugs, similarity, threshold, current, max_moves)
    if lasa:
        from controller.layout.names import lasa_matches

        problem.lasa_warnings = lasa_matches(drugs, lasa).warnings
    for i, d in enumerate(drugs):
        if not problem.allowed[i].any():
            raise bad(f"drugs[{i}]", f"no pocket can take {d.id} (size, lid or pin rule)",
                      f"aucun emplacement ne convient à {d.id} (taille, couvercle ou réservation)")
    return problem


def _parse_lasa(value: Any) -> list[tuple[str, str, float]]:
    if value is None:
        return []
    out = []
    for i, raw in enumerate(_list(value, "lasa")):
        row = _list(raw, f"lasa[{i}]")
        if len(row) not in (2, 3):
            raise bad(f"lasa[{i}]", "must be [name_a, name_b] or [name_a, name_b, score]",
                      "doit être [nom_a, nom_b] ou [nom_a, nom_b, score]")
        score = 1.0 if len(row) == 2 else _num01(row[2], f"lasa[{i}][2]")
        out.append((_str(row[0], f"lasa[{i}][0]", True), _str(row[1], f"lasa[{i}][1]", True),
                    score))
    return out


def _parse_similarity(value: Any, drugs: list[Drug],
                      lasa: list[tuple[str, str, float]]) -> FloatArray:
    n = len(drugs)
    if value is not None:
        obj = _obj(value, "similarity", "similarity")
        if "matrix" in obj and "pairs" in obj:
            # the contract says either; reading one would silently drop the other's scores
            raise bad("similarity", "give 'matrix' or 'pairs', not both",
                      "donnez 'matrix' ou 'pairs', pas les deux")
        if "matrix" in obj:
            rows = _list(obj["matrix"], "similarity.matrix")
            if len(rows) != n:
                raise bad("similarity.matrix", f"has {len(rows)} rows for {n} drugs",
                          f"a {len(rows)} lignes pour {n} médicaments")
            numeric = (int, float)
            for i, row in enumerate(rows):
                cells = _list(row, f"similarity.matrix[{i}]")
                if len(cells) != n:
                    raise bad(f"similarity.matrix[{i}]", f"has {len(cells)} values for {n} drugs",
                              f"a {len(cells)} valeurs pour {n} médicaments")
                # Fast path: a 1,000-drug matrix has a million cells; check types per row and
                # fall back to the cell-by-cell check only to name the bad cell.
                if not all(type(v) in numeric and 0 <= v <= 1 for v in cells):
                    for j, v in enumerate(cells):
                        _num01(v, f"similarity.matrix[{i}][{j}]")
            s = np.array(rows, dtype=float)
            out_of_range = np.argwhere(~((s >= 0.0) & (s <= 1.0)))
            if len(out_of_range):
                i, j = (int(v) for v in out_of_range[0])
                _num01(rows[i][j], f"similarity.matrix[{i}][{j}]")
            bad_ij = np.argwhere(np.abs(s - s.T) > 1e-9)
            if len(bad_ij):
                i, j = (int(x) for x in bad_ij[0])
                raise bad(f"similarity.matrix[{i}][{j}]", "matrix is not symmetric "
                          f"({s[i, j]:g} vs [{j}][{i}] = {s[j, i]:g})",
                          f"la matrice n'est pas symétrique ({s[i, j]:g} contre [{j}][{i}] = "
                          f"{s[j, i]:g})")
            diag = np.flatnonzero(np.diag(s) != 0)
            if len(diag):
                i = int(diag[0])
                raise bad(f"similarity.matrix[{i}][{i}]", "diagonal must be 0",
                          "la diagonale doit être nulle")
            from controller.layout.names import lasa_floor

            # symmetric to 1e-9 is accepted; the engine uses the larger of the two cells
            s = s.reshape(n, n)
            return lasa_floor(np.maximum(s, s.T), drugs, lasa)
        if "pairs" in obj:
            from controller.layout.names import drug_similarity_matrix, lasa_floor

            s = drug_similarity_matrix(drugs, lasa)
            index = {d.id: i for i, d in enumerate(drugs)}
            for k, raw in enumerate(_list(obj["pairs"], "similarity.pairs")):
                name = f"similarity.pairs[{k}]"
                row = _list(raw, name)
                if len(row) != 3:
                    raise bad(name, "must be [drug_a, drug_b, score]",
                              "doit être [médicament_a, médicament_b, score]")
                for m in (0, 1):
                    if not isinstance(row[m], str) or row[m] not in index:
                        raise bad(f"{name}[{m}]", f"unknown drug {row[m]!r}",
                                  f"médicament inconnu {row[m]!r}")
                i, j = index[row[0]], index[row[1]]
                if i == j:
                    raise bad(name, "a drug cannot be paired with itself",
                              "un médicament ne peut pas être apparié à lui-même")
                s[i, j] = s[j, i] = _num01(row[2], f"{name}[2]")
            # a given pair overrides the computed score, never the hospital's LASA list
            return lasa_floor(s, drugs, lasa)
        raise bad("similarity", "needs 'matrix' or 'pairs'", "doit contenir 'matrix' ou 'pairs'")
    from controller.layout.names import drug_similarity_matrix

    return drug_similarity_matrix(drugs, lasa)


# ------------------------------------------------------------------------ counting, moves

def conflicts_of(problem: Problem, where: IntArray) -> tuple[int, int]:
    """(adjacent, same matrix drawer) incompatible pairs; ``where[i]`` = pocket of drug i."""
    n, npk = problem.n_drugs, problem.n_pockets
    x = np.full(npk, n, dtype=np.int64)
    x[where] = np.arange(n)
    inc = problem.incompatible
    e = problem.edges
    adjacent = int(inc[x[e[:, 0]], x[e[:, 1]]].sum()) if len(e) else 0
    same = 0
    drawer_of = np.array([k for k, _, _ in problem.pockets], dtype=np.int64)
    for k, d in enumerate(problem.drawers):
        if d.type != "matrix":
            continue
        ids = x[drawer_of == k]
        ids = ids[ids < n]
        same += int(inc[np.ix_(ids, ids)].sum()) // 2
    return adjacent, same


def placements_to_where(problem: Problem, placements: Sequence[Placement],
                        field_name: str = "placements") -> IntArray:
    index = {d.id: i for i, d in enumerate(problem.drugs)}
    where = np.full(problem.n_drugs, -1, dtype=np.int64)
    used: set[int] = set()
    for k, pl in enumerate(placements):
        if pl.drug not in index:
            raise bad(f"{field_name}[{k}].drug", f"unknown drug {pl.drug!r}",
                      f"médicament inconnu {pl.drug!r}")
        key = (pl.drawer, pl.row, pl.col)
        if key not in problem._pocket_of:
            raise bad(f"{field_name}[{k}]", f"no pocket {pl.drawer}/{pl.row}/{pl.col}",
                      f"pas d'emplacement {pl.drawer}/{pl.row}/{pl.col}")
        p = problem._pocket_of[key]
        if p in used:
            raise bad(f"{field_name}[{k}]", "two drugs in one pocket",
                      "deux médicaments dans un même emplacement")
        used.add(p)
        where[index[pl.drug]] = p
    missing = np.flatnonzero(where < 0)
    if len(missing):
        raise bad(field_name, f"drug {problem.drugs[int(missing[0])].id} is not placed",
                  f"le médicament {problem.drugs[int(missing[0])].id} n'est pas placé")
    return where


def count_conflicts(problem: Problem, placements: Sequence[Placement]) -> tuple[int, int]:
    """Score any layout (e.g. today's) by the contract's two objectives, in order."""
    return conflicts_of(problem, placements_to_where(problem, placements))


def where_to_placements(problem: Problem, where: IntArray) -> list[Placement]:
    out = []
    for i, d in enumerate(problem.drugs):
        did, r, c = problem.pocket_label(int(where[i]))
        out.append(Placement(d.id, did, r, c))
    return out


@dataclass(frozen=True)
class Move:
    """One line of the technician's task list."""

    drug: str
    source: tuple[str, int, int] | None
    target: tuple[str, int, int] | None

    def to_dict(self) -> dict[str, Any]:
        def ref(t: tuple[str, int, int] | None) -> dict[str, Any] | None:
            return None if t is None else {"drawer": t[0], "row": t[1], "col": t[2]}
        return {"drug": self.drug, "from": ref(self.source), "to": ref(self.target)}

    def describe(self, lang: str = "en") -> str:
        def fmt(t: tuple[str, int, int] | None) -> str:
            return "-" if t is None else f"{t[0]}/{t[1] + 1}/{t[2] + 1}"
        if lang == "fr":
            if self.source is None:
                return f"Ranger {self.drug} dans {fmt(self.target)}"
            if self.target is None:
                return f"Retirer {self.drug} de {fmt(self.source)}"
            return f"Sortir {self.drug} de {fmt(self.source)}, le ranger dans {fmt(self.target)}"
        if self.source is None:
            return f"Put {self.drug} into {fmt(self.target)}"
        if self.target is None:
            return f"Take {self.drug} out of {fmt(self.source)}"
        return f"Take {self.drug} out of {fmt(self.source)}, put it into {fmt(self.target)}"


def moves(current: Sequence[Placement], proposed: Sequence[Placement]) -> list[Move]:
    """The technician's task list from today's layout to the proposed one, in a doable order.

    Each step's target pocket is empty when the step is done: a move waits until the drug in
    its target pocket has left. A cycle of swaps (A→B, B→A) cannot be ordered that way, so
    one of its drugs goes to the bench (take out, no target) and comes back last (put in, no
    source). A drug absent from ``proposed`` is taken out; a new drug is put in.
    """
    now = {p.drug: (p.drawer, p.row, p.col) for p in current}
    then = {p.drug: (p.drawer, p.row, p.col) for p in proposed}
    pending = {d: (now.get(d), then.get(d)) for d in sorted(set(now) | set(then))
               if now.get(d) != then.get(d)}
    occupied = {pocket: d for d, pocket in now.items()}
    out: list[Move] = []
    benched: list[Move] = []
    while pending:
        ready = [d for d, (_, b) in pending.items() if b is None or b not in occupied]
        if not ready:
            # Every pending target is still occupied: a cycle. Bench its first drug.
            d = next(iter(pending))
            a, b = pending.pop(d)
            out.append(Move(d, a, None))
            benched.append(Move(d, None, b))
            if a is not None:
                del occupied[a]
            continue
        for d in ready:
            a, b = pending.pop(d)
            out.append(Move(d, a, b))
            if a is not None:
                del occupied[a]
            if b is not None:
                occupied[b] = d
    for m in benched:
        out.append(m)
    return out
