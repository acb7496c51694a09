"""Reading what the technician's scanner sends.

A box can carry a plain drug id (the cabinet's own labels), a GTIN (EAN-13 / GTIN-14 from the
box), or a GS1 DataMatrix payload carrying GTIN (01), lot (10) and expiry (17) — the format of
the EU Falsified Medicines Directive codes. GS1 parsing is left to `biip`, a maintained
parser, rather than hand-written: application identifiers and their variable-length fields
are easy to get subtly wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from biip import ParseError, parse
from biip.gs1_messages import GS1Message

from controller.errors import InputError


@dataclass(frozen=True)
class Scan:
    raw: str
    gtin: str | None = None
    lot: str | None = None
    expiry: date | None = None


#: An AIM symbology identifier (ISO/IEC 15424): "]", the symbology's letter, a modifier.
#: A scanner set to send them (how a GS1 DataMatrix is told from a plain one) sends one
#: before every symbol it reads.
AIM_ID = re.compile(r"\][A-Za-z][0-9A-Za-z]")
#: The identifiers whose data is GS1 element strings (FNC1 in first position): GS1-128,
#: GS1 DataMatrix, GS1 QR Code, GS1 DataBar. biip reads them with their identifier.
GS1_MESSAGE_IDS = ("]C1", "]d2", "]Q3", "]e0")


def _gtin14(value: str) -> str:
    return value.zfill(14)


def gtin_check_ok(gtin: str) -> bool:
    """GS1 mod-10 check digit of a GTIN-14."""
    digits = [int(c) for c in gtin]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == digits[-1]


def read(raw: str) -> Scan:
    text = raw.strip()
    if not text or len(text) > 200 or not text.replace("\x1d", "").isprintable():
        raise InputError("unreadable scan", "lecture du code illisible", code="BAD_SCAN")
    if AIM_ID.match(text) and text[:3] not in GS1_MESSAGE_IDS:
        # Any other symbol (EAN/UPC ]E0 ]E4, ITF-14 ]I1, the cabinet's own label as Code 128
        # ]C0, DataMatrix ]d1, QR ]Q1...): the identifier only names the symbol, the data
        # follows. Taken whole, a box's EAN or a drug id label matched nothing (WRONG_SCAN).
        text = text[3:]
        if not text:
            raise InputError("unreadable scan", "lecture du code illisible", code="BAD_SCAN")
    if text.isdigit() and len(text) in (8, 12, 13, 14):
        # A bare EAN/GTIN. Matched digit for digit against the formulary; the check digit is
        # only reported (see gtin_check_ok) because the scanner has validated the symbol.
        return Scan(raw=text, gtin=_gtin14(text))
    try:
        if text.startswith("(01)"):
            return _from_elements(text, GS1Message.parse_hri(text).element_strings)
        if text.startswith((*GS1_MESSAGE_IDS, "\x1d")) or text.isdigit() or "\x1d" in text \
                or (text.startswith("01") and text[:16].isdigit()):
            result = parse(text)
            if result.gs1_message is None:
                raise ParseError("no GS1 message")
            return _from_elements(text, result.gs1_message.element_strings)
    except (ParseError, ValueError):
        # ValueError: biip also tries the text as a GS1 Digital Link URI, and urllib raises
        # it on a misread such as "]d2//x]y" (an invalid IPv6 host). Noise is unreadable,
        # never a crash that loses what the technician typed.
        raise InputError("this barcode is not a valid GS1 code",
                         "ce code-barres n'est pas un code GS1 valide", code="BAD_SCAN") from None
    return Scan(raw=text)  # the cabinet's own label: a drug id


def _from_elements(text: str, elements: Any) -> Scan:
    gtin = lot = None
    expiry = None
    for element in elements:
        ai = element.ai.ai
        if ai == "01":
            gtin = _gtin14(element.value)
        elif ai == "10":
            lot = element.value
        elif ai == "17" and element.date is not None:
            expiry = element.date
    if gtin is None:
        raise InputError("this barcode carries no GTIN", "ce code-barres ne porte pas de GTIN",
                         code="BAD_SCAN")
    return Scan(raw=text, gtin=gtin, lot=lot, expiry=expiry)
