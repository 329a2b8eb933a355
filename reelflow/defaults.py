"""Every built-in default of a render, in one place (the httpx ``_config.py`` habit).

The shot list's models (``reelflow.flows.shotlist``), its schema text and the media tasks
(``tasks/_audio.AudioMix``, ``tasks/_text.TextOverlaySpec``, ``tasks/_ffmpeg.OutputFormat``)
all read their defaults from here. What the Luma API itself assumes for a field a request
leaves out is an API fact, not a reelflow default: ``reelflow.spec.API_DEFAULTS``.

The cascade is editly's ``merge(globalDefaults, defaults, clip)``: for each field in
``INHERITED``, a shot's value wins over the file's ``defaults:``, which wins over ``SHOT``
below. A field left out, or ``null``, inherits, except those in ``NULL_MEANS``, where
``null`` is a value of its own (``transition: null`` is an explicit cut). ``cascade``
merges the layers; ``flows/_shotlist_resolve`` builds each layer from the file.

Example:
    >>> cascade(SHOT, {"resolution": "1080p"}, {"model": "ray-flash-2", "duration": None})
    {'model': 'ray-flash-2', 'resolution': '1080p', 'aspect_ratio': '16:9', 'duration': '5s', 'transition': 'cut'}
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["CARD_BACKGROUND", "INHERITED", "MAX_CARD_SECONDS", "NULL_MEANS", "OUTPUT", "RENDER_DIR",
           "SHOT", "TEXT_COLOUR", "TEXT_POSITION", "cascade"]

#: The built-in layer of the cascade: what a shot gets when neither it nor the file's
#: ``defaults:`` says otherwise. Its keys are the inheritable fields.
SHOT: Mapping[str, Any] = MappingProxyType({
    "model": "ray-2",
    "resolution": "720p",
    "aspect_ratio": "16:9",
    "duration": "5s",
    "transition": "cut",
})

#: The fields a shot inherits from ``defaults:`` (and the built-ins), in the cascade's order.
INHERITED: tuple[str, ...] = tuple(SHOT)

#: Inheritable fields whose ``null`` is a value, not "inherit": what it means.
NULL_MEANS: Mapping[str, Any] = MappingProxyType({"transition": "cut"})

#: Delivery (``output:``). Its ``aspect_ratio`` has no built-in of its own: it is the
#: shots' (``defaults.aspect_ratio``, else ``SHOT``'s).
OUTPUT: Mapping[str, Any] = MappingProxyType({
    "resolution": "1080p",
    "fps": 24,
    "fit": "cover",          # crop a clip of another aspect to fill the frame
    "music_volume": 0.5,     # linear gain on the music bed: a bed, not the lead
    "duck": True,            # lower the bed under generated audio
    "loudness": -14.0,       # integrated LUFS of the final mix (streaming norm)
})

#: Where the edit goes without ``output.path``: ``renders/<stem>.mp4`` beside the list.
RENDER_DIR = "renders"

#: A title card's background, and the longest card in seconds.
CARD_BACKGROUND = "#000000"
MAX_CARD_SECONDS = 60.0

#: A text overlay's place and colour.
TEXT_POSITION = "bottom-left"
TEXT_COLOUR = "#ffffff"


def cascade(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge layers left to right: a later layer's value wins where it sets one (not None).

    ``cascade(SHOT, file_defaults, shot)`` is editly's ``merge(globalDefaults, defaults,
    clip)``, limited to the keys of the first layer (the inheritable fields).
    """
    merged = dict(layers[0]) if layers else {}
    for layer in layers[1:]:
        merged.update({k: v for k, v in layer.items() if k in merged and v is not None})
    return merged
