"""People's accounts, kept by pharmacists and admins, and PINs known to their owner only.

Logging in, sessions and the lockout live in the cabinet (:class:`Cabinet`), which every
screen goes through; creating, deactivating and unlocking accounts, and changing PINs, are
here, checked in the same way whoever calls (pharmacy pages, tools, tests) and journaled in
the same transaction as the change. Only an admin creates, resets, unlocks, deactivates or
reactivates an admin.

A PIN is what puts a name in the journal beside every controlled drug taken, so only its
owner may know it. A PIN someone else chose (the one given when the account was created, or
a reset after a forgotten one) is marked ``must_change_pin``: the cabinet refuses every
action under it (``PIN_CHANGE_REQUIRED``, :meth:`Cabinet.acting` and the operations' checks)
until the person has chosen her own, here.

Changing one's own PIN asks for the current one, checked like a login (a wrong one counts
towards the lockout): a session left open at the cabinet must not let a passer-by take the
account over. Neither PIN ever reaches the journal or the logs.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Any

from controller import badge
from controller.alarms import Alarms, Where, note
from controller.auth import PinHasher, User, check_pin_format, check_role, check_user_id
from controller.badge import check_uid
from controller.cabinet import Cabinet
from controller.errors import InputError, NotFound, PermissionDenied, RuleViolation
from controller.store import JournalEntry, Store


def users(cabinet: Cabinet) -> list[dict[str, Any]]:
    """People as the screens list them; never the PIN hash, nor the badge's."""
    return cabinet.store.query(
        "SELECT id, name, role, lang, locked, failed, active, must_change_pin, "
        "EXISTS (SELECT 1 FROM badges b WHERE b.user = users.id) AS has_badge FROM users "
        "ORDER BY active DESC, role, name")


async def create_user(cabinet: Cabinet, user_id: str, name: str, role: str, pin: str,
                      lang: str = "fr", *, actor: User | None = None) -> None:
    """A new person with an initial PIN (hashed off the loop; the PIN itself is never
    stored). Whoever created her knows it, so she must change it at her first login."""
    by = cabinet.acting(actor, "manage_users")
    user_id, name = _checked_id(user_id), _checked_name(name)
    check_role(role)
    if role == "admin" and by.role != "admin":
        raise PermissionDenied("only an admin may create an admin",
                               "seul un administrateur peut créer un administrateur",
                               code="FORBIDDEN")
    _check_lang(lang)
    check_pin_format(pin)
    taken = "SELECT 1 FROM users WHERE id = ?"
    if cabinet.store.query(taken, (user_id,)):
        raise _taken(user_id)
    pin_hash = await cabinet.hash_pin(pin)
    with cabinet.store.transaction() as c:
        if c.execute(taken, (user_id,)).fetchone():  # created while the PIN was hashed
            raise _taken(user_id)
        c.execute("INSERT INTO users (id, name, role, pin_hash, lang, must_change_pin) "
                  "VALUES (?, ?, ?, ?, ?, 1)", (user_id, name, role, pin_hash, lang))
        cabinet.store.append(JournalEntry("user_created", user=by.id,
                                          detail={"id": user_id, "role": role}))


def _checked_id(user_id: str) -> str:
    return check_user_id(str(user_id).strip())


def _checked_name(name: str) -> str:
    name = str(name).strip()
    if not name or len(name) > 80:
        raise InputError("give the person's name (80 characters at most)",
                         "indiquez le nom de la personne (80 caractères au plus)",
                         code="BAD_NAME")
    return name


def _check_lang(lang: str) -> None:
    if lang not in ("fr", "en"):
        raise InputError("language: fr or en", "langue : fr ou en", code="BAD_LANG")


def _taken(user_id: str) -> RuleViolation:
    return RuleViolation(f"user id {user_id!r} is already taken",
                         f"l'identifiant {user_id!r} est déjà pris", code="USER_EXISTS")


