"""The pharmacy's formulary tab: drugs added and corrected, pockets given a drug or emptied of
it, through the pages and their security model; then the technician restocks the new pocket
by scanning the new drug's box."""

from __future__ import annotations

import functools
import json

import pytest
from test_web import HOSTILE, login, page_csrf, ph_login, running_web, wait_for
from web_helpers import PINS

from controller import replenishment
from controller.store import JournalEntry, StockDelta

GTIN_OK = "03400930000205"


@pytest.fixture
def web(tmp_path):
    yield from running_web(tmp_path)


def empty_pocket(web, drawer, row, col):
    """Take every unit out as a journaled withdrawal (conservation holds)."""
    store = web.runtime.store
    for lot in store.pocket_stock(drawer, row, col):
        store.append(JournalEntry("withdraw", user="ide1", drug=lot["drug"], drawer=drawer,
                                  row=row, col=col, qty=lot["on_hand"], lot=lot["lot"],
                                  expiry=lot["expiry"], patient="P0"),
                     [StockDelta(drawer, row, col, lot["lot"], lot["drug"], lot["expiry"],
                                 -int(lot["on_hand"]))])


def add(c, token, **fields):
    data = {"csrf": token, "which": "add", "id": "", "name": "", "strength": "", "form": "",
            "gtin": "", **fields}
    return c.post("/pharmacy/formulary", data=data)


