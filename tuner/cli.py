"""python -m tuner: hyperparameter studies for PyTorch on Ray, from one YAML file."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tuner._outcome import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, shown, summarize
from tuner.errors import StudyFailed, UserError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tuner", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a study from its YAML file (or a Ray Tune script: run script.py [args])")
    run.add_argument("space", help="the study's YAML file, or a Ray Tune script (.py) and its arguments")
    _study_options(run)

    resume = sub.add_parser("resume", help="continue an interrupted run")
    resume.add_argument("results", help="the run's results folder")
    resume.add_argument("--space", help="the study's YAML, to change its budget (run_cap, time_limit, max_concurrent)")
    resume.add_argument("--force", action="store_true", help="resume even if the YAML changed in more than the budget")
    resume.add_argument("--trainable", help="dotted path of the training function (default: the run's)")
    for p in (run, resume):
        p.add_argument(
            "--allow-module",
            action="append",
            default=[],
            metavar="PREFIX",
            help="also allow trainables from modules under PREFIX (default: trainables)",
        )
        _ray_options(p)
        p.add_argument(
            "--dashboard-host",
            metavar="HOST",
            help="where the embedded Ray's dashboard listens (default: 127.0.0.1 only)",
        )
        p.add_argument(
            "--progress",
            choices=["auto", "live", "plain", "off"],
            default="auto",
            help="the live view: in place on a terminal (live), lines every 10 s (plain: a Ray job's log), "
            "or none; auto picks",
        )

    plan = sub.add_parser("plan", help="check a study and show what it will run, without running it")
    plan.add_argument("space", help="the study's YAML file")
    _study_options(plan)
    plan.add_argument("--smoke", action="store_true", help="also run one step of the first trial, here")
    plan.add_argument("--address", help="check the resources against this Ray cluster (default: this machine)")
    plan.add_argument("--allow-module", action="append", default=[], metavar="PREFIX")

    best = sub.add_parser("best", help="print the best configuration of a finished study")
    best.add_argument("results", help="the study's results folder, or a Ray Tune experiment folder")
    best.add_argument("--format", choices=["yaml", "json"], default="yaml")

    results = sub.add_parser("results", help="list a study's trials")
    results.add_argument("results", help="the study's results folder, or a Ray Tune experiment folder")
    results.add_argument("--top", type=int, help="only the N best trials")
    results.add_argument("--sort", help="column or metric to sort by (default: the study's metric, best first)")
    export = results.add_mutually_exclusive_group()
    export.add_argument("--csv", metavar="FILE", help="also write the table as CSV")
    export.add_argument("--parquet", metavar="FILE", help="also write the table as parquet")
    results.add_argument("--tensorboard", metavar="DIR", help="also write one TensorBoard run per trial into DIR")

    report = sub.add_parser("report", help="write report.html and the charts of a study")
    report.add_argument("results", help="the study's results folder, or a Ray Tune experiment folder")
    for p in (best, results, report):
        p.add_argument("--metric", metavar="NAME", help="a Ray Tune experiment's metric, where it recorded none")
        p.add_argument("--mode", choices=["min", "max"], help="a Ray Tune experiment's mode, where it recorded none")

    train = sub.add_parser("train", help="train once with a configuration (e.g. the best), outside the search")
    train.add_argument("space", help="the study's YAML file")
    train.add_argument("--config", required=True, help="best.yaml, or a YAML of the configuration")
    train.add_argument("--trainable", help="dotted path of the training function (overrides the YAML)")
    train.add_argument("--epochs", type=int, help="override config epochs")
    train.add_argument("--out", help="where to save (default: beside the config: <results>/final)")
    train.add_argument("--seed", type=int, help="trial seed (default: the best trial's)")
    train.add_argument("--allow-module", action="append", default=[], metavar="PREFIX")

    confirm = sub.add_parser("confirm", help="train the top trials again with fresh seeds: mean and spread of each")
    confirm.add_argument("results", help="the study's results folder")
    confirm.add_argument("--top", type=int, default=3, help="how many of the best trials (default 3)")
    confirm.add_argument("--seeds", type=int, default=3, help="fresh seeds for each (default 3)")
    _ray_options(train)
    _ray_options(confirm)

    dashboard = sub.add_parser("dashboard", help="serve a live web view of a study (running or finished)")
    dashboard.add_argument("results", help="the study's results folder")
    dashboard.add_argument("--host", default="127.0.0.1", help="where to listen (default: 127.0.0.1: here only)")
    dashboard.add_argument("--port", type=int, help="port (default: 8080, or a free one when taken; 0: a free one)")
    return parser


def _study_options(p: argparse.ArgumentParser) -> None:
    """What ``run`` and ``plan`` may override in the study file."""
    p.add_argument("--trainable", help="dotted path of the training function (overrides the YAML)")
    p.add_argument("--run-cap", type=int, help="number of trials (overrides run_cap)")
    p.add_argument("--time-limit", metavar="DURATION", help="wall-clock budget: 90s, 15m, 2h (overrides time_limit)")
    p.add_argument("--max-concurrent", type=int, help="trials at once, at most (overrides max_concurrent)")
    p.add_argument("--name", help="study name (overrides name; default: the file's stem)")
    p.add_argument("--storage", help="results folder (overrides storage; default: results)")
    p.add_argument("--seed", type=int, help="study seed (overrides seed)")
    _backend_option(p)


def _load(args: argparse.Namespace) -> Any:
    """The study file with the command line's overrides."""
    from tuner.config import load_study

    return load_study(
        args.space,
        trainable=args.trainable,
        run_cap=args.run_cap,
        time_limit=args.time_limit,
        max_concurrent=args.max_concurrent,
        name=args.name,
        storage=args.storage,
        backend=args.backend,
        allow_modules=args.allow_module,
    )


