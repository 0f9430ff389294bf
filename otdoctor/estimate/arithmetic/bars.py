"""The remaining time of a running OneTrainer, from the latest states of its progress bars."""

from __future__ import annotations

from dataclasses import dataclass

from otdoctor.estimate.progress_bars import BarUpdate


@dataclass(frozen=True)
class LogPrediction:
    epoch: float | None
    epochs: float | None
    step: float | None
    steps_in_epoch: float | None
    remaining_s: float | None
    basis: str  # which bar the prediction comes from
    epoch_s: float | None = None
    step_its: float | None = None
    loss: str | None = None


def _loss(epoch_bar: BarUpdate | None, step_bar: BarUpdate | None) -> str | None:
    """The latest loss either bar shows; the epoch bar's wins when both show one."""
    loss = None
    for bar in (step_bar, epoch_bar):
        if bar is not None and bar.postfix:
            loss = bar.postfix.get("smooth loss") or bar.postfix.get("loss") or loss
    return loss


def _from_epoch_rate(
    epoch_bar: BarUpdate, step_bar: BarUpdate | None, epoch_s: float, epochs_left: float, loss: str | None
) -> LogPrediction:
    step_its = step_bar.rate_its if step_bar is not None else None
    remaining = epochs_left * epoch_s
    basis = "epoch bar rate (wall time per epoch, overheads included)"
    if step_bar is not None and step_bar.total and step_its:
        # The current epoch is partly done: replace its share by what the step bar says.
        this_epoch_left = (step_bar.total - step_bar.n) / step_its
        remaining = max(epochs_left - 1, 0) * epoch_s + min(this_epoch_left, epoch_s)
        basis = "epoch bar rate for whole epochs + step bar for the current one"
    return LogPrediction(
        epoch_bar.n,
        epoch_bar.total,
        step_bar.n if step_bar else None,
        step_bar.total if step_bar else None,
        remaining,
        basis,
        epoch_s,
        step_its,
        loss,
    )


def _from_step_rate(
    epoch_bar: BarUpdate | None,
    step_bar: BarUpdate,
    step_its: float,
    steps_total: float,
    epochs_left: float | None,
    loss: str | None,
) -> LogPrediction:
    remaining = (steps_total - step_bar.n) / step_its
    if epochs_left is not None and epochs_left > 1:
        remaining += (epochs_left - 1) * steps_total / step_its
    return LogPrediction(
        epoch_bar.n if epoch_bar else None,
        epoch_bar.total if epoch_bar is not None else None,
        step_bar.n,
        steps_total,
        remaining,
        "step bar rate (steps only, overheads not included)",
        None,
        step_its,
        loss,
    )


def predict_from_bars(epoch_bar: BarUpdate | None, step_bar: BarUpdate | None) -> LogPrediction:
    """Remaining time of a run from its latest `epoch` and `step` bar states (progress_bars.BarUpdate).

    The epoch bar's rate is wall time per epoch, so it already holds that run's per-epoch sampling,
    saves and backups; within the current epoch the step bar is finer.
    """
    epoch_s = epoch_bar.s_per_it if epoch_bar is not None else None
    step_its = step_bar.rate_its if step_bar is not None else None
    loss = _loss(epoch_bar, step_bar)
    epochs_left = None
    if epoch_bar is not None and epoch_bar.total is not None:
        epochs_left = epoch_bar.total - epoch_bar.n
    if epoch_bar is not None and epoch_s and epochs_left is not None:
        return _from_epoch_rate(epoch_bar, step_bar, epoch_s, epochs_left, loss)
    if step_bar is not None and step_its and step_bar.total:
        return _from_step_rate(epoch_bar, step_bar, step_its, step_bar.total, epochs_left, loss)
    if epoch_bar is not None and epoch_bar.remaining_s is not None:
        return LogPrediction(
            epoch_bar.n,
            epoch_bar.total,
            None,
            None,
            epoch_bar.remaining_s,
            "tqdm's own remaining time",
            epoch_s,
            None,
            loss,
        )
    return LogPrediction(None, None, None, None, None, "no usable progress bar")
