"""Alarms: raised by rules and faults, acknowledged and resolved by the right role.

One open alarm per (kind, pocket, lot, user): a rule that keeps firing does not bury the
screen, and two people locked out are two alarms, each closed on its own.
Every change is a journal row written in the same transaction as the alarm row, so the
journal tells who saw and who closed each alarm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.auth import User, require
from controller.errors import NotFound, PermissionDenied, StateError
from controller.store import JournalEntry, Store

KINDS = ("low_stock", "expiry", "expired", "drawer_fault", "discrepancy", "auth_lockout",
         "journal_integrity")

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

#: The English messages the cabinet stores (see Cabinet) and their French forms.
_FR_FORMS: list[tuple[re.Pattern[str], str]] = [(re.compile(en), fr) for en, fr in (
    (r"^pocket (?P<p>\S+): (?P<n>-?\d+) unit\(s\) left \(level (?P<l>-?\d+)\)$",
     "poche {p} : {n} unité(s) restante(s) (seuil {l})"),
    (r"^pocket (?P<p>\S+): counted (?P<n>-?\d+), expected (?P<e>-?\d+)$",
     "poche {p} : {n} compté(s), {e} attendu(s)"),
    (r"^lot (?P<lot>.+) in (?P<p>\S+) expired on (?P<d>[\d-]+)$",
     "lot {lot} dans {p} : périmé depuis le {d}"),
    (r"^lot (?P<lot>.+) in (?P<p>\S+) expires on (?P<d>[\d-]+)$",
     "lot {lot} dans {p} : périme le {d}"),
    (r"^operation #(?P<n>\d+) ended without a count$",
     "opération n°{n} terminée sans compte"),
    (r"^operation #(?P<n>\d+) interrupted \(power loss\): count the pocket$",
     "opération n°{n} interrompue (coupure de courant) : comptez la poche"),
    (r"^user (?P<u>\S+) locked after (?P<n>\d+) wrong PINs$",
     "utilisateur {u} bloqué après {n} codes erronés"),
    (r"^drawer (?P<d>\S+) opened without a command: count pocket (?P<p>\S+)$",
     "tiroir {d} ouvert sans commande : comptez la poche {p}"),
    (r"^drawer (?P<d>\S+) jammed part-open: count pocket (?P<p>\S+)$",
     "tiroir {d} bloqué entrouvert : comptez la poche {p}"),
    (r"^drawer (?P<d>\S+) found open at start: count pocket (?P<p>\S+)$",
     "tiroir {d} trouvé ouvert au démarrage : comptez la poche {p}"),
    (r"^drawer (?P<d>\S+) found open when its board came back: count pocket (?P<p>\S+)$",
     "tiroir {d} trouvé ouvert au retour de sa carte : comptez la poche {p}"),
    (r"^drawer (?P<d>\S+): (?P<k>.+)$", "tiroir {d} : {k}"),
    (r"^the database could not be read to the end \((?P<e>.*)\): run armoire journal "
     r"verify; if it is damaged, restore the last backup$",
     "la base n'a pas pu être lue jusqu'au bout ({e}) : lancez armoire journal verify ; "
     "si elle est endommagée, restaurez la dernière sauvegarde"),
    (r"^the integrity check could not finish \((?P<e>.*)\): run armoire journal verify$",
     "le contrôle d'intégrité n'a pas pu aboutir ({e}) : lancez armoire journal verify"),
    (r"^stock of (?P<w>\S+) lot (?P<lot>.+): (?P<f>on_hand|drug|expiry) is (?P<t>.*) in the "
     r"stock table, the journal says (?P<j>.*) \((?P<n>\d+) difference\(s\)\)$",
     "stock de {w} lot {lot} : {f} {t} dans la table du stock, {j} selon le journal "
     "({n} différence(s))"),
)]

_FR_FIELDS = {"on_hand": "quantité", "drug": "médicament", "expiry": "péremption"}

_FR_FAULTS = {"jammed": "bloqué", "switch fault": "capteur en défaut",
              "forced open": "ouvert de force", "offline": "hors ligne",
              "open at start": "ouvert au démarrage",
              "ajar at start": "entrouvert au démarrage",
              "open at link up": "ouvert au retour de sa carte",
              "ajar at link up": "entrouvert au retour de sa carte",
              "magnet failed": "aimant en défaut"}


def message(alarm: dict[str, Any], lang: str, drug_name: str | None = None) -> str:
    """The alarm's message in ``lang``. The stored message is English and shown as is in
    English; in French, a message the cabinet writes is translated, anything else becomes
    the kind's French title with the alarm's own fields (pocket, lot, drug)."""
    text = str(alarm.get("message") or "")
    if lang != "fr":
        return text
    for pattern, form in _FR_FORMS:
        match = pattern.match(text)
        if match:
            values = match.groupdict()
            if "k" in values:
                values["k"] = _FR_FAULTS.get(values["k"], values["k"])
            if "f" in values:
                values["f"] = _FR_FIELDS[values["f"]]
            return form.format(**values)
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

    def raise_(self, kind: str, where: Where, message: str, *, ref: int | None = None,
               user: str | None = None, refresh: bool = False) -> int:
        """Open the alarm, or return the one already open for the same thing. ``refresh``
        puts the new message on an open one: for a level (units left) that moves while the
        alarm stays open, where the first message would soon be wrong. Not journaled: the
        movements that changed the level are."""
        return self.raise_known(kind, where, message, self.find_open(kind, where), ref=ref,
                                user=user, refresh=refresh)

    def raise_known(self, kind: str, where: Where, message: str,
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
        self._set(alarm, "resolved", user.id, "alarm_resolved", note[:500])

    def auto_resolve(self, kind: str, where: Where, reason: str) -> None:
        """The condition behind an alarm is gone (restocked, expired lot removed…)."""
        alarm = self.find_open(kind, where)
        if alarm is not None:
            self.auto_resolve_known(alarm, reason)

    def auto_resolve_known(self, alarm: dict[str, Any], reason: str) -> None:
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
