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
