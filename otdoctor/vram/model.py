"""Peak VRAM of one training step, component by component, from the Settings and the part counts.

Always resident: weights on the GPU, the optimizer's state and EMA. On top of them the larger of two
phases: the end of forward (all saved activations) and the optimizer step (every gradient plus the
step's temporaries); with fused back pass both meet inside backward (activations, one gradient, the
temporaries). Then the CUDA context and the allocator's slack. Checked against PyTorch's MemTracker
on the CPU (scripts/calibrate_vram.py --cpu).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otdoctor.data import load_table
from otdoctor.render.units import human_bytes
from otdoctor.vram.settings import Part, Settings, table

GB = 1e9


@dataclass(frozen=True)
class Component:
    name: str
    bytes: int
    why: str


@dataclass(frozen=True)
class Prediction:
    components: tuple[Component, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def peak_bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    def get(self, name: str) -> int:
        return sum(c.bytes for c in self.components if c.name == name or c.name.startswith(name + " "))


def counts_for(family: str) -> Mapping[str, Mapping[str, Any]]:
    return load_table("vram_counts.toml")[family]


def _billions(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.1f} M"


def _resident(part: Part, count: Mapping[str, Any]) -> float:
    """The share of a part's weights on the GPU: layer offloading moves a fraction of the
    checkpointed blocks' weights to system RAM."""
    offloaded = part.offload_fraction * count["checkpointed_parameters"] / count["parameters"]
    return 1.0 - offloaded


@dataclass(frozen=True)
class Trained:
    """What the optimizer updates: elements, the largest tensor, bytes per element, factored state size."""

    elements: float
    largest: int
    weight_bytes: float
    factored: float


def trained(s: Settings, counts: Mapping[str, Mapping[str, Any]]) -> list[tuple[Part, Trained]]:
    out = []
    for part in s.parts:
        if not part.train:
            continue
        c = counts[part.name]
        if s.method == "LORA":
            n = c["lora_per_rank"] * s.lora_rank
            largest = c["lora_largest_per_rank"] * s.lora_rank
            out.append((part, Trained(n, largest, s.lora_weight_bytes, c["lora_per_rank"])))
        else:
            share = _resident(part, c)
            out.append(
                (
                    part,
                    Trained(
                        c["parameters"] * share,
                        c["largest_parameter"],
                        part.weight_bytes,
                        c["adafactor_state"] * share,
                    ),
                )
            )
    return out


def weights(s: Settings, counts: Mapping[str, Mapping[str, Any]]) -> list[Component]:
    comps = []
    for part in s.parts:
        if not part.on_gpu:
            continue
        c = counts[part.name]
        share = _resident(part, c)
        role = "trained" if part.train and s.method == "FINE_TUNE" else "frozen"
        why = f"{_billions(c['parameters'])} parameters x {part.weight_bytes:g} bytes ({part.weight_dtype}), {role}"
        if share < 1:
            why += f", {1 - share:.0%} offloaded to RAM"
        comps.append(Component(f"weights {part.name}", int(c["parameters"] * part.weight_bytes * share), why))
    if s.method == "LORA":
        n = sum(t.elements for _p, t in trained(s, counts))
        comps.append(
            Component(
                "weights lora", int(n * s.lora_weight_bytes), f"{_billions(n)} adapter weights (rank {s.lora_rank})"
            )
        )
    return comps


def gradients(s: Settings, items: list[tuple[Part, Trained]]) -> Component:
    if not items:
        return Component("gradients", 0, "nothing is trained but embeddings")
    if s.fused_back_pass:
        largest = max(t.largest * t.weight_bytes for _p, t in items)
        return Component("gradients", int(largest), "fused back pass: each gradient is applied and freed at once")
    total = sum(t.elements * t.weight_bytes for _p, t in items)
    names = " + ".join(p.name for p, _t in items)
    return Component("gradients", int(total), f"one per trained weight ({names}), in the weights' dtype")


def _optimizer_row(s: Settings) -> tuple[Mapping[str, Any], str | None]:
    rows = table()["optimizer"]
    if s.optimizer in rows:
        return rows[s.optimizer], None
    return rows["ADAMW"], f"optimizer {s.optimizer} is not modelled: its state is taken as AdamW's"


def _state_elements(s: Settings, row: Mapping[str, Any], t: Trained) -> float:
    full = float(row.get("full", 0))
    if s.optimizer.startswith("ADAFACTOR") and s.optimizer_options.get("beta1") not in (None, 0, 0.0):
        full += 1  # beta1 keeps a first moment the size of the weight
    if "SGD" in s.optimizer and not s.optimizer_options.get("momentum"):
        full = 0.0
    sliced = float(row.get("sliced", 0))
    slice_p = s.optimizer_options.get("slice_p") or 1
    if isinstance(slice_p, int | float) and not isinstance(slice_p, bool) and slice_p > 1:
        full -= sliced * (1 - 1 / slice_p)
    factored_sets = float(row.get("factored_sets", 0))
    factored = t.factored if s.optimizer_options.get("factored", True) is not False else t.elements
    return full * t.elements + factored_sets * factored


def _step_temps(row: Mapping[str, Any], t: Trained) -> float:
    """Bytes of the temporaries while the largest weight of T is updated."""
    count = float(row.get("temps", 1))
    if row.get("temp_bytes") == "param":
        return count * t.largest * t.weight_bytes
    if t.weight_bytes < 4:
        count += float(row.get("half_temps", 0))
    return count * t.largest * float(row.get("temp_bytes", 4))


