"""The hospital's LASA list matched to formulary drugs: robust to how a formulary writes a
name (case, accents, strength, form, salt), never stretched to a different drug, and every
entry that finds no drug, or several different ones, reported instead of dropped."""

from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import PINS, SPEC, START, config

import controller.cli
from controller import config as configuration
from controller import relayout
from controller.errors import ConfigError, StateError
from controller.layout import parse_problem, solve
from controller.layout.model import Drug
from controller.layout.names import (
    lasa_floor,
    lasa_matches,
    lasa_name,
    name_score,
    parse_strength,
    strengths_agree,
)
from sim.harness import SimCabinet


def floor(names, lasa):
    """The LASA floor between drugs named ``names`` (similarity otherwise 0)."""
    drugs = [Drug(str(i), n) for i, n in enumerate(names)]
    return lasa_floor(np.zeros((len(drugs), len(drugs))), drugs, lasa)


@pytest.mark.parametrize("written", [
    "hydroxyzine chlorhydrate",
    "HYDROXYZINE 25 mg cp",
    "Hydroxyzine (chlorhydrate d')",
    "Chlorhydrate d'hydroxyzine 25 mg, comprimé pelliculé sécable",
    "hydroxyzine hydrochloride 25 mg tablets",
    "Hydroxyzine HCl 2 mg/ml sirop",
])
def test_a_listed_name_reaches_the_formulary_however_the_formulary_writes_it(written):
    sim = floor([written, "Hydralazine (chlorhydrate d') 25 mg cp", "Paracétamol 500 mg"],
                [("hydroxyzine", "hydralazine", 0.9)])
    assert sim[0, 1] == sim[1, 0] == pytest.approx(0.9)
    assert sim[0, 2] == sim[1, 2] == 0.0


@pytest.mark.parametrize(("listed", "written"), [
    ("Héparine", "HEPARINE SODIQUE 5 000 UI/ml inj"),
    ("heparine", "Héparine calcique"),
    ("NAPROXÈNE", "naproxène sodique 550 mg cp"),
    ("amlodipine", "Amlodipine (bésilate d') 5 mg gélule"),
    ("amlodipine", "amlodipine besylate 10 mg capsule"),
    ("Morphine", "Morphine (sulfate de) LP 10 mg"),
    ("maléate d'énalapril", "Enalapril 20 mg"),
    ("metoprolol tartrate", "Métoprolol (tartrate de) 100 mg"),
    ("Potassium losartan", "losartan potassique 50 mg"),
    ("Cyprotérone acétate", "ACETATE DE CYPROTERONE 50MG CP"),
    ("hydroxyzine chlorhydrate", "Dichlorhydrate d'hydroxyzine 25 mg"),
    ("Alendronate monosodique", "alendronate disodium 70 mg"),
])
def test_salt_ester_and_accents_are_set_aside_in_french_and_english(listed, written):
    sim = floor([written, "Zyloric 100 mg"], [(listed, "zyloric", 1.0)])
    assert sim[0, 1] == 1.0


def test_a_salt_that_is_the_active_ingredient_is_kept():
    names = ["Chlorure de sodium 0,9 % sol inj", "Chlorure de potassium 10 % amp",
             "Bicarbonate de sodium 8,4 %", "Naproxène sodique 550 mg", "sodium chloride 0.9%",
             "potassium chloride 20 mmol"]
    def kept_apart(sim):
        return {(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(sim)), strict=True)}

    # Only the two chlorides, however written: neither the bicarbonate nor a sodium salt of
    # another drug.
    both = {(0, 1), (0, 5), (1, 4), (4, 5)}
    assert kept_apart(floor(names, [("chlorure de sodium", "chlorure de potassium", 1.0)])
                      ) == both
    assert kept_apart(floor(names, [("sodium chloride", "potassium chloride", 1.0)])) == both
    assert kept_apart(floor(names, [("bicarbonate de sodium", "chlorure de sodium", 1.0)])
                      ) == {(0, 2), (2, 4)}


def test_rapid_insulin_is_not_slow_insulin():
    names = ["Insuline rapide 100 UI/ml", "Insuline lente 100 UI/ml", "Héparine 5000 UI/ml"]
    sim = floor(names, [("insuline rapide", "héparine", 1.0)])
    assert sim[0, 2] == 1.0
    assert sim[1, 2] == 0.0 and sim[0, 1] == 0.0
    result = lasa_matches([Drug(str(i), n) for i, n in enumerate(names)],
                          [("insuline rapide", "héparine", 1.0)])
    assert result.warnings == []


def test_names_that_differ_only_by_salt_or_strength_are_matched_on_it():
    # The whole point of such an entry is the salt or the strength: setting it aside would
    # make the entry name one drug twice.
    drugs = [Drug("ms", "Morphine (sulfate de) 10 mg"), Drug("mc", "Morphine chlorhydrate",
                                                             "10 mg/ml"),
             Drug("h5", "Héparine sodique", "5 000 UI/ml"),
             Drug("h25", "Héparine sodique", "25000 UI/ml")]
    lasa = [("morphine sulfate", "chlorhydrate de morphine", 1.0),
            ("héparine 5000 UI/ml", "HEPARINE 25 000 UI/ML", 1.0)]
    sim = lasa_floor(np.zeros((4, 4)), drugs, lasa)
    assert sim[0, 1] == 1.0 and sim[2, 3] == 1.0
    assert sim[0, 2] == sim[1, 3] == 0.0
    assert lasa_matches(drugs, lasa).warnings == []


def test_two_pockets_of_one_drug_are_never_forced_apart():
    # The re-layout gives a drug in two pockets two ids with the same description.
    drugs = [Drug("h", "Hydroxyzine", "25 mg"), Drug("h#2", "Hydroxyzine", "25 mg"),
             Drug("s", "Hydroxyzine", "2 mg/ml", "sirop")]
    lasa = [("hydroxyzine cp", "hydroxyzine sirop", 1.0)]
    sim = lasa_floor(np.zeros((3, 3)), drugs, lasa)
    assert sim[0, 1] == 0.0
    assert sim[0, 2] == sim[1, 2] == 1.0
    # Forms are not compared: the entry names one drug twice, and says so.
    assert [(w.code, w.drugs) for w in lasa_matches(drugs, lasa).warnings] == [
        ("LASA_SAME_DRUG", ("h", "h#2", "s"))]


