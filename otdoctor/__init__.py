"""otdoctor: environment and hardware doctor, installer and planner for OneTrainer."""

from __future__ import annotations

__version__ = "0.1.0"
