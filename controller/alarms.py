"""Alarms: raised by rules and faults, acknowledged and resolved by the right role.

One open alarm per (kind, pocket, lot, user): a rule that keeps firing does not bury the
screen, and two people locked out are two alarms, each closed on its own.
Every change is a journal row written in the same transaction as the alarm row, so the
journal tells who saw and who closed each alarm.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

from controller.auth import User, require
from controller.dates import parse_day, show_day
from controller.errors import InputError, NotFound, PermissionDenied, StateError
from controller.store import JournalEntry, Store

KINDS = ("low_stock", "expiry", "expired", "drawer_fault", "discrepancy", "auth_lockout",
         "journal_integrity")

#: Kinds a person closes only with a note of what was found (a count discrepancy).
NOTE_NEEDED = frozenset({"discrepancy"})

#: kind -> the permission needed to resolve it by hand.
RESOLVE_PERMISSION = {
    "discrepancy": "resolve_discrepancy",
    "auth_lockout": "manage_users",
    "drawer_fault": "reset_drawer",
    "low_stock": "resolve_alarm",
    "expiry": "resolve_alarm",
    "expired": "resolve_alarm",
    "journal_integrity": "resolve_discrepancy",
}

MESSAGES = {
    "low_stock": ("Low stock", "Stock bas"),
    "expiry": ("Lot expiring soon", "Lot bientôt périmé"),
    "expired": ("Expired lot in pocket", "Lot périmé dans la poche"),
    "drawer_fault": ("Drawer fault", "Défaut de tiroir"),
    "discrepancy": ("Count discrepancy", "Écart de comptage"),
    "auth_lockout": ("User locked out", "Utilisateur bloqué"),
    "journal_integrity": ("Journal integrity check failed", "Échec du contrôle d'intégrité"),
}

class AlarmText(str):
    """An alarm message built by :func:`text` from :data:`TEXTS`. ``Alarms.raise_`` takes
    nothing else (mypy checks it), so no alarm can be raised in words that have no French
    form: a sentence written at its raise site used to reach French screens in English."""


#: Every message the cabinet raises an alarm with: name -> (English, French). The English is
#: what is stored (the journal and the exports keep it); the French is shown to a French
#: reader, recognised from the stored English with the same fields.
TEXTS: dict[str, tuple[str, str]] = {
    "low_stock": ("pocket {p}: {n} unit(s) left (level {l})",
                  "poche {p} : {n} unité(s) restante(s) (seuil {l})"),
    "counted": ("pocket {p}: counted {n}, expected {e}",
                "poche {p} : {n} compté(s), {e} attendu(s)"),
    "expired": ("lot {lot} in {p} expired on {date}",
                "lot {lot} dans {p} : périmé depuis le {date}"),
    "expiry": ("lot {lot} in {p} expires on {date}", "lot {lot} dans {p} : périme le {date}"),
    "unconfirmed": ("operation #{n} ended without a count",
                    "opération n°{n} terminée sans compte"),
    "interrupted": ("operation #{n} interrupted (power loss): count the pocket",
                    "opération n°{n} interrompue (coupure de courant) : comptez la poche"),
    "locked": ("user {u} locked after {n} wrong PINs",
               "utilisateur {u} bloqué après {n} codes erronés"),
    "badge_probe": ("user {u} locked after {n} staff badges refused in text fields or "
                    "enrolments", "utilisateur {u} bloqué après {n} badges du personnel "
                    "refusés dans des champs de saisie ou des enregistrements"),
    "forced_open": ("drawer {d} opened without a command: count pocket {p}",
                    "tiroir {d} ouvert sans commande : comptez la poche {p}"),
    "jammed_part_open": ("drawer {d} jammed part-open: count pocket {p}",
                         "tiroir {d} bloqué entrouvert : comptez la poche {p}"),
    "switch_fault_unknown": ("drawer {d} switch fault, position unknown: count pocket {p}",
                             "tiroir {d} capteur en défaut, position inconnue : "
                             "comptez la poche {p}"),
    "offline_unknown": ("drawer {d} board not answering, position unknown: count pocket {p}",
                        "tiroir {d} carte muette, position inconnue : comptez la poche {p}"),
    "open_at_start": ("drawer {d} found open at start: count pocket {p}",
                      "tiroir {d} trouvé ouvert au démarrage : comptez la poche {p}"),
    "open_at_link_up": ("drawer {d} found open when its board came back: count pocket {p}",
                        "tiroir {d} trouvé ouvert au retour de sa carte : comptez la poche {p}"),
    "fault": ("drawer {d}: {k}", "tiroir {d} : {k}"),
    "unreadable": ("the database could not be read to the end ({x}): run armoire journal "
                   "verify; if it is damaged, restore the last backup",
                   "la base n'a pas pu être lue jusqu'au bout ({x}) : lancez armoire journal "
                   "verify ; si elle est endommagée, restaurez la dernière sauvegarde"),
    "check_failed": ("the integrity check could not finish ({x}): run armoire journal verify",
                     "le contrôle d'intégrité n'a pas pu aboutir ({x}) : lancez armoire "
                     "journal verify"),
    "stock": ("stock of {w} lot {lot}: {f} is {t} in the stock table, the journal says {j} "
              "({n} difference(s))",
              "stock de {w} lot {lot} : {f} {t} dans la table du stock, {j} selon le journal "
              "({n} différence(s))"),
    "altered": ("journal altered at row {n}: {why}", "journal modifié à la ligne {n} : {why}"),
    "restored": ("database restored from backup {b} (last entry {ts}): count every pocket",
                 "base restaurée depuis la sauvegarde {b} (dernière ligne {ts}) : comptez "
                 "toutes les poches"),
    "bench_missing": ("re-layout bench: {n} unit(s) of {drug} missing when returned to "
                      "pharmacy ({c} of {b})",
                      "banc de réaménagement : {n} unité(s) de {drug} manquante(s) au retour "
                      "à la pharmacie ({c} sur {b})"),
}

class ResolveNote(str):
    """The note of an alarm the cabinet closes itself, built by :func:`note` from
    :data:`NOTES`. ``Alarms.auto_resolve`` takes nothing else (mypy checks it): "above its
    level", written where the alarm closed, reached French pages in English."""


