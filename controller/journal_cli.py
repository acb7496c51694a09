"""``armoire journal verify|export|register``: read-only tools for the pharmacist and for
audits."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from controller import localtime
from controller import register as drug_register
from controller.alarms import translated
from controller.cli import error_line
from controller.cli_support import (
    DB_OPTION,
    check_outputs,
    database_given,
    write_atomic,
    zone_arg,
)
from controller.dates import parse_day
from controller.errors import InputError
from controller.journal import (
    damaged_journal,
    export,
    problem_of,
    projection_mismatches,
    verify,
)
from controller.store import db_uri


def open_readonly(path: str, given: tuple[str, str] = DB_OPTION
                  ) -> sqlite3.Connection:
    """The cabinet's database, read-only: audits and exports never write to it. ``given``
    (English, French) is where the path came from, as the refusals name it: the option
    typed, or the configuration's ``[database] path`` (an option nobody gave, named in
    the refusal, sent the technician looking for it)."""
    if not Path(path).is_file():
        raise InputError(f"{given[0]}: no database at {path}",
                         f"{given[1]} : aucune base à {path}", code="DB_NOT_FOUND")
    uri = db_uri(path, "ro")
    try:
        # Autocommit: the reads' transaction is the one :func:`reading` begins itself.
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        conn.execute("SELECT 1 FROM journal LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise unreadable_db(path, exc, given) from exc
    return conn


def unreadable_db(path: str, exc: sqlite3.DatabaseError,
                  given: tuple[str, str] = DB_OPTION) -> InputError:
    """The error for a database that fails to open or to read: not SQLite, not Armoire's, or
    damaged past the pages :func:`open_readonly` reads. A tool that reads more of it later
    raises this too, so that a corrupt copy is a one-line refusal, never a traceback."""
    return InputError(f"{given[0]}: {path} cannot be read as an Armoire database ({exc})",
                      f"{given[1]} : {path} n'est pas lisible comme base Armoire ({exc})",
                      code="DB_UNREADABLE")


@contextmanager
def reading(path: str, given: tuple[str, str] = DB_OPTION
            ) -> Iterator[sqlite3.Connection]:
    """:func:`open_readonly`, closed on leaving, with any read error inside the block
    refused as :func:`unreadable_db`.

    The opening check reads one journal row; damage past the pages it reads shows only
    when a tool reads the rest (the whole journal, the stock, the pockets). Every ``--db``
    tool reads inside this block, so such a copy is a one-line ``DB_UNREADABLE``, exit 2,
    never a traceback; tools build their output before printing or writing any of it.

    The block is one read transaction: in WAL mode, one snapshot of the database. The tools
    may run beside the controller, and each reads in several statements (the chain, the
    journal's replay, the stock table); a withdrawal committed between two of them would
    otherwise be reported as a stock MISMATCH, and an export could hold rows the chain
    check never saw.
    """
    conn = open_readonly(path, given)
    try:
        conn.execute("BEGIN")
        yield conn
    except sqlite3.DatabaseError as exc:
        raise unreadable_db(path, exc, given) from exc
    finally:
        conn.close()


def _verify(args: argparse.Namespace) -> int:
    if args.db is None and args.config is None:
        raise InputError("verify: give --db FILE or --config FILE",
                         "verify : donner --db FICHIER ou --config FICHIER")
    given = DB_OPTION
    if args.db is None:
        from controller.backup_cli import configured_database

        args.db = str(configured_database(args.config))
        given = database_given(args.config)
    with reading(args.db, given) as conn:
        verdict = verify(conn)
        mismatches = projection_mismatches(conn) if verdict.ok else []
    if not verdict.ok:
        print(f"journal TAMPERED at row {verdict.bad_seq}: {verdict.reason} "
              f"({verdict.rows} rows verified before it)", file=sys.stderr)
    for mismatch in mismatches[:20]:
        print(f"stock MISMATCH {mismatch.describe()}", file=sys.stderr)
    problem = problem_of(verdict, mismatches)
    if problem is not None:
        # Last, in the cabinet's one-line form: what `journalctl -u armoire-verify -b` shows
        # the technician after a boot, with what to do, in both languages.
        print(error_line("JOURNAL_INTEGRITY", f"{problem}: {VERIFY_FAILED[0]}",
                         f"{translated(problem, 'fr')} : {VERIFY_FAILED[1]}"), file=sys.stderr)
        return 1
    print(f"journal OK: {verdict.rows} rows, head {verdict.head}; stock matches the journal "
          f"/ journal intègre : {verdict.rows} lignes ; le stock correspond au journal")
    return 0


#: What to do when the boot's verification fails (docs/deploy.md, "Watchdogs"): the
#: cabinet keeps running (a locked cabinet keeps nurses from the drugs), the pharmacist
#: reads the journal, and the remedy is a backup that passes, the live file kept aside.
VERIFY_FAILED = (
    "the cabinet keeps running; call the pharmacist, who reads the journal, then put back "
    "the newest backup that passes its checks with armoire restore, which keeps this "
    "database aside (docs/deploy.md, \"Restoring\")",
    "l'armoire continue de fonctionner ; appelez le pharmacien, qui lit le journal, puis "
    "remettez la dernière sauvegarde qui passe ses contrôles avec armoire restore, qui "
    "garde cette base de côté (docs/deploy.md, « Restoring »)")


def _export(args: argparse.Namespace) -> int:
    """Every row, once the chain is checked: an export is what an auditor trusts, so a
    broken chain (or a row whose detail is not the JSON the cabinet writes) is refused with
    ``JOURNAL_INTEGRITY`` before anything is printed, never a traceback half-way."""
    with reading(args.db) as conn:
        verdict = verify(conn)
        rows = export(conn) if verdict.ok else []
    if not verdict.ok:
        raise damaged_journal(verdict.bad_seq, verdict.reason or "broken chain")
    for row in rows:
        if row.get("detail"):
            try:
                row["detail"] = json.loads(row["detail"])
            except ValueError:
                raise damaged_journal(row["seq"], "its detail is not JSON") from None
    out: Any = rows
    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    else:
        for r in rows:
            pocket = r["drawer"] or "-"
            if r["row"] is not None:
                pocket += f"-{r['row'] + 1}-{r['col'] + 1}"
            qty = "" if r["qty"] is None else r["qty"]
            print(f"{r['seq']:>6} {r['ts']} {r['kind']:<16} {r['user'] or '-':<10} "
                  f"{r['drug'] or '-':<12} {pocket:<8} {qty}")
    return 0


def database_zone(conn: sqlite3.Connection, given: str | None) -> ZoneInfo:
    """The zone whose days an offline tool cuts: ``--timezone`` if given, else the one the
    cabinet recorded in its database when it last started, else the system's, else UTC. A
    register read from a backup on a PC in another zone still starts its days at the ward's
    midnight. A recorded name this machine does not know is refused: guessing would move
    the days."""
    if given is not None:
        return localtime.zone(given)
    row = conn.execute("SELECT value FROM meta WHERE key = ?",
                       (localtime.META_KEY,)).fetchone()
    name = str(row[0]) if row is not None else localtime.system_zone_name() or "UTC"
    try:
        return localtime.zone(name)
    except ValueError:
        raise InputError(f"the database's time zone {name!r} is unknown here: give "
                         "--timezone", f"le fuseau horaire {name!r} de la base est inconnu "
                         "ici : indiquez --timezone", code="BAD_TIMEZONE") from None


def _day(text: str) -> date:
    try:
        return parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None


def _register(args: argparse.Namespace) -> int:
    """One drug's register, once the chain is checked: it is read from the journal alone
    and handed to auditors as the controlled drugs' record, so an edited row (a quantity, a
    patient) is refused with ``JOURNAL_INTEGRITY`` as the export refuses it, never printed
    as if it were the cabinet's."""
    if args.output:
        check_outputs([("-o", args.output)], [("--db", args.db)])
    if args.start and args.end and args.start > args.end:
        raise InputError("--from is after --to", "--from est après --to", code="BAD_PERIOD")
    with reading(args.db) as conn:
        verdict = verify(conn)
        if not verdict.ok:
            raise damaged_journal(verdict.bad_seq, verdict.reason or "broken chain",
                                  "register")
        if conn.execute("SELECT 1 FROM drugs WHERE id = ?", (args.drug,)).fetchone() is None:
            raise InputError(f"--drug: no drug {args.drug!r} in this cabinet",
                             f"--drug : aucun médicament {args.drug!r} dans cette armoire",
                             code="UNKNOWN_DRUG")
        movements = drug_register.build(conn, args.drug, args.start, args.end,
                                        database_zone(conn, args.timezone))
    text = drug_register.to_csv(movements)
    if args.output:
        write_atomic(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text.removeprefix("\ufeff"))
    return 0


