"""Text for `otdoctor smoke` and `otdoctor estimate`: tables of what was measured and predicted."""

from __future__ import annotations

import datetime as _dt
from typing import IO, Any

from rich.markup import escape
from rich.table import Table

from otdoctor.redact import redact
from otdoctor.render import human_bytes, human_duration
from otdoctor.render.text import console


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
def render_smoke(r: Any, path: Any, out: IO[str] | None = None) -> None:
    c = console(file=out)
    title = f"otdoctor smoke ({r.mode}): {r.model}, {r.resolution} px, batch {r.batch_size}, {r.dtype}"
    c.print(f"[bold]{_e(title)}[/]")
    t = Table(show_header=False, box=None, padding=(0, 2))
    t.add_column("what", style="dim")
    t.add_column("value")
    t.add_row("device", _e(r.gpu + (f" (driver {r.driver})" if r.driver else "")))
    if r.torch:
        t.add_row("torch", _e(f"{r.torch}" + (f", diffusers {r.diffusers}" if r.diffusers else "")))
    if r.parameters:
        t.add_row("UNet parameters", f"{r.parameters:,}")
    if r.optimizer:
        t.add_row(
            "optimizer",
            _e(
                r.optimizer
                + (", fused back pass" if r.fused_back_pass else "")
                + (", gradient checkpointing" if r.gradient_checkpointing else "")
            ),
        )
    if r.load_s is not None:
        t.add_row("model load", human_duration(r.load_s))
    if r.caching_images_per_s:
        t.add_row("latent caching", f"{r.caching_images_per_s:.2f} images/s")
    if r.its:
        spread = ""
        if r.its_low and r.its_high:
            spread = f"  (slowest..fastest stretch: {its_text(r.its_low)} .. {its_text(r.its_high)})"
        t.add_row("speed", f"[bold]{its_text(r.its)}[/] over {r.steps} steps after {r.warmup_steps} warm-up{spread}")
    else:
        t.add_row("speed", "not measured")
    if r.peak_vram_bytes is not None:
        t.add_row("peak VRAM", f"{human_bytes(r.peak_vram_bytes)} ({_e(r.peak_vram_source)})")
    else:
        t.add_row("peak VRAM", _e(r.peak_vram_source or "unavailable"))
    if r.peak_memory_bytes:
        t.add_row("peak memory", f"{human_bytes(r.peak_memory_bytes)} ({_e(r.peak_memory_kind)})")
    if r.loss_first is not None:
        t.add_row("loss", f"{r.loss_first:.4f} -> {r.loss_last:.4f}" + ("" if r.loss_finite else "  NOT FINITE"))
    if r.save_bytes and r.save_s:
        t.add_row("save", f"{human_bytes(r.save_bytes)} in {human_duration(r.save_s)}")
    c.print(t)
    for n in r.notes:
        c.print(f"  [dim]note:[/] {_e(n)}")
    if r.ok:
        c.print(f"[green]✔[/] trains. Result saved: {_e(path)}")
    else:
        c.print(f"[red]✖[/] {_e(r.error or 'failed')}")


# estimate -----------------------------------------------------------------------------------------
def render_estimate(o: Any, out: IO[str] | None = None) -> None:
    c = console(file=out)
    p = o.plan
    c.print("[bold]Steps[/]")
    for name, samples, why in p.per_concept:
        c.print(f"  {_e(name)}: " + (f"left out ({_e(why)})" if why else f"{samples} samples per epoch"))
    if len(p.buckets) > 1 or p.dropped_per_epoch:
        c.print("  buckets (h x w: samples): " + ", ".join(f"{h}x{w}: {k}" for (h, w), k in p.buckets))
        if p.dropped_per_epoch:
            c.print(f"  {p.dropped_per_epoch} samples per epoch dropped (incomplete batches of {p.batch_size})")
    per = f"{p.steps_per_epoch}" + (" (first epoch; varies)" if p.varies_per_epoch else "")
    c.print(
        f"  [bold]{per} steps per epoch[/] x {p.epochs} epochs = [bold]{p.total_steps:,} steps[/]"
        f" (batch size {p.batch_size})"
    )
    for n in p.notes:
        c.print(f"  [dim]note:[/] {_e(n)}")
    b = o.balancing
    if b is not None:
        c.print("[bold]Balancing of the regularisation concept[/]")
        c.print(
            f"  {b.wanted} of {b.n_images} images per epoch: REPEATS balancing [bold]{b.value_text}[/]"
            f" (floor({b.n_images} x {b.value_text}) = {b.wanted})"
        )
        if b.naive_count != b.wanted:
            c.print(
                f"  [yellow]careful:[/] {b.wanted}/{b.n_images} = {b.naive_text} gives floor = {b.naive_count}, "
                f"not {b.wanted}: OneTrainer rounds down"
            )
        c.print(f"  or: balancing {b.samples_value}, strategy SAMPLES (exactly {b.samples_value}, no arithmetic)")
    tm = o.time
    c.print("[bold]Time[/]")
    t = Table(box=None, padding=(0, 2), show_edge=False)
    for col in ("term", "count", "each", "time", "range", "from"):
        t.add_column(col, justify="right" if col in ("count", "each", "time") else "left", no_wrap=col != "from")
    sources: list[str] = []
    for term in tm.terms:
        count = "" if term.count is None else f"{term.count:,.0f}"
        each = (
            ""
            if term.each_s is None
            else (its_text(1 / term.each_s) if term.name == "training steps" else human_duration(term.each_s))
        )
        rng = ""
        if term.low_s is not None and term.high_s is not None and abs(term.high_s - term.low_s) > 0.5:
            rng = f"{human_duration(term.low_s)} .. {human_duration(term.high_s)}"
        src = term.source or ""
        if src not in sources:
            sources.append(src)
        t.add_row(_e(term.name), count, each, human_duration(term.seconds), rng, f"[{sources.index(src) + 1}]")
    c.print(t)
    if tm.total_s is None:
        c.print("  total: unknown (no it/s)")
    else:
        rng = ""
        if tm.low_s is not None and tm.high_s is not None and tm.high_s - tm.low_s > 1:
            rng = f" (range {human_duration(tm.low_s)} .. {human_duration(tm.high_s)})"
        c.print(f"  [bold]total {human_duration(tm.total_s)}[/]{rng}")
        fin = _clock(o.finish, o.start)
        span = ""
        if o.finish_low and o.finish_high and o.finish_high != o.finish_low:
            span = f" (between {_clock(o.finish_low, o.start)} and {_clock(o.finish_high, o.start)})"
        c.print(f"  started {_clock(o.start)} -> finishes about [bold]{fin}[/]{span}")
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
        c.print("  remaining: unknown")
        return
    extra = f" + final save {human_duration(o.final_save_s)}" if o.final_save_s else ""
    c.print(f"  [bold]remaining {human_duration(p.remaining_s)}[/]{extra} ({_e(p.basis)})")
    c.print(f"  finishes about [bold]{_clock(o.finish, o.now)}[/]")