def deactivate_user(cabinet: Cabinet, user_id: str, *, actor: User | None = None) -> None:
    """A person who left: kept for the journal's sake, but can no longer log in; her session
    at the cabinet ends (after her running operation, if any)."""
    by = cabinet.acting(actor, "manage_users")
    if user_id == by.id:
        raise RuleViolation("you cannot deactivate yourself",
                            "vous ne pouvez pas vous désactiver vous-même",
                            code="SELF_DEACTIVATE")
    target = cabinet.user(user_id)
    if target["role"] == "admin" and by.role != "admin":
        raise PermissionDenied("only an admin may deactivate an admin",
                               "seul un administrateur peut désactiver un administrateur",
                               code="FORBIDDEN")
    with cabinet.store.transaction() as c:
        c.execute("UPDATE users SET active=0 WHERE id=?", (user_id,))
        # Her badge goes with her account: it opens nothing now, and the same card may be
        # enrolled again for a new account of hers (one badge, one person).
        had_badge = c.execute("DELETE FROM badges WHERE user=?", (user_id,)).rowcount > 0
        cabinet.store.append(JournalEntry("user_deactivated", user=by.id, detail={
            "id": user_id, **({"badge_revoked": True} if had_badge else {})}))
    cabinet.end_session_of(user_id, "deactivated")


def unlock_user(cabinet: Cabinet, user_id: str, *, actor: User | None = None) -> None:
    """A locked-out person may try her PIN again. An admin's lockout is lifted by an admin
    only (or from the console): it is what stops someone guessing the PIN of the account
    that can make admins, and a pharmacist lifting it would hand them more guesses."""
    by = cabinet.acting(actor, "manage_users")
    target = cabinet.user(user_id)
    if target["role"] == "admin" and by.role != "admin":
        raise PermissionDenied("only an admin may unlock an admin",
                               "seul un administrateur peut déverrouiller un administrateur",
                               code="FORBIDDEN")
    with cabinet.store.transaction() as c:
        c.execute("UPDATE users SET locked=0, failed=0 WHERE id=?", (user_id,))
        cabinet.store.append(JournalEntry("user_unlocked", user=by.id,
                                          detail={"id": user_id}))
        cabinet.close_lockout_alarm(user_id, by, note("unlocked", u=user_id))


async def change_own_pin(cabinet: Cabinet, current_pin: str, new_pin: str, *,
                         actor: User | None = None) -> User:
    """The logged-in person (``actor`` for a pharmacy page, else the touchscreen's user)
    replaces her PIN; returns her. Journaled ``pin_changed``.

    Any other session opened under the old PIN is no longer hers alone: the caller ends the
    other browser sessions, and a change made from a pharmacy page ends the touchscreen's
    session of the same person (whoever stands at the cabinet with it)."""
    user = actor if actor is not None else cabinet.current_user()
    if actor is None:
        cabinet.touch()
    check_pin_format(new_pin)
    if new_pin == current_pin:
        raise RuleViolation("choose a PIN different from the current one",
                            "choisissez un code PIN différent de l'actuel",
                            code="PIN_UNCHANGED")
    before = cabinet.store.query("SELECT pin_hash FROM users WHERE id=?", (user.id,))
    # Counted like a login: wrong current PINs lock the account at the same limit.
    await cabinet.authenticate_async(user.id, current_pin)
    pin_hash = await cabinet.hash_pin(new_pin)
    with cabinet.store.transaction() as c:
        # Only over the PIN that was checked: a reset made while the new one was hashed
        # wins, and this change is refused rather than silently undoing it.
        cur = c.execute("UPDATE users SET pin_hash=?, must_change_pin=0 WHERE id=? "
                        "AND pin_hash=?", (pin_hash, user.id,
                                           before[0]["pin_hash"] if before else None))
        if not cur.rowcount:
            raise RuleViolation("your PIN was reset meanwhile: log in again",
                                "votre code PIN a été réinitialisé entre-temps : "
                                "reconnectez-vous", code="PIN_CHANGED_MEANWHILE")
        cabinet.store.append(JournalEntry("pin_changed", user=user.id))
    if actor is not None:
        cabinet.end_session_of(user.id, "pin_changed")
    return user


