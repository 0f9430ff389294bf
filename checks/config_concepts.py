"""Config checks on the concepts: regularisation balancing, concept folders, masks and captions."""

from __future__ import annotations

import math
from typing import Any

from otdoctor.data import load_table
from otdoctor.dataset.scan import ConceptData, DatasetFacts, listing_facts
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.config import TrainConfig

from .config_common import CONFIG_FILE, train_cmd, train_config


def _suggest_balancing(intended: int, n_reg: int) -> str | None:
    """The shortest decimal balancing that gives exactly `intended` samples of `n_reg` images."""
    if n_reg <= 0 or intended <= 0 or intended > n_reg:
        return None
    exact = intended / n_reg
    for digits in range(2, 12):
        scale = 10**digits
        value = math.ceil(exact * scale) / scale
        if math.floor(n_reg * value) == intended:
            return f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return None


class RegBalancing(Check):
    id = "config.reg-balancing"
    title = "Regularisation balancing"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        listed = listing_facts(ctx)
        train = [c for c in listed.concepts if c.concept.counts_for_training and not c.concept.is_regularisation]
        reg = [c for c in listed.concepts if c.concept.is_regularisation and c.listing.count > 0]
        if not reg:
            return CheckResult.ok("no regularisation concept")
        intended = sum(c.concept.samples_per_epoch(c.listing.count) for c in train)
        problems: list[str] = []
        commands: list[str] = []
        data: dict[str, Any] = {"intended_samples": intended, "concepts": []}
        for c in reg:
            n = c.listing.count
            actual = c.concept.samples_per_epoch(n)
            data["concepts"].append({"name": c.name, "images": n, "balancing": c.concept.balancing, "samples": actual})
            if actual != intended:
                lines, command = _balancing_advice(c, actual, intended)
                problems += lines
                commands.append(command)
        if not problems:
            return CheckResult.ok(
                f"{', '.join(c.name for c in reg)}: {intended} regularisation samples per epoch, "
                "as many as training images",
                data=data,
            )
        return CheckResult.warn(
            f"regularisation concept(s) give a different number of samples per epoch than the {intended} "
            "training samples",
            details=tuple(problems),
            expected="regularisation samples per epoch = training images (the guide: 36/5000 = 0.0072)",
            why="the guide balances regularisation to the training set; a wrong count over- or under-weights "
            "the class images",
            fix=Fix("set the balancing in the concept's window (Concepts tab)", tuple(commands)),
            data=data,
        )


def _balancing_advice(c: ConceptData, actual: int, intended: int) -> tuple[list[str], str]:
    """(detail lines, the balancing to set) for a regularisation concept that gives ACTUAL samples."""
    n = c.listing.count
    b = c.concept.balancing
    strategy = c.concept.balancing_strategy
    how = f"floor({n} x {b!r}) = {actual}" if strategy == "REPEATS" else f"SAMPLES {b!r} = {actual}"
    if strategy == "REPEATS" and math.isclose(n * b, intended, rel_tol=1e-9) and actual < intended:
        how += " (floating point: the product is just below a whole number)"
    value = _suggest_balancing(intended, n)
    lines = [
        f"concept '{c.name}': {n} images at balancing {b!r} ({strategy}) give {how} samples per epoch, "
        f"not {intended} (the training images' count)"
    ]
    if value:
        lines.append(
            f"  use balancing {value} (floor({n} x {value}) = {intended}), or SAMPLES with balancing {intended}"
        )
    else:
        lines.append(f"  use balancing strategy SAMPLES with balancing {intended}")
    return lines, f"concept '{c.name}': balancing {value or intended} ({'REPEATS' if value else 'SAMPLES'})"