def test_an_entry_that_matches_no_drug_is_reported():
    drugs = [Drug("1", "Hydroxyzine 25 mg"), Drug("2", "Hydralazine 25 mg")]
    result = lasa_matches(drugs, [("hydroxyzine", "hydralazine", 1.0),
                                  ("Célébrex", "Célexa", 0.8)])
    assert [(w.code, w.entry, w.name) for w in result.warnings] == [
        ("LASA_UNMATCHED", 1, "Célébrex"), ("LASA_UNMATCHED", 1, "Célexa")]
    text = result.warnings[0].message("en"), result.warnings[0].message("fr")
    assert "Célébrex" in text[0] and "no drug" in text[0]
    assert "Célébrex" in text[1] and "aucun médicament" in text[1]
    # Both names' warnings show the entry as the list has it.
    assert all("“Célébrex” ↔ “Célexa”" in w.message("en") for w in result.warnings)


def test_an_entry_that_matches_several_different_drugs_is_reported_and_still_applied():
    drugs = [Drug("r", "Insuline rapide 100 UI/ml"), Drug("l", "Insuline lente 100 UI/ml"),
             Drug("hep", "Héparine"), Drug("h25", "Hydroxyzine 25 mg"),
             Drug("h50", "HYDROXYZINE chlorhydrate 50 mg")]
    lasa = [("insuline", "héparine", 1.0), ("hydroxyzine", "héparine", 0.7)]
    result = lasa_matches(drugs, lasa)
    assert [(w.code, w.entry, w.name, w.drugs) for w in result.warnings] == [
        ("LASA_AMBIGUOUS", 0, "insuline", ("l", "r"))]
    assert "l" in result.warnings[0].message("en") and "r" in result.warnings[0].message("fr")
    # Kept apart from both rather than from neither: the pharmacist is told, no pair is lost.
    sim = lasa_floor(np.zeros((5, 5)), drugs, lasa)
    assert sim[0, 2] == sim[1, 2] == 1.0 and sim[0, 1] == 0.0
    # Two strengths of one drug are one drug, not an ambiguity.
    assert sim[3, 2] == sim[4, 2] == pytest.approx(0.7)


def test_a_name_reaches_its_variants_and_says_nothing_when_one_is_exactly_it():
    # "tramadol" on the list means the LP form too: left out, it could sit by "trazodone".
    drugs = [Drug("t", "Tramadol 50 mg gélule"), Drug("tlp", "Tramadol LP 100 mg cp"),
             Drug("z", "Trazodone"), Drug("tp", "Tramadol paracétamol 37,5 mg/325 mg")]
    lasa = [("tramadol", "trazodone", 1.0)]
    assert lasa_matches(drugs, lasa).warnings == []
    sim = lasa_floor(np.zeros((4, 4)), drugs, lasa)
    assert sim[0, 2] == sim[1, 2] == sim[3, 2] == 1.0
    # Without the plain drug, the name does not say which of its variants it means.
    result = lasa_matches(drugs[1:], lasa)
    assert [(w.code, w.drugs) for w in result.warnings] == [("LASA_AMBIGUOUS", ("tlp", "tp"))]


def test_the_problem_carries_the_warnings():
    problem = parse_problem({
        "cabinet": {"drawers": [{"id": "A", "rows": 1, "cols": 3}]},
        "drugs": [{"id": "a", "name": "Xatral"}, {"id": "b", "name": "Zyloric"}],
        "lasa": [["Xatral", "Zyloric"], ["Xanax", "Zantac"]]})
    assert [(w.code, w.name) for w in problem.lasa_warnings] == [
        ("LASA_UNMATCHED", "Xanax"), ("LASA_UNMATCHED", "Zantac")]


# A ward's drugs as its formulary writes them, a LASA list as the hospital writes it; the
# pharmacy's similarity says nothing (all 0), so only the list can keep the pairs apart.
WARD = {
    "cabinet": {"drawers": [{"id": "A", "type": "cubie", "rows": 1, "cols": 3}]},
    "drugs": [{"id": "hy", "name": "Hydroxyzine (chlorhydrate d') 25 mg cp"},
              {"id": "pa", "name": "Paracétamol 500 mg"},
              {"id": "ha", "name": "HYDRALAZINE chlorhydrate", "strength": "25 mg"}],
    "similarity": {"matrix": [[0, 0, 0], [0, 0, 0], [0, 0, 0]]},
    "lasa": [["hydroxyzine", "hydralazine"]],
    "threshold": 0.5,
}


@pytest.mark.parametrize("seed", range(4))
def test_regression_the_engine_separates_a_listed_pair_written_differently(seed):
    # Matched exactly, "hydroxyzine" never reached "Hydroxyzine (chlorhydrate d') 25 mg cp":
    # the floor was lost and the two could be placed side by side with "0 conflicts".
    problem = parse_problem(json.loads(json.dumps(WARD)))
    assert problem.incompatible[0, 2] == 1
    solution = solve(problem, time_limit=0.3, seed=seed)
    cols = {p.drug: p.col for p in solution.placements}
    assert cols["pa"] == 1 and solution.adjacent_conflicts == 0


@pytest.fixture
def armoire(monkeypatch):
    monkeypatch.setattr(controller.cli, "SUBCOMMAND_MODULES", ("controller.layout.cli",))
    return controller.cli.main


