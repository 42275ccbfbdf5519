"""``python -m tuner dashboard`` seen in Debian's headless Chromium while the study runs: the page
shows the trials, and a trial that ends and one that starts later appear without a reload."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.dashboard.studies import Written
from trainables.simulated import curve

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
]
SCREENSHOT = ROOT / "docs" / "dashboard.png"
LRS = [3e-2, 1e-3, 3e-3, 1e-4, 8e-3, 5e-4, 2e-3, 6e-2, 4e-3, 1.5e-3]


def losses(lr: float, layers: int, steps: int) -> list[float]:
    return [curve({"lr": lr, "width": 64 * layers}, step)["loss"] for step in range(1, steps + 1)]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1250", f"--user-data-dir={tmp_path / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_follows_a_running_study(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    study = Written(tmp_path / "results" / "live", {"name": "loss", "goal": "minimize"})
    for i, lr in enumerate(LRS[:8]):  # ASHA-like: the worse half stopped at step 3
        layers = 1 + i % 4
        curve_ = losses(lr, layers, 9)
        study.trial("finished" if i % 2 == 0 else "pruned", curve_ if i % 2 == 0 else curve_[:3], lr=lr, layers=layers)
    running = study.start(lr=LRS[8], layers=3)
    for step, loss in enumerate(losses(LRS[8], 3, 4), 1):
        study.report(running, step, loss=loss)
    server = subprocess.Popen(
        [sys.executable, "-m", "tuner", "dashboard", str(study.folder), "--port", "0"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+/dashboard/studies/\d+", line)
        assert found, line + server.stderr.read() if server.stderr else line
        url = found.group(0)
        wait = WebDriverWait(browser, 30)

        def page() -> str:
            return str(browser.find_element(By.TAG_NAME, "body").text)

        browser.get(f"{url}/trials")
        wait.until(lambda _: "9 Trials" in page())
        assert page().count("Running") == 1 and page().count("Pruned") == 4
        assert "trial_id t0001" in page()  # tuner's own id, and its status
        # The running trial ends and another starts and ends: the open page shows both.
        for step, loss in enumerate(losses(LRS[8], 3, 9)[4:], 5):
            study.report(running, step, loss=loss)
        study.end(running, "finished")
        study.trial("finished", losses(LRS[9], 2, 9), lr=LRS[9], layers=2)
        wait.until(lambda _: "10 Trials" in page() and "Running" not in page())
        assert "Trial 9" in page()
        study.done()
        browser.get(f"{url}/note")  # the study's note says how the run stands
        wait.until(lambda _: "the run is done" in page())
        browser.get(url)
        wait.until(lambda _: "Hyperparameter Importance" in page() and "loss" in page())
        shot = tmp_path / "dashboard.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("TUNER_SCREENSHOTS"):  # the docs' picture
            shutil.copy(shot, SCREENSHOT)
    finally:
        server.send_signal(signal.SIGINT)  # Ctrl-C: the usual way to stop it
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
