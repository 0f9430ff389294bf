"""Renderers: text for people, JSON, JUnit XML and GitHub annotations for machines.

Humanising (bytes to GiB, seconds to minutes) happens here and nowhere else. Every string that
leaves the program through a renderer goes through `otdoctor.redact.redact`. Commands hand their
result to `otdoctor.render.emit.emit`, which picks the format and the destination.
"""

from __future__ import annotations

from otdoctor.render.units import human_bytes, human_duration

FORMATS = ("text", "json", "junit", "github")

__all__ = ["FORMATS", "human_bytes", "human_duration"]