def test_cli_warns_of_unmatched_entries_and_keeps_the_contract(armoire, tmp_path, capsys):
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(WARD), encoding="utf-8")
    lasa = tmp_path / "lasa.csv"
    lasa.write_text("name_a,name_b\nHydroxyzine,Hydralazine\nCelebrex,Celexa\n",
                    encoding="utf-8")
    out = tmp_path / "solution.json"
    assert armoire(["layout", "solve", str(problem), "-o", str(out), "--lasa", str(lasa),
                    "--time-limit", "0.3"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "LASA_" in line]
    assert len(lines) == 2 and all(line.startswith("armoire: [LASA_UNMATCHED]")
                                   for line in lines)
    assert "Celebrex" in lines[0] and "Celexa" in lines[1]
    assert "warning" in lines[0] and "avertissement" in lines[0]
    # The solution file is the contract's, nothing added; stdout's summary line unchanged.
    solution = json.loads(out.read_text())
    assert set(solution) == {"placements", "adjacent_conflicts", "same_drawer_conflicts",
                             "lower_bound", "seconds"}
    assert {p["drug"]: p["col"] for p in solution["placements"]}["pa"] == 1
    assert "LASA" not in captured.out and "conflits voisins" in captured.out


def test_cli_says_nothing_more_when_every_entry_matches(armoire, tmp_path, capsys):
    problem = tmp_path / "problem.json"
    problem.write_text(json.dumps(WARD), encoding="utf-8")
    out = tmp_path / "solution.json"
    assert armoire(["layout", "solve", str(problem), "-o", str(out),
                    "--time-limit", "0.3"]) == 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("listed", "written"), [("Co-Aprovel", "COAPROVEL 150 mg/12,5 mg cp"),
                                                 ("coaprovel", "Co Aprovel")])
def test_a_hyphen_or_a_space_inside_a_name_is_no_obstacle(listed, written):
    # Exact matching joined the words ("co-aprovel" == "coaprovel"); splitting names into
    # words must not lose that.
    sim = floor([written, "Zyloric"], [(listed, "zyloric", 1.0)])
    assert sim[0, 1] == 1.0


# ------------------------------------------------------------------ the cabinet's own list

CABINET_TOML = """[cabinet]
name = "Ward"
[[cabinet.drawers]]
id = "A"
type = "matrix"
rows = 2
cols = 2
[layout]
lasa = "lists/lasa.csv"
"""


def test_the_configuration_reads_the_hospital_list_beside_it(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "lasa.csv").write_text(
        "\ufeffname_a,name_b,score\nHydroxyzine (chlorhydrate d'),Hydralazine\nXanax,Zantac,0.7\n",
        encoding="utf-8")
    (tmp_path / "cabinet.toml").write_text(CABINET_TOML, encoding="utf-8")
    loaded = configuration.load(tmp_path / "cabinet.toml", sim=True)
    assert loaded.lasa == (("Hydroxyzine (chlorhydrate d')", "Hydralazine", 1.0),
                           ("Xanax", "Zantac", 0.7))
    assert config().lasa == ()


