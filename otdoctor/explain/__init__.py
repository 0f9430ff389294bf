"""`otdoctor explain`: recognise OneTrainer's known problems in its output (`known_problems`, from
the table `known_problems.toml`)."""