async def reset_pin(cabinet: Cabinet, user_id: str, new_pin: str, *,
                    actor: User | None = None) -> None:
    """A person forgot her PIN: a pharmacist or an admin gives her a new one, which she
    must change at her next login. The reset also unlocks her account (the usual reason for
    a reset is a lockout after a forgotten PIN), and ends her session at the cabinet, whose
    PIN is no longer hers alone. Journaled ``pin_reset`` (who reset whose PIN)."""
    by = cabinet.acting(actor, "manage_users")
    if user_id == by.id:
        raise RuleViolation("change your own PIN with your current one",
                            "changez votre propre code PIN avec l'actuel", code="OWN_PIN")
    target = cabinet.user(user_id)
    if target["role"] == "admin" and by.role != "admin":
        raise PermissionDenied("only an admin may reset an admin's PIN",
                               "seul un administrateur peut réinitialiser le code d'un "
                               "administrateur", code="FORBIDDEN")
    check_pin_format(new_pin)
    pin_hash = await cabinet.hash_pin(new_pin)
    with cabinet.store.transaction() as c:
        _give_temporary_pin(cabinet, c, user_id, pin_hash, by)
    cabinet.end_session_of(user_id, "pin_reset")


def _give_temporary_pin(cabinet: Cabinet, c: sqlite3.Connection, user_id: str,
                        pin_hash: str, by: User) -> None:
    """Inside the caller's transaction: a PIN someone else chose, so one its owner must
    replace; it unlocks the account (closing its lockout alarm), and the journal says whose
    PIN was reset by whom, whether for a forgotten PIN or a reactivation."""
    c.execute("UPDATE users SET pin_hash=?, must_change_pin=1, locked=0, failed=0 "
              "WHERE id=?", (pin_hash, user_id))
    cabinet.store.append(JournalEntry("pin_reset", user=by.id, detail={"id": user_id}))
    cabinet.close_lockout_alarm(user_id, by, note("pin_reset", u=user_id))


async def reactivate_user(cabinet: Cabinet, user_id: str, new_pin: str, *,
                          actor: User | None = None) -> None:
    """A person back (from leave, say) gets her own account again, same id, so that the
    journal keeps naming her by one id. Whoever may deactivate may reactivate
    (``manage_users``; an admin's account, an admin only).

    Her old PIN does not come back: unused for months, it may have been written down or
    told to a colleague meanwhile, and nobody can tell. She gets a temporary PIN, which she
    must change at her first login, as a new account does; journaled ``user_reactivated``
    then ``pin_reset``, in one transaction. Her badge is not given back: deactivation
    deleted it, and the card may since have been lost, handed back or given to someone
    else; an admin enrols it again once she has it in hand."""
    by = cabinet.acting(actor, "manage_users")
    user_id = str(user_id).strip()
    rows = cabinet.store.query("SELECT role, active FROM users WHERE id=?", (user_id,))
    if not rows:
        raise NotFound(f"unknown user {user_id!r}", f"utilisateur inconnu {user_id!r}",
                       code="UNKNOWN_USER")
    if rows[0]["role"] == "admin" and by.role != "admin":
        raise PermissionDenied("only an admin may reactivate an admin",
                               "seul un administrateur peut réactiver un administrateur",
                               code="FORBIDDEN")
    check_pin_format(new_pin)
    pin_hash = await cabinet.hash_pin(new_pin)
    with cabinet.store.transaction() as c:
        # Checked inside the transaction: two pharmacists reactivating her at once make
        # one reactivation, not two PIN resets.
        if c.execute("SELECT active FROM users WHERE id=?", (user_id,)).fetchone()[0]:
            raise RuleViolation(f"{user_id} is already active", f"{user_id} est déjà actif",
                                code="USER_ACTIVE")
        c.execute("UPDATE users SET active=1 WHERE id=?", (user_id,))
        cabinet.store.append(JournalEntry("user_reactivated", user=by.id,
                                          detail={"id": user_id}))
        _give_temporary_pin(cabinet, c, user_id, pin_hash, by)