@pytest.mark.parametrize(("contents", "said"), [
    (None, "not found"),
    ("hydroxyzine\n", "line 1"),
    ("a,b,2\n", "line 1"),
])
def test_a_list_the_cabinet_cannot_read_stops_it_at_start(tmp_path, contents, said):
    # A list that is missing or wrong would otherwise leave every pair of it unprotected.
    if contents is not None:
        (tmp_path / "lists").mkdir()
        (tmp_path / "lists" / "lasa.csv").write_text(contents, encoding="utf-8")
    (tmp_path / "cabinet.toml").write_text(CABINET_TOML, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^layout\.lasa: .*{said}") as caught:
        configuration.load(tmp_path / "cabinet.toml", sim=True)
    assert caught.value.code == "BAD_CONFIG" and "layout.lasa :" in caught.value.message_fr
    with pytest.raises(ConfigError, match=r"^layout\.lasa: expected a file name"):
        config(layout={"lasa": 3})
    with pytest.raises(ConfigError, match=r"layout\.lasa_list: unknown key"):
        config(layout={"lasa_list": "x.csv"})


def test_the_cabinet_proposal_keeps_its_list_and_reports_what_it_misses(tmp_path):
    lasa = tmp_path / "lasa.csv"
    lasa.write_text("HYDROXYZINE chlorhydrate 25 mg cp,Paracétamol\nCélébrex,Célexa,0.8\n",
                    encoding="utf-8")

    async def go():
        sim = SimCabinet(config(layout={"lasa": str(lasa)}), tmp_path / "c.db", start=START)
        cab = await sim.boot(SPEC)
        problem_dict = relayout.build_problem(cab)
        assert problem_dict["lasa"] == [["HYDROXYZINE chlorhydrate 25 mg cp", "Paracétamol", 1.0],
                                        ["Célébrex", "Célexa", 0.8]]
        problem = parse_problem(problem_dict)
        ids = [d.id for d in problem.drugs]
        assert problem.similarity[ids.index("HYDROX25"), ids.index("PARA500")] == 1.0
        assert [(w.code, w.name) for w in relayout.lasa_warnings(cab)] == [
            ("LASA_UNMATCHED", "Célébrex"), ("LASA_UNMATCHED", "Célexa")]
        # Without a list: the problem is as before, and nothing to report.
        bare = SimCabinet(config(), tmp_path / "d.db", start=START)
        bare_cab = await bare.boot(SPEC)
        assert "lasa" not in relayout.build_problem(bare_cab)
        assert relayout.lasa_warnings(bare_cab) == []

    asyncio.run(go())


def test_a_proposal_made_under_another_list_is_not_approved(tmp_path):
    # The list is read at start: after a restart with a changed list, a proposal computed
    # under the old one may put a newly listed pair side by side.
    first = tmp_path / "lasa.csv"
    first.write_text("hydroxyzine,paracetamol\n", encoding="utf-8")

    async def go():
        sim = SimCabinet(config(layout={"lasa": str(first)}), tmp_path / "c.db", start=START)
        cab = await sim.boot(SPEC)
        await sim.run(cab.login("ph1", PINS["ph1"]))
        proposal = relayout.propose(cab, time_limit=0.5)
        cab.config = replace(cab.config, lasa=(("hydroxyzine", "morphine", 1.0),))
        with pytest.raises(StateError) as caught:
            relayout.approve(cab, proposal["id"])
        assert caught.value.code == "PROPOSAL_STALE"
        cab.config = replace(cab.config, lasa=(("hydroxyzine", "paracetamol", 1.0),))
        assert relayout.approve(cab, proposal["id"]) is not None

    asyncio.run(go())


def test_a_one_letter_name_is_not_taken_for_an_elided_article():
    # "d'" and "l'" are articles only before an apostrophe: vitamin D is not vitamin K.
    names = ["Vitamine B12 1 mg", "Vitamine K 10 mg", "L-Thyroxine 50 µg", "Zyloric"]
    lasa = [("vitamine D", "zyloric", 1.0), ("l'thyroxine", "zyloric", 0.9)]
    sim = floor(names, lasa)
    assert sim[0, 3] == sim[1, 3] == 0.0
    assert sim[2, 3] == pytest.approx(0.9)
    result = lasa_matches([Drug(str(i), n) for i, n in enumerate(names)], lasa)
    assert [(w.code, w.name) for w in result.warnings] == [("LASA_UNMATCHED", "vitamine D")]


@pytest.mark.parametrize(("listed", "other", "written"), [
    ("hydroxyde d'aluminium", "phosphate d'aluminium", "Phosphate d'aluminium 11 g sachet"),
    ("oxyde de zinc", "oxyde de titane", "Oxyde de titane pommade"),
    ("fluorure de sodium", "fluorure de calcium", "Fluorure de calcium"),
])
def test_mineral_salts_named_by_their_salts_stay_apart(listed, other, written):
    sim = floor([written, "Zyloric"], [(listed, "zyloric", 1.0)])
    assert sim[0, 1] == 0.0
    assert floor([written, "Zyloric"], [(other, "zyloric", 1.0)])[0, 1] == 1.0


# ------------------------------------------------- cases found in the public labelled pairs

def test_long_acting_la_is_not_the_french_article():
    # INDERAL / INDERAL LA is a labelled confusable pair: "la" is no linking word here.
    sim = floor(["Inderal 40 mg", "Inderal LA 80 mg", "Zyloric"],
                [("Inderal LA", "zyloric", 1.0)])
    assert sim[1, 2] == 1.0 and sim[0, 2] == 0.0


def test_salt_words_mean_the_same_in_french_and_english_and_in_the_plural():
    names = ["Sodium chloride 0.9%", "Phosphate de sodium 3 mmol/ml", "Potassium phosphates",
             "Hydroxyzine hydrochloride 25 mg", "Zyloric"]
    sim = floor(names, [("chlorure de sodium", "zyloric", 1.0),
                        ("sodium phosphates", "potassium phosphate", 0.9),
                        ("chlorhydrate d'hydroxyzine", "zyloric", 0.8)])
    assert sim[0, 4] == 1.0 and sim[1, 2] == pytest.approx(0.9)
    assert sim[3, 4] == pytest.approx(0.8)
    assert sim[1, 4] == sim[2, 4] == sim[0, 1] == 0.0


def test_a_name_with_a_salt_does_not_reach_the_drug_with_another_salt():
    # Penicillin G potassium and penicillin G procaine (or benzathine) are a known, deadly
    # confusion; morphine sulfate is not morphine hydrochloride. A drug whose name gives no
    # salt may be either, and is reached.
    names = ["Penicillin G potassium 5 MIU", "Penicillin G procaine 600 000 UI",
             "Benzylpenicillin benzathine", "Morphine chlorhydrate 10 mg/ml",
             "Morphine 10 mg", "Zyloric"]
    sim = floor(names, [("penicillin G potassium", "zyloric", 1.0),
                        ("morphine sulfate", "zyloric", 0.9),
                        ("penicillin G potassium", "penicillin G procaine", 0.8)])
    assert sim[0, 5] == 1.0 and sim[1, 5] == 0.0
    assert sim[4, 5] == pytest.approx(0.9) and sim[3, 5] == 0.0
    assert sim[0, 1] == pytest.approx(0.8)
    # Water and free base say nothing of the salt: no conflict with one.
    assert floor(["Amoxicilline trihydratée", "Amoxicilline sodique", "Zyloric"],
                 [("amoxicilline trihydrate", "zyloric", 1.0)])[1, 2] == 1.0


PAIRS = Path(__file__).resolve().parents[2] / "shared" / "data" / "drug_name_pairs_labelled.csv"


@pytest.mark.skipif(not PAIRS.exists(), reason="shared data folder not present")
def test_over_the_public_labelled_names_a_name_reaches_only_its_own_variants():
    # ../shared/data (SOURCES.md): 596 US drug names of 1,676 labelled pairs, as a formulary.
    with PAIRS.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["name_a"] for r in rows} | {r["name_b"] for r in rows})
    # One entry per name, each paired with a drug of its own ("Q0042Q") to tell them apart.
    tags = [f"Q{k:04d}Q" for k in range(len(names))]
    drugs = [Drug(n, n) for n in names] + [Drug(t, t) for t in tags]
    result = lasa_matches(drugs, list(zip(names, tags, [1.0] * len(names), strict=True)))
    assert result.warnings == []
    found: dict[str, set[str]] = {}
    for i, j, _ in result.pairs:
        found.setdefault(names[j - len(names)], set()).add(names[i])
    assert all(name in found[name] for name in names)
    others = {name: hit - {name} for name, hit in found.items() if hit - {name}}
    # Beyond its own drug, a name reaches only these: variants of it (SR, U, G: more words)
    # or the same letters split ("E VISTA"). Not INDERAL LA from INDERAL, not sodium from
    # potassium phosphates, not penicillin G procaine from penicillin G potassium.
    assert others == {
        "CARDENE": {"CARDENE@SR"}, "CARDIZEM": {"CARDIZEM@SR"}, "CYTOSAR": {"CYTOSAR@U"},
        "E@VISTA": {"EVISTA"}, "EVISTA": {"E@VISTA"}, "MEDI@GESIC": {"MEDIGESIC"},
        "MEDIGESIC": {"MEDI@GESIC"}, "OCU@MYCIN": {"OCUMYCIN"}, "OCUMYCIN": {"OCU@MYCIN"},
        "PENICILLIN": {"PENICILLIN@G@POTASSIUM", "PENICILLIN@G@PROCAINE"},
        "INDERAL": {"INDERAL@LA"},
    }


# ------------------------------------------------------ strengths written in other units

def matched(formulary, entry):
    """The ids of ``formulary`` (id -> name) that the list's ``entry`` keeps from Zyloric,
    and the entry's warnings."""
    drugs = [Drug(k, n) for k, n in formulary.items()] + [Drug("zyl", "Zyloric")]
    result = lasa_matches(drugs, [(entry, "zyloric", 1.0)])
    ids = {drugs[i].id for i, j, _ in result.pairs if drugs[j].id == "zyl"}
    return ids, [(w.code, w.name) for w in result.warnings]


