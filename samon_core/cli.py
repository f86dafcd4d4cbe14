"""Command line: ``python -m samon_core`` (or ``samon``).

    run      train runs in this process (a preset, a config file, plus --set key=value)
    list     the runs in the store
    show     one run's config, status and summary
    export   one run's metrics as CSV or JSON
    presets  the named presets
    worker   a queue worker (trains what the app enqueues; see samon_core.service.worker)

Bad input prints one line ``samon: error: ...`` and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from samon_core.runs.config import RunConfig, field_help
from samon_core.runs.presets import get_preset, list_presets
from samon_core.runs.store import RunStore


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
    ap = argparse.ArgumentParser(
        prog="samon", description="SAM-ON Lab: SGD vs SAM-all vs SAM-ON runs."
    )
    common = argparse.ArgumentParser(add_help=False)
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
    src.add_argument("--config", type=Path, help="a config.json file (RunConfig fields)")
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
    run.add_argument("--owner", default="cli", help="owner recorded with the run")
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

    wk = sub.add_parser(
        "worker", help="run a queue worker (see python -m samon_core worker --help)", add_help=False
    )
    wk.add_argument("worker_args", nargs=argparse.REMAINDER)
    return ap


def _configs_to_run(args) -> dict[str, RunConfig]:
    if args.preset:
        try:
            preset = get_preset(args.preset)
        except (KeyError, ValueError):
            raise CliError(
                f"unknown preset {args.preset!r}; choose one of {list_presets()}"
            ) from None
        configs = dict(preset.configs)
        if args.method:
            missing = [m for m in args.method if m not in configs]
            if missing:
                raise CliError(
                    f"preset {args.preset!r} has no method {missing}; it has {list(configs)}"
                )
            configs = {m: configs[m] for m in args.method}
    else:
        try:
            configs = {"run": RunConfig.load(args.config)}
        except FileNotFoundError:
            raise CliError(f"config file {args.config} does not exist") from None
        configs = {c.method_label(): c for c in configs.values()}
    return {label: c.with_overrides(args.overrides) for label, c in configs.items()}


class _Progress:
    """A tqdm bar over epochs with the latest accuracy and the trainer's ETA."""

    def __init__(self, label: str, epochs: int, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=epochs,
                desc=label,
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
    configs = _configs_to_run(args)  # validated before anything is created
    from samon_core.train.trainer import train  # torch is imported only for training

    failed = 0
    for label, config in configs.items():
        run_id = store.create_run(
            config, {"owner": args.owner, "preset": args.preset, "label": label}
        )
        print(f"{label}: run {run_id} in {store.run_dir(run_id)}", file=sys.stderr)
        bar = _Progress(label, config.epochs, args.progress == "bar")
        try:
            summary = train(config, store.run_dir(run_id), callback=bar, data_dir=args.data_dir)
        finally:
            bar.close()
        if summary["state"] != "finished":
            failed += 1
            print(
                f"{label}: {store.read_status(run_id).get('message', summary['state'])}",
                file=sys.stderr,
            )
        else:
            print(
                f"{label}: final test accuracy {summary['final_test_acc']:.2%} "
                f"(best {summary['best_test_acc']:.2%}) in {summary['total_time_s']:.0f} s"
            )
    return 1 if failed else 0


def cmd_list(args, store: RunStore) -> int:
    df = store.list_runs(owner=args.owner, group=args.group, status=args.status)
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
    return 0


def _existing(store: RunStore, run_id: str) -> str:
    try:
        if not store.exists(run_id):
            raise CliError(f"no run {run_id!r} in {store.root}")
    except ValueError as e:
        raise CliError(str(e)) from None
    return run_id


def cmd_show(args, store: RunStore) -> int:
    run_id = _existing(store, args.run_id)
    out = {
        "run_id": run_id,
        "meta": store.read_meta(run_id),
        "status": store.read_status(run_id),
        "config": store.read_config(run_id).to_dict(),
        "summary": store.read_summary(run_id),
    }
    print(json.dumps(out, indent=2, default=str))
    return 0


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
        text = json.dumps(
            {"run_id": run_id, "config": store.read_config(run_id).to_dict(), "records": records},
            indent=1,
        )
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_presets(args, store: RunStore) -> int:
    for name in list_presets():
        p = get_preset(name)
        print(f"{name}: {p.title}\n    {p.description}\n    methods: {', '.join(p.configs)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:  # the worker parses its own options
        from samon_core.service.worker import worker_main

        return worker_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        store = RunStore(args.runs_dir)
        handler = {
            "run": cmd_run,
            "list": cmd_list,
            "show": cmd_show,
            "export": cmd_export,
            "presets": cmd_presets,
        }[args.command]
        return handler(args, store)
    except (CliError, ValueError, FileNotFoundError) as e:
        # Bad input: RunConfig and the store raise ValueErrors that name the field or the run.
        print(f"samon: error: {e or type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("samon: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
