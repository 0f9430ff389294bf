"""The check engine, and the stable API for check plugins.

A third-party check (entry-point group `otdoctor.checks`) imports everything it needs from here:

    from otdoctor.engine import Check, CheckResult, Context, Fix, FixOutcome, Options, Status

The submodules (`check`, `results`, `registry`, `runner`, ...) may be reorganised; these names stay.
"""

from otdoctor.engine.check import Check, Context, Options
from otdoctor.engine.results import CheckResult, Fix, FixOutcome, Status

__all__ = ["Check", "CheckResult", "Context", "Fix", "FixOutcome", "Options", "Status"]