@pytest.mark.parametrize(("listed", "same", "other"), [
    # mass: g, mg, µg written µg, μg, mcg or in words; decimal comma or point
    ("Amoxicilline 0,5 g", "AMOXICILLINE 500 mg gélule", "Amoxicilline 1 g cp"),
    ("Amoxicilline 0.5 g", "Amoxicilline 500mg", "Amoxicilline 50 mg"),
    ("Lévothyroxine 1000 µg", "Lévothyroxine sodique 1 mg", "Lévothyroxine 100 µg"),
    ("levothyroxine 1000 mcg", "LEVOTHYROXINE 1 MG CP", "Levothyroxine 10 mg"),
    ("Digoxine 0,25 mg", "Digoxine 250 microgrammes", "Digoxine 0,125 mg"),
    ("Digoxine 250 μg", "DIGOXINE 0.25MG", "Digoxine 25 µg"),
    # volume
    ("Enoxaparine 0,4 ml", "Enoxaparine sodique 400 µl", "Enoxaparine 0,6 ml"),
    ("Salbutamol 2,5 ml", "Salbutamol 2500 microlitres", "Salbutamol 5 ml"),
    # international units: UI, IU, U, U.I., unités, thousands spaces, MUI
    ("Héparine 5 000 UI", "Héparine sodique 5000 IU", "Héparine sodique 50 000 UI"),
    ("heparine 5000 IU", "HEPARINE 5 000 U.I.", "Héparine 500 UI"),
    ("Héparine 5\u202f000 U.I.", "Héparine 5000 unités", "Héparine 25 000 UI"),
    ("Pénicilline G 1 MUI", "Pénicilline G sodique 1 000 000 UI", "Pénicilline G 5 MUI"),
    # mmol
    ("Chlorure de potassium 13,4 mmol", "chlorure de potassium 13.4 mmol",
     "Chlorure de potassium 20 mmol"),
    # concentrations as a ratio: 1 g in 10 ml is 100 mg/ml
    ("Chlorure de potassium 1 g/10 ml", "Chlorure de potassium 100 mg/ml",
     "Chlorure de potassium 200 mg/ml"),
    ("Paracétamol 10 mg/ml", "Paracétamol 1 g/100 ml perfusion", "Paracétamol 500 mg/100 ml"),
    ("Héparine 5 000 UI/ml", "Héparine calcique 25 000 UI/5 ml",
     "Héparine calcique 25 000 UI/ml"),
    ("Morphine 1 mg/ml", "Morphine chlorhydrate 1000 µg/ml", "Morphine 10 mg/ml"),
    ("Insuline rapide 100 UI/ml", "Insuline rapide 100 U/mL", "Insuline rapide 200 UI/ml"),
    ("Potassium chloride 2 mmol/ml", "Chlorure de potassium 20 mmol/10 ml",
     "Chlorure de potassium 1 mmol/ml"),
    # percent
    ("Chlorure de sodium 0,9 %", "Sodium chloride 0.90%", "Chlorure de sodium 9 %"),
    # combinations, ingredient by ingredient
    ("Amoxicilline acide clavulanique 1 g/125 mg", "Amoxicilline acide clavulanique 1000 mg/125 mg",
     "Amoxicilline acide clavulanique 500 mg/62,5 mg"),
    ("Co-Aprovel 150/12,5 mg", "COAPROVEL 150 mg/12,5 mg cp", "Co-Aprovel 300 mg/12,5 mg"),
    ("Augmentin 400 mg/57 mg/5 ml", "Augmentin 80 mg/11,4 mg/ml", "Augmentin 100 mg/12,5 mg/ml"),
    # a space inside a mega-unit: 5 M UI is five million units, not "5" then "M UI" words
    ("Pénicilline G 5 M UI", "Pénicilline G 5 000 000 UI", "Pénicilline G 1 M UI"),
    ("Pénicilline G 5 M IU", "Pénicilline G sodique 5 MUI", "Pénicilline G 5 mUI"),
    ("pénicilline G 5 000 000 UI", "Pénicilline G 5 MIU", "Pénicilline G 5 UI"),
    # percent in words, French and English
    ("Glucose 5 pour cent", "Glucose 5 %", "Glucose 10 pour cent"),
    ("Glucose 5 percent", "GLUCOSE 5%", "Glucose 5 mg"),
    ("Glucose 5 per cent", "Glucose 5 pour cent", "Glucose 0,5 %"),
    # a percent that says w/v is so many grams per 100 ml; w/w, grams per 100 g
    ("Glucose 5 % m/v", "Glucose 50 mg/ml", "Glucose 5 % m/m"),
    ("Glucose 5 percent w/v", "Glucose 5 g/100 ml", "Glucose 5 mg/ml"),
    # a concentration per mass: 2 g in 100 g is 20 mg/g, not two ingredients of 2 g and 100 g
    ("Fucidine 2 g/100 g", "Fucidine 20 mg/g", "Fucidine 2 mg/g"),
    ("Fucidine 2 % m/m", "Fucidine 2 g/100 g crème", "Fucidine 2 % m/v"),
    # combination products: two strengths, not milligrams per unit
    ("Calcium 500 mg + vitamine D3 400 UI", "Calcium vitamine D3 500 mg/400 UI",
     "Calcium 1000 mg + vitamine D3 880 UI"),
    ("Calcium/Vitamine D3 1000 mg/880 UI", "calcium 1 g + vitamine D3 880 U.I.",
     "Calcium/Vitamine D3 1000 mg/800 UI"),
    ("Calcium 500 mg + vitamin D3 400 IU", "calcium vitamin D3 0,5 g/400 units",
     "Calcium 500 mg + vitamin D3 1000 IU"),
])
def test_a_strength_written_in_other_units_reaches_that_strength_only(listed, same, other):
    # "0,5 g" on the list and "500 mg" in the formulary are one strength: compared as
    # written, the entry missed its drug and its floor was lost; a different strength of
    # the drug stays out of reach, as it always was.
    assert matched({"same": same, "other": other}, listed) == ({"same"}, [])
    # and the other way round, the formulary's writing on the list
    assert matched({"same": listed, "other": other}, same) == ({"same"}, [])


