"""causvid-perf: a performance regression suite for CausVid / Wan 2.1 video samplers."""

__version__ = "0.1.0"
