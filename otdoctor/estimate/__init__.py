"""`otdoctor estimate`: how many steps a OneTrainer run has and how long it takes.

- `arithmetic/`: the pure arithmetic (steps and buckets, balancing, the time model, the remaining
  time from progress bars);
- `inputs`: the request, its checks, and what a training config says;
- `speed`: the it/s (--its, a smoke result scaled to the run's resolution, or a GPU's rough figure);
- `sources`: where each other figure comes from (options, smoke results, the shipped tables);
- `plan`: `build()` and `from_log()`, which put these together for the CLI;
- `progress_bars`: tqdm's progress bars parsed from a terminal stream (also read by smoke).
"""