@pytest.mark.parametrize(("listed", "written"), [
    ("Héparine 0,5 g", "Héparine 500 UI"),          # a mass is not a number of units
    ("Chlorure de potassium 1 g/10 ml", "Chlorure de potassium 1 g"),  # nor a concentration
    ("Chlorure de potassium 1 g/10 ml", "Chlorure de potassium 2 g/20 ml"),  # another ampoule
    ("Chlorure de potassium 1 g/10 ml", "Chlorure de potassium 1 g/20 ml"),
    ("Chlorure de sodium 0,9 %", "Chlorure de sodium 0,9 mg"),
    ("Amoxicilline 500 mg", "Amoxicilline 500 mg/5 ml suspension"),  # a dose, not a syrup
    ("Chlorure de sodium 0,9 %", "Chlorure de sodium 9 mg/ml"),  # % may be w/v, w/w, v/v
    ("Co-Aprovel 150 mg/12,5 mg", "Co-Aprovel 150 mg/25 mg"),
    ("Co-Aprovel 150 mg/12,5 mg", "Co-Aprovel 12,5 mg/150 mg"),
])
def test_a_strength_is_not_stretched_to_a_different_one(listed, written):
    assert matched({"x": written}, listed) == (set(), [("LASA_UNMATCHED", listed)])


def test_a_concentration_without_a_volume_reaches_every_ampoule_of_it():
    # "100 mg/ml" names no ampoule; "1 g/10 ml" and "2 g/20 ml" are two ampoules of it, told
    # apart from one another by their volume.
    formulary = {"10": "Chlorure de potassium 1 g/10 ml", "20": "KCl 2 g/20 ml",
                 "15": "Chlorure de potassium 15 % 1,5 g/10 ml"}
    assert matched(formulary, "chlorure de potassium 100 mg/ml")[0] == {"10"}
    assert matched({"10": "Potassium chloride 1 g/10 ml", "20": "Potassium chloride 2 g/20 ml",
                    "x": "Potassium chloride 2 g/10 ml"}, "potassium chloride 100 mg/ml"
                   ) == ({"10", "20"}, [])


def test_a_strength_stated_twice_is_reached_by_either():
    # French labels often give a solution's strength in % and in mg/ml.
    formulary = {"nacl": "Chlorure de sodium 0,9 % (9 mg/ml) sol inj",
                 "hyper": "Chlorure de sodium 20 % (200 mg/ml)"}
    assert matched(formulary, "chlorure de sodium 0,9%") == ({"nacl"}, [])
    assert matched(formulary, "Chlorure de sodium 9 mg/mL") == ({"nacl"}, [])
    assert matched(formulary, "chlorure de sodium 9 mg/ml 0.9 %") == ({"nacl"}, [])
    assert matched(formulary, "Chlorure de sodium 10 %")[0] == set()


def test_dotted_units_leave_nothing_in_the_name():
    # "5 000 U.I." was read "5 000 U" and ".I.", and "i" became a drug word: the entry
    # named no drug of the formulary.
    assert lasa_name("Héparine 5 000 U.I./ml").core == ("heparine",)
    assert lasa_name("Heparin 5,000 I.U.").core == ("heparin",)
    assert lasa_name("Héparine 5 000 U.I.").readings == lasa_name("heparine 5000 IU").readings


def test_one_drug_written_in_two_units_is_never_kept_apart_from_itself():
    # Two pockets of one drug, the second entered from another supplier's label: an entry
    # naming that strength twice names one drug, and says so, rather than keep its two
    # pockets apart as two drugs.
    drugs = [Drug("a", "Amoxicilline", "500 mg"), Drug("b", "Amoxicilline", "0,5 g"),
             Drug("c", "Amoxicilline", "1 g")]
    lasa = [("Amoxicilline 500 mg", "AMOXICILLINE 0,5 G", 1.0)]
    sim = lasa_floor(np.zeros((3, 3)), drugs, lasa)
    assert not sim.any()
    assert [(w.code, w.drugs) for w in lasa_matches(drugs, lasa).warnings] == [
        ("LASA_SAME_DRUG", ("a", "b"))]


@pytest.mark.skipif(not PAIRS.exists(), reason="shared data folder not present")
def test_over_the_public_labelled_names_a_strength_in_other_units_reaches_only_it():
    # ../shared/data (SOURCES.md): the 596 US names, each stocked at 500 mg and at 1 g, as a
    # formulary; each listed at "0,5 g" and at "1000 mg" must reach that strength of its own
    # drug (and of its variants: CARDIZEM reaches CARDIZEM SR), never the other strength.
    with PAIRS.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    names = sorted({r["name_a"] for r in rows} | {r["name_b"] for r in rows})
    drugs: list[Drug] = []
    for n in names:
        drugs += [Drug(f"{n}|500", n, "500 mg"), Drug(f"{n}|1000", f"{n} 1 g cp")]
    tags = [f"Q{k:04d}Q" for k in range(len(names))]
    drugs += [Drug(t, t) for t in tags]
    ids = [d.id for d in drugs]
    for listed, strength in (("0,5 g", "500"), ("500 000 µg", "500"), ("1000 mg", "1000"),
                             ("1 000 000 mcg", "1000")):
        lasa = [(f"{n} {listed}", t, 1.0) for n, t in zip(names, tags, strict=True)]
        result = lasa_matches(drugs, lasa)
        assert result.warnings == []
        reached: dict[str, set[str]] = {}
        for i, j, _ in result.pairs:
            reached.setdefault(ids[j], set()).add(ids[i])
        for n, t in zip(names, tags, strict=True):
            assert f"{n}|{strength}" in reached[t]
            assert {x.split("|")[1] for x in reached[t]} == {strength}


# ------------------------------------------ "5,000": an English thousands or a French decimal

