"""``armoire layout …`` and ``armoire lasa score`` through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import controller.cli
from controller.layout.model import MAX_DRUGS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def armoire(monkeypatch):
    """``controller.cli.main`` with only this area's sub-commands registered (other areas'
    modules live on other branches until they are merged)."""
    monkeypatch.setattr(controller.cli, "SUBCOMMAND_MODULES", ("controller.layout.cli",))
    return controller.cli.main


PROBLEM = {
    "cabinet": {"drawers": [{"id": "D1", "type": "matrix", "rows": 3, "cols": 3},
                            {"id": "D2", "type": "matrix", "rows": 3, "cols": 3}]},
    "drugs": [{"id": "M1", "name": "hydroxyzine", "strength": "25 mg", "form": "tablet"},
              {"id": "M2", "name": "hydralazine"}],
    "similarity": {"matrix": [[0, 0.8], [0.8, 0]]},
    "threshold": 0.25,
}


def write(tmp_path, data, name="problem.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_solve_writes_contract_solution(armoire, tmp_path, capsys):
    out = tmp_path / "solution.json"
    rc = armoire(["layout", "solve", str(write(tmp_path, PROBLEM)), "-o", str(out),
                  "--time-limit", "1", "--seed", "3"])
    assert rc == 0
    sol = json.loads(out.read_text())
    assert sol["adjacent_conflicts"] == 0 and sol["same_drawer_conflicts"] == 0
    assert sol["lower_bound"] == 0 and isinstance(sol["seconds"], float)
    assert {p["drug"] for p in sol["placements"]} == {"M1", "M2"}
    assert "conflits voisins" in capsys.readouterr().out


@pytest.mark.parametrize(("data", "field"), [
    ('{"cabinet": ', "problem"),
    ({**PROBLEM, "drugs": [{"id": f"M{i}"} for i in range(19)]}, "drugs"),
    ({**PROBLEM, "similarity": {"matrix": [[0, 0.8], [0.7, 0]]}}, "similarity.matrix[0][1]"),
    ({**PROBLEM, "similarity": {"matrix": [[0, -1], [-1, 0]]}}, "similarity.matrix[0][1]"),
    ({**PROBLEM, "drugs": [{"id": "M1", "pinned": {"drawer": "D9", "row": 0, "col": 0}},
                           {"id": "M2"}]}, "drugs[0].pinned.drawer"),
    ({**PROBLEM, "cabinet": {"drawers": [{"id": "D1", "rows": 1, "cols": 2, "size": "S"}]},
      "drugs": [{"id": "M1", "size": "L", "pinned": {"drawer": "D1", "row": 0, "col": 1}},
                {"id": "M2"}]}, "drugs[0].pinned"),
])
def test_bad_input_exit_2_names_field_writes_nothing(armoire, tmp_path, capsys, data, field):
    out = tmp_path / "solution.json"
    rc = armoire(["layout", "solve", str(write(tmp_path, data)), "-o", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "[BAD_INPUT]" in err and f" {field}:" in err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "problem.json"]


def test_solve_with_hospital_lasa_csv(armoire, tmp_path):
    problem = {"cabinet": {"drawers": [{"id": "A", "type": "cubie", "rows": 1, "cols": 3}]},
               "drugs": [{"id": "a", "name": "Xatral"}, {"id": "b", "name": "Paracetamol"},
                         {"id": "c", "name": "Zyloric"}], "threshold": 0.5}
    lasa = write(tmp_path, "name_a,name_b,score\nxatral,ZYLORIC,0.9\n", "lasa.csv")
    out = tmp_path / "s.json"
    assert armoire(["layout", "solve", str(write(tmp_path, problem)), "-o", str(out),
                    "--lasa", str(lasa), "--time-limit", "1"]) == 0
    cols = {p["drug"]: p["col"] for p in json.loads(out.read_text())["placements"]}
    assert cols["b"] == 1  # the listed pair is kept apart
    bad = write(tmp_path, "xatral\n", "bad.csv")
    assert armoire(["layout", "solve", str(write(tmp_path, problem)), "-o", str(out) + "2",
                    "--lasa", str(bad)]) == 2
    assert not (tmp_path / "s.json2").exists()


def test_missing_problem_file(armoire, tmp_path, capsys):
    rc = armoire(["layout", "solve", str(tmp_path / "nope.json"), "-o", str(tmp_path / "s")])
    assert rc == 2 and "not found" in capsys.readouterr().err


def test_lasa_score_file_and_stdin(armoire, tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "name_a,name_b\ncelebrex,celexa\n", "pairs.csv")
    assert armoire(["lasa", "score", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "name_a,name_b,score" and lines[1].startswith("celebrex,celexa,0.9")
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("zantac,xanax\n"))
    assert armoire(["lasa", "score"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("zantac,xanax,0.")
    bad = write(tmp_path, "a,b,3\n", "bad.csv")
    assert armoire(["lasa", "score", str(bad)]) == 2
    assert "line 1" in capsys.readouterr().err


def test_thesis_command_prints_both_tables(armoire, capsys):
    assert armoire(["layout", "thesis", "--trials", "1", "--time-limit", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "Table 3.7" in out and "Table 3.8" in out
    assert "17.17" in out and "177.21" in out and "4.96" in out  # the thesis's own figures


def test_subprocess_entry_point(tmp_path):
    out = tmp_path / "s.json"
    code = ("import sys, controller.cli as c; c.SUBCOMMAND_MODULES = ('controller.layout.cli',);"
            " sys.exit(c.main())")
    ok = subprocess.run([sys.executable, "-c", code, "layout", "solve",
                         str(write(tmp_path, PROBLEM)), "-o", str(out), "--time-limit", "1"],
                        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(out.read_text())["adjacent_conflicts"] == 0
    bad = subprocess.run([sys.executable, "-c", code, "layout", "solve",
                          str(write(tmp_path, "[", "bad.json")), "-o", str(tmp_path / "x.json")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bad.returncode == 2 and "problem: malformed JSON" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("output", ["problem.json", "outdir", "missing/s.json"])
def test_solution_path_is_checked_before_solving(armoire, tmp_path, capsys, output):
    problem = write(tmp_path, PROBLEM)
    (tmp_path / "outdir").mkdir()
    rc = armoire(["layout", "solve", str(problem), "-o", str(tmp_path / output)])
    assert rc == 2
    assert "[BAD_OUTPUT]" in capsys.readouterr().err
    assert json.loads(problem.read_text()) == PROBLEM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outdir", "problem.json"]


@pytest.mark.parametrize(("data", "field"), [
    ({**PROBLEM, "threshold": 10 ** 400}, "threshold"),
    ({**PROBLEM, "similarity": {"matrix": [[0, 10 ** 400], [10 ** 400, 0]]}},
     "similarity.matrix[0][1]"),
    ({**PROBLEM, "similarity": {"pairs": [[["M1"], "M2", 0.8]]}}, "similarity.pairs[0][0]"),
    ({**PROBLEM, "similarity": {"pairs": [["M1", {"id": "M2"}, 0.8]]}},
     "similarity.pairs[0][1]"),
    (json.dumps(PROBLEM)[:-1] + ', "threshold": 0.9}', "problem"),
    # Nested deeper than Python's parser recurses: a RecursionError traceback, exit 1.
    ("[" * 100_000 + "]" * 100_000, "problem"),
    ('{"a": ' * 100_000 + "1" + "}" * 100_000, "problem"),
    # Ten billion pockets: the engine built them one by one for ever (no answer, no error).
    ({**PROBLEM, "cabinet": {"drawers": [{"id": "D1", "rows": 100_000, "cols": 100_000}]}},
     "cabinet.drawers[0]"),
    # As many drugs as pockets, but more than the name scoring can hold: 100,000 drugs
    # asked numpy for 745 GiB (a MemoryError traceback, exit 1); 3,000 took 28 s and
    # 1.6 GB before the solve's time limit even started.
    ({**PROBLEM, "cabinet": {"drawers": [{"id": "D1", "rows": 50, "cols": 50}]},
      "drugs": [{"id": f"X{i}"} for i in range(MAX_DRUGS + 1)]}, "drugs"),
])
def test_values_python_cannot_take_are_refused_not_crashed_on(armoire, tmp_path, capsys,
                                                              data, field):
    out = tmp_path / "solution.json"
    assert armoire(["layout", "solve", str(write(tmp_path, data)), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[BAD_INPUT]" in err and f" {field}:" in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["--seed", "-1"], ["--seed", str(2 ** 32)], ["--seed", "1.5"],
    ["--time-limit", "inf"], ["--time-limit", "1e9"], ["--time-limit", "nan"],
])
def test_seed_and_time_limit_are_bounded(armoire, tmp_path, capsys, argv):
    out = tmp_path / "solution.json"
    with pytest.raises(SystemExit) as exc:
        armoire(["layout", "solve", str(write(tmp_path, PROBLEM)), "-o", str(out), *argv])
    assert exc.value.code == 2 and argv[0] in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as exc:
        armoire(["layout", "thesis", "--trials", "1", *argv])
    assert exc.value.code == 2


def test_lasa_score_reads_a_file_saved_with_a_bom(armoire, tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_bytes("name_a,name_b\nаспирин,аспирин\n".encode("utf-8-sig"))
    assert armoire(["lasa", "score", str(pairs)]) == 0
    assert capsys.readouterr().out == "name_a,name_b,score\nаспирин,аспирин,1.0000\n"


@pytest.mark.parametrize("similarity", [
    {"matrix": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]},
    {"pairs": [["a", "c", 0.1]]}])
def test_hospital_lasa_list_is_kept_apart_whatever_the_similarity_given(armoire, tmp_path,
                                                                        similarity):
    # --lasa used to be silently ignored when the problem carried a similarity matrix, and
    # overridden by an explicit pair: the listed pair could end up side by side. The list is
    # a floor: a listed pair is at least as similar as the list says.
    problem = {"cabinet": {"drawers": [{"id": "A", "type": "cubie", "rows": 1, "cols": 3}]},
               "drugs": [{"id": "a", "name": "Xatral"}, {"id": "b", "name": "Paracetamol"},
                         {"id": "c", "name": "Zyloric"}], "threshold": 0.5,
               "similarity": similarity}
    lasa = write(tmp_path, "name_a,name_b\nxatral,ZYLORIC\n", "lasa.csv")
    for seed in range(4):
        out = tmp_path / f"s{seed}.json"
        assert armoire(["layout", "solve", str(write(tmp_path, problem)), "-o", str(out),
                        "--lasa", str(lasa), "--time-limit", "0.3",
                        "--seed", str(seed)]) == 0
        solution = json.loads(out.read_text())
        cols = {p["drug"]: p["col"] for p in solution["placements"]}
        assert cols["b"] == 1 and solution["adjacent_conflicts"] == 0


def test_problem_and_lasa_list_cannot_both_come_from_stdin(armoire, tmp_path, capsys,
                                                           monkeypatch):
    # The problem read all of standard input, so the LASA list read from it was empty and
    # silently dropped: the solve went on as if the hospital had listed no pair.
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(PROBLEM)))
    out = tmp_path / "solution.json"
    assert armoire(["layout", "solve", "-", "-o", str(out), "--lasa", "-"]) == 2
    err = capsys.readouterr().err
    assert "[BAD_INPUT]" in err and "--lasa" in err
    assert not out.exists()
