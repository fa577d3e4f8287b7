"""Videos as data: discovering video files and reading labelled folders / annotation files (`folders`), decoded and
augmented clips as a torch `Dataset` (`clip_dataset`), procedural synthetic clips (`synthetic`)."""
