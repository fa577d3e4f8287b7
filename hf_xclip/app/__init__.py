"""`hf-xclip app`: a Gradio web page to look at what a model does (classify a clip, a timeline of a long video,
search a video index).

`hf_xclip.app.handlers` holds what the tabs do as plain functions over an `AppState` (no Gradio needed);
`hf_xclip.app.server` builds the page (`build_app`) and serves it (`launch`, needs ``pip install 'hf_xclip[app]'``).

```python
>>> from hf_xclip.app import AppConfig, launch  # doctest: +SKIP
>>> launch(AppConfig(index="videos.index"))  # doctest: +SKIP
```
"""

from __future__ import annotations

from typing import Any

from .handlers import AppConfig, AppError, AppState


def launch(config: AppConfig | None = None, **kwargs: Any):
    """Serve the app (see `hf_xclip.app.server.launch`); imports Gradio."""
    from .server import launch as serve

    return serve(config or AppConfig(), **kwargs)


__all__ = ["AppConfig", "AppError", "AppState", "launch"]
