"""A run's curves from its JSON-lines log: what docs/ shows for every installed model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.calibrate import TARGET_SHARE


def plot_curves(log_path: Path, png: Path) -> None:
    """Loss, validation Dice, the frame decision's errors and the learning rate, per epoch.

    The decision panel is why a best epoch was chosen (score = Dice - flagged - missed), so it is
    drawn beside Dice; logs from before the decision existed simply leave it empty.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not records:
        return
    epochs = [record["epoch"] for record in records]
    figure, axes = pyplot.subplots(1, 4, figsize=(17, 3.6), layout="constrained")
    loss, dice, decision, rate = axes
    loss.plot(epochs, [record["loss"] for record in records])
    loss.set_title("training loss")
    dice.plot(epochs, [record["val_dice"] for record in records])
    dice.set_title("validation Dice (polyp frames)")
    for key, label in (("val_flagged", "polyp-free flagged"), ("val_missed", "polyp missed")):
        if any(key in record for record in records):
            decision.plot(epochs, [record.get(key) for record in records], label=label)
    decision.axhline(TARGET_SHARE, color="grey", linestyle="--", linewidth=1, label="target")
    decision.set_title("frame decision on validation")
    decision.legend(fontsize=8)
    rate.plot(epochs, [record["lr"] for record in records])
    rate.set_title("learning rate")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.savefig(png, dpi=110)
    pyplot.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.curves", description="Redraw a run's curves.png from its log."
    )
    parser.add_argument("run", type=Path, help="a run folder holding log.jsonl")
    parser.add_argument("-o", "--output", type=Path, help="default: RUN/curves.png")
    args = parser.parse_args(argv)
    log_path = args.run / "log.jsonl"
    if not log_path.is_file():
        sys.exit(f"curves: no log at {log_path}")
    try:
        if not log_path.read_text().strip():
            sys.exit(f"curves: {log_path} holds no epoch yet")
        plot_curves(log_path, args.output or args.run / "curves.png")
    except (ValueError, KeyError, TypeError) as error:  # JSON or text that is not a run's log
        sys.exit(f"curves: {log_path} is not a training log ({error})")
    except OSError as error:
        sys.exit(f"curves: cannot write the picture: {error}")


if __name__ == "__main__":
    main()
