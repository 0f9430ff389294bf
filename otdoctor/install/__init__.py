"""`otdoctor install` and the machinery `otdoctor fix` shares with it.

`run` is the whole command (pre-flight, plan, confirmation, phases, final check); `installer` runs
the phases, `plan`/`preflight`/`state` decide and remember; `git`, `venv`, `pip`, `python_pin` are
the building blocks; `session` streams and logs their commands; `actions` is what the checks'
fixes call (there is one venv rebuild: `venv`).
"""