def test_an_english_thousands_comma_reaches_the_strength_the_formulary_has():
    # "5,000" read as the French decimal 5 reached no 5,000-unit heparin: an English list's
    # entry lost its floor. Each reading is tried; the one the formulary has is kept.
    assert matched({"h5000": "Héparine sodique 5 000 UI/ml", "h25": "Héparine 25 000 UI/ml"},
                   "Heparine 5,000 units/ml") == ({"h5000"}, [])
    assert matched({"h": "Héparine sodique 5000 UI"}, "Héparine 5,000 U.I.") == ({"h"}, [])
    # and a French "1,000 g" is still one gram when the formulary has no 1,000 g
    assert matched({"c1": "Ceftriaxone 1 g", "c2": "Ceftriaxone 2 g"}, "Ceftriaxone 1,000 g"
                   ) == ({"c1"}, [])
    # Several thousands groups, or a decimal point, can only be English.
    assert matched({"p": "Pénicilline G sodique 1 000 000 UI", "q": "Pénicilline G 1 UI"},
                   "Pénicilline G 1,000,000 UI") == ({"p"}, [])


def test_a_formulary_that_writes_thousands_with_a_comma_is_reached_too():
    # An English formulary's "Heparin 5,000 units" is the list's 5000 units.
    assert matched({"h": "Heparin 5,000 units", "x": "Heparin 25,000 units"},
                   "heparin 5000 IU") == ({"h"}, [])
    assert matched({"h": "Heparin 5,000 units/0.5 ml"}, "Heparin 10 000 IU/ml") == ({"h"}, [])


def test_a_label_that_shows_its_convention_is_read_by_it():
    formulary = {"h10": "Héparine 10 UI/0,5 ml", "h10000": "Héparine 10 000 UI/0,5 ml"}
    # a decimal point: English, so the comma is a thousands separator
    assert matched(formulary, "Heparine 10,000 units/0.5 ml") == ({"h10000"}, [])
    # a decimal comma elsewhere ("0,5"): French, so "10,000" is ten
    assert matched(formulary, "Héparine 10,000 UI/0,5 ml") == ({"h10"}, [])


def test_a_comma_number_that_reaches_two_drugs_either_way_is_reported_and_kept_apart():
    # Heparin 10 units/ml (a flush) and 10,000 units/ml: a known, deadly confusion. An
    # entry that can mean either is applied to both, the safe side, and shown as ambiguous.
    drugs = [Drug("h10", "Héparine sodique 10 UI/ml"), Drug("h10k", "Héparine 10 000 UI/ml"),
             Drug("zyl", "Zyloric")]
    lasa = [("Heparine 10,000 UI/ml", "zyloric", 1.0)]
    result = lasa_matches(drugs, lasa)
    assert [(w.code, w.name, w.drugs) for w in result.warnings] == [
        ("LASA_AMBIGUOUS", "Heparine 10,000 UI/ml", ("h10", "h10k"))]
    en, fr = result.warnings[0].message("en"), result.warnings[0].message("fr")
    assert "“10,000”" in en and "10" in en and "10000" in en and "h10k" in en
    assert "« 10,000 »" in fr and "h10k" in fr and "millier" in fr
    assert {(i, j) for i, j, _ in result.pairs} == {(0, 2), (1, 2)}


def test_a_comma_reading_that_adds_no_drug_is_not_an_ambiguity():
    # A drug that names no strength is reached by either reading: nothing to ask.
    assert matched({"h": "Héparine", "h10k": "Héparine 10 000 UI/ml"},
                   "Heparine 10,000 UI/ml") == ({"h", "h10k"}, [])


# --------------------------------------------------------- milli and mega: m is not M

@pytest.mark.parametrize(("listed", "reached"), [
    ("Pénicilline G 1 MUI", {"mega"}),
    ("Pénicilline G 1 MIU", {"mega"}),
    ("Penicilline G 1 MU", {"mega"}),
    ("pénicilline g 1 000 000 ui", {"mega"}),
    ("Pénicilline G 1000 mUI", {"one"}),
    ("Pénicilline G 1000 mU", {"one"}),
    ("Pénicilline G 1 UI", {"one"}),
])
def test_milli_units_are_not_mega_units(listed, reached):
    # Case was ignored, so "mUI" (a thousandth) was read as "MUI" (a million): 10^9 apart.
    formulary = {"mega": "Pénicilline G sodique 1 MUI", "one": "Pénicilline G 1 U.I."}
    assert matched(formulary, listed) == (reached, [])


def test_a_milli_unit_strength_never_reaches_the_mega_unit_drug():
    assert matched({"mega": "Pénicilline G 1 MUI"}, "Pénicilline G 1 mUI") == (
        set(), [("LASA_UNMATCHED", "Pénicilline G 1 mUI")])
    assert lasa_name("Pénicilline G 1 mUI") != lasa_name("Pénicilline G 1 MUI")
    # A strength field that is not all numbers and units is compared as text: m and M
    # still differ there.
    drugs = [Drug("a", "Pénicilline G", "1 MUI flacon"), Drug("b", "Zyloric")]
    assert lasa_matches(drugs, [("Pénicilline G 1 mUI flacon", "zyloric", 1.0)]).pairs == []


@pytest.mark.parametrize("written", ["Amoxicilline 500 MG", "AMOXICILLINE 500 Mg",
                                     "Amoxicilline 0,5 G", "amoxicilline 500 mg"])
def test_the_case_of_other_units_does_not_matter(written):
    assert matched({"a": "Amoxicilline 500 mg", "b": "Amoxicilline 1 g"}, written) == (
        {"a"}, [])
    assert lasa_name("Morphine 10 MG/ML").readings == lasa_name("morphine 10 mg/ml").readings


# ------------------------------------ strengths per dose, per time, with qualifiers

