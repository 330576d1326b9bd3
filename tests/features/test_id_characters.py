"""Ids that would read as another id, or turn the text around them, are refused at ingest with a reason.

Bidi controls (Trojan Source) and zero-width characters do not show; a lead id holding one looks like
another lead on every page and in every file. Ids in any script (`公司甲`) stay welcome.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from leadradar.config import Settings
from leadradar.features.ingest import ingest
from leadradar.features.validation import ID_FIELDS, RULES, invisible_in
from tests.support.raw_events import NOW
from tests.support.raw_events import event as raw_event

HIDDEN = {
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "word joiner": "\u2060",
    "line separator": "\u2028",
    "escape (a control character)": "\x1b",
}


def event(n: int, **overrides: object) -> dict[str, object]:
    """A product view with every id field filled, so each can be given an invisible character."""
    return raw_event(
        n, **{"event_type": "product_view", "dwell_s": 12.5, "item_id": "p1", "referrer_lead_id": "L0", **overrides}
    )


def ingested(tmp_path: Path, rows: list[dict[str, object]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest([src], tmp_path / "out", Settings(), now=NOW)
    quarantine = tmp_path / "out" / "quarantine.parquet"
    return (
        pd.read_parquet(tmp_path / "out" / "events.parquet"),
        pd.read_parquet(quarantine) if quarantine.exists() else pd.DataFrame(columns=["event_id", "field", "reason"]),
    )


def test_every_id_field_has_the_visible_characters_rule():
    assert {rule.field for rule in RULES if rule.name == "invisible"} == set(ID_FIELDS)


@pytest.mark.parametrize("field", ID_FIELDS)
@pytest.mark.parametrize("name", list(HIDDEN))
def test_an_id_holding_an_invisible_or_bidi_character_is_quarantined_with_a_reason(tmp_path, field, name):
    hidden = HIDDEN[name]
    bad = event(2, **{field: f"x{hidden}y" if field != "event_id" else f"ev{hidden}2"})
    accepted, quarantined = ingested(tmp_path, [event(1), bad])

    assert list(accepted["event_id"]) == ["ev1"]
    assert len(quarantined) == 1 and quarantined["field"].iloc[0] == field
    reason = quarantined["reason"].iloc[0]
    assert reason.startswith(f"{field}: holds an invisible or direction-changing character")
    assert hidden not in reason  # the reason never carries the character it warns about


def test_ids_in_any_script_with_ordinary_punctuation_are_accepted(tmp_path):
    rows = [
        event(1, tenant_id="公司甲", lead_id="线索-001", sales_id="销售·王", item_id="产品/A", referrer_lead_id="L 0"),
        event(2, lead_id="café-ü", sales_id="o'brien", item_id="[bold]x"),
        event(3, lead_id="=1+1", sales_id="@ann", item_id="../x"),
    ]
    accepted, quarantined = ingested(tmp_path, rows)

    assert quarantined.empty and len(accepted) == 3
    assert set(accepted["tenant_id"]) == {"公司甲", "acme"}


def test_the_check_one_value_at_a_time_agrees_with_the_rule():
    assert all(invisible_in(f"a{c}b") for c in HIDDEN.values())
    assert not any(invisible_in(s) for s in ("公司甲", "L-1", "a b", "ü", "=1+1", "👍"))