def _temps_why(row: Mapping[str, Any]) -> str:
    if row.get("temp_bytes") == "param":
        return f"{row.get('temps', 1)} temporaries of the largest trained weight while it is updated"
    extra = f" (+{row['half_temps']} upcasts of 16-bit weights)" if row.get("half_temps") else ""
    return f"{row.get('temps', 1)} float32 temporaries{extra} of the largest trained weight while it is updated"


def optimizer_state(s: Settings, items: list[tuple[Part, Trained]]) -> tuple[list[Component], list[str]]:
    row, note = _optimizer_row(s)
    total = 0.0
    for _part, t in items:
        per = t.weight_bytes if row["bytes"] == "param" else float(row["bytes"])
        total += _state_elements(s, row, t) * per
    shape = f"{row.get('full', 0)} full-size state(s)"
    if row.get("factored_sets"):
        shape += f" + {row['factored_sets']} factored row/column set(s)"
    state = Component("optimizer state", int(total), f"{s.optimizer}: {shape} per trained weight")
    temps = Component("optimizer step", int(max((_step_temps(row, t) for _p, t in items), default=0)), _temps_why(row))
    return [state, temps], [note] if note else []


def ema(s: Settings, items: list[tuple[Part, Trained]]) -> Component:
    if s.ema != "GPU":
        return Component("ema", 0, f"ema {s.ema}: no copy on the GPU")
    total = sum(t.elements * t.weight_bytes for _p, t in items)
    return Component("ema", int(total), "a copy of every trained weight on the GPU")


def _saved(c: Mapping[str, Any], key: str, pixels: int) -> float:
    return float(c.get(f"{key}_fixed", 0)) + float(c.get(f"{key}_per_pixel", 0)) * pixels


def _part_activations(s: Settings, part: Part, c: Mapping[str, Any]) -> tuple[float, str]:
    pixels = s.latent_pixels if part.name == "unet" else 0
    if not part.checkpointing:
        return _saved(c, "outside", pixels) + _saved(c, "block_total", pixels), "every block's activations"
    kept = 0.0 if part.activation_offloading else _saved(c, "block_inputs", pixels)
    how = "checkpointed: block inputs" + (" (offloaded to RAM)" if part.activation_offloading else "")
    return _saved(c, "outside", pixels) + kept + _saved(c, "block_max", pixels), how + " + one block recomputed"


def activations(s: Settings, counts: Mapping[str, Mapping[str, Any]]) -> list[Component]:
    """Saved for backward: the UNet's always (gradients flow through it to whatever is trained), a
    text encoder's when it is trained or embeddings are."""
    comps = []
    for part in s.parts:
        if part.name == "vae" or not part.on_gpu:
            continue
        if part.name != "unet" and not (part.train or s.method == "EMBEDDING"):
            continue
        elements, how = _part_activations(s, part, counts[part.name])
        side = int(s.latent_pixels**0.5 * table()["overhead"]["latent_factor"])
        where = f"~{side} px, " if part.name == "unet" else "77 tokens, "
        comps.append(
            Component(
                f"activations {part.name}",
                int(elements * s.batch_size * s.activation_bytes),
                f"{where}batch {s.batch_size}, {s.activation_bytes} bytes each; {how}",
            )
        )
    return comps


def _peak_phase(s: Settings, stepping: list[Component], backward: list[Component]) -> list[Component]:
    """The dynamic part of the peak. With fused back pass each weight is stepped inside backward, so
    activations, one gradient and the step's temporaries meet. Without it the saved activations are
    freed by the end of backward, before the step that holds every gradient: the peak is the larger
    of the two phases, and the other phase's components are listed at 0 bytes with their size."""
    if s.fused_back_pass or not backward:
        return [*stepping, *backward]
    if sum(c.bytes for c in stepping) >= sum(c.bytes for c in backward):
        gone = "kept for backward, freed before the optimizer step where the peak is"
        return [*stepping, *(Component(c.name, 0, f"{human_bytes(c.bytes)} {gone}: {c.why}") for c in backward)]
    gone = "needed only after backward has freed the saved activations, where the peak is"
    return [*(Component(c.name, 0, f"{human_bytes(c.bytes)} {gone}: {c.why}") for c in stepping), *backward]


def predict(s: Settings, counts: Mapping[str, Mapping[str, Any]] | None = None) -> Prediction:
    counts = counts if counts is not None else counts_for(s.family)
    items = trained(s, counts)
    state, notes = optimizer_state(s, items)
    phases = _peak_phase(s, [gradients(s, items), state[1]], activations(s, counts))
    comps = [*weights(s, counts), state[0], ema(s, items), *phases]
    overhead = table()["overhead"]
    allocated = sum(c.bytes for c in comps)
    comps.append(
        Component(
            "allocator",
            int(allocated * overhead["allocator_fraction"]),
            f"{overhead['allocator_fraction']:.0%} of the above: the caching allocator's slack (planning figure)",
        )
    )
    comps.append(
        Component(
            "cuda context", int(overhead["cuda_context_bytes"]), "CUDA driver context and kernels (planning figure)"
        )
    )
    if s.method == "FINE_TUNE" and not s.fused_back_pass and any(p.offload_fraction > 0 for p in s.parts):
        notes.append("layer offloading of a full fine-tune needs fused back pass (OneTrainer's RAM offloading docs)")
    if s.fused_back_pass and s.gradient_accumulation_steps > 1:
        notes.append("fused_back_pass does not work with gradient_accumulation_steps > 1 (OneTrainer warns)")
    return Prediction(tuple(comps), tuple(notes))