def _backend_option(p: argparse.ArgumentParser) -> None:
    from tuner.backends import NAMES

    p.add_argument(
        "--backend",
        choices=NAMES,
        help="where trials run (overrides backend): ray (tuner's engine), tune (Ray Tune's Tuner), "
        "or simulated (f(config, step) on a virtual clock)",
    )


def _ray_options(p: argparse.ArgumentParser) -> None:
    """Where a command that runs trials runs them, and how much it says."""
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else an embedded Ray)")
    p.add_argument("--num-cpus", type=int, help="CPUs of the embedded Ray (default: all)")
    p.add_argument("--no-dashboard", action="store_true", help="do not start the Ray dashboard")
    p.add_argument("--quiet", action="store_true", help="print only the result")


def _cmd_run(args: argparse.Namespace) -> int:
    import tuner

    study = _load(args)
    out = tuner.run(
        study,
        address=args.address,
        num_cpus=args.num_cpus,
        dashboard=False if args.no_dashboard else None,
        seed=args.seed,
        quiet=args.quiet,
    )
    return summarize(out, study.metric, list(study.space.searchable))


def _cmd_resume(args: argparse.Namespace) -> int:
    import tuner

    out = tuner.resume(
        args.results,
        space=args.space,
        trainable=args.trainable,
        force=args.force,
        allow_modules=args.allow_module,
        address=args.address,
        num_cpus=args.num_cpus,
        dashboard=False if args.no_dashboard else None,
        quiet=args.quiet,
    )
    return summarize(out)


def _cmd_plan(args: argparse.Namespace) -> int:
    from tuner.plan import describe, local_capacity, local_gpus, make_plan, smoke

    study = _load(args)
    if args.seed is not None:  # the smoke trial's configuration is the searcher's first with this seed
        study = dataclasses.replace(study, spec=study.spec.model_copy(update={"seed": args.seed}))
    res = study.spec.resources
    if study.spec.backend == "simulated":
        if args.smoke:
            raise UserError("--smoke measures a (config, trial) training function; backend simulated has none")
        from tuner.backends.simulated import SimulatedBackend

        places, where = SimulatedBackend(study).capacity(), "the simulated backend (virtual time)"
    elif args.address:
        from tuner.backends.ray import capacity, connect

        conn = connect(args.address)
        try:
            places, where = capacity(res.cpu, res.gpu), f"the Ray cluster at {args.address}"
        finally:
            conn.close()
    else:
        places, where = local_capacity(res.cpu, res.gpu), "this machine (embedded Ray)"
    plan = make_plan(study, places, where)
    if res.auto_gpus:  # the GPUs auto packs onto: none simulated, not known of a remote cluster
        plan.gpus = 0 if study.spec.backend == "simulated" else None if args.address else local_gpus()
    if args.smoke:
        plan.smoke = smoke(study)
    print(describe(study, plan))
    return EXIT_OK


