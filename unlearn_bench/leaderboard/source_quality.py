"""How far a published row's numbers can be vouched for: its ``source_quality``.

Every row of ``leaderboards/published/*.yaml`` says where its numbers were read:

- ``primary``: from the paper itself or the authors' own repository or results page;
- ``secondary``: the primary document was out of reach, and two or more independent secondary
  documents (``source.via``) agree on every number of the row that is compared with ours;
- ``single_secondary``: one secondary document only, with nothing to check it against;
- ``disputed``: the sources, or the table itself, contradict the row (its ``note`` says how);
- ``not_entered``: no number is entered for the row.

``single_secondary`` and ``disputed`` rows are *unverified*: comparison pages show them with
that label and take no difference from them unless asked to (``unlearn-bench compare
--include-unverified``), and even then the label stays on the row.
"""

from __future__ import annotations

from unlearn_bench.errors import UnlearnBenchError

PRIMARY = "primary"
SECONDARY = "secondary"
SINGLE_SECONDARY = "single_secondary"
DISPUTED = "disputed"
NOT_ENTERED = "not_entered"
QUALITIES = (PRIMARY, SECONDARY, SINGLE_SECONDARY, DISPUTED, NOT_ENTERED)
UNVERIFIED = (SINGLE_SECONDARY, DISPUTED)
_WHY = {SINGLE_SECONDARY: "single secondary source", DISPUTED: "disputed, see the note"}


def is_unverified(quality: str) -> bool:
    """Whether a row of this quality is left out of differences by default."""
    return quality in UNVERIFIED


def row_label(quality: str, include_unverified: bool) -> str:
    """The mark a comparison page puts after an unverified row's method ('' for the others)."""
    if not is_unverified(quality):
        return ""
    taken = "difference shown on request" if include_unverified else "no difference taken"
    return f" [unverified: {_WHY[quality]}; {taken}]"


def legend(include_unverified: bool) -> str:
    """One line for a comparison page: what the row labels mean and what was differenced."""
    rule = (
        "their differences are shown because --include-unverified was given"
        if include_unverified
        else "they are shown but left out of differences (compare --include-unverified puts "
        "them in)"
    )
    return (
        "- source quality: rows not marked otherwise were read from the primary document or "
        "agree across two independent secondary documents; rows marked unverified come from a "
        f"single secondary source or are disputed: {rule}"
    )


def check_row(where: str, quality: str, has_values: bool, note: str, secondary_table: bool) -> None:
    """One-line error when a row's source_quality is missing or contradicts the row or table."""
    if quality not in QUALITIES:
        shown = repr(quality) if quality else "missing"
        raise UnlearnBenchError(
            f"{where}: source_quality is {shown}; give one of {', '.join(QUALITIES)}"
        )
    if has_values == (quality == NOT_ENTERED):
        raise UnlearnBenchError(
            f"{where}: source_quality {NOT_ENTERED!r} is for rows without numbers, and only them"
        )
    if quality == PRIMARY and secondary_table:
        raise UnlearnBenchError(
            f"{where}: source_quality {PRIMARY!r} in a table transcribed from secondary sources"
        )
    if quality == DISPUTED and not note:
        raise UnlearnBenchError(f"{where}: a disputed row needs a note saying what is disputed")
