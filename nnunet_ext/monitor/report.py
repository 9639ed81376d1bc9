"""Text table and PNG plot of a :class:`~nnunet_ext.monitor.history.TrainingHistory`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from nnunet_ext.io import atomic_path
from nnunet_ext.monitor.history import TrainingHistory

__all__ = ["format_duration", "format_report", "plot_history"]


def format_duration(seconds: float | None) -> str:
    """Format seconds as ``1d 02:03:04`` / ``02:03:04``; ``?`` when unknown.

    Examples:
        >>> format_duration(3725.0), format_duration(90061.0), format_duration(None)
        ('01:02:05', '1d 01:01:01', '?')
    """
    if seconds is None or not math.isfinite(seconds):
        return "?"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def format_report(history: TrainingHistory, *, last: int = 15) -> str:
    """Render the last ``last`` epochs as a table plus a summary (best, ETA, status, warnings).

    The best epoch (``checkpoint_best.pth``) is marked with ``*`` and cooldown epochs with ``c``;
    labels whose pseudo Dice collapsed are marked ``!`` in the header and explained below the
    table, as are labels the forgetting guard flagged and the cooldown window.

    Args:
        history: From :func:`~nnunet_ext.monitor.history.read_training_history`.
        last: Number of most recent epochs to show (0: all).

    Returns:
        The report text (no trailing newline).
    """
    collapses = history.collapsing_labels()
    collapsed = {c.index for c in collapses}
    names = [f"{name}{'!' if i in collapsed else ''}" for i, name in enumerate(history.label_names)]
    lines = [f"{history.fold_dir}  ({len(history.log_files)} log file(s))"]
    lines.extend(_epoch_table(history, names, last))
    lines.append("")
    lines.extend(_summary_lines(history))
    for collapse in collapses:
        lines.append(f"WARNING: {collapse.describe(5)}")
    for note in history.warnings:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _epoch_table(history: TrainingHistory, names: list[str], last: int) -> list[str]:
    """The epoch table: header and one row per shown epoch (``*`` best, ``c`` cooldown)."""
    best = history.best
    header = ["epoch", "train_loss", "val_loss", *names, "EMA", "lr", "time_s"]
    rows: list[list[str]] = []
    shown = history.epochs if last <= 0 else history.epochs[-last:]
    cooldown = history.cooldown_window
    for record in shown:
        mark = "*" if best is not None and record.epoch == best.epoch else " "
        if cooldown is not None and cooldown[0] <= record.epoch <= cooldown[1]:
            mark = f"c{mark.strip()}"
        rows.append(
            [
                f"{record.epoch}{mark}",
                _num(record.train_loss),
                _num(record.val_loss),
                *[_num(v) for v in record.pseudo_dice],
                *["-"] * (len(names) - len(record.pseudo_dice)),
                _num(record.ema_pseudo_dice),
                _num(record.learning_rate, 5),
                _num(record.epoch_time_s, 1),
            ]
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines.extend("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    if not rows:
        lines.append("(no finished epoch yet)")
    return lines


def _summary_lines(history: TrainingHistory) -> list[str]:
    """Progress, best epoch, early stopping, cooldown, forgetting and ETA below the table."""
    best = history.best
    cooldown = history.cooldown_window
    done = history.epochs[-1].epoch + 1 if history.epochs else 0
    total = str(history.num_epochs) if history.num_epochs is not None else "?"
    lines = [f"epochs finished: {done} of {total}   status: {history.status}"]
    if history.unfinished_epoch is not None and history.status == "running":
        lines.append(f"epoch {history.unfinished_epoch} is in progress")
    if best is not None:
        ema = best.logged_best_ema if best.logged_best_ema is not None else best.ema_pseudo_dice
        lines.append(f"best EMA pseudo Dice: {_num(ema)} at epoch {best.epoch} (*)")
    if history.patience is not None:
        since = done - 1 - best.epoch if best is not None and done else 0
        lines.append(
            f"early stopping: patience {history.patience}, {since} epoch(s) since the best"
        )
    if history.stop:
        reason = history.stop.get("reason") or "unknown"
        message = history.stop.get("message") or ""
        lines.append(
            f"stopped early: {reason} at epoch {history.stop.get('epoch')}. {message}".rstrip()
        )
    if history.cooldown and cooldown is not None:
        c = history.cooldown
        ended = f", ended by {c['ended_by']}" if c.get("ended_by") else ""
        lines.append(
            f"cooldown (c): epochs {cooldown[0]}-{cooldown[1]} after the {c.get('reason')} stop, "
            f"learning rate {float(c['start_lr']):.6g} -> 0; "
            f"{c.get('epochs_done', '?')} of {c['epochs']} done{ended}"
        )
    for event in history.forgetting:
        lines.append(f"FORGETTING: {event.get('message')}")
    if history.status == "running":
        what = "cooldown end" if cooldown is not None else "configured epochs"
        lines.append(f"ETA ({what}): {format_duration(history.eta_s())}")
    elif history.status == "not_running":
        lines.append(
            f"no log line since {history.last_log_time}: the run is not finished and not writing; "
            "resume it with nnUNetv2_train ... --c"
        )
    return lines


def plot_history(history: TrainingHistory, path: str | os.PathLike[str]) -> Path:
    """Write a PNG: per-label pseudo Dice with the EMA (top) and the losses (bottom).

    The best epoch is a vertical line, the early-stop window (orange) and the cooldown (blue)
    are shaded when known, collapsing labels are drawn dashed and named in the legend, and a
    label flagged by the forgetting guard gets an ``x`` where the rule fired. Uses matplotlib's
    Agg backend on this figure only (no display, no change to pyplot's backend), imported here.
    Written atomically.

    Args:
        history: The training history.
        path: The ``.png`` to write; its folder must exist.

    Returns:
        The written path.

    Raises:
        ValueError: If ``path`` does not end with ``.png`` or there is no finished epoch.
        FileNotFoundError: If the folder of ``path`` does not exist.
    """
    final = Path(path)
    if final.suffix.lower() != ".png":
        raise ValueError(f"path must be a .png file; got {str(final)!r}.")
    if not final.parent.is_dir():
        raise FileNotFoundError(
            f"path folder does not exist: {str(final.parent)!r}. Create it first."
        )
    if not history.epochs:
        raise ValueError(f"{history.fold_dir}: no finished epoch to plot yet.")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 8), dpi=100)
    FigureCanvasAgg(figure)  # Agg, set on this figure only: no display, no global backend change
    dice_ax, loss_ax = figure.subplots(2, 1, sharex=True)
    _plot_curves(history, dice_ax, loss_ax)
    _plot_forgetting(history, dice_ax)
    _mark_windows(history, (dice_ax, loss_ax))
    dice_ax.set_ylabel("pseudo Dice")
    dice_ax.set_ylim(-0.02, 1.02)
    num_labels = len(history.label_names)
    dice_ax.legend(loc="lower right", fontsize=8, ncol=2 if num_labels > 6 else 1)
    loss_ax.set_ylabel("loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.legend(loc="upper right", fontsize=8)
    title = f"{history.fold_dir.parent.name}/{history.fold_dir.name}: {history.status}"
    if history.stop and history.stop.get("reason"):
        title += f" ({history.stop['reason']})"
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic_path(final) as tmp:
        figure.savefig(tmp, format="png")
    return final


def _plot_curves(history: TrainingHistory, dice_ax: Any, loss_ax: Any) -> None:
    """Per-label pseudo Dice (collapsing labels dashed red), the EMA, and both losses."""
    x = [e.epoch for e in history.epochs]
    collapsed = {c.index: c for c in history.collapsing_labels()}
    for index, name in enumerate(history.label_names):
        values = [
            e.pseudo_dice[index] if index < len(e.pseudo_dice) else math.nan for e in history.epochs
        ]
        if index in collapsed:
            dice_ax.plot(x, values, ls="--", lw=2.0, color="red", label=f"{name} (collapsing)")
        else:
            dice_ax.plot(x, values, lw=1.0, alpha=0.85, label=name)
    ema = [e.ema_pseudo_dice if e.ema_pseudo_dice is not None else math.nan for e in history.epochs]
    dice_ax.plot(x, ema, color="black", lw=2.5, label="EMA of mean")
    loss_ax.plot(
        x, [_nan(e.train_loss) for e in history.epochs], color="tab:blue", label="train loss"
    )
    loss_ax.plot(x, [_nan(e.val_loss) for e in history.epochs], color="tab:red", label="val loss")


def _plot_forgetting(history: TrainingHistory, dice_ax: Any) -> None:
    """An ``x`` where the forgetting guard fired for a label."""
    by_epoch = {e.epoch: e for e in history.epochs}
    for event in history.forgetting:
        index, epoch = int(event["index"]), int(event["epoch"])
        record = by_epoch.get(epoch)
        if record is None or index >= len(record.pseudo_dice):
            continue
        name = history.label_names[index] if index < len(history.label_names) else str(index)
        dice_ax.plot(
            [epoch],
            [record.pseudo_dice[index]],
            marker="X",
            ms=12,
            color="black",
            ls="none",
            label=f"{name} forgotten (epoch {epoch})",
        )


def _mark_windows(history: TrainingHistory, axes: tuple[Any, Any]) -> None:
    """The best epoch, the early-stop window and the cooldown on both axes."""
    best = history.best
    window = history.early_stop_window
    cooldown = history.cooldown_window
    last_epoch = history.epochs[-1].epoch
    for ax in axes:
        if best is not None:
            ax.axvline(best.epoch, color="green", ls=":", lw=1.5, label=f"best epoch {best.epoch}")
        spans = (
            (window, "orange", 0.15, "patience window"),
            (cooldown, "tab:blue", 0.12, "LR cooldown"),
        )
        for span, color, alpha, name in spans:
            if span is not None:
                ax.axvspan(
                    span[0] - 0.5,
                    span[1] + 0.5,
                    color=color,
                    alpha=alpha,
                    label=f"{name} {span[0]}-{span[1]}",
                )
        if history.num_epochs is not None:
            ax.set_xlim(-0.5, max(history.num_epochs - 0.5, last_epoch + 0.5))
        ax.grid(alpha=0.3)


def _nan(value: float | None) -> float:
    return math.nan if value is None else value
