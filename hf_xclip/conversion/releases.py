"""The checkpoints released with the X-CLIP paper: file names, sizes, reported accuracy (for model cards)."""

from __future__ import annotations

from dataclasses import dataclass, field

RELEASE_URL = "https://github.com/nbl97/X-CLIP_Model_Zoo/releases/download/v1.0/"


@dataclass(frozen=True)
class ReleasedCheckpoint:
    """One checkpoint released with the X-CLIP paper.

    Attributes:
        file: file name of the release.
        arch: backbone (``"B/32"``, ``"B/16"``, ``"L/14"``).
        setting: ``"fully-supervised"``, ``"few-shot"`` or ``"zero-shot"``.
        trained_on: training data.
        top1: reported top-1 accuracy (%) per evaluation dataset.
        top5: reported top-5 accuracy (%) per evaluation dataset, where reported.
        views: evaluation protocol of the reported numbers, where known (``"-"`` otherwise).
        hub_name: the name of transformers' port under ``microsoft/`` (2022 layout), if any.
        url: download address.
    """

    file: str
    arch: str
    patch_size: int
    num_frames: int
    image_size: int
    setting: str
    trained_on: str
    top1: dict[str, float]
    top5: dict[str, float] = field(default_factory=dict)
    views: str = "-"
    hub_name: str | None = None
    url: str | None = None


def _release(file: str, **kwargs) -> ReleasedCheckpoint:
    if kwargs.get("setting") == "fully-supervised":
        kwargs.setdefault("views", _MULTI_VIEW)
    return ReleasedCheckpoint(file=file, url=kwargs.pop("url", RELEASE_URL + file), **kwargs)


_K400, _K600, _HMDB, _UCF = "Kinetics-400", "Kinetics-600", "HMDB-51", "UCF-101"
_MULTI_VIEW = "4 clips x 3 crops"
_GDRIVE = "Google Drive (see the X-CLIP README)"

# The fully-supervised releases: file, backbone, frames, image size, training data, top-1 and top-5 (%) on it, and
# transformers' port (under ``microsoft/``). The patch size is the backbone's; the L/14 checkpoints are downloaded
# from Google Drive, the others from the GitHub release.
_FULLY_SUPERVISED = (
    ("k400_32_8.pth", "B/32", 8, 224, _K400, 80.4, 95.0, "xclip-base-patch32"),
    ("k400_32_16.pth", "B/32", 16, 224, _K400, 81.1, 95.5, "xclip-base-patch32-16-frames"),
    ("k400_16_8.pth", "B/16", 8, 224, _K400, 83.8, 95.7, "xclip-base-patch16"),
    ("k400_16_16.pth", "B/16", 16, 224, _K400, 84.7, 96.8, "xclip-base-patch16-16-frames"),
    ("k400_14_8.pth", "L/14", 8, 224, _K400, 87.1, 97.6, "xclip-large-patch14"),
    ("k400_14_16_336.pth", "L/14", 16, 336, _K400, 87.7, 97.4, "xclip-large-patch14-16-frames"),
    ("k600_16_8.pth", "B/16", 8, 224, _K600, 85.3, 97.1, "xclip-base-patch16-kinetics-600"),
    ("k600_16_16.pth", "B/16", 16, 224, _K600, 85.8, 97.3, "xclip-base-patch16-kinetics-600-16-frames"),
    ("k600_14_8.pth", "L/14", 8, 224, _K600, 88.3, 97.7, "xclip-large-patch14-kinetics-600"),
)

RELEASED_CHECKPOINTS: dict[str, ReleasedCheckpoint] = {
    release.file: release
    for release in [
        *[
            _release(
                file,
                arch=arch,
                patch_size=int(arch.split("/")[1]),
                num_frames=num_frames,
                image_size=image_size,
                setting="fully-supervised",
                trained_on=dataset,
                top1={dataset: top1},
                top5={dataset: top5},
                hub_name=f"microsoft/{port}",
                **({"url": _GDRIVE} if arch == "L/14" else {}),
            )
            for file, arch, num_frames, image_size, dataset, top1, top5, port in _FULLY_SUPERVISED
        ],
        *[
            _release(
                f"few_{short}_{shots}.pth",
                arch="B/16",
                patch_size=16,
                num_frames=32,
                image_size=224,
                setting="few-shot",
                trained_on=f"{dataset}, {shots} videos per class",
                top1={dataset: accuracy},
                hub_name=f"microsoft/xclip-base-patch16-{short}-{shots}-shot",
            )
            for short, dataset, accuracies in (
                ("hmdb", _HMDB, (53.0, 57.3, 62.8, 64.0)),
                ("ucf", _UCF, (76.4, 83.4, 88.3, 91.4)),
            )
            for shots, accuracy in zip((2, 4, 8, 16), accuracies)
        ],
        _release(
            "zero.pth",
            arch="B/16",
            patch_size=16,
            num_frames=32,
            image_size=224,
            setting="zero-shot",
            trained_on=_K400,
            top1={_HMDB: 44.6, _UCF: 72.0, _K600: 65.2},
            hub_name="microsoft/xclip-base-patch16-zero-shot",
        ),
    ]
}


__all__ = ["RELEASED_CHECKPOINTS", "RELEASE_URL", "ReleasedCheckpoint"]
