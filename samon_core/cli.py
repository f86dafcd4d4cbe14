"""Command line: ``python -m samon_core`` (or ``samon``).

    run      train runs in this process (a preset, a config file, plus --set key=value)
    list     the runs in the store
    show     one run's config, status and summary
    export   one run's metrics as CSV or JSON
    presets  the named presets
    claim    the paper's claims: list, run (train a claim's runs), verdict (samon_core.claims)
    landscape  loss-landscape slices of a finished run (samon_core.train.slice_run); like the
             app's request, it needs a requester's --owner-key or the teacher token
    robustness  accuracy under PGD attacks and corruptions of a finished run
             (samon_core.robustness_cli); a requester's --owner-key or the teacher token
    owner    register an owner name: prints its owner key once (samon_core.owner_cli)
    cancel   cancel a run with its requester's owner key or as the teacher
    worker   a queue worker (trains what the app queues; see samon_core.service.worker)

Exit codes: 0 done; 1 a run did not finish, or the run store / queue cannot be used (disk full,
read-only folder, permissions); 2 bad input (options, config values, limits, a run that cannot be
trained here); 130 interrupted. Every error is one line ``samon: error: ...`` on stderr (values
quoted from the input are cut to a readable length), without a traceback, and a rejected ``run``
creates no run folder: everything that can be checked is checked first (config, limits of the
settings, model, subset sizes, device, dataset files).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from samon_core.catalog import datasets
from samon_core.claim_cli import add_claim_parser, cmd_claim
from samon_core.owner_cli import (
    add_acting_options,
    add_owner_options,
    add_owner_parsers,
    cmd_cancel,
    cmd_owner,
)
from samon_core.robustness_cli import add_robustness_parser, cmd_robustness
from samon_core.runs.config import RunConfig, field_help
from samon_core.runs.database import DatabaseUnavailable, database_url
from samon_core.runs.files import CONFIG_FILE, METRICS_FILE
from samon_core.runs.io import StoreUnavailable, describe_os_error, read_text_safely
from samon_core.runs.messages import ClippingArgumentParser, clip, clip_message
from samon_core.runs.owners import owner_name_or_raw
from samon_core.runs.presets import get_preset, list_presets
from samon_core.runs.redact import display_url, redact
from samon_core.runs.states import RunState
from samon_core.runs.store import RunStore, default_root

CONFIG_MAX_BYTES = 1024 * 1024  # a config file is a few hundred bytes; /dev/zero is not one


class CliError(Exception):
    """Bad input: reported as one line, exit code 2."""


def _config_help() -> str:
    lines = [
        "run configuration fields (use with --set key=value; the app's Launch form offers the "
        "same):"
    ]
    for name, f in RunConfig.model_fields.items():
        lines.append(f"  {name:24s} {field_help(name)} (default: {f.default!r})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    ap = ClippingArgumentParser(
        prog="samon", description="SAM-ON Lab: SGD vs SAM-all vs SAM-ON runs."
    )
    common = ClippingArgumentParser(add_help=False)
    common.add_argument(
        "--runs-dir", default=None, help="run store folder (default: $SAMON_RUNS_DIR or ./runs)"
    )
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="train runs here, with a progress bar",
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_config_help(),
    )
    src = run.add_mutually_exclusive_group(required=True)
    src.add_argument("--preset", help=f"a preset name: {', '.join(list_presets())}")
    src.add_argument("--config", type=Path, help=f"a {CONFIG_FILE} file (RunConfig fields)")
    run.add_argument(
        "--method",
        action="append",
        default=None,
        help="with --preset: run only this method label (repeatable), e.g. SAM-ON",
    )
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (repeatable); see the field list below",
    )
    run.add_argument(
        "--data-dir", default=None, help="dataset folder (default: $SAMON_DATA_DIR or ./data)"
    )
    add_owner_options(run, "the runs")
    run.add_argument(
        "--progress", choices=("bar", "none"), default="bar", help="progress display on stderr"
    )

    lst = sub.add_parser("list", help="list runs", parents=[common])
    lst.add_argument("--owner", default=None)
    lst.add_argument("--group", default=None)
    lst.add_argument("--status", default=None, help="a state, e.g. finished")

    show = sub.add_parser("show", help="config, status and summary of a run", parents=[common])
    show.add_argument("run_id")

    exp = sub.add_parser("export", help="a run's metrics as CSV or JSON", parents=[common])
    exp.add_argument("run_id")
    exp.add_argument("--format", choices=("csv", "json"), default="csv")
    exp.add_argument(
        "--kind",
        choices=("epoch", "step", "sharpness", "all"),
        default="epoch",
        help="which records (CSV: epoch/step/sharpness; JSON: any, 'all' = every record)",
    )
    exp.add_argument("--output", "-o", type=Path, default=None, help="file (default: stdout)")

    sub.add_parser("presets", help="list the presets", parents=[common])
    add_claim_parser(sub, common)
    add_owner_parsers(sub, common)

    ls = sub.add_parser("landscape", parents=[common],
                        help="loss-landscape slices around a finished run's final weights")
    ls.add_argument("run_id")
    ls.add_argument("--points", type=int, default=21, help="points per slice (2..101)")
    ls.add_argument("--radius", type=float, default=1.0, help="half-width (0 < r <= 10)")
    ls.add_argument("--plane", action="store_true",
                    help="also a 2D slice (points x points losses, test images)")
    add_acting_options(ls, "add the slices")
    add_robustness_parser(sub, common)

    wk = sub.add_parser(
        "worker", help="run a queue worker (see python -m samon_core worker --help)", add_help=False
    )
    wk.add_argument("worker_args", nargs=argparse.REMAINDER)
    return ap


def _load_config_file(path: Path) -> RunConfig:
    """A config file (or a run folder holding config.json), read with a size cap."""
    source = path / CONFIG_FILE if path.is_dir() else path
    try:
        text = read_text_safely(source, CONFIG_MAX_BYTES, "config file")
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        return RunConfig.from_json(text)
    except RecursionError:
        raise CliError(f"config file {clip(str(source))}: JSON nested too deeply") from None


def _configs_to_run(args) -> dict[str, RunConfig]:
    if args.preset is not None:
        try:
            preset = get_preset(args.preset)
        except (KeyError, ValueError):
            raise CliError(
                f"unknown preset {clip(args.preset)}; choose one of {', '.join(list_presets())}"
            ) from None
        configs = dict(preset.configs)
        if args.method:
            missing = [m for m in args.method if m not in configs]
            if missing:
                raise CliError(f"preset {args.preset!r} has no method {clip(missing)}; it has "
                               f"{', '.join(configs)}")
            configs = {m: configs[m] for m in args.method}
    else:
        config = _load_config_file(args.config)
        configs = {config.method_label(): config}
    return {label: c.with_overrides(args.overrides) for label, c in configs.items()}


class _Progress:
    """A tqdm bar over epochs with the latest accuracy and the trainer's ETA."""

    def __init__(self, label: str, epochs: int, enabled: bool, position: int = 0):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=epochs,
                desc=label,
                position=position,  # one line per run of a lockstep group
                unit="epoch",
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} epochs "
                "[{elapsed}<{remaining}] {postfix}",
            )

    def __call__(self, rec: dict) -> None:
        if self.bar is None:
            return
        if rec["kind"] == "step":
            self.bar.set_postfix_str(
                f"loss {rec['loss']:.3f} acc {rec['acc']:.1%} {rec['images_per_s']:.0f} img/s"
            )
        elif rec["kind"] == "epoch":
            self.bar.update(rec["epoch"] - self.bar.n)
            self.bar.set_postfix_str(f"test acc {rec['test_acc']:.1%}, ETA {rec['eta_s']:.0f} s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args, store: RunStore) -> int:
    """Train the configs here, through the command line's one "train now" path
    (``service.submit.train_now``): checked first as the app's submit is (who may train under
    ``--owner``, the room's locks, the server's limits, preflight with this machine's device and
    data: no run folder before), admitted in the queue's transaction, trained together in one
    lockstep group (a preset's comparison: curves and step times side by side)."""
    from samon_core.service.settings import load_settings
    from samon_core.service.submit import check_cli_request, train_now

    configs = _configs_to_run(args)  # validated before anything is created
    ident = check_cli_request(args, configs.items(), args.preset, store, load_settings())
    bars: list[_Progress] = []

    def watch(label: str, run_id: str, here: bool) -> _Progress | None:
        if not here:
            print(f"{label}: run {run_id} is trained by a worker", file=sys.stderr)
            return None
        print(f"{label}: run {run_id} in {store.run_dir(run_id)}", file=sys.stderr)
        bars.append(_Progress(label, configs[label].epochs, args.progress == "bar",
                              position=len(bars)))
        return bars[-1]

    try:
        trained = train_now(configs, owner=args.owner, ident=ident, owner_key=args.owner_key,
                            preset=args.preset, data_dir=args.data_dir, watch=watch, store=store)
    finally:
        for bar in bars:
            bar.close()
    failed = 0
    for run in trained:
        summary = run.summary
        if summary is None:  # a worker trains it
            continue
        if summary["state"] != RunState.FINISHED:
            failed += 1
            message = store.read_status(run.run_id).get("message", summary["state"])
            print(f"{run.label}: {message}", file=sys.stderr)
        else:
            print(
                f"{run.label}: final test accuracy {summary['final_test_acc']:.2%} "
                f"(best {summary['best_test_acc']:.2%}) in {summary['total_time_s']:.0f} s"
            )
    return 1 if failed else 0


def cmd_list(args, store: RunStore) -> int:
    states = [st.value for st in RunState]
    if args.status is not None and args.status not in states:
        raise CliError(f"unknown status {clip(args.status)}; the states are {', '.join(states)}")
    owner = owner_name_or_raw(args.owner) if args.owner is not None else None  # 'Ann' is 'ann'
    df = store.list_runs(owner=owner, group=args.group, status=args.status)
    if df.empty:
        print("no runs")
        return 0
    cols = [
        "run_id",
        "state",
        "label",
        "model",
        "dataset",
        "owner",
        "last_epoch",
        "epochs",
        "final_test_acc",
    ]
    print(df[cols].to_string(index=False))
    for run_id, problem in zip(df["run_id"], df["problem"], strict=True):
        if isinstance(problem, str) and problem:
            print(f"samon: warning: run {run_id} is damaged: {clip_message(problem, 300)}",
                  file=sys.stderr)
    return 0


def _existing(store: RunStore, run_id: str) -> str:
    try:
        if not store.run_dir(run_id).is_dir():
            raise CliError(f"no run {clip(run_id)} in {clip(str(store.root))}")
    except ValueError as e:
        raise CliError(str(e)) from None
    return run_id


def _part(read, problems: list[str]) -> Any:
    """What ``read()`` returns, or None with the problem noted (a damaged file)."""
    try:
        return read()
    except (FileNotFoundError, ValueError) as exc:
        problems.append(str(exc))
        return None


def _config_for_show(store: RunStore, run_id: str, problems: list[str]) -> Any:
    raw = _part(lambda: store.read_config_dict(run_id), problems)
    if raw is None:
        return None
    try:
        return RunConfig.from_dict(raw).to_dict()
    except ValueError as exc:  # e.g. a key of another version: show it as stored
        problems.append(f"{CONFIG_FILE}: {exc}")
        return raw


def cmd_show(args, store: RunStore) -> int:
    """The run's files as far as they can be read; what cannot be read is named in
    ``problems`` (exit 0 all the same: the rest is worth seeing)."""
    run_id = _existing(store, args.run_id)
    problems: list[str] = []
    status = store.read_status(run_id)
    if status.get("damaged"):
        problems.append(str(status.get("message")))
    out = {
        "run_id": run_id,
        "meta": _part(lambda: store.read_meta(run_id), problems),
        "status": status,
        "config": _config_for_show(store, run_id, problems),
        "summary": _part(lambda: store.read_summary(run_id), problems),
    }
    if problems:
        out["problems"] = [clip_message(p, 500) for p in problems]
    print(json.dumps(_strict_json(out), indent=2, default=str))
    return 0


def _strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None: JSON has no such numbers (the store keeps them,
    a diverged loss is data, but an exported file must load in any JSON parser)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict_json(v) for v in obj]
    return obj


