"""The report, the results table and ``train --config``, from real small studies."""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

import tuner
from tests.conftest import cli_here
from tuner.config import load_study
from tuner.report import CHARTS, write_report
from tuner.report._charts import ONLY_POPULATION, ONLY_SEVERAL

PNG = b"\x89PNG\r\n\x1a\n"

TOY = """
name: toy
trainable: trainables.toy:faulty
metric: {{name: loss, goal: minimize}}
method: random
seed: 1
run_cap: {n}
early_terminate: {{type: asha, max_t: 3, grace_period: 1, reduction_factor: 2}}
parameters:
  x: {{distribution: log_uniform_values, min: 0.01, max: 10}}
  mode: {{values: [ok, ok, ok, ok, ok, ok, raise]}}
  other: {{values: [a, b, c]}}
"""


@pytest.mark.slow
def test_every_chart_is_drawn_and_embedded(ray_local: None, in_tmp: Path) -> None:
    out = tuner.run(load_study(text=textwrap.dedent(TOY.format(n=16))), quiet=True)
    page = write_report(out.folder).read_text()
    for key, (title, _) in CHARTS.items():
        if key in ONLY_SEVERAL + ONLY_POPULATION:  # one metric: no Pareto front; no population
            assert not (out.folder / f"{key}.png").exists()
            continue
        png = (out.folder / f"{key}.png").read_bytes()
        assert png.startswith(PNG), key
        assert f'alt="{title}" src="data:image/png;base64,{base64.b64encode(png).decode()}"' in page
    assert "<h2>Best configuration</h2>" in page and tuner.load_best(out.folder)["trial_id"] in page
    assert "RuntimeError: boom" in page  # the errors table, by cause with its hint
    assert "<td>user_exception</td>" in page and "its traceback is in the trial&#x27;s log" in page
    assert "trainables.toy:faulty" in page  # the study's YAML
    panel = page.split("<h2>Resources: the hungriest trials</h2>")[1].split("<h2>")[0]
    assert "<th>peak RSS MB</th>" in panel and "<th>CPU s</th>" in panel and "<th>s / step</th>" in panel
    assert panel.count("<tr>") == 1 + 15  # the header and the 15 trials that used the most memory


SIMULATED = """
name: many
trainable: tests.engine.curves:breaks
backend: simulated
metric: {name: loss, goal: minimize}
method: random
seed: 1
run_cap: 200
max_concurrent: 8
early_terminate: {type: asha, max_t: 3, grace_period: 1, reduction_factor: 2}
parameters:
  x: {min: 0.0, max: 1.0}
  other: {values: [a, b, c]}
"""


def test_charts_render_for_200_trials(no_ray: None, in_tmp: Path) -> None:
    """200 trials (pruned, finished, and failed at step 3 when x > 0.5) on the simulated backend."""
    out = tuner.run(load_study(text=SIMULATED, allow_modules=["tests"]), quiet=True)
    assert len(tuner.load_results(out.folder)) == 200 and out.counts["errored"] > 0
    write_report(out.folder)
    assert all(
        (out.folder / f"{key}.png").stat().st_size > 10_000
        for key in CHARTS
        if key not in ONLY_SEVERAL + ONLY_POPULATION
    )


