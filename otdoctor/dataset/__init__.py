"""A training dataset as OneTrainer loads it, for the dataset checks, `estimate` and its fix.

- `listing`: the images, masks and captions of a concept folder, from directory entries alone;
- `images`: what one image file is (header facts, truncation, content hash);
- `scan`: every image of a folder read in parallel and cached, and the per-run facts the checks share;
- `repair`: `otdoctor fix dataset.resolution` (pad to a square) and repointing a concept.
"""