#: Every note the cabinet closes an alarm with, itself or for the person who acted (an
#: unlock, a PIN reset): name -> (English, French). The English is stored (the journal and
#: the exports keep it); the French is shown to a French reader, recognised from the stored
#: English with the same fields.
NOTES: dict[str, tuple[str, str]] = {
    "above_level": ("above its level", "au-dessus de son seuil"),
    "now_expired": ("now expired", "désormais périmé"),
    "lot_gone": ("lot no longer in pocket", "le lot n'est plus dans la poche"),
    "drug_gone": ("drug no longer in pocket", "le médicament n'est plus dans la poche"),
    "moved": ("moved to pocket {p}", "déplacé dans la poche {p}"),
    "unassigned": ("pocket unassigned", "poche libérée"),
    "close_button": ("closed with its Close button", "fermé avec son bouton Fermer"),
    "board_back": ("drawer board back online", "carte du tiroir de nouveau en ligne"),
    "reset_by": ("reset by {u}", "réarmé par {u}"),
    "unlocked": ("{u} unlocked", "{u} débloqué(e)"),
    "pin_reset": ("{u}: PIN reset", "{u} : code PIN réinitialisé"),
    "console_pin_reset": ("{u}: PIN reset from the console",
                          "{u} : code PIN réinitialisé depuis la console"),
}

#: How much of the stored text a field may take when it is recognised: an id or a number is
#: one word; a lot, a file name, an exception, a stock value or a fault may hold spaces.
_FIELD_PATTERNS = {"lot": ".+", "x": ".*", "t": ".*", "j": ".*", "why": ".+", "k": ".+",
                   "b": ".+", "f": "on_hand|drug|expiry"}


_WORD = r"\S+"


def _pattern(en: str) -> re.Pattern[str]:
    parts = []
    for literal, field, _, _ in string.Formatter().parse(en):
        parts.append(re.escape(literal))
        if field:
            parts.append(f"(?P<{field}>{_FIELD_PATTERNS.get(field, _WORD)})")
    return re.compile("^" + "".join(parts) + "$")


#: The stored English of each text, recognised; the general "drawer X: fault" is tried last.
_FR_FORMS = sorted(((_pattern(en), fr) for en, fr in TEXTS.values()),
                   key=lambda form: form[1] == TEXTS["fault"][1])
_FR_NOTES = [(_pattern(en), fr) for en, fr in NOTES.values()]


def text(name: str, **values: Any) -> AlarmText:
    """The English message of alarm text ``name`` (the one stored), from :data:`TEXTS`."""
    return AlarmText(TEXTS[name][0].format(**values))


def note(name: str, **values: Any) -> ResolveNote:
    """The English note ``name`` (the one stored) an alarm is closed with, from
    :data:`NOTES`."""
    return ResolveNote(NOTES[name][0].format(**values))


_FR_FIELDS = {"on_hand": "quantité", "drug": "médicament", "expiry": "péremption"}

_FR_FAULTS = {"jammed": "bloqué", "switch fault": "capteur en défaut",
              "forced open": "ouvert de force", "offline": "hors ligne",
              "open at start": "ouvert au démarrage",
              "ajar at start": "entrouvert au démarrage",
              "open at link up": "ouvert au retour de sa carte",
              "ajar at link up": "entrouvert au retour de sa carte",
              "magnet failed": "aimant en défaut"}

