"""Built-in checks, one module per area. Each module exposes `CHECKS`, a list of Check subclasses.

This folder is shipped inside the wheel as `otdoctor.checks` (see pyproject's package-dir).
"""
