"""GPU reasoning for the GPU checks and `otdoctor gpu` (`reasoning`): pure functions over the probe's
NVML values and the tables. Reading the GPUs is the probe's job (`otdoctor.probe.nvml`)."""
