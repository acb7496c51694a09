"""Screenshots of the main screens at the cabinet's size (800×480), for docs/ui.md.

    .venv/bin/python tools/screenshots.py --out docs/screenshots [--width 800 --height 480]

Starts the demo cabinet on the simulator (temporary database, nothing else touched), drives
Debian's Chromium through Playwright along the journeys people follow, and writes one PNG
per screen. Re-run it after changing a template or the stylesheet, and look at the result.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from controller import people  # noqa: E402
from controller.alarms import Where, text  # noqa: E402
from controller.auth import User  # noqa: E402
from controller.config import Config, load  # noqa: E402
from controller.store import JournalEntry  # noqa: E402
from controller.web.browser import launch  # noqa: E402
from controller.web.server import BackgroundServer  # noqa: E402

DEMO = REPO / "sim" / "demo"
PINS = {"ide1": "482913", "prep1": "551234", "pharma1": "918273"}


def demo_config(tmp: Path) -> Config:
    text = (DEMO / "cabinet.toml").read_text(encoding="utf-8")
    text = text.replace('seed = "demo-seed.json"', f'seed = "{DEMO / "demo-seed.json"}"')
    path = tmp / "cabinet.toml"
    path.write_text(text, encoding="utf-8")
    return load(path, sim=True)


def pin_login(page: Page, base: str, user: str, shot: Path | None = None) -> None:
    page.goto(base + "/")
    page.click(f"button[data-user='{user}']")
    for digit in PINS[user][:4]:
        page.click(f"#login .key[data-digit='{digit}']")
    if shot is not None:
        page.screenshot(path=str(shot))
    for digit in PINS[user][4:]:
        page.click(f"#login .key[data-digit='{digit}']")
    page.click("#login-ok")
    expect(page).to_have_url(re.compile(r".*/menu$"))


def add_history(cab: Any, days: int = 30) -> None:
    """A month of paracétamol withdrawals in the journal, so the par-level advisor has
    something to learn from (the demo seed has no history)."""
    store = cab.store
    clock = store.wallclock
    start = datetime.now(UTC) - timedelta(days=days)
    try:
        for day in range(days):
            store.wallclock = functools.partial(lambda d: start + timedelta(days=d), day)
            for drug, drawer, row, col in (("PARA500", "A", 0, 0), ("METOP50", "A", 1, 2)):
                store.append(JournalEntry("withdraw", user="ide1", drug=drug, drawer=drawer,
                                          row=row, col=col, qty=1 + (day * 7 + col) % 4,
                                          patient=f"P{day}"))
    finally:
        store.wallclock = clock


def logout(page: Page) -> None:
    page.click("#logout")
    expect(page).to_have_url(re.compile(r".*/$"))


def run(out: Path, width: int, height: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []

    def shot(page: Page, name: str, full: bool = False) -> None:
        path = out / f"{name}.png"
        page.screenshot(path=str(path), full_page=full)
        shots.append(path)

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        with BackgroundServer(demo_config(tmp), tmp / "demo.db") as server, \
                sync_playwright() as p:
            context = launch(p, tmp / "profile", width, height)
            context.set_default_timeout(15000)
            page = context.pages[0] if context.pages else context.new_page()
            base = server.url
            page.goto(base + "/")
            shot(page, "01-lock")
            pin_login(page, base, "ide1", out / "02-lock-pin.png")
            shots.append(out / "02-lock-pin.png")
            shot(page, "03-menu-nurse")
            page.click("#go-withdraw")
            page.fill("#patient", "P-042")
            page.click("#drug-search")  # the on-screen keyboard comes up; typed on its keys
            for key in "hydr":
                page.click(f"#osk button[data-char='{key}']")
            shot(page, "04-withdraw-search")
            page.click("label.drug-option:has(input[value=HYDROX25])")
            page.click("button[data-step='1'][data-for='qty']")
            page.click("#go")
            page.wait_for_timeout(300)
            shot(page, "05-drawer-opening")
            expect(page.locator("#op-msg")).to_contain_text("Prenez")
            shot(page, "06-take-from-pocket")
            page.fill("#count", "16")
            page.click("#confirm-count")
            page.click("#sim-close-A")
            expect(page).to_have_url(re.compile(r".*/menu$"))
            page.click("#go-waste")
            page.fill("#drug-search", "morph")
            page.click("label.drug-option:has(input[value=MORPH10])")
            shot(page, "07-waste-witness")
            page.click("#witness")  # the keyboard: its Enter is "Suivant", to the PIN pad
            for key in "ide2":
                page.click(f"#osk button[data-char='{key}']")
            page.click("#osk [data-osk=accents]")  # the accented letters, in the digits' place
            page.click("#osk [data-osk=shift]")
            shot(page, "26-waste-witness-keyboard")
            page.click("#osk [data-osk=enter]")  # Suivant: the keyboard goes, the pad shows
            expect(page.locator("#witness_pin-pad")).to_be_focused()
            page.goto(base + "/menu")
            logout(page)

            pin_login(page, base, "prep1")
            page.click("#go-restock")
            shot(page, "08-restock-picklist")
            page.click("#pick-A-2-3")
            page.fill("#lot", "ME-9001")
            page.fill("#expiry", "2028-01-31")
            page.click("#scan")
            page.keyboard.type("03400930000014")
            page.keyboard.press("Enter")
            expect(page.locator("#flash")).to_contain_text("WRONG_SCAN")
            shot(page, "09-restock-wrong-scan")
            logout(page)

            cab = server.runtime.cabinet if server.runtime else None
            assert cab is not None
            server.call(lambda: cab.alarms.raise_(
                "discrepancy", Where("MORPH10", "B", 0, 0),
                text("counted", p="B-1-1", n=11, e=12)))
            page.set_viewport_size({"width": width, "height": height})
            page.goto(base + "/pharmacy/login")
            shot(page, "10-pharmacy-login")
            page.fill("#user_id", "pharma1")
            page.fill("#pin", PINS["pharma1"])
            page.click("#ph-login")
            time.sleep(0.2)
            shot(page, "11-pharmacy-alarms")
            page.click("#tab-journal")
            shot(page, "12-pharmacy-journal")
            page.click("#tab-users")
            shot(page, "13-pharmacy-users")
            page.click("#tab-cabinet")
            shot(page, "14-pharmacy-cabinet")
            page.click("#tab-formulary")
            shot(page, "23-pharmacy-formulary", full=True)
            page.click("#tab-layout")
            page.click("#compute-layout")
            expect(page.locator("#scores")).to_be_visible(timeout=30000)
            shot(page, "15-pharmacy-layout", full=True)
            server.call(lambda: add_history(cab))
            page.click("#tab-levels")
            page.click("#compute-levels")
            expect(page.locator(".level").first).to_be_visible(timeout=30000)
            shot(page, "16-pharmacy-levels", full=True)
            page.click("#tab-layout")
            page.click("#approve-layout")
            expect(page.locator("#layout-tasks")).to_be_visible()
            shot(page, "17-pharmacy-layout-approved")
            page.click("#logout")

            pin_login(page, base, "prep1")
            shot(page, "18-menu-technician")
            page.click("#go-relayout")
            shot(page, "19-relayout-tasks")
            page.click("#start-task")
            expect(page.locator("#op-msg")).to_contain_text("comptez 0")
            shot(page, "20-relayout-move-out")
            page.fill("#count", "0")
            page.click("#confirm-count")
            page.click("#close-drawer")
            expect(page).to_have_url(re.compile(r".*/relayout$"))
            page.goto(base + "/count")
            shot(page, "21-count-pocket")
            page.goto(base + "/pin")
            shot(page, "24-my-pin")
            server.call(lambda: cab.units["B"].fire("ev_switch_fault",
                                                    detail={"switch": "closed"}))
            page.goto(base + "/menu")
            page.click("#go-drawers")
            shot(page, "22-drawers-reset")
            page.goto(base + "/menu")
            logout(page)
            admin = User("admin1", "IT Admin", "admin", "fr")
            server.call(lambda: people.enrol_badge(cab, "ide1", "04A1B2C3D4E580",
                                                   actor=admin))
            page.goto(base + "/")
            page.keyboard.type("04A1B2C3D4E580")  # the badge reader
            page.keyboard.press("Enter")
            expect(page).to_have_url(re.compile(r".*/login/pin$"))
            for digit in PINS["ide1"][:3]:
                page.click(f"#badge-login .key[data-digit='{digit}']")
            shot(page, "25-badge-pin")
            context.close()
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args(argv)
    for path in run(args.out, args.width, args.height):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