class ConceptPaths(Check):
    id = "config.concepts"
    title = "Concept folders hold images"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        listed = listing_facts(ctx)
        if not cfg.concepts:
            return CheckResult.fail(
                "the config has no concepts" + (f" ({cfg.warnings[-1]})" if cfg.warnings else ""),
                expected="at least one enabled concept with training images",
                why="OneTrainer has nothing to train on",
                fix=Fix("add a concept in the Concepts tab and save the config"),
            )
        lines = _concepts_without_images(cfg, listed)
        counts = {c.name: c.listing.count for c in listed.concepts}
        relative = cfg.relative_paths_note()
        if lines:
            return CheckResult.fail(
                f"{len(lines)} enabled concept(s) have no images",
                details=tuple(lines) + ((relative,) if relative else ()),
                expected="every enabled concept's folder exists and holds images",
                why="OneTrainer stops with an empty dataset, or silently trains without that concept",
                fix=Fix("correct the concept's path in the Concepts tab, or disable the concept"),
                data={"images": counts},
            )
        if not listed.concepts:
            return CheckResult.fail(
                "no concept is enabled",
                expected="at least one enabled concept",
                why="OneTrainer has nothing to train on",
                fix=Fix("enable a concept in the Concepts tab"),
            )
        return CheckResult.ok(
            ", ".join(f"'{n}' {k} images" for n, k in counts.items()),
            details=(relative,) if relative else (),
            data={"images": counts},
        )


def _concepts_without_images(cfg: TrainConfig, listed: DatasetFacts) -> list[str]:
    extensions = " ".join(load_table("training.toml")["image_extensions"])
    missing = [c for c in listed.concepts if not c.listing.exists]
    empty = [c for c in listed.concepts if c.listing.exists and c.listing.count == 0]
    no_path = [c for c in cfg.concepts if c.enabled and not c.path]
    lines = [f"'{c.name}': {c.folder} does not exist" for c in missing]
    lines += [f"'{c.name}': {c.folder} holds no images ({extensions})" for c in empty]
    lines += [f"'{c.name}': no path set" for c in no_path]
    return lines


class Masks(Check):
    id = "config.masks"
    title = "Masks for masked training"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        if not cfg.flag("masked_training"):
            return CheckResult.ok("masked training is off")
        listed = listing_facts(ctx)
        lines: list[str] = []
        missing_total = 0
        for c in listed.concepts:
            if not c.listing.exists or not c.concept.counts_for_training:
                continue
            lacking = c.listing.lacking_masks()
            if not lacking:
                continue
            if c.concept.is_regularisation:
                continue  # a missing mask weights the whole image: what regularisation images want
            missing_total += len(lacking)
            lines.append(
                f"'{c.name}': {len(lacking)} of {c.listing.count} images have no -masklabel.png, e.g. {lacking[0].name}"
            )
        if lines:
            return CheckResult.fail(
                f"masked training is on but {missing_total} training image(s) have no mask",
                details=tuple(lines),
                expected="a <name>-masklabel.png beside every training image",
                why="OneTrainer uses a full white mask for an image without one, "
                "so masked training does nothing for it",
                fix=Fix(
                    "generate masks in Tools > Dataset Tools (Generate Masks, prompt `head`), "
                    "or turn masked training off",
                    (train_cmd(ctx, "masked_training=false"),),
                ),
            )
        return CheckResult.ok("every training image has a -masklabel.png mask")


class Captions(Check):
    id = "config.captions"
    title = "Captions for the prompt source"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        listed = listing_facts(ctx)
        lines: list[str] = []
        total = 0
        for c in listed.concepts:
            if not c.listing.exists:
                continue
            source = c.concept.prompt_source
            if source == "sample":
                lacking = c.listing.lacking_captions()
                if lacking:
                    total += len(lacking)
                    lines.append(
                        f"'{c.name}': {len(lacking)} of {c.listing.count} images have no .txt caption, "
                        f"e.g. {lacking[0].name}"
                    )
            elif source == "concept":
                prompt = c.concept.prompt_path
                cfg = train_config(ctx)
                if not prompt or not cfg.resolve(prompt).is_file():
                    total += c.listing.count
                    lines.append(
                        f"'{c.name}': prompt source is a single text file, but {prompt or '(none set)'} does not exist"
                    )
        if lines:
            return CheckResult.warn(
                f"{total} image(s) would train with an empty prompt",
                details=tuple(lines),
                expected="a caption for every image: a .txt beside it (prompt source `From text file per sample`), "
                "or one text file for the concept",
                why="an image without a prompt trains unconditionally and does not learn your token (e.g. `ohwx man`)",
                fix=Fix("write the captions, or choose `From single text file` with a file holding `ohwx man`"),
            )
        return CheckResult.ok("every image has a prompt")
