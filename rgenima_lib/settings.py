"""Checking a config section against the settings object that reads it.

The workflow's config schema holds every default (``workflow/schemas/config.schema.yaml``) and
Snakemake fills them in before a rule runs, so each stage receives its whole section. A settings
object therefore takes its section as it is: a key it does not know is a typo or a stale config,
and a key it lacks means the section did not come from the schema; either stops the stage here,
naming the key, rather than falling back to a value written a second time in code.
"""

from __future__ import annotations

from typing import Iterable


def check_section(section: dict | None, keys: Iterable[str], what: str) -> dict:
    """``section`` as a plain dict once it holds exactly ``keys``.

    Parameters
    ----------
    section : dict or None
        A config section (None reads as empty).
    keys : iterable of str
        The settings object's fields.
    what : str
        The section's name in error messages, e.g. ``"encoders.rit"``.

    Returns
    -------
    dict
        A shallow copy of ``section``.

    Raises
    ------
    ValueError
        An unknown key or a missing key, each one named.
    """
    section = dict(section or {})
    keys = list(keys)
    unknown = sorted(set(section) - set(keys))
    if unknown:
        raise ValueError(f"{what}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    missing = [k for k in keys if k not in section]
    if missing:
        raise ValueError(f"{what}: missing setting(s) {', '.join(missing)} (the config schema gives each a "
                         "default: pass the whole section)")
    return section