@pytest.mark.slow
def test_results_export_report_and_train_reproduce_the_best(ray_local: None, tmp_path: Path) -> None:
    space = tmp_path / "digits.yaml"
    space.write_text(
        textwrap.dedent("""
        name: digits
        trainable: trainables.digits:train_mlp
        metric: {name: val_accuracy, goal: maximize}
        method: random
        seed: 4
        run_cap: 4
        parameters:
          lr: {distribution: log_uniform_values, min: 1e-3, max: 1e-2}
          hidden: {values: [64, 128]}
          epochs: {value: 8}
    """)
    )
    done = cli_here("run", str(space), "--no-dashboard", "--num-cpus", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "results" / "digits"

    table = cli_here("results", str(folder), "--top", "2", "--csv", "top.csv", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    exported = pd.read_csv(tmp_path / "top.csv")
    assert len(exported) == 2 and list(exported.columns[:4]) == ["trial_id", "status", "pruned_at", "val_accuracy"]
    assert exported["val_accuracy"].is_monotonic_decreasing  # maximize: best first
    assert exported["trial_id"][0] in table.stdout
    parquet = cli_here("results", str(folder), "--sort", "lr:asc", "--parquet", "all.parquet", cwd=tmp_path)
    assert parquet.returncode == 0 and pd.read_parquet(tmp_path / "all.parquet")["lr"].is_monotonic_increasing

    report = cli_here("report", str(folder), cwd=tmp_path)
    assert report.returncode == 0 and (folder / "report.html").exists()

    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best["checkpoint"] and Path(best["checkpoint"]).exists()
    args = ("train", str(space), "--config", str(folder / "best.yaml"), "--no-dashboard", "--num-cpus", "2")
    trained = cli_here(*args, cwd=tmp_path)  # a new worker group: nothing carried over from the search
    assert trained.returncode == 0, trained.stderr
    final = yaml.safe_load((folder / "final" / "metrics.yaml").read_text())
    assert abs(final["metrics"]["val_accuracy"] - best["metric"]["value"]) < 0.01
    import torch

    state = torch.load(folder / "final" / "model.pt", weights_only=True)
    assert any(k.endswith("weight") for k in state)


POPULATION = """
name: pop
trainable: trainables.simulated:schedule
backend: simulated
metric: {name: loss, goal: minimize}
method: random
seed: 1
run_cap: 8
max_concurrent: 4
parameters:
  lr: {distribution: log_uniform_values, min: 0.001, max: 0.5}
early_terminate: {type: pbt, perturbation_interval: 4, max_t: 40, quantile_fraction: 0.25}
"""


def test_a_population_gets_its_panel_of_members_exploits_and_schedule(no_ray: None, in_tmp: Path) -> None:
    from tuner.report import read
    from tuner.report._population import exploits, population_chart

    out = tuner.run(load_study(text=POPULATION), quiet=True)
    page = write_report(out.folder).read_text()
    png = (out.folder / "population.png").read_bytes()
    assert png.startswith(PNG) and 'alt="Population-based training" src="data:image/png;base64,' in page
    data = read(out.folder)
    made = exploits(data)
    fig = population_chart(data)
    assert fig is not None and made
    members, *schedules = fig.axes
    jumps = [line for line in members.lines if line.get_linestyle() == ":"]
    assert 0 < len(jumps) <= len(made)
    for line in jumps:  # from a donor's point to the member's next report
        (x0, x1), (y0, y1) = line.get_xdata(), line.get_ydata()
        assert any(
            float(e["donor_step"]) == x0
            and (
                (data.history["trial_id"] == e["donor"]) & (data.history["step"] == x0) & (data.history["loss"] == y0)
            ).any()
            for e in made
        )
        assert ((data.history["step"] == x1) & (data.history["loss"] == y1)).any()
    best = tuner.load_best(out.folder)
    assert [ax.get_ylabel() for ax in schedules] == list(best["schedule"]) == ["lr"]
    ((steps, values),) = [(line.get_xdata(), line.get_ydata()) for line in schedules[0].lines]
    assert [[s, v] for s, v in zip(steps[:-1], values[:-1], strict=True)] == best["schedule"]["lr"]


def test_a_missing_gpu_figure_is_explained_where_the_figures_are() -> None:
    from tuner.report._html import _gpu_note

    why = "NVML gives no per-process utilisation here (NVMLError_NotSupported: Not Supported)"
    trials = pd.DataFrame({"gpu_device_busy": [40.0, 50.0], "gpu_util_own": [None, None], "gpu_util_note": [why, why]})
    assert _gpu_note(trials) == f"<p class=note>a GPU utilisation figure is missing for 2 trial(s): {why}</p>"
    assert _gpu_note(trials.drop(columns="gpu_util_note")) == ""  # an older study: nothing to explain
