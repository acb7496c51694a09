"""Drug-to-pocket assignment engine (issue 4): keep look-alike/sound-alike drugs apart.

Python API (what the cabinet's store and UI call; all bad input raises
:class:`controller.errors.InputError` naming the field)::

    from controller.layout import parse_problem, solve, count_conflicts, moves

    problem = parse_problem(json.load(fh))          # contracts/layout.md problem format
    solution = solve(problem, time_limit=10, seed=0)
    json.dump(solution.to_dict(), out)              # contracts/layout.md solution format
    count_conflicts(problem, placements)            # (adjacent, same open drawer) of any layout
    moves(current_placements, solution.placements)  # technician's ordered task list

- :func:`parse_problem` validates a decoded problem file. Besides the contract's fields it
  accepts optional extensions: drawer ``size`` and drug ``size`` (number or XS/S/M/L/XL; a
  drug fits a pocket at least its size), drug ``high_alert`` / ``controlled`` (only in
  ``cubie`` pockets), drug ``pinned`` ``{"drawer", "row", "col"}``, ``current`` placements
  (today's layout) with ``max_moves``, and ``lasa`` (``[[name_a, name_b, score?], …]``, the
  hospital's list, a floor on every similarity, computed or given). A missing
  ``threshold`` means 0.5.
- :func:`solve` minimises, in order: adjacent incompatible pairs, incompatible pairs sharing a
  ``matrix`` drawer, drugs moved from ``current``. Tabu search (:mod:`.search`) does the work;
  on small/medium cabinets a CP-SAT model (:mod:`.exact`) proves optimality or a lower bound.
- A ``carousel`` drawer's rows are rings: the last slot of a row neighbours the first.
- :mod:`.names` scores name confusability (calibrated logistic regression over orthographic
  and phonetic measures); :mod:`.thesis` reproduces the thesis's chapter III protocol.
"""

from controller.layout.model import (
    Drawer,
    Drug,
    Move,
    Placement,
    Problem,
    Solution,
    count_conflicts,
    moves,
    parse_problem,
)
from controller.layout.names import name_score
from controller.layout.solver import solve

__all__ = ["Drawer", "Drug", "Move", "Placement", "Problem", "Solution", "count_conflicts",
           "moves", "name_score", "parse_problem", "solve"]
