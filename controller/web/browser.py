"""Launching Debian's Chromium through Playwright, for the browser tests and the screenshots.

Never ``playwright install``: the browser is the system's (/usr/bin/chromium, installed by
``make system-deps``), so the tests run offline and on the same browser as the kiosk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Playwright

CHROMIUM = os.environ.get("ARMOIRE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def chromium_path() -> str:
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        raise RuntimeError(
            f"Chromium is missing ({CHROMIUM}): the browser tests need Debian's chromium "
            "package; run `make system-deps` or `apt-get install chromium`")
    return path


def launch(playwright: Playwright, user_data_dir: Path, width: int = 800,
           height: int = 480, locale: str = "fr-FR") -> BrowserContext:
    """A persistent context on a fresh profile directory (Playwright refuses the
    --user-data-dir flag and takes the directory as a parameter instead). ``locale``: the
    browser's own language, which the pages must not depend on (a kiosk set up in English
    still shows each person's language)."""
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=chromium_path(), headless=True, args=ARGS,
        viewport={"width": width, "height": height}, locale=locale,
        timezone_id="Europe/Paris")