#: Why the hash chain is broken (``journal.verify``'s reasons).
_FR_WHY = {"previous-hash link broken": "lien vers la ligne précédente rompu",
           "row content does not match its hash":
               "le contenu de la ligne ne correspond pas à son empreinte"}
_MISSING_ROW = re.compile(r"^row (\d+) is missing$")


def french_value(field: str, value: str) -> str:
    """A field of a text that is itself words (a fault, a stock field, why the chain is
    broken), in French, and a day as a French reader writes it (JJ/MM/AAAA, as the pharmacy
    pages show days); the other fields (ids, numbers, lots) as they are."""
    if field == "date":
        try:
            return show_day(parse_day(value), "fr")
        except ValueError:
            return value
    if field == "k":
        return _FR_FAULTS.get(value, value)
    if field == "f":
        return _FR_FIELDS.get(value, value)
    if field == "why":
        missing = _MISSING_ROW.match(value)
        return f"la ligne {missing.group(1)} manque" if missing else _FR_WHY.get(value, value)
    return value


def translated(stored: str, lang: str) -> str:
    """A stored alarm text in ``lang``: its French form when it is one of :data:`TEXTS`,
    else as stored (the journal page shows it so rather than lose it)."""
    return _translated(_FR_FORMS, stored, lang)


def translated_note(stored: str, lang: str) -> str:
    """A stored note in ``lang``: its French form when it is one of :data:`NOTES`, else as
    stored (a person's own note is shown as she typed it)."""
    return _translated(_FR_NOTES, stored, lang)


def _translated(forms: list[tuple[re.Pattern[str], str]], stored: str, lang: str) -> str:
    if lang != "fr":
        return stored
    for pattern, form in forms:
        match = pattern.match(stored)
        if match:
            return form.format(**{f: french_value(f, v) for f, v in match.groupdict().items()})
    return stored


def message(alarm: dict[str, Any], lang: str, drug_name: str | None = None) -> str:
    """The alarm's message in ``lang``. The stored message is English and shown as is in
    English; in French, a message the cabinet writes is translated, anything else (an older
    version's text) becomes the kind's French title with the alarm's own fields (pocket,
    lot, drug)."""
    text = str(alarm.get("message") or "")
    if lang != "fr":
        return text
    french = translated(text, lang)
    if french != text:
        return french
    parts = [MESSAGES.get(alarm.get("kind") or "", (text, text))[1]]
    if alarm.get("drawer"):
        parts.append(f"tiroir {alarm['drawer']}" if alarm.get("row") is None else
                     f"poche {alarm['drawer']}-{alarm['row'] + 1}-{alarm['col'] + 1}")
    if alarm.get("lot"):
        parts.append(f"lot {alarm['lot']}")
    if drug_name or alarm.get("drug"):
        parts.append(str(drug_name or alarm["drug"]))
    return " · ".join(parts)


@dataclass(frozen=True)
class Where:
    drug: str | None = None
    drawer: str | None = None
    row: int | None = None
    col: int | None = None
    lot: str | None = None
    #: The person the alarm is about (a lockout), part of its identity like the pocket.
    user: str | None = None


