"""A run's curves from its JSON-lines log: what docs/ shows for every installed model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.calibrate import TARGET_SHARE

REQUIRED_FIELDS = {"epoch", "loss", "val_dice", "lr"}


def read_log(log_path: Path) -> list[dict]:
    """A run's per-epoch records (``log.jsonl`` beside its checkpoints); none without one."""
    if not log_path.is_file():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def plot_curves(log_path: Path, png: Path) -> None:
    """One run's picture: what `training.train` draws beside its log."""
    plot_runs({"": read_log(log_path)}, png)


def plot_runs(runs: dict[str, list[dict]], png: Path) -> None:
    """Loss, validation Dice, the frame decision's errors and the learning rate, per epoch.

    The decision panel is why a best epoch was chosen (score = Dice - flagged - missed), so it is
    drawn beside Dice; logs from before the decision existed simply leave it empty. Several runs
    (label: records) share the axes, one colour each, so a proxy's levers read side by side.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    runs = {label: records for label, records in runs.items() if records}
    if not runs:
        return
    figure, axes = pyplot.subplots(1, 4, figsize=(17, 3.6), layout="constrained")
    loss, dice, decision, rate = axes
    for index, (label, records) in enumerate(runs.items()):
        colour = f"C{index}" if len(runs) > 1 else None
        epochs = [record["epoch"] for record in records]
        loss.plot(epochs, [record["loss"] for record in records], color=colour, label=label)
        dice.plot(epochs, [record["val_dice"] for record in records], color=colour, label=label)
        for key, name, style in (
            ("val_flagged", "polyp-free flagged", "-"),
            ("val_missed", "polyp missed", ":"),
        ):
            if any(key in record for record in records):
                values = [record.get(key) for record in records]
                legend = f"{label}: {name}" if label else name
                decision.plot(epochs, values, color=colour, linestyle=style, label=legend)
        rate.plot(epochs, [record["lr"] for record in records], color=colour, label=label)
    decision.axhline(TARGET_SHARE, color="grey", linestyle="--", linewidth=1, label="target")
    loss.set_title("training loss")
    dice.set_title("validation Dice (polyp frames)")
    decision.set_title("frame decision on validation")
    decision.legend(fontsize=8)
    rate.set_title("learning rate")
    if len(runs) > 1:
        dice.legend(fontsize=8)
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.savefig(png, dpi=110)
    pyplot.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.curves",
        description="Redraw a run's curves.png from its log, or draw several runs on one picture.",
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders (log.jsonl)")
    parser.add_argument("-o", "--output", type=Path, help="default with one run: RUN/curves.png")
    args = parser.parse_args(argv)
    if len(args.runs) > 1 and args.output is None:
        sys.exit("curves: several runs draw one picture: say where with -o")
    names = [run.name for run in args.runs]
    runs = {}
    for run in args.runs:
        log_path = run / "log.jsonl"
        if not log_path.is_file():
            sys.exit(f"curves: no log at {log_path}")
        try:
            records = read_log(log_path)
            if not records:
                sys.exit(f"curves: {log_path} holds no epoch yet")
            for record in records:
                missing = REQUIRED_FIELDS - set(record)  # a list or number is not a record
                if missing:
                    raise ValueError(f"no {', '.join(sorted(missing))}")
        except (ValueError, TypeError) as error:  # JSON or text that is not a run's log
            sys.exit(f"curves: {log_path} is not a training log ({error})")
        label = run.name if names.count(run.name) == 1 else str(run)  # runs/a, other/a: paths
        runs[label if len(args.runs) > 1 else ""] = records
    try:
        plot_runs(runs, args.output or args.runs[0] / "curves.png")
    except OSError as error:
        sys.exit(f"curves: cannot write the picture: {error}")


if __name__ == "__main__":
    main()
