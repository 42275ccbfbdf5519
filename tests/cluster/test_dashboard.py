"""Watching a study on the cluster: its named actors and trial tasks in the dashboard (a real
headless Chromium logs in with the token), and its metrics on the Prometheus endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster
from tests.conftest import ROOT

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# skipped before the cluster fixture would start a cluster for nothing
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
]

STUDY = """
name: dash
trainable: trainables.toy:sleep
metric: {name: loss, goal: minimize}
method: random
seed: 1
run_cap: 40
parameters:
  x: {min: 0.0, max: 1.0}
  seconds: {value: 1.0}
"""
SCREENSHOT = ROOT / "docs" / "dashboard-actors.png"


def started(folder: Path, trials: int, timeout: float = 120) -> None:
    journal = folder / "journal.jsonl"
    deadline = time.monotonic() + timeout
    while not (journal.exists() and journal.read_text().count('"e": "start"') >= trials):
        if time.monotonic() > deadline:
            raise TimeoutError("the study did not start its trials")
        time.sleep(0.2)


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            return str(page.read().decode())
    except OSError:
        return ""


def test_the_study_in_the_dashboard_and_in_prometheus(cluster: Cluster, tmp_path: Path) -> None:
    chromium, chromedriver = CHROMIUM, CHROMEDRIVER
    assert chromium is not None and chromedriver is not None
    (tmp_path / "dash.yaml").write_text(textwrap.dedent(STUDY))
    proc = cluster.popen("run", "dash.yaml", "--address", cluster.address, cwd=tmp_path)
    try:
        started(tmp_path / "results" / "dash", 3)
        # Prometheus: the study's metrics, from the node the driver reports to.
        deadline, text = time.monotonic() + 60, ""
        names = ("tuner_trials", "tuner_reports_total", "tuner_reports_per_second", "tuner_trial_metric")
        while time.monotonic() < deadline and not all(f"{name}{{" in text for name in names):
            text = "".join(scrape(node.metrics_port) for node in cluster.nodes)
            time.sleep(1)
        for name in names:  # each exported at least once within the minute
            assert f"{name}{{" in text, name
        assert 'study="dash"' in text
        # Trials by id in Ray's task list (what the Jobs and Timeline views show).
        listed = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(f"""
                import json
                from ray.util.state import list_tasks
                tasks = list_tasks(address="http://{cluster.dashboard}", filters=[("name", "=", "trial t0001")])
                print(json.dumps([t.name for t in tasks]))
            """)],
            env={**cluster.driver_env, "RAY_AUTH_MODE": "token"}, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout.strip().splitlines()[-1]) == ["trial t0001"]
        shot = dashboard_screenshot(cluster, chromium, chromedriver, tmp_path / "dashboard.png")
        if os.environ.get("TUNER_SCREENSHOTS"):  # the README's picture
            SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copy(shot, SCREENSHOT)
    finally:
        proc.terminate()  # SIGTERM: stops like Ctrl-C
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "continue with: python -m tuner resume" in err


def dashboard_screenshot(cluster: Cluster, chromium: str, chromedriver: str, path: Path) -> Path:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1500,900", f"--user-data-dir={path.parent / 'chromium'}"):  # fmt: skip
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        wait = WebDriverWait(browser, 60)
        browser.get(f"http://{cluster.dashboard}/#/actors")
        field = wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input[type=password]")))
        field.send_keys((cluster.folder / "token").read_text().strip())
        browser.find_element(By.XPATH, "//button[normalize-space()='Submit' or normalize-space()='SUBMIT']").click()
        browser.get(f"http://{cluster.dashboard}/#/actors")
        wait.until(lambda b: "tuner:dash:slot0" in b.find_element(By.TAG_NAME, "body").text)
        assert "tuner:dash:slot1" in browser.find_element(By.TAG_NAME, "body").text
        time.sleep(1)  # let the table settle
        browser.save_screenshot(str(path))
    finally:
        browser.quit()
    assert path.stat().st_size > 10_000
    return path
