"""Videos as data: discovering video files and reading labelled folders / annotation files (`folders`), decoded and
augmented clips as a torch `Dataset` (`clip_dataset`), procedural synthetic clips (`synthetic`), and writing frames
to a video file (`video_writer`: `write_video`, exported here, for tests, benchmarks, demos and synthetic data)."""

from .video_writer import write_video

__all__ = ["write_video"]