def _write_output(path: Path | None, text: str) -> None:
    if path is None:
        sys.stdout.write(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise CliError(describe_os_error(exc, f"write {clip(str(path))}")) from None


def cmd_export(args, store: RunStore) -> int:
    run_id = _existing(store, args.run_id)
    if args.format == "csv":
        if args.kind == "all":
            raise CliError("--kind all needs --format json (records of different kinds)")
        frame = {"epoch": store.epochs_df, "step": store.steps_df, "sharpness": store.sharpness_df}[
            args.kind
        ]
        text = frame(run_id).to_csv(index=False)
    else:
        records = store.read_records(run_id)
        if args.kind != "all":
            records = [r for r in records if r.get("kind") == args.kind]
        config = _config_for_show(store, run_id, [])
        text = json.dumps(
            _strict_json({"run_id": run_id, "config": config, "records": records}),
            indent=1, allow_nan=False, default=str,
        )
    _write_output(args.output, text)
    return 0


def cmd_landscape(args, store: RunStore) -> int:
    """Slices of a finished run, for one of its requesters (``--owner-key``) or the teacher,
    as ``service.request_slices`` asks: they are appended to the run's own metrics."""
    from samon_core.service.control import check_slices_allowed
    from samon_core.service.settings import load_settings
    from samon_core.service.submit import acting_credentials

    run_id = _existing(store, args.run_id)
    settings = load_settings()
    key, token = acting_credentials(args, settings, "landscape")
    check_slices_allowed(run_id, owner_key=key, teacher_token=token, store=store,
                         settings=settings)
    from samon_core.train.slice_run import slice_finished_run  # torch only for this command

    n = slice_finished_run(store, run_id, points=args.points, radius=args.radius,
                           data_dir=datasets.data_dir(), two_d=args.plane)
    print(f"{run_id}: {n} landscape slices appended to {METRICS_FILE}")
    return 0


def cmd_presets(args, store: RunStore) -> int:
    for name in list_presets():
        p = get_preset(name)
        print(f"{name}: {p.title}\n    {p.description}\n    methods: {', '.join(p.configs)}")
    return 0


def _store(runs_dir: str | None) -> RunStore:
    """The run store, on the database the settings name (``SAMON_DATABASE_URL`` or samon.toml's
    ``database_url``; else SQLite in the run folder)."""
    from samon_core.service.settings import load_settings  # the URL may be in samon.toml

    store = RunStore(runs_dir, database_url=load_settings().database)
    if store.root.exists() and not store.root.is_dir():
        raise CliError(f"--runs-dir {clip(str(store.root))} is not a folder")
    return store


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:  # the worker parses its own options
        from samon_core.service.worker import worker_main

        return worker_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    store = None
    try:
        store = _store(args.runs_dir)
        handler = {
            "run": cmd_run,
            "list": cmd_list,
            "show": cmd_show,
            "export": cmd_export,
            "presets": cmd_presets,
            "claim": cmd_claim,
            "landscape": cmd_landscape,
            "robustness": cmd_robustness,
            "owner": cmd_owner,
            "cancel": cmd_cancel,
        }[args.command]
        return handler(args, store)
    except (CliError, ValueError, FileNotFoundError) as e:
        # Bad input: RunConfig and the store raise ValueErrors that name the field or the run.
        print(f"samon: error: {clip_message(str(e) or type(e).__name__)}", file=sys.stderr)
        return 2
    except OSError as e:  # the store cannot be used: disk full, read-only, permissions
        print(f"samon: error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except (StoreUnavailable, DatabaseUnavailable) as e:
        print(f"samon: error: {clip_message(str(e))}", file=sys.stderr)
        return 1
    except sa.exc.OperationalError as e:  # the database does not answer: one line, no password
        root = store.root if store is not None else Path(args.runs_dir or default_root())
        url = database_url(root, getattr(store, "_url", None))  # the settings' URL, else $ENV
        why = redact(str(e.orig or e).splitlines()[0], url)
        print(f"samon: error: the database {display_url(url)} cannot be reached: "
              f"{clip_message(why)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("samon: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