def register(sub: Any) -> None:
    journal = sub.add_parser("journal", help="verify or export the tamper-evident journal / "
                                             "vérifier ou exporter le journal infalsifiable")
    jsub = journal.add_subparsers(dest="journal_command", required=True)
    v = jsub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad row / "
                        "vérifier la chaîne ; code 1 en nommant la première ligne fautive",
                        description="Check the journal's hash chain and the stock against "
                        "the journal, read-only; exit 0 when both hold, 1 naming the first bad "
                        "row or the stock differences. / Vérifie la chaîne d'empreintes du "
                        "journal et le stock selon le journal, en lecture seule ; code 0 "
                        "quand tout concorde, 1 en nommant la première ligne fautive ou les "
                        "écarts de stock.")
    v.add_argument("--db", help="the database (wins over --config) / la base (prime sur "
                                "--config)")
    v.add_argument("--config", type=Path, metavar="FILE",
                   help="cabinet configuration giving [database] path (the boot unit's way) "
                        "/ configuration de l'armoire donnant [database] path (ce que fait "
                        "l'unité de démarrage)")
    v.set_defaults(func=_verify)
    e = jsub.add_parser("export", help="print every journal row / afficher chaque ligne du journal")
    e.add_argument("--db", required=True, help="the database / la base")
    e.add_argument("--json", action="store_true",
                   help="one JSON array / un seul tableau JSON")
    e.set_defaults(func=_export)
    r = jsub.add_parser("register", help="one drug's movements and running balance, as CSV "
                        "(the controlled-drug register) / mouvements et solde d'un "
                        "médicament en CSV (registre des stupéfiants)")
    r.add_argument("--db", required=True, help="the database / la base")
    r.add_argument("--drug", required=True,
                   help="the drug's id in the formulary / identifiant du médicament au "
                        "livret")
    r.add_argument("--from", dest="start", type=_day,
                   help="first day, YYYY-MM-DD (the ward's day, see --timezone) / premier "
                        "jour, AAAA-MM-JJ (jour du service, voir --timezone)")
    r.add_argument("--to", dest="end", type=_day,
                   help="last day, YYYY-MM-DD / dernier jour, AAAA-MM-JJ")
    r.add_argument("--timezone", type=zone_arg,
                   help="zone whose days --from/--to are, such as Europe/Paris (default: the "
                        "one the cabinet recorded in the database, else this system's) / "
                        "fuseau des jours de --from/--to, comme Europe/Paris (par défaut : "
                        "celui que l'armoire a enregistré dans la base, sinon celui du "
                        "système)")
    r.add_argument("-o", "--output", help="CSV file (default: standard output) / fichier CSV "
                                          "(par défaut : la sortie standard)")
    r.set_defaults(func=_register)
