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

RELEASED_CHECKPOINTS: dict[str, ReleasedCheckpoint] = {
    release.file: release
    for release in [
        _release(
            "k400_32_8.pth",
            arch="B/32",
            patch_size=32,
            num_frames=8,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K400,
            top1={_K400: 80.4},
            top5={_K400: 95.0},
            hub_name="microsoft/xclip-base-patch32",
        ),
        _release(
            "k400_32_16.pth",
            arch="B/32",
            patch_size=32,
            num_frames=16,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K400,
            top1={_K400: 81.1},
            top5={_K400: 95.5},
            hub_name="microsoft/xclip-base-patch32-16-frames",
        ),
        _release(
            "k400_16_8.pth",
            arch="B/16",
            patch_size=16,
            num_frames=8,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K400,
            top1={_K400: 83.8},
            top5={_K400: 95.7},
            hub_name="microsoft/xclip-base-patch16",
        ),
        _release(
            "k400_16_16.pth",
            arch="B/16",
            patch_size=16,
            num_frames=16,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K400,
            top1={_K400: 84.7},
            top5={_K400: 96.8},
            hub_name="microsoft/xclip-base-patch16-16-frames",
        ),
        _release(
            "k400_14_8.pth",
            arch="L/14",
            patch_size=14,
            num_frames=8,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K400,
            top1={_K400: 87.1},
            top5={_K400: 97.6},
            hub_name="microsoft/xclip-large-patch14",
            url=_GDRIVE,
        ),
        _release(
            "k400_14_16_336.pth",
            arch="L/14",
            patch_size=14,
            num_frames=16,
            image_size=336,
            setting="fully-supervised",
            trained_on=_K400,
            top1={_K400: 87.7},
            top5={_K400: 97.4},
            hub_name="microsoft/xclip-large-patch14-16-frames",
            url=_GDRIVE,
        ),
        _release(
            "k600_16_8.pth",
            arch="B/16",
            patch_size=16,
            num_frames=8,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K600,
            top1={_K600: 85.3},
            top5={_K600: 97.1},
            hub_name="microsoft/xclip-base-patch16-kinetics-600",
        ),
        _release(
            "k600_16_16.pth",
            arch="B/16",
            patch_size=16,
            num_frames=16,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K600,
            top1={_K600: 85.8},
            top5={_K600: 97.3},
            hub_name="microsoft/xclip-base-patch16-kinetics-600-16-frames",
        ),
        _release(
            "k600_14_8.pth",
            arch="L/14",
            patch_size=14,
            num_frames=8,
            image_size=224,
            setting="fully-supervised",
            trained_on=_K600,
            top1={_K600: 88.3},
            top5={_K600: 97.7},
            hub_name="microsoft/xclip-large-patch14-kinetics-600",
            url=_GDRIVE,
        ),
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