def _cmd_best(args: argparse.Namespace) -> int:
    from tuner.results import is_tune_folder, load_best

    if args.metric or args.mode or is_tune_folder(args.results):
        return _tune_best(args)
    best = load_best(args.results)
    confirmed = best.get("confirmed")
    if best.get("pareto") is not None and not str(best.get("chosen_by", "")).startswith("select"):
        goals = ", ".join(f"{g} {k}" for k, g in best["objectives"].items())
        if confirmed and confirmed.get("front"):  # the front of the means over fresh seeds
            front = confirmed["front"]
            what = f"configuration(s) Pareto-optimal on their means over {confirmed['seeds']} seeds (confirm)"
        else:
            front = [
                {"trial_id": p["trial_id"], **{k: p[k] for k in best["objectives"]}, "params": p["params"]}
                for p in best["pareto"]
            ]
            what = "Pareto-optimal trial(s)"
        print(
            f"{len(front)} {what} ({goals}); add select: {{metric: ..., limits: {{...}}}} to the study to pick one",
            file=sys.stderr,
        )
        _print(front, args.format)
        return EXIT_OK
    config, note = _best_config(best)
    if note:
        print(note, file=sys.stderr)
    _print(config, args.format)
    return EXIT_OK


def _best_config(best: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The configuration ``best.yaml`` stands for: the search's best, or, when ``confirm``
    changed the winner, the confirmed one; with a line saying which it is."""
    confirmed = best.get("confirmed")
    if not (confirmed and confirmed.get("changed")):
        return best["config"], None
    metric = best.get("metric") or {}
    mean = f", mean {metric.get('name', 'value')} {confirmed['mean']:.4g}" if confirmed.get("mean") is not None else ""
    note = (
        f"(the winner of confirm: {confirmed['trial_id']}{mean} over {confirmed['seeds']} seeds; "
        f"the search's best was {best['trial_id']})"
    )
    return _merged(best["config"], confirmed["params"]), note


def _tune_best(args: argparse.Namespace) -> int:
    """The best trial of a Ray Tune experiment, by the rule ``best.yaml`` follows."""
    from tuner.results import read_tables

    tables = read_tables(args.results, args.metric, args.mode)
    best = tables.best()
    if best is None:
        raise UserError(f"{args.results}: no trial reported a finite {tables.metric}")
    print(
        f"({best['trial_id']}, {best['status']} at training_iteration {best['step']}: "
        f"{tables.metric}={best['metric']['value']:.6g})",
        file=sys.stderr,
    )
    _print(best["config"], args.format)
    return EXIT_OK


def _print(data: Any, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False), end="")


def _merged(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the searched ``params`` (flat, dotted) of another trial."""
    from tuner.space import flatten, leaf_paths, nest

    return nest({**flatten(config), **params}, leaf_paths(config))


def _cmd_results(args: argparse.Namespace) -> int:
    from tuner.results.table import render, trials_table

    table = trials_table(args.results, sort=args.sort, top=args.top, metric=args.metric, mode=args.mode)
    if args.csv:
        table.to_csv(args.csv, index=False)
    if args.parquet:
        table.to_parquet(args.parquet, index=False)
    render(table)
    if args.tensorboard:
        from tuner.results.tensorboard import write_tensorboard

        out = write_tensorboard(args.results, args.tensorboard, args.metric, args.mode)
        print(f"tensorboard: {shown(out)}   (tensorboard --logdir {shown(out)})")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from tuner.report import write_report

    print(f"report: {shown(write_report(args.results, args.metric, args.mode))}")
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    import tuner
    from tuner.config import load_study, read_yaml

    study = load_study(args.space, trainable=args.trainable, allow_modules=args.allow_module)
    given = read_yaml(Path(args.config))
    config = given["config"] if isinstance(given.get("config"), dict) else given
    seed = args.seed if args.seed is not None else given.get("seed") if "config" in given else None
    a_front = given.get("pareto") is not None and not str(given.get("chosen_by", "")).startswith("select")
    if isinstance(given.get("config"), dict) and not a_front:
        config, note = _best_config(given)  # after confirm: the configuration that held up over seeds
        if note:
            seed = args.seed  # the search's best trial's seed belongs to another configuration
            print(note, file=sys.stderr)
    out = Path(args.out) if args.out else Path(args.config).resolve().parent / "final"
    result = tuner.train(
        study,
        config,
        out=out,
        epochs=args.epochs,
        seed=seed,
        address=args.address,
        num_cpus=args.num_cpus,
        dashboard=False if args.no_dashboard else None,
        quiet=args.quiet,
        schedule=given.get("schedule") if "config" in given else None,  # a population's winner
    )
    metrics = "  ".join(f"{k}={v:.6g}" for k, v in result["metrics"].items())
    print(f"final (step {result['step']}): {metrics}")
    folder = shown(Path(result["folder"]))
    print(
        f"saved: {folder}/metrics.yaml"
        + (f", {folder}/model.pt" if result["model"] else " (no model: the trainable reported no checkpoint)")
    )
    return EXIT_OK


def _cmd_confirm(args: argparse.Namespace) -> int:
    from tuner._api import confirm
    from tuner.results import confirm_table

    if args.top < 1 or args.seeds < 1:
        raise UserError(f"--top and --seeds must be at least 1, got {args.top} and {args.seeds}")
    summary = confirm(
        args.results,
        top=args.top,
        seeds=args.seeds,
        address=args.address,
        num_cpus=args.num_cpus,
        dashboard=False if args.no_dashboard else None,
        quiet=args.quiet,
    )
    if summary.get("objectives"):
        print(
            f"{', '.join(summary['objectives'])} over {summary['seeds']} seed(s) at the full budget "
            f"(mean and std of {summary['metric']}; P: Pareto-optimal means; * the pick among them):"
        )
    else:
        print(f"{summary['metric']} over {summary['seeds']} seed(s) at the full budget (* the best mean):")
    print("\n".join(confirm_table(summary)))
    if summary["winner"] is None:
        raise StudyFailed("no configuration finished a confirmation run")
    if summary["changed"]:
        print(
            f"confirmation changed the winner: {summary['winner']} (the search's best was {summary['search_best']}; "
            f"better by {summary['by']:.4g} in the mean"
            + (f" of {summary['metric']})" if summary.get("objectives") else ")")
        )
    else:
        print(f"confirmed: {summary['winner']} stays the best")
    runs = shown(Path(summary["folder"]))
    print(f"saved: {shown(Path(args.results))}/confirm.yaml, best.yaml (confirmed); runs in {runs}")
    return EXIT_OK


def _run_tune_script(path: str, argv: list[str], debug: bool = False) -> int:
    """``python -m tuner run script.py [args...]``: a Ray Tune script, unchanged, on tuner's engine."""
    if not os.path.isfile(path):
        print(f"error: {path}: no such script", file=sys.stderr)
        return EXIT_USAGE
    from tuner.integrations.ray_tune import run_script

    try:
        run_script(path, argv)
    except UserError as exc:
        if debug:
            raise
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from tuner.dashboard import serve

    serve(args.results, args.host, args.port)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((i for i, a in enumerate(argv) if a != "--debug"), len(argv))
    if len(argv) >= first + 2 and argv[first] == "run" and argv[first + 1].endswith(".py"):
        return _run_tune_script(argv[first + 1], argv[first + 2 :], debug=first > 0)
    args = _parser().parse_args(argv)
    if getattr(args, "dashboard_host", None):
        os.environ["TUNER_DASHBOARD_HOST"] = args.dashboard_host
    if getattr(args, "progress", "auto") != "auto":
        os.environ["TUNER_PROGRESS"] = args.progress
    commands = {
        "run": _cmd_run,
        "resume": _cmd_resume,
        "plan": _cmd_plan,
        "report": _cmd_report,
        "train": _cmd_train,
        "best": _cmd_best,
        "results": _cmd_results,
        "confirm": _cmd_confirm,
        "dashboard": _cmd_dashboard,
    }
    try:
        return commands[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except StudyFailed as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
