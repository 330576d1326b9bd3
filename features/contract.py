"""The data contracts of DESIGN.md: radar events in, CRM stage history as labels.

Timestamps are UTC at microsecond precision everywhere (Spark's precision), so every engine
compares the same instants.
"""

from __future__ import annotations

import re

import pyarrow as pa

TS_TYPE = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("lead_id", pa.string(), nullable=False),
        pa.field("sales_id", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("dwell_s", pa.float64()),
        pa.field("item_id", pa.string()),
        pa.field("referrer_lead_id", pa.string()),
        pa.field("channel", pa.string()),
    ]
)

EVENT_COLUMNS = tuple(EVENT_SCHEMA.names)
EVENT_REQUIRED = tuple(f.name for f in EVENT_SCHEMA if not f.nullable)
EVENT_OPTIONAL = tuple(f.name for f in EVENT_SCHEMA if f.nullable)

STAGE_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("lead_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("ts", TS_TYPE, nullable=False),
        pa.field("deal_value", pa.float64()),
    ]
)

STAGE_COLUMNS = tuple(STAGE_SCHEMA.names)
STAGE_REQUIRED = tuple(f.name for f in STAGE_SCHEMA if not f.nullable)
STAGE_OPTIONAL = tuple(f.name for f in STAGE_SCHEMA if f.nullable)

# Items the cards show (products, articles, videos) and the product line each belongs to.
ITEM_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
    ]
)

# The simulator's truth: exact label probabilities (`p_close_30d`, `p_advance_30d`, ...) per lead open at a cutoff.
# Only a table with this key and at least one `p_close_<days>d` column is read as truth.
TRUTH_KEY_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("lead_id", pa.string(), nullable=False),
        pa.field("cutoff", TS_TYPE, nullable=False),
    ]
)
TRUTH_CLOSE_COLUMN = re.compile(r"p_close_\d+d")

# The key of a training-set or score row.
ROW_KEY = ("tenant_id", "lead_id", "cutoff")

# What the feature query reads: the contract columns with time as integer UTC microseconds (`us`),
# so every engine (DuckDB, Spark, SQLite for online requests) does the same integer arithmetic.
FEATURE_EVENT_SCHEMA = pa.schema(
    [f for f in EVENT_SCHEMA if f.name != "ts"] + [pa.field("us", pa.int64(), nullable=False)]
)
FEATURE_STAGE_SCHEMA = pa.schema(
    [f for f in STAGE_SCHEMA if f.name not in ("ts", "deal_value")] + [pa.field("us", pa.int64(), nullable=False)]
)
FEATURE_ITEM_SCHEMA = ITEM_SCHEMA
CUTOFF_SCHEMA = pa.schema([pa.field("cutoff_us", pa.int64(), nullable=False)])


def contract_gaps(schema: pa.Schema, contract: pa.Schema) -> tuple[list[str], list[str]]:
    """How a table's columns miss its contract: (problems, in words, one per column; optional columns it lacks).

    Absent optional columns are no problem (they read as missing); absent required ones, a timestamp
    without a time zone, or text where a number belongs are.
    """
    problems, absent = [], []
    for wanted in contract:
        if wanted.name not in schema.names:
            if wanted.nullable:
                absent.append(wanted.name)
            else:
                problems.append(f"lacks the required column {wanted.name}")
            continue
        mismatch = _type_mismatch(schema.field(wanted.name).type, wanted.type)
        if mismatch:
            problems.append(f"column {wanted.name} {mismatch}")
    return problems, absent


def _type_mismatch(actual: pa.DataType, wanted: pa.DataType) -> str | None:
    if pa.types.is_dictionary(actual):
        actual = actual.value_type
    if pa.types.is_null(actual):
        return None
    if pa.types.is_timestamp(wanted):
        if pa.types.is_timestamp(actual) and actual.tz is None:
            return "holds timestamps without a time zone (expected UTC timestamps with a zone; they are not guessed)"
        ok = pa.types.is_timestamp(actual)
    elif pa.types.is_floating(wanted):
        ok = pa.types.is_integer(actual) or pa.types.is_floating(actual) or pa.types.is_decimal(actual)
    elif pa.types.is_string(wanted):
        text = pa.types.is_string(actual) or pa.types.is_large_string(actual) or pa.types.is_string_view(actual)
        ok = text or pa.types.is_integer(actual)
    else:
        ok = actual == wanted
    return None if ok else f"has type {actual} (expected {_type_word(wanted)})"


def _type_word(wanted: pa.DataType) -> str:
    if pa.types.is_timestamp(wanted):
        return "UTC timestamps with a time zone"
    if pa.types.is_floating(wanted):
        return "numbers"
    if pa.types.is_string(wanted):
        return "text"
    return str(wanted)
