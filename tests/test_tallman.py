"""Tall Man lettering of look-alike drug names."""

from __future__ import annotations

from controller.web.tallman import look_alike, tall_man, tall_man_pair


def test_fda_pairs_get_their_official_forms():
    shown = tall_man(["hydroxyzine", "hydralazine", "prednisone", "prednisolone"])
    assert shown["hydroxyzine"] == "hydrOXYzine"
    assert shown["hydralazine"] == "hydrALAZINE"
    assert shown["prednisone"] == "predniSONE"
    assert shown["prednisolone"] == "prednisoLONE"


def test_computed_form_capitalises_the_differing_middle():
    assert tall_man_pair("hydroxyzine", "hydralazine") == ("hydrOXYzine", "hydrALAzine")
    # One name is the other plus letters: the shared ending is shouted on both sides.
    assert tall_man_pair("prednisone", "prednisolone") == ("prednisoNE", "prednisoLONE")
    assert tall_man_pair("vinblastine", "vincristine") == ("vinBLAstine", "vinCRIstine")


def test_names_without_a_look_alike_stay_as_written():
    names = ["paracétamol", "pantoprazole", "morphine", "métoprolol", "oxycodone",
             "ondansétron", "hydroxyzine", "hydralazine"]
    shown = tall_man(names)
    assert shown["paracétamol"] == "paracétamol" and shown["morphine"] == "morphine"
    assert shown["hydroxyzine"] == "hydrOXYzine"
    assert not look_alike("paracétamol", "paracétamol")
    assert not look_alike("paracétamol", "pantoprazole")


def test_accents_and_case_do_not_hide_a_pair():
    assert look_alike("Hydroxyzine", "HYDRALAZINE")
    shown = tall_man(["clonazépam", "clonazepem"])
    assert shown["clonazépam"] != "clonazépam"


def test_a_strength_is_never_shouted():
    # Upper-casing a strength changes what it says: "µg" became "ΜG" (a Greek capital mu,
    # read "MG": a thousand times the dose) and "mUI" (a thousandth) "MUI" (a million).
    # Two strengths of one drug are one name: nothing to shout.
    for pair in (["Sufentanil 5 µg/ml", "Sufentanil 50 µg/ml"],
                 ["Pénicilline G 1000 mUI", "Pénicilline G 1 MUI"],
                 ["Héparine 5 000 UI/ml", "Héparine 25 000 UI/ml"]):
        assert tall_man(pair) == {n: n for n in pair}


def test_look_alike_names_are_shouted_whatever_strength_they_carry():
    # The strength's digits and unit are not letters a reader confuses: they neither hide
    # a look-alike name nor get shouted with it.
    shown = tall_man(["hydroxyzine 25 mg", "hydralazine 10 mg"])
    assert shown["hydroxyzine 25 mg"] == "hydrOXYZINE 25 mg"
    assert shown["hydralazine 10 mg"] == "hydrALAZINE 10 mg"
    shown = tall_man(["vinblastine 10 µg/ml", "vincristine 1 mUI"])
    assert shown["vinblastine 10 µg/ml"].endswith(" 10 µg/ml")
    assert shown["vincristine 1 mUI"].endswith(" 1 mUI")
    assert shown["vinblastine 10 µg/ml"].startswith("vinBLA")
