"""Text for `otdoctor smoke` and `otdoctor estimate`: tables of what was measured and predicted."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from rich.markup import escape
from rich.table import Table

from otdoctor.redact import redact
from otdoctor.render.emit import Destination, Draw
from otdoctor.render.text import console
from otdoctor.render.units import human_bytes, human_duration


def _e(text: Any) -> str:
    return escape(redact(str(text)))


def its_text(its: float | None) -> str:
    """tqdm's convention: it/s at or above 1, s/it below."""
    if not its:
        return "unknown"
    return f"{its:.2f} it/s" if its >= 1 else f"{1 / its:.2f} s/it ({its:.3f} it/s)"


def _clock(t: _dt.datetime | None, ref: _dt.datetime | None = None) -> str:
    if t is None:
        return "unknown"
    if ref is not None and t.date() == ref.date():
        return t.strftime("%H:%M")
    return t.strftime("%a %d %b %H:%M")


# smoke --------------------------------------------------------------------------------------------
def _optimizer_text(r: Any) -> str:
    return (
        r.optimizer
        + (", fused back pass" if r.fused_back_pass else "")
        + (", gradient checkpointing" if r.gradient_checkpointing else "")
    )


def _smoke_setup_rows(r: Any) -> list[tuple[str, str]]:
    rows = [("device", _e(r.gpu + (f" (driver {r.driver})" if r.driver else "")))]
    if r.torch:
        rows.append(("torch", _e(f"{r.torch}" + (f", diffusers {r.diffusers}" if r.diffusers else ""))))
    if r.parameters:
        rows.append(("UNet parameters", f"{r.parameters:,}"))
    if r.optimizer:
        rows.append(("optimizer", _e(_optimizer_text(r))))
    if r.load_s is not None:
        rows.append(("model load", human_duration(r.load_s)))
    if r.caching_images_per_s:
        rows.append(("latent caching", f"{r.caching_images_per_s:.2f} images/s"))
    return rows


def _speed_text(r: Any) -> str:
    if not r.its:
        return "not measured"
    spread = ""
    if r.its_low and r.its_high:
        spread = f"  (slowest..fastest stretch: {its_text(r.its_low)} .. {its_text(r.its_high)})"
    return f"[bold]{its_text(r.its)}[/] over {r.steps} steps after {r.warmup_steps} warm-up{spread}"


def _smoke_measure_rows(r: Any) -> list[tuple[str, str]]:
    rows = [("speed", _speed_text(r))]
    if r.peak_vram_bytes is not None:
        rows.append(("peak VRAM", f"{human_bytes(r.peak_vram_bytes)} ({_e(r.peak_vram_source)})"))
    else:
        rows.append(("peak VRAM", _e(r.peak_vram_source or "unavailable")))
    if r.peak_memory_bytes:
        rows.append(("peak memory", f"{human_bytes(r.peak_memory_bytes)} ({_e(r.peak_memory_kind)})"))
    if r.loss_first is not None:
        rows.append(("loss", f"{r.loss_first:.4f} -> {r.loss_last:.4f}" + ("" if r.loss_finite else "  NOT FINITE")))
    if r.save_bytes and r.save_s:
        rows.append(("save", f"{human_bytes(r.save_bytes)} in {human_duration(r.save_s)}"))
    elif r.save_s is not None:
        rows.append(("save", human_duration(r.save_s)))
    overheads = (("sampling pass", "sample_s"), ("backup", "backup_s"), ("epoch boundary", "epoch_s"))
    rows += [(label, f"+{human_duration(getattr(r, k))}") for label, k in overheads if getattr(r, k, None) is not None]
    return rows


def render_smoke(r: Any, path: Any, out: IO[str] | None = None) -> None:
    c = console(file=out)
    title = f"otdoctor smoke ({r.mode}): {r.model}, {r.resolution} px, batch {r.batch_size}, {r.dtype}"
    c.print(f"[bold]{_e(title)}[/]")
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column("what", style="dim")
    t.add_column("value")
    for what, value in _smoke_setup_rows(r) + _smoke_measure_rows(r):
        t.add_row(what, value)
    c.print(t)
    for n in r.notes:
        c.print(f"  [dim]note:[/] {_e(n)}")
    if r.ok:
        c.print(f"[green]✔[/] trains. Result saved: {_e(path)}")
    else:
        c.print(f"[red]✖[/] {_e(r.error or 'failed')}")


# estimate -----------------------------------------------------------------------------------------
def _steps_lines(p: Any) -> list[str]:
    lines = ["[bold]Steps[/]"]
    for name, samples, why in p.per_concept:
        lines.append(f"  {_e(name)}: " + (f"left out ({_e(why)})" if why else f"{samples} samples per epoch"))
    if len(p.buckets) > 1 or p.dropped_per_epoch:
        lines.append("  buckets (h x w: samples): " + ", ".join(f"{h}x{w}: {k}" for (h, w), k in p.buckets))
        if p.dropped_per_epoch:
            lines.append(f"  {p.dropped_per_epoch} samples per epoch dropped (incomplete batches of {p.batch_size})")
    per = f"{p.steps_per_epoch}" + (" (first epoch; varies)" if p.varies_per_epoch else "")
    lines.append(
        f"  [bold]{per} steps per epoch[/] x {p.epochs} epochs = [bold]{p.total_steps:,} steps[/]"
        f" (batch size {p.batch_size})"
    )
    lines += [f"  [dim]note:[/] {_e(n)}" for n in p.notes]
    return lines