class Alarms:
    def __init__(self, store: Store) -> None:
        self.store = store

    def find_open(self, kind: str, where: Where) -> dict[str, Any] | None:
        rows = self.store.query(
            """SELECT * FROM alarms WHERE kind=? AND state != 'resolved'
               AND drug IS ? AND drawer IS ? AND row IS ? AND col IS ? AND lot IS ?
               AND user IS ?""",
            (kind, where.drug, where.drawer, where.row, where.col, where.lot, where.user))
        return rows[0] if rows else None

    def open_of(self, kind: str) -> list[dict[str, Any]]:
        """Every alarm of ``kind`` not resolved, oldest first, in one query: a check of the
        whole cabinet looks them up here rather than with one query per pocket."""
        return self.store.query(
            "SELECT * FROM alarms WHERE kind=? AND state != 'resolved' ORDER BY id", (kind,))

    def raise_(self, kind: str, where: Where, message: AlarmText, *, ref: int | None = None,
               user: str | None = None, refresh: bool = False) -> int:
        """Open the alarm, or return the one already open for the same thing. ``refresh``
        puts the new message on an open one: for a level (units left) that moves while the
        alarm stays open, where the first message would soon be wrong. Not journaled: the
        movements that changed the level are."""
        return self.raise_known(kind, where, message, self.find_open(kind, where), ref=ref,
                                user=user, refresh=refresh)

    def raise_known(self, kind: str, where: Where, message: AlarmText,
                    existing: dict[str, Any] | None, *, ref: int | None = None,
                    user: str | None = None, refresh: bool = False) -> int:
        """:meth:`raise_` when the caller has already read the alarm open for ``where``
        (``existing``, None if there is none), e.g. from :meth:`open_of`."""
        assert kind in KINDS, kind
        if existing is not None:
            if refresh and existing["message"] != message:
                with self.store.transaction() as c:
                    c.execute("UPDATE alarms SET message=? WHERE id=?",
                              (message, existing["id"]))
            return int(existing["id"])
        now = self.store.now_iso()
        with self.store.transaction() as c:
            cur = c.execute(
                """INSERT INTO alarms (kind, state, drug, drawer, row, col, lot, ref, message,
                   opened_ts, updated_ts, updated_by, user) VALUES (?, 'open', ?, ?, ?, ?, ?,
                   ?, ?, ?, ?, ?, ?)""",
                (kind, where.drug, where.drawer, where.row, where.col, where.lot, ref, message,
                 now, now, user, where.user))
            alarm_id = int(cur.lastrowid or 0)
            self.store.append(JournalEntry(
                "alarm_raised", user=user, drug=where.drug, drawer=where.drawer, row=where.row,
                col=where.col, lot=where.lot, ref=ref, code=kind,
                detail={"alarm": alarm_id, "message": message,
                        **({"about": where.user} if where.user else {})}))
        return alarm_id

    def get(self, alarm_id: int) -> dict[str, Any]:
        rows = self.store.query("SELECT * FROM alarms WHERE id = ?", (alarm_id,))
        if not rows:
            raise NotFound(f"no alarm {alarm_id}", f"aucune alarme {alarm_id}",
                           code="UNKNOWN_ALARM")
        return rows[0]

    def acknowledge(self, alarm_id: int, user: User) -> None:
        require(user, "acknowledge_alarm")
        alarm = self.get(alarm_id)
        if alarm["state"] != "open":
            raise StateError(f"alarm {alarm_id} is {alarm['state']}",
                             f"l'alarme {alarm_id} est déjà traitée", code="ALARM_NOT_OPEN")
        self._set(alarm, "acknowledged", user.id, "alarm_acknowledged", None)

    def resolve(self, alarm_id: int, user: User, note: str = "") -> None:
        alarm = self.get(alarm_id)
        permission = RESOLVE_PERMISSION[alarm["kind"]]
        if not user.can(permission):
            raise PermissionDenied(
                f"only {', '.join(sorted(_roles(permission)))} may resolve a {alarm['kind']} alarm",
                f"seul un rôle autorisé peut clore une alarme {alarm['kind']}",
                code="FORBIDDEN")
        if alarm["state"] == "resolved":
            raise StateError(f"alarm {alarm_id} is already resolved",
                             f"l'alarme {alarm_id} est déjà close", code="ALARM_NOT_OPEN")
        if alarm["kind"] in NOTE_NEEDED and not note.strip():
            # The journal then says who closed the gap but never why (recounted? broken
            # ampoule? a withdrawal not recorded?): an audit of a controlled drug needs it.
            raise InputError(f"say what was found before resolving a {alarm['kind']} alarm "
                             "(note)", "dites ce qui a été constaté avant de clore cette "
                             "alarme (note)", code="NOTE_NEEDED")
        self._set(alarm, "resolved", user.id, "alarm_resolved", note[:500])

    def auto_resolve(self, kind: str, where: Where, reason: ResolveNote) -> None:
        """The condition behind an alarm is gone (restocked, expired lot removed…)."""
        alarm = self.find_open(kind, where)
        if alarm is not None:
            self.auto_resolve_known(alarm, reason)

    def auto_resolve_known(self, alarm: dict[str, Any], reason: ResolveNote) -> None:
        """:meth:`auto_resolve` of an open alarm the caller has already read."""
        self._set(alarm, "resolved", None, "alarm_resolved", reason)

    def _set(self, alarm: dict[str, Any], state: str, user: str | None, kind: str,
             note: str | None) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE alarms SET state=?, updated_ts=?, updated_by=? WHERE id=?",
                      (state, self.store.now_iso(), user, alarm["id"]))
            self.store.append(JournalEntry(
                kind, user=user, drug=alarm["drug"], drawer=alarm["drawer"], row=alarm["row"],
                col=alarm["col"], lot=alarm["lot"], ref=alarm["ref"], code=alarm["kind"],
                detail={"alarm": alarm["id"], **({"note": note} if note else {})}))

    def list(self, *, include_resolved: bool = False) -> list[dict[str, Any]]:
        sql = "SELECT * FROM alarms"
        if not include_resolved:
            sql += " WHERE state != 'resolved'"
        return self.store.query(sql + " ORDER BY id")


def _roles(permission: str) -> frozenset[str]:
    from controller.auth import PERMISSIONS
    return PERMISSIONS[permission]
