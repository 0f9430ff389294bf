"""`python -m otdoctor.cli`: the same as the `otdoctor` console script."""

from otdoctor.cli import main

main()
