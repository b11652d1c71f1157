"""How numbers are written for people: messages, tables, markdown and the report say them alike."""

from __future__ import annotations

from typing import Any


def number(value: Any, unit: str = "") -> str:
    """About three significant figures, never fewer than one decimal above 1: 21.0, 3.51, 0.123,
    1,234; None is 'n/a', a bool 'yes'/'no'; the unit follows after a space."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        magnitude = abs(value)
        if magnitude >= 1000:
            text = f"{value:,.0f}"
        elif magnitude >= 10 or value == 0:
            text = f"{value:.1f}"
        elif magnitude >= 1:
            text = f"{value:.2f}"
        else:
            text = f"{value:.3g}"
    else:
        return str(value)
    return f"{text} {unit}" if unit else text


def exact(value: float | None, unit: str = "") -> str:
    """A setting as given (tolerances, thresholds): 0.5 s, 8 %, 0.001."""
    if value is None:
        return "n/a"
    return f"{value:g} {unit}" if unit else f"{value:g}"


def tolerance(rel_tol: float | None, abs_tol: float | None, unit: str = "") -> str:
    """A tolerance as set: relative and absolute, '8 % / 0.5 s'."""
    if rel_tol is None or abs_tol is None:
        return "n/a"
    return f"{exact(rel_tol * 100, '%')} / {exact(abs_tol, unit)}"


def fixed(value: Any, digits: int = 3) -> str:
    """Table cells: fixed decimals, falling back to 3 significant figures for very small or large values."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if value != 0 and not (1e-3 <= abs(value) < 1e5):
            return f"{value:.3g}"
        return f"{value:.{digits}f}"
    return str(value)


def change(fraction: float | None) -> str:
    """A relative change: 0.138 -> '+13.8 %'."""
    return "n/a" if fraction is None else f"{fraction * 100:+.1f} %"


def percent(fraction: float) -> str:
    """A size given as a fraction: 0.05 -> '5 %', 0.005 -> '0.5 %'."""
    return f"{fraction * 100:.3g} %"


def p_value(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def duration(seconds: float | None) -> str:
    """A measured time: '1.52 ms', '3.51 s', '219 s'."""
    if seconds is None:
        return "n/a"
    if seconds < 1.0:
        return f"{seconds * 1000:.3g} ms"
    return f"{seconds:.3g} s" if seconds < 100 else f"{seconds:.0f} s"


def size(n_bytes: int) -> str:
    """Bytes on disk: '812 B', '3.4 kB', '12.5 MB' (powers of 1000, as `du --si`)."""
    value = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


def guidance(value: float | None) -> str:
    """A guidance scale as every label writes it: 'cfg 1', 'cfg 5', 'cfg 3.5'; 'cfg ?' when unknown."""
    return "cfg ?" if value is None else f"cfg {value:g}"


def case_label(
    model: str | None, width: Any, height: Any, frames: Any, steps: Any = None, cfg: float | None = None
) -> str:
    """The one label of a case, e.g. 'causvid-14b 832x480x81 6 steps cfg 1': the model, its size and,
    where the steps are known, the steps and guidance. Callers append what tells their cases apart."""
    text = f"{model or '?'} {width}x{height}x{frames}"
    if steps is not None:
        text += f" {steps} steps {guidance(cfg)}"
    return text
