"""Built-in checks. Each area has one module named after it (`config.py`, `gpu.py`, ...) whose
`CHECKS` list gives the area's checks in the order every output shows them. Larger areas keep their
checks by topic in `<area>_<topic>.py` modules (`config_disk.py`, `gpu_vram.py`) and what the
topics share in `<area>_common.py`; those define no `CHECKS` of their own, so the registry, which
imports every module here in name order, counts each check once.

This folder is shipped inside the wheel as `otdoctor.checks` (see pyproject's package-dir).
"""
