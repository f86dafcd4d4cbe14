"""The Playground's loss landscape as a picture: filled loss levels of a ``samon_core.toy``
surface, rendered to a PNG data URI once per surface and process, for ``layout.images``.

Not a contour trace: plotly.js removes contour and heatmap traces while frames animate
(plotly/plotly.js#4491; seen here in headless Chromium with plotly 7.1, whatever the frame's
redraw setting). A layout image is no trace, so the animation leaves it alone.
"""

from __future__ import annotations

import base64
import functools
import struct
import zlib
from typing import Any

import numpy as np

from samon_core import toy

# Low loss light blue, high loss near white: the paths (method colours) stay the strongest ink.
LEVEL_COLORS = [[0.0, "#a5d8ff"], [0.35, "#dbeefe"], [1.0, "#f8f9fa"]]

RASTER = 600  # pixels per side (about twice the plot's size on screen: crisp level lines)
BANDS = 16  # loss levels between the minimum and ``zmax`` (above it the colour saturates)
_LINE = np.array([173, 181, 189])  # level lines, #adb5bd


def _png(rgb: np.ndarray) -> bytes:
    """A minimal PNG (8-bit RGB, no filtering) of an (h, w, 3) uint8 array."""
    h, w, _ = rgb.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rgb.reshape(h, 3 * w)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def _colour(t: np.ndarray) -> np.ndarray:
    """``LEVEL_COLORS`` at t in [0, 1], as uint8 RGB."""
    stops = np.array([s for s, _ in LEVEL_COLORS])
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in LEVEL_COLORS])
    return np.stack([np.interp(t, stops, rgb[:, i]) for i in range(3)], axis=-1).astype(np.uint8)


def landscape_rgb(z: np.ndarray, zmax: float) -> np.ndarray:
    """Filled loss levels with a line where the level changes; z rows run from the top (high
    gamma) down, as an image's do. Levels are equally spaced in sqrt(L - L_min): around a
    quadratic minimum the lines are then equally spaced rings, 1/sqrt(curvature) apart, so a
    sharp minimum shows dense rings and a flat one sparse rings."""
    zmin = float(z.min())
    t = np.sqrt(np.maximum(z - zmin, 0.0) / (zmax - zmin))
    band = np.clip((t * BANDS).astype(int), 0, BANDS)
    rgb = _colour((np.minimum(band, BANDS - 1) + 0.5) / BANDS)
    edge = np.zeros(z.shape, dtype=np.bool_)
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    edge[1:, :] |= band[1:, :] != band[:-1, :]
    edge &= band < BANDS  # no lines in the saturated region
    rgb[edge] = _LINE
    return rgb


@functools.lru_cache(maxsize=8)  # one PNG per surface and process
def landscape_uri(surface_key: str) -> str:
    """The surface's picture as a PNG data URI (one per surface, shared by all sessions)."""
    surface = toy.get_surface(surface_key)
    _, _, z = toy.grid(surface, RASTER)
    png = _png(landscape_rgb(z[::-1], surface.zmax))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def landscape_image(surface: toy.Surface) -> dict[str, Any]:
    """The picture as a layout image spanning the surface's bounds (below the traces)."""
    x0, x1, y0, y1 = surface.bounds
    return {"source": landscape_uri(surface.key), "xref": "x", "yref": "y", "x": x0, "y": y1,
            "sizex": x1 - x0, "sizey": y1 - y0, "sizing": "stretch", "layer": "below"}