def enrol_badge(cabinet: Cabinet, user_id: str, raw_uid: str, *,
                actor: User | None = None) -> bool:
    """Give a person the badge the desk reader typed (``raw_uid``), replacing hers if she
    had one; returns whether one was replaced. Admins only (``manage_badges``). A badge
    held by someone else is ``BADGE_TAKEN``: one badge opens one account. Journaled
    ``badge_enrolled`` (who, for whom), never the UID nor its hash; a ``BADGE_TAKEN``
    refusal is journaled ``badge_taken`` and counts towards the lock of an admin trying
    numbers (:meth:`Cabinet.badge_refused`)."""
    by = cabinet.acting(actor, "manage_badges")
    uid = check_uid(raw_uid)
    cabinet.user(user_id)  # an active person, else UNKNOWN_USER
    try:
        return _set_badge(cabinet.store, user_id, cabinet.badge_hash_of(uid), by.id)
    except RuleViolation as exc:
        if exc.code == "BADGE_TAKEN":  # she learnt that this number is enrolled
            cabinet.badge_refused(by.id, taken_for=user_id)
        raise


def revoke_badge(cabinet: Cabinet, user_id: str, *, actor: User | None = None) -> None:
    """A lost or stolen badge opens nothing from now on. Journaled ``badge_revoked``."""
    by = cabinet.acting(actor, "manage_badges")
    cabinet.user(user_id)
    _drop_badge(cabinet.store, user_id, by.id)


def _set_badge(store: Store, user_id: str, badge_hash: str, by: str | None) -> bool:
    with store.transaction() as c:
        holder = c.execute("SELECT user FROM badges WHERE hash=?", (badge_hash,)).fetchone()
        if holder is not None and holder[0] != user_id:
            raise RuleViolation(f"this badge is already enrolled for {holder[0]}: revoke it "
                                "there first", f"ce badge est déjà enregistré pour "
                                f"{holder[0]} : retirez-le d'abord", code="BADGE_TAKEN")
        replaced = c.execute("DELETE FROM badges WHERE user=?", (user_id,)).rowcount > 0
        c.execute("INSERT INTO badges (user, hash, enrolled_ts, enrolled_by) "
                  "VALUES (?, ?, ?, ?)", (user_id, badge_hash, store.now_iso(),
                                          by or "console"))
        store.append(JournalEntry("badge_enrolled", user=by, detail={
            "id": user_id, "replaced": replaced, **({} if by else {"by": "console"})}))
    return replaced


def _drop_badge(store: Store, user_id: str, by: str | None) -> None:
    with store.transaction() as c:
        if not c.execute("DELETE FROM badges WHERE user=?", (user_id,)).rowcount:
            raise RuleViolation(f"{user_id} has no badge", f"{user_id} n'a pas de badge",
                                code="NO_BADGE")
        store.append(JournalEntry("badge_revoked", user=by, detail={
            "id": user_id, **({} if by else {"by": "console"})}))


def console_revoke_all(store: Store) -> int:
    """Every badge revoked at once, from the console: the way out when the badge key is
    lost (its badges can never be recognised again). The next start makes a new key, and
    people's badges are enrolled again. Journaled ``badges_revoked`` (how many)."""
    with store.transaction() as c:
        count = c.execute("DELETE FROM badges").rowcount
        store.append(JournalEntry("badges_revoked", detail={"count": count,
                                                            "by": "console"}))
    return int(count)