@pytest.mark.parametrize(("written", "words", "same", "other"), [
    ("Sérétide Diskus 250 µg/dose", ("diskus", "seretide"), "SERETIDE DISKUS 0,25 mg",
     "Sérétide Diskus 500 µg/dose"),
    ("Ventoline 100 µg/bouffée", ("ventoline",), "VENTOLINE 100 microgrammes/bouffee",
     "Ventoline 200 µg"),
    ("Atrovent 20 µg/puff", ("atrovent",), "Atrovent 20 µg/pulvérisation", "Atrovent 40 µg"),
    ("Symbicort Turbuhaler 200/6 µg/dose", ("symbicort", "turbuhaler"),
     "Symbicort turbuhaler 200 µg/6 µg", "Symbicort turbuhaler 400/12 µg/dose"),
    ("Sérétide 500 µg/dose 60 doses", ("seretide",), "Seretide 500 µg/dose",
     "Seretide 250 µg/dose 60 doses"),
    ("Neupro 2 mg/24 h", ("neupro",), "Neupro 2 mg/24h", "Neupro 4 mg/24 h"),
    ("Durogesic 25 µg/h", ("durogesic",), "Durogesic 600 µg/24 heures", "Durogesic 50 µg/h"),
    ("Nicotine 21 mg/24 heures", ("nicotine",), "Nicotine 21 mg/24 h",
     "Nicotine 21 mg"),
    ("Lovenox 4 000 UI anti-Xa/0,4 ml", ("lovenox",), "LOVENOX 4000 UI/0,4 ml",
     "Lovenox 6 000 UI anti-Xa/0,6 ml"),
    ("Glucose 5 % m/v", ("glucose",), "Glucose 5\u202f%", "Glucose 10 %"),
    ("Lidocaine 2% w/v", ("lidocaine",), "Lidocaine 2 %", "Lidocaine 1 % w/v"),
    ("Fucidine 20 mg/g crème", ("fucidine",), "Fucidine 0,02 g/g crème", "Fucidine 2 mg/g"),
])
def test_strengths_per_dose_per_hour_or_qualified_leave_no_unit_among_the_drug_words(
        written, words, same, other):
    # "µg/dose", "mg/24 h", "UI anti-Xa", "% m/v": the unit words after the strength stayed
    # among the drug words ("dose", "24", "h", "anti", "xa", "m", "v"), so an entry written
    # with them reached no drug written without them, and its floor was lost.
    assert lasa_name(written).core == words
    assert matched({"same": same, "other": other}, written) == ({"same"}, [])
    assert matched({"same": written, "other": other}, same) == ({"same"}, [])
    # nor do they count as letters of the name
    assert name_score(written, same) == 1.0


# ------------------------ percent by the form, combinations, what is never guessed

def test_a_plain_percent_is_weight_in_volume_only_where_the_form_says_a_solution():
    # "5 %" of a solution is 5 g/100 ml (50 mg/ml), of a cream 5 g/100 g: the form tells
    # which. With no form it is not guessed: it reaches the same percentage written any
    # way, never a concentration in mg/ml or mg/g.
    formulary = {"pct": "Glucose 5 %", "wv": "Glucose 5 % m/v", "conc": "Glucose 50 mg/ml",
                 "ten": "Glucose 10 %", "ww": "Glucose 5 % m/m"}
    assert matched(formulary, "Glucose 5 pour cent")[0] == {"pct", "wv", "ww"}
    assert matched(formulary, "Glucose 5 % perfusion")[0] == {
        "pct", "wv", "conc"}
    assert matched(formulary, "Glucose 50 mg/ml")[0] == {"wv", "conc"}
    # the drug's form field says it too
    drugs = [Drug("g", "Glucose 5 %", form="solution pour perfusion"),
             Drug("c", "Glucose 5 %", form="crème"), Drug("x", "Glucose 5 %"),
             Drug("zyl", "Zyloric")]
    reached = {drugs[i].id for i, j, _ in lasa_matches(
        drugs, [("Glucose 50 mg/ml", "zyloric", 1.0)]).pairs}
    assert reached == {"g"}
    reached = {drugs[i].id for i, j, _ in lasa_matches(
        drugs, [("Glucose 50 mg/g", "zyloric", 1.0)]).pairs}
    assert reached == {"c"}


def test_a_combination_is_not_one_of_its_ingredients_alone():
    # "calcium 500 mg + vitamine D3 400 UI" stated two doses, and a drug of either one
    # (calcium 500 mg alone) was taken for the same strength.
    combined = parse_strength("500 mg + 400 UI")
    assert not strengths_agree(combined, parse_strength("500 mg"))
    assert not strengths_agree(combined, parse_strength("400 UI"))
    assert not strengths_agree(combined, parse_strength("1000 mg + 880 UI"))
    assert strengths_agree(combined, parse_strength("0,5 g/400 IU"))
    assert lasa_name("Calcium 500 mg + vitamine D3 400 UI").readings == lasa_name(
        "Calcium vitamin D3 500 mg + 400 IU").readings
    # the exact phrases: the "/" of a combination is no concentration of mg per UI
    slash = lasa_name("Calcium/Vit D3 1000 mg/880 UI").readings
    assert slash == lasa_name("calcium 1000 mg + vitamine D3 880 UI").readings
    assert slash == lasa_name("Calcium 1 g + vitamin D3 880 IU").readings
    assert slash != lasa_name("calcium 500 mg + vitamine D3 400 UI").readings
    assert slash != lasa_name("Calcium 1000 mg").readings
    # a strength stated twice ("0,9 % (9 mg/ml)") is still either, not a combination
    assert strengths_agree(parse_strength("0,9 % (9 mg/ml)"), parse_strength("0,9 %"))


@pytest.mark.parametrize("ambiguous", [
    "Calcium vitamine D3 880 UI/1000 mg",    # 880 UI per gram, or two ingredients?
    "Calcium vitamine D3 500 mg/ml + 400 UI",  # a concentration plus a dose
])
def test_a_strength_that_reads_two_ways_is_reported_not_guessed(ambiguous):
    formulary = {"a": "Calcium vitamine D3 1000 mg + 880 UI",
                 "b": "Calcium vitamine D3 500 mg + 400 UI"}
    assert matched(formulary, ambiguous) == (set(), [("LASA_UNMATCHED", ambiguous)])


def test_a_lower_case_m_spaced_from_its_unit_is_not_guessed():
    # "5 M UI" is how labels write five million units; "5 m UI" is either a slip for it or
    # a spaced "mUI" (a thousandth), 10^9 apart: reported, never read one way.
    formulary = {"mega": "Pénicilline G 5 MUI", "milli": "Pénicilline G 5 mUI"}
    assert matched(formulary, "Pénicilline G 5 m UI") == (
        set(), [("LASA_UNMATCHED", "Pénicilline G 5 m UI")])
    assert matched(formulary, "Pénicilline G 5 M UI") == ({"mega"}, [])
