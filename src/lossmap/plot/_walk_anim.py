"""An animated race of optimizers over a landscape (GIF through pillow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lossmap._validation import check_int
from lossmap.plot import require_matplotlib
from lossmap.plot._walk import PathsDisplay, _as_list

__all__ = ["RaceAnimation"]


# --------------------------------------------------------------- animation
class RaceAnimation:
    """Optimizers moving over the landscape, frame by frame.

    The first frame shows the landscape and the start; each later frame
    extends every path by a share of its steps. All paths advance on the same
    step clock, so a fast optimizer really arrives first.

    Parameters
    ----------
    surface : Surface
    trajectories : sequence of Trajectory (single-start)
    frames : int, default=60
    minima : sequence of (x, y), optional
    """

    def __init__(
        self,
        surface: Any,
        trajectories: Sequence[Any],
        *,
        frames: int = 60,
        minima: Sequence[Any] | None = None,
        title: str | None = None,
    ) -> None:
        self.surface = surface
        self.trajectories = _as_list(trajectories)
        self.frames = check_int("frames", frames, minimum=2, maximum=2000)
        self.minima = minima
        self.title = title

    def frame_steps(self) -> np.ndarray:
        """The step shown in each frame, shape (frames,)."""
        total = max(t.params.shape[0] - 1 for t in self.trajectories)
        return np.unique(np.round(np.linspace(0, total, self.frames)).astype(int))

    def build(self, *, figsize: tuple[float, float] = (6.4, 5.2)) -> Any:
        """The matplotlib ``FuncAnimation`` (figure in ``figure_``)."""
        from matplotlib.animation import FuncAnimation

        update, n = self._setup(figsize)
        self.animation_ = FuncAnimation(self.figure_, update, frames=n, blit=False)
        return self.animation_

    def _setup(self, figsize: tuple[float, float] = (6.4, 5.2)) -> tuple[Any, int]:
        """Draw the first frame; return the frame-update function and count."""
        plt = require_matplotlib("RaceAnimation")
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
        disp = PathsDisplay(
            self.surface, self.trajectories, minima=self.minima, title=self.title
        ).plot(ax)
        full = [line.get_xydata() for line in disp.lines_]
        heads = [ax.scatter([], [], s=0) for _ in disp.lines_]
        for art in disp.ends_ + disp.cut_:
            art.set_visible(False)
        text = ax.text(
            0.02,
            0.02,
            "",
            transform=ax.transAxes,
            fontsize=9,
            color="white",
            bbox={"facecolor": "black", "alpha": 0.55},
        )
        steps = self.frame_steps()

        def update(k: int) -> list[Any]:
            s = int(steps[k])
            for line, xy in zip(disp.lines_, full):
                line.set_data(xy[: s + 1, 0], xy[: s + 1, 1])
            for head, line, xy in zip(heads, disp.lines_, full):
                head.set_offsets(xy[min(s, len(xy) - 1)][None])
                head.set_sizes([60])
                head.set_facecolor(line.get_color())
                head.set_edgecolor("black")
            last = k == len(steps) - 1
            for art in disp.ends_ + disp.cut_:
                art.set_visible(last)
            text.set_text(f"step {s}")
            return [*disp.lines_, *heads, text]

        self.figure_, self.paths_ = fig, disp
        return update, len(steps)

    def save(self, path: str | Path, *, fps: int = 15, dpi: int = 80) -> Path:
        """Write a GIF (pillow) to ``path`` and return it.

        Every frame shares one palette that holds each path's colour exactly
        (a GIF has 256 colours; with a palette per frame, as matplotlib's
        PillowWriter leaves it to pillow, the heatmap took them and the paths
        changed colour from frame to frame, two optimizers ending alike).
        """
        import io

        from PIL import Image

        path = Path(path)
        if path.suffix.lower() != ".gif":
            raise ValueError(f"`path` must end in .gif, got {path.name!r}")
        fps = check_int("fps", fps, minimum=1)
        dpi = check_int("dpi", dpi, minimum=10, maximum=600)
        update, n = self._setup()
        fig = self.figure_
        frames = []
        for k in range(n):
            update(k)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=dpi)
            buf.seek(0)
            frames.append(Image.open(buf).convert("RGB"))
        reserved = self._reserved_colors()
        palette = _shared_palette(frames[-1], reserved)
        shared = [_to_palette(f, palette, reserved) for f in frames]
        shared[0].save(
            path,
            save_all=True,
            append_images=shared[1:],
            duration=round(1000 / fps),
            loop=0,
            optimize=True,  # drops unused entries; stores what changed (6x smaller)
        )
        return path

    def _reserved_colors(self) -> list[tuple[int, int, int]]:
        """Colours that must survive exactly: paths, outlines, markers."""
        from matplotlib.colors import to_rgb

        colors = [to_rgb(c) for c in self.paths_.colors]
        colors += [(0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (1.0, 0.0, 0.0)]
        out: list[tuple[int, int, int]] = []
        for c in colors:
            rgb = tuple(round(255 * v) for v in c)
            if rgb not in out:
                out.append(rgb)  # type: ignore[arg-type]
        return out


def _shared_palette(image: Any, reserved: list[tuple[int, int, int]]) -> Any:
    """A 256-colour palette image: ``reserved`` first, the rest from ``image``."""
    from PIL import Image

    rest = image.quantize(
        colors=256 - len(reserved), method=Image.Quantize.MEDIANCUT
    ).getpalette()[: 3 * (256 - len(reserved))]
    flat = [v for rgb in reserved for v in rgb] + list(rest)
    flat += [0] * (768 - len(flat))
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat)
    return palette


def _to_palette(frame: Any, palette: Any, reserved: list[tuple[int, int, int]]) -> Any:
    """``frame`` in ``palette``; pixels of a reserved colour keep it exactly.

    pillow maps a colour to the palette entry nearest to its cell of a coarse
    colour cube, which can be a heatmap colour beside a reserved one.
    """
    from PIL import Image

    index = np.array(frame.quantize(palette=palette, dither=Image.Dither.NONE))
    rgb = np.asarray(frame)
    for i, colour in enumerate(reserved):
        index[np.all(rgb == np.array(colour, dtype=rgb.dtype), axis=-1)] = i
    out = Image.fromarray(index.astype(np.uint8), mode="P")
    out.putpalette(palette.getpalette())
    return out