def console_badge(store: Store, key: bytes | None, user_id: str,
                  raw_uid: str | None) -> bool:
    """``armoire badge``: enrol (``raw_uid`` given) or revoke a badge from the Pi's
    console, controller stopped: for the desk without a browser, or a first admin's own
    badge. Journaled like the pharmacy page's, with ``by: console``. Returns whether a
    badge was replaced (False for a revocation)."""
    user_id = str(user_id).strip()
    if not store.query("SELECT 1 FROM users WHERE id=? AND active=1", (user_id,)):
        raise NotFound(f"unknown user {user_id!r}", f"utilisateur inconnu {user_id!r}",
                       code="UNKNOWN_USER")
    if raw_uid is None:
        _drop_badge(store, user_id, None)
        return False
    if key is None:
        raise ValueError("enrolling a badge needs the cabinet's key")
    return _set_badge(store, user_id, badge.badge_hash(key, check_uid(raw_uid)), None)


def one_time_pin() -> str:
    """Eight random digits that pass the PIN rules, for a PIN its owner must change."""
    while True:
        pin = f"{secrets.randbelow(10**8):08d}"
        try:
            check_pin_format(pin)
        except InputError:
            continue
        return pin


def console_admin(store: Store, hasher: PinHasher, user_id: str, name: str,
                  lang: str = "fr") -> tuple[str, bool]:
    """The first admin of a new cabinet, or a new PIN for an admin nobody else can reset
    (the only one, locked out or forgotten): from the Pi's console, with the controller
    stopped. Nobody is logged in, so the journal row names no user and says ``console``.

    The PIN is drawn here and returned once (never stored, logged or journaled): the IT
    person hands it over, and its owner must choose her own at her first login. Returns the
    PIN and whether the account was created. Not for other roles, and not for an account
    that was deactivated: those are kept from the pharmacy pages, by a person the journal
    can name.
    """
    # An existing admin is found by the id as stored, even one an older rule let through
    # (``x.``): the console is the last way back in, so it must not refuse her own id.
    user_id = str(user_id).strip()
    _check_lang(lang)
    rows = store.query("SELECT role, active FROM users WHERE id=?", (user_id,))
    if not rows:
        user_id = _checked_id(user_id)
    if rows and rows[0]["role"] != "admin":
        raise RuleViolation(f"{user_id} is not an admin: reset that PIN from the pharmacy "
                            "pages", f"{user_id} n'est pas administrateur : réinitialisez "
                            "ce code depuis les pages pharmacie", code="NOT_ADMIN")
    if rows and not rows[0]["active"]:
        raise RuleViolation(f"{user_id} was deactivated: create a new admin instead",
                            f"{user_id} a été désactivé : créez plutôt un nouvel "
                            "administrateur", code="USER_INACTIVE")
    if not rows:
        name = _checked_name(name)
    pin = one_time_pin()
    pin_hash = hasher.hash(pin)
    with store.transaction() as c:
        if rows:
            c.execute("UPDATE users SET pin_hash=?, must_change_pin=1, locked=0, failed=0 "
                      "WHERE id=?", (pin_hash, user_id))
            store.append(JournalEntry("pin_reset", detail={"id": user_id, "by": "console"}))
            Alarms(store).auto_resolve("auth_lockout", Where(user=user_id),
                                       note("console_pin_reset", u=user_id))
        else:
            c.execute("INSERT INTO users (id, name, role, pin_hash, lang, must_change_pin) "
                      "VALUES (?, ?, 'admin', ?, ?, 1)", (user_id, name, pin_hash, lang))
            store.append(JournalEntry("user_created", detail={"id": user_id, "role": "admin",
                                                              "by": "console"}))
    return pin, not rows


__all__ = ["change_own_pin", "console_admin", "console_badge", "console_revoke_all",
           "create_user", "deactivate_user", "enrol_badge", "reactivate_user", "reset_pin",
           "revoke_badge", "unlock_user", "users"]
