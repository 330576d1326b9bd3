"""The data contracts of DESIGN.md: radar events in, CRM stage history as labels.

Timestamps are UTC at microsecond precision everywhere (Spark's precision), so every engine
compares the same instants.
"""

from __future__ import annotations

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

# Items the cards show (products, articles, videos) and the product line each belongs to.
ITEM_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
    ]
)

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
