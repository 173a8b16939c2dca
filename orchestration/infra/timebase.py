"""The time conventions every layer shares: event timestamps in microseconds, and the default window.

Defined here, in the bottom layer, so that the config tree (``events.window_us``, ``world.window_us``,
the training config's ``data.window_us``) and the event readers, windowers and simulator below it
default to one number (re-exported as :data:`anonreid.events.windowing.DEFAULT_WINDOW_US`).
"""

from __future__ import annotations

#: the default window length in microseconds: 33.3 ms, one frame of a 30 Hz camera
DEFAULT_WINDOW_US = 33_333
