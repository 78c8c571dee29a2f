"""Headless Chromium for the e2e tier: Debian's ``chromium`` and ``chromium-driver``, installed on
first use (browser downloads from elsewhere fail here), driven with Selenium."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)
INSTALL_TIMEOUT_SECONDS = 900
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", ROOT / ".artifacts" / "screenshots"))
saved_screenshots: list[Path] = []
"""What the tests saved, named at the end of the run (see conftest's terminal summary)."""


@cache
def ensure_chromium() -> None:
    """Installs Debian's chromium and its driver with apt when they are missing (once per run).

    The test processes of ``pytest -n`` take turns (a lock file): one installs, the others find it installed.
    """
    if CHROMIUM.is_file() and CHROMEDRIVER.is_file():
        return
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing: as root, apt-get install -y chromium chromium-driver")
    with (Path(tempfile.gettempdir()) / "activity-tracker-chromium-install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
            _apt_install(apt)


def _apt_install(apt: str) -> None:
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update"], [apt, "install", "-y", "chromium", "chromium-driver"]):
        done = subprocess.run(  # noqa: S603 - fixed arguments
            command, env=environment, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def new_driver(profile: Path) -> webdriver.Chrome:
    """A fresh headless Chromium (its own profile: empty cache, no cookies, no storage), browser logs kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    return driver


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    ensure_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        driver = new_driver(Path(profile))
        try:
            yield driver
        finally:
            driver.quit()


def set_viewport(driver: webdriver.Chrome, width: int, height: int = 900) -> None:
    """The page laid out at ``width`` CSS pixels (a phone's 375 included, below a window's minimum)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def save_screenshot(driver: webdriver.Chrome, name: str, width: int) -> Path:
    """A full-page PNG at ``width`` CSS pixels, under SCREENSHOT_DIR."""
    set_viewport(driver, width)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    set_viewport(driver, width, min(max(height, 600), 8000))
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}-{width}.png"
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    saved_screenshots.append(path)
    return path