def _balancing_lines(b: Any) -> list[str]:
    if b is None:
        return []
    lines = [
        "[bold]Balancing of the regularisation concept[/]",
        f"  {b.wanted} of {b.n_images} images per epoch: REPEATS balancing [bold]{b.value_text}[/]"
        f" (floor({b.n_images} x {b.value_text}) = {b.wanted})",
    ]
    if b.naive_count != b.wanted:
        lines.append(
            f"  [yellow]careful:[/] {b.wanted}/{b.n_images} = {b.naive_text} gives floor = {b.naive_count}, "
            f"not {b.wanted}: OneTrainer rounds down"
        )
    lines.append(f"  or: balancing {b.samples_value}, strategy SAMPLES (exactly {b.samples_value}, no arithmetic)")
    return lines


def _term_cells(term: Any) -> tuple[str, str, str]:
    count = "" if term.count is None else f"{term.count:,.0f}"
    each = ""
    if term.each_s is not None:
        each = its_text(1 / term.each_s) if term.name == "training steps" else human_duration(term.each_s)
    rng = ""
    if term.low_s is not None and term.high_s is not None and abs(term.high_s - term.low_s) > 0.5:
        rng = f"{human_duration(term.low_s)} .. {human_duration(term.high_s)}"
    return count, each, rng


def _time_table(tm: Any) -> tuple[Table, list[str]]:
    """The terms of the time estimate, each pointing at its numbered source."""
    t = Table(box=None, padding=(0, 2), show_edge=False)
    for col in ("term", "count", "each", "time", "range", "from"):
        t.add_column(col, justify="right" if col in ("count", "each", "time") else "left", no_wrap=col != "from")
    sources: list[str] = []
    for term in tm.terms:
        count, each, rng = _term_cells(term)
        src = term.source or ""
        if src not in sources:
            sources.append(src)
        t.add_row(_e(term.name), count, each, human_duration(term.seconds), rng, f"[{sources.index(src) + 1}]")
    return t, sources


def _total_lines(o: Any) -> list[str]:
    tm = o.time
    if tm.total_s is None:
        return ["  total: unknown (no it/s)"]
    rng = ""
    if tm.low_s is not None and tm.high_s is not None and tm.high_s - tm.low_s > 1:
        rng = f" (range {human_duration(tm.low_s)} .. {human_duration(tm.high_s)})"
    span = ""
    if o.finish_low and o.finish_high and o.finish_high != o.finish_low:
        span = f" (between {_clock(o.finish_low, o.start)} and {_clock(o.finish_high, o.start)})"
    return [
        f"  [bold]total {human_duration(tm.total_s)}[/]{rng}",
        f"  started {_clock(o.start)} -> finishes about [bold]{_clock(o.finish, o.start)}[/]{span}",
    ]


def render_estimate(o: Any, out: IO[str] | None = None) -> None:
    c = console(file=out)
    for line in _steps_lines(o.plan) + _balancing_lines(o.balancing) + ["[bold]Time[/]"]:
        c.print(line)
    table, sources = _time_table(o.time)
    c.print(table)
    for line in _total_lines(o):
        c.print(line)
    for i, src in enumerate(sources, 1):
        c.print(f"  [dim][{i}][/] {_e(src or 'n/a')}")
    for n in o.notes:
        c.print(f"  [dim]note:[/] {_e(n)}")


def render_log(o: Any, out: IO[str] | None = None) -> None:
    c = console(file=out)
    p = o.prediction
    if o.last_epoch_line:
        c.print(f"  last epoch bar: {_e(o.last_epoch_line)}")
    if o.last_step_line:
        c.print(f"  last step bar:  {_e(o.last_step_line)}")
    if p.epoch is not None and p.epochs:
        c.print(
            f"  epoch {p.epoch:.0f} of {p.epochs:.0f}"
            + (f", step {p.step:.0f} of {p.steps_in_epoch:.0f}" if p.step is not None and p.steps_in_epoch else "")
        )
    if p.epoch_s:
        c.print(f"  one epoch takes {human_duration(p.epoch_s)}")
    if p.step_its:
        c.print(f"  steps run at {its_text(p.step_its)}")
    if p.loss:
        c.print(f"  loss {p.loss}")
    if p.remaining_s is None:
        c.print(f"  remaining: unknown ({_e(p.basis)})")
        return
    extra = f" + final save {human_duration(o.final_save_s)}" if o.final_save_s else ""
    c.print(f"  [bold]remaining {human_duration(p.remaining_s)}[/]{extra} ({_e(p.basis)})")
    c.print(f"  finishes about [bold]{_clock(o.finish, o.now)}[/]")


def _json_text(data: Any) -> str:
    return redact(json.dumps(data, indent=1)) + "\n"


@dataclass(frozen=True)
class SmokeView:
    """`otdoctor smoke`: the measured run, where it was saved, and the CI gates it failed."""

    result: Any
    path: Any
    why: list[str]
    failures: list[str]

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        render_smoke(self.result, self.path)
        # a failed run's first failure is its error, which render_smoke has shown
        for f in self.failures[1 if not self.result.ok else 0 :]:
            dest.write(redact(f"✖ {f}") + "\n")

    def _json(self, dest: Destination) -> None:
        from otdoctor.smoke import result_json

        data = json.loads(result_json(self.result, self.path, self.why))
        data["gate_failures"] = self.failures
        dest.write(_json_text(data))


@dataclass(frozen=True)
class EstimateView:
    """`otdoctor estimate`: a planned run (`render_estimate`) or a running one read from its log (`render_log`)."""

    estimate: Any
    from_log: bool = False

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        (render_log if self.from_log else render_estimate)(self.estimate)

    def _json(self, dest: Destination) -> None:
        dest.write(_json_text(self.estimate.to_dict()))