def test_the_formulary_tab_lists_adds_and_edits_drugs(web):
    cab = web.cabinet
    c = web.client()
    token = ph_login(c)
    assert 'id="tab-formulary"' in c.get("/pharmacy").text
    page = c.get("/pharmacy/formulary").text
    row = page.split('id="drug-MORPH10"')[1].split("</tr>")[0]
    assert "B-1-1" in row and "stupéfiant" in row and "haut risque" in row
    assert "03400930000021" in row and "clé fausse" not in row
    # A code recorded before check digits were checked (an older database) is tagged.
    web.runtime.store.conn.execute("UPDATE drugs SET gtin='03400930000028' WHERE id='MORPH10'")
    row = c.get("/pharmacy/formulary").text.split('id="drug-MORPH10"')[1].split("</tr>")[0]
    assert "03400930000028" in row and "clé fausse" in row
    # Without the form's token: refused, nothing added.
    r = c.post("/pharmacy/formulary", data={"id": "NEW1", "name": "new"})
    assert r.status_code == 403 and "CSRF_FAILED" in r.text
    assert not web.runtime.store.query("SELECT 1 FROM drugs WHERE id='NEW1'")
    # A refused form comes back with its message and what was typed.
    r = add(c, token, id="NEW1", name="nouveau", gtin="03400930000206")
    assert r.status_code == 303 and r.headers["location"] == "/pharmacy/formulary"
    page = c.get("/pharmacy/formulary").text
    assert "[BAD_GTIN_CHECK]" in page and 'value="nouveau"' in page
    assert not web.runtime.store.query("SELECT 1 FROM drugs WHERE id='NEW1'")
    r = add(c, token, id="NEW1", name="nouveau", gtin="03400930000206", controlled="yes")
    assert "[BAD_FLAG]" in c.get("/pharmacy/formulary").text
    # Added, with a ticked flag and an EAN-13 stored as GTIN-14.
    r = add(c, token, id="NEW1", name="nouveau", strength="5 mg", gtin=GTIN_OK[1:],
            high_alert="1")
    assert "Médicament NEW1 ajouté au livret." in c.get("/pharmacy/formulary").text
    drug = cab.drug("NEW1")
    assert (drug["gtin"], drug["high_alert"], drug["controlled"]) == (GTIN_OK, 1, 0)
    assert web.runtime.store.journal_rows(kind="drug_added")[-1]["user"] == "pharma1"
    # Edit: the form is filled from the drug; unticking a box clears the flag.
    page = c.get("/pharmacy/formulary?edit=NEW1").text
    form = page.split('id="edit-drug-form"')[1].split("</form>")[0]
    assert 'value="nouveau"' in form and 'name="high_alert" value="1" checked' in form
    assert 'name="id"' not in form  # the id never changes
    r = c.post("/pharmacy/formulary/NEW1/edit",
               data={"csrf": token, "which": "edit", "name": "nouveau", "strength": "10 mg",
                     "form": "", "gtin": GTIN_OK})
    assert r.status_code == 303
    assert "Médicament NEW1 modifié." in c.get("/pharmacy/formulary").text
    changes = json.loads(web.runtime.store.journal_rows(kind="drug_changed")[-1]["detail"])
    assert changes["changes"] == {"strength": {"before": "5 mg", "after": "10 mg"},
                                  "high_alert": {"before": 1, "after": 0}}
    # A refused edit goes back to the edit form with what was typed.
    r = c.post("/pharmacy/formulary/NEW1/edit",
               data={"csrf": token, "which": "edit", "name": "", "gtin": GTIN_OK})
    assert r.headers["location"] == "/pharmacy/formulary?edit=NEW1"
    assert "[BAD_NAME]" in c.get(r.headers["location"]).text
    assert cab.drug("NEW1")["name"] == "nouveau"
    # JSON clients get the code and both languages.
    r = c.post("/pharmacy/formulary", data={"csrf": token, "id": "X", "name": "x"},
               headers={"accept": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "BAD_DRUG_ID"
    assert r.json()["error_fr"].startswith("un code médicament")
    # English, as the pharmacist's catalogue says it.
    c.post("/lang", data={"csrf": token, "lang": "en", "next": "pharmacy"})
    page = c.get("/pharmacy/formulary").text
    assert "Add a drug" in page and "not in the cabinet" in page


def test_a_hostile_drug_name_is_shown_as_text_on_the_new_pages(web):
    c = web.client()
    token = ph_login(c)
    add(c, token, id="EVIL1", name=HOSTILE, strength=HOSTILE, form=HOSTILE)
    assert web.cabinet.drug("EVIL1")["name"] == HOSTILE
    for path in ("/pharmacy/formulary", "/pharmacy/formulary?edit=EVIL1"):
        page = c.get(path).text
        assert HOSTILE not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    empty_pocket(web, "A", 2, 1)
    def unassign() -> None:  # on the cabinet's loop, which owns every write
        with web.runtime.store.transaction() as conn:
            conn.execute("UPDATE pockets SET drug=NULL, capacity=0 WHERE drawer='A' AND "
                         "row=2 AND col=1")

    web.portal.call(unassign)
    c.post("/pharmacy/pockets/A/2/1/assign", data={"csrf": token, "drug": "EVIL1",
                                                   "capacity": "10"})
    for path in ("/pharmacy/formulary", "/pharmacy/cabinet"):
        page = c.get(path).text
        assert HOSTILE not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("who", ["nurse", "admin"])
def test_only_a_pharmacist_reaches_the_formulary(web, who):
    c = web.client(host="127.0.0.1")
    if who == "nurse":
        token = login(c, "ide1")
    else:
        token = ph_login(c, "admin1")
        assert 'id="tab-formulary"' not in c.get("/pharmacy").text
    assert c.get("/pharmacy/formulary").status_code == 403
    head = web.runtime.store.head()
    for path, data in [("/pharmacy/formulary", {"id": "EVIL", "name": "evil"}),
                       ("/pharmacy/formulary/PARA500/edit", {"name": "evil"}),
                       ("/pharmacy/pockets/A/0/0/unassign", {}),
                       ("/pharmacy/pockets/A/0/0/capacity", {"capacity": "500"}),
                       ("/pharmacy/pockets/A/0/0/assign", {"drug": "PARA500",
                                                           "capacity": "5"})]:
        r = c.post(path, data={"csrf": token, **data})
        assert r.status_code == 403 and "FORBIDDEN" in r.text, path
    assert web.runtime.store.head() == head  # nothing written
    assert web.cabinet.drug("PARA500")["name"] == "paracétamol"


def test_a_new_drug_into_a_freed_pocket_then_restocked_by_scanning_its_box(web):
    cab = web.cabinet
    ph = web.client()
    token = ph_login(ph)
    # A-3-2 holds pantoprazole: it cannot be given up while units are in it.
    r = ph.post("/pharmacy/pockets/A/2/1/unassign", data={"csrf": token})
    assert r.status_code == 303
    assert "[POCKET_NOT_EMPTY]" in ph.get("/pharmacy/formulary").text
    assert cab.pocket("A", 2, 1).drug == "PANTO40"
    empty_pocket(web, "A", 2, 1)
    page = ph.get("/pharmacy/formulary").text
    assert 'id="unassign-A-3-2"' in page
    ph.post("/pharmacy/pockets/A/2/1/unassign", data={"csrf": token})
    assert "PANTO40 retiré de la poche A-3-2." in ph.get("/pharmacy/formulary").text
    assert cab.pocket("A", 2, 1).drug is None
    # A controlled drug is refused in this open drawer.
    add(ph, token, id="MORPH20", name="morphine", strength="20 mg", controlled="1")
    ph.post("/pharmacy/pockets/A/2/1/assign", data={"csrf": token, "drug": "MORPH20",
                                                    "capacity": "10"})
    assert "[NEEDS_LIDDED_POCKET]" in ph.get("/pharmacy/formulary").text
    ph.post("/pharmacy/pockets/A/2/1/assign", data={"csrf": token, "drug": "PARA500",
                                                    "capacity": "0"})
    assert "[BAD_CAPACITY]" in ph.get("/pharmacy/formulary").text
    assert cab.pocket("A", 2, 1).drug is None
    # Hydralazine 50 mg next to hydralazine 25 mg (A-3-3): placed, with a warning.
    add(ph, token, id="HYDRAL50", name="hydralazine", strength="50 mg", form="comprimé",
        gtin=GTIN_OK)
    r = ph.post("/pharmacy/pockets/A/2/1/assign", data={"csrf": token, "drug": "HYDRAL50",
                                                        "capacity": "30"})
    assert r.status_code == 303
    page = ph.get("/pharmacy/formulary").text
    assert "Poche A-3-2 attribuée" in page and "[LOOKALIKE_NEIGHBOUR]" in page
    assert "A-3-3" in page.split("[LOOKALIKE_NEIGHBOUR]")[0].rsplit('class="flash', 1)[1]
    assert cab.pocket("A", 2, 1).drug == "HYDRAL50"
    assert "A-3-2" in {p["pocket"] for p in replenishment.pick_list(cab)}
    # The technician's pick list offers the new pocket; a box of another drug is refused,
    # the new drug's box is accepted.
    t = web.client(host="127.0.0.1")
    tech = login(t, "prep1")
    pick = t.get("/restock").text.split("<details")[0]
    assert 'id="pick-A-3-2"' in pick and "apporter 30" in pick
    r = t.post("/restock/A/2/1", data={"csrf": tech, "scan": "03400930000014", "qty": "30",
                                       "lot": "HY-1", "expiry": "2031-01-31"})
    assert "[WRONG_SCAN]" in t.get("/restock/A/2/1").text
    r = t.post("/restock/A/2/1", data={"csrf": tech, "scan": GTIN_OK, "qty": "30",
                                       "lot": "HY-1", "expiry": "2031-01-31"})
    assert r.headers["location"] == "/operation", t.get("/restock/A/2/1").text
    wait_for(web, lambda: cab.session.op is not None and cab.session.op.step == "act")
    t.post("/operation/count", data={"csrf": tech, "count": "30"})
    t.post("/sim/close", data={"csrf": tech, "drawer": "A"})
    wait_for(web, lambda: cab.session.op is None)
    assert web.runtime.store.on_hand("A", 2, 1) == 30
    assert web.runtime.store.journal_rows(kind="restock")[-1]["drug"] == "HYDRAL50"
    assert "A-3-2" not in {p["pocket"] for p in replenishment.pick_list(cab)}
    # Stock in it: it can no longer be given up.
    web.portal.call(functools.partial(cab.logout))
    ph.post("/pharmacy/pockets/A/2/1/unassign", data={"csrf": token})
    assert "[POCKET_NOT_EMPTY]" in ph.get("/pharmacy/formulary").text
    assert cab.pocket("A", 2, 1).drug == "HYDRAL50"
    kinds = [r["kind"] for r in web.runtime.store.journal_rows()]
    assert "pocket_unassigned" in kinds and "pocket_assigned" in kinds
    assert page_csrf(ph, "/pharmacy/journal?kind=pocket_assigned")
    assert PINS["prep1"] not in json.dumps(web.runtime.store.journal_rows())


def test_the_pharmacist_changes_a_placed_pocket_s_capacity(web):
    cab = web.cabinet
    ph = web.client()
    token = ph_login(ph)
    held = web.runtime.store.on_hand("A", 0, 0)
    before = cab.pocket("A", 0, 0).capacity
    row = ph.get("/pharmacy/formulary").text.split('id="slot-A-1-1"')[1].split("</tr>")[0]
    assert 'id="cap-A-1-1"' in row and f'min="{max(held, 1)}"' in row
    assert f'value="{before}"' in row
    # Below the units in the pocket, or not a number: refused with its code, nothing written.
    head = web.runtime.store.head()
    for value, code in ((str(held - 1), "CAPACITY_BELOW_STOCK"), ("abc", "BAD_NUMBER"),
                        ("0", "BAD_CAPACITY")):
        r = ph.post("/pharmacy/pockets/A/0/0/capacity", data={"csrf": token,
                                                               "capacity": value})
        assert f"[{code}]" in ph.get("/pharmacy/formulary").text, value
    assert web.runtime.store.head() == head and cab.pocket("A", 0, 0).capacity == before
    r = ph.post("/pharmacy/pockets/A/0/0/capacity", data={"csrf": token,
                                                           "capacity": str(before + 20)})
    assert r.status_code == 303
    assert "Capacité de la poche A-1-1 modifiée" in ph.get("/pharmacy/formulary").text
    assert cab.pocket("A", 0, 0).capacity == before + 20
    [entry] = web.runtime.store.journal_rows(kind="pocket_capacity_changed")
    assert json.loads(entry["detail"]) == {"before": before, "after": before + 20}


def test_the_pharmacist_sets_a_limit_the_nurse_s_screen_enforces(web):
    cab = web.cabinet
    ph = web.client()
    token = ph_login(ph)
    drug = cab.drug("PARA500")
    data = {"csrf": token, "which": "edit", "name": drug["name"],
            "strength": drug["strength"] or "", "form": drug["form"] or "",
            "gtin": drug["gtin"] or "", "max_per_withdrawal": "0"}
    if drug["assistant_allowed"]:
        data["assistant_allowed"] = "1"
    ph.post("/pharmacy/formulary/PARA500/edit", data=data)
    assert "[BAD_LIMIT]" in ph.get("/pharmacy/formulary?edit=PARA500").text
    r = ph.post("/pharmacy/formulary/PARA500/edit", data={**data, "max_per_withdrawal": "2"})
    assert r.status_code == 303 and cab.drug("PARA500")["max_per_withdrawal"] == 2
    assert 'id="limit-PARA500"' in ph.get("/pharmacy/formulary").text
    # The demo seeds its opioids with a limit too.
    assert cab.drug("MORPH10")["max_per_withdrawal"] == 2
    nurse = web.client(host="127.0.0.1")
    token = login(nurse, "ide1")
    page = nurse.get("/withdraw").text
    assert 'id="limit-PARA500"' in page and "≤ 2 par prélèvement" in page
    head = web.runtime.store.head()
    r = nurse.post("/withdraw", data={"csrf": token, "drug": "PARA500", "qty": "3",
                                      "patient": "P-1"})
    assert "[ABOVE_LIMIT]" in nurse.get("/withdraw").text
    assert web.runtime.store.head() == head and cab.session.op is None


def test_the_pharmacy_sees_prints_and_downloads_the_pick_list(web):
    cab = web.cabinet
    ph = web.client()
    ph_login(ph)
    lines = replenishment.pick_list(cab)
    assert lines, "the demo has pockets to refill"
    page = ph.get("/pharmacy/cabinet").text
    table = page.split('id="picklist-lines"')[1].split("</table>")[0]
    for line in lines:
        assert f"<td>{line['pocket']}</td>" in table
    assert 'data-print id="print-picklist"' in page
    r = ph.get("/pharmacy/picklist.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = r.text.removeprefix("\ufeff").splitlines()
    assert rows[0] == "pocket,drug,name,usable,expired,level,refill_to,bring"
    assert [row.split(",")[0] for row in rows[1:]] == [line["pocket"] for line in lines]
    assert [int(row.split(",")[-1]) for row in rows[1:]] == [line["bring"] for line in lines]
    nurse = web.client(host="127.0.0.1")
    login(nurse, "ide1")
    assert nurse.get("/pharmacy/picklist.csv").status_code == 403
