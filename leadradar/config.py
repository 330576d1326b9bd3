"""One settings object for the whole project: defaults run everything on one laptop.

Override with environment variables (`LEADRADAR_HOME`, `LEADRADAR_TRAINING__HORIZON_DAYS=14`, ...)
or with a TOML file named by `LEADRADAR_CONFIG`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

Lang = Literal["en", "zh-CN"]  # every word a salesperson or boss reads exists in both
LANGS: tuple[Lang, ...] = ("en", "zh-CN")


def language(text: str) -> Lang | None:
    """The language a person meant (en, EN, en-US; zh, zh-cn, zh_CN, zh-Hans), None for one we do not write."""
    tag = text.strip().replace("_", "-").lower()
    if tag in ("zh", "zh-cn", "zh-hans", "zh-hans-cn", "cn"):
        return "zh-CN"
    return "en" if tag == "en" or tag.startswith("en-") else None


Grade = Literal["A", "B", "C", "D"]  # a lead's grade, A the likeliest to close (ServingConfig.grade_thresholds)
GRADES: tuple[Grade, ...] = ("A", "B", "C", "D")

EVENT_FAMILIES = ("view", "share", "contact", "content")

DEFAULT_EVENT_TYPES: dict[str, str] = {
    "card_view": "view",
    "card_share": "share",
    "card_save": "contact",
    "phone_call": "contact",
    "wechat_add": "contact",
    "chat_message": "contact",
    "form_submit": "contact",
    "meeting": "contact",
    "product_view": "content",
    "article_view": "content",
    "video_view": "content",
}

# Where a person writes back: these contacts mean the lead and the salesperson spoke.
DEFAULT_TWO_WAY_CONTACT = ("phone_call", "chat_message", "meeting")

QUIET_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "SPARK_LOCAL_IP": "127.0.0.1",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # LightGBM's OpenMP threads spin while waiting; beside a server or DuckDB on 2 cores that made
    # training 40x slower here. Passive waiting gives the cores back.
    "OMP_WAIT_POLICY": "PASSIVE",
}


class EventLabel(BaseModel):
    """How an event type or family reads in a reason: a verb phrase and a noun, in both languages."""

    verb_en: str
    verb_zh: str
    noun_en: str
    noun_zh: str


def _label(verb_en: str, verb_zh: str, noun_en: str, noun_zh: str) -> EventLabel:
    return EventLabel(verb_en=verb_en, verb_zh=verb_zh, noun_en=noun_en, noun_zh=noun_zh)


DEFAULT_EVENT_LABELS: dict[str, EventLabel] = {
    "card_view": _label("opened the card", "打开名片", "the card", "名片"),
    "card_share": _label("shared the card", "转发名片", "shares", "转发"),
    "card_save": _label("saved the contact", "保存联系方式", "contact saves", "保存联系方式"),
    "phone_call": _label("called", "通话", "calls", "通话"),
    "wechat_add": _label("added the salesperson on WeChat", "添加销售微信", "WeChat adds", "添加微信"),
    "chat_message": _label("sent chat messages", "发送聊天消息", "chat", "聊天"),
    "form_submit": _label("submitted a form", "提交表单", "forms", "表单"),
    "meeting": _label("met the salesperson", "与销售见面", "meetings", "见面"),
    "product_view": _label("viewed products", "查看产品", "product pages", "产品页"),
    "article_view": _label("read articles", "阅读文章", "articles", "文章"),
    "video_view": _label("watched videos", "观看视频", "videos", "视频"),
    "view": _label("viewed the card", "浏览名片", "the card", "名片"),
    "share": _label("shared", "转发", "shares", "转发"),
    "contact": _label("got in touch", "主动联系", "contacts", "联系"),
    "content": _label("viewed content", "浏览内容", "content", "内容"),
    "any": _label("touched the card", "互动", "the card and its content", "名片及内容"),
}


class EventConfig(BaseModel):
    """Which event types exist and the family each belongs to; a company maps its own log names here."""

    types: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_EVENT_TYPES))
    two_way_contact: tuple[str, ...] = DEFAULT_TWO_WAY_CONTACT
    # Types that carry a dwell time; dwell features are built for these and their families.
    dwell_types: tuple[str, ...] = ("card_view", "product_view", "article_view", "video_view")
    labels: dict[str, EventLabel] = Field(default_factory=lambda: dict(DEFAULT_EVENT_LABELS))
    # Words for the `channel` of an event (English, Chinese), as timelines show it; a channel without words
    # reads as its code with spaces. A company adds its own channels here.
    channels: dict[str, tuple[str, str]] = Field(
        default_factory=lambda: {
            "mini_program": ("WeChat mini program", "微信小程序"),
            "h5": ("web page", "H5 网页"),
            "wecom": ("WeCom", "企业微信"),
            "wechat": ("WeChat", "微信"),
            "dingtalk": ("DingTalk", "钉钉"),
            "feishu": ("Feishu", "飞书"),
            "email": ("e-mail", "邮件"),
            "phone": ("phone", "电话"),
            "web": ("website", "官网"),
        }
    )
    # Event validation (features/validation.py), the same for `leadradar ingest` and the service's raw events.
    # Before this, a time is an export or clock error (a zero date, a 1970 epoch), not a card log.
    earliest_ts: AwareDatetime = datetime(2000, 1, 1, tzinfo=UTC)
    # How far past now an event may be stamped: phone clocks run minutes ahead and a day covers any time-zone
    # slip; more is a wrong clock or year, and would sit after every cutoff until that day came.
    future_tolerance: timedelta = timedelta(days=1)
    # The longest plausible dwell on a card or page. 4 hours is twice the longest of the default simulation's
    # 780 k timed events (1.9 h) and longer than any reading or video session; a longer one is a page left
    # open in a background tab, and would be read (and explained) as intent. Such events are refused, not clipped.
    max_dwell_seconds: float = Field(default=4 * 3600.0, gt=0)

    @field_validator("future_tolerance")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v < timedelta(0):
            raise ValueError(f"future_tolerance must be zero or more, got {v}")
        return v

    @model_validator(mode="after")
    def _known_families(self) -> EventConfig:
        for name, family in self.types.items():
            if family not in EVENT_FAMILIES:
                raise ValueError(f"event type {name!r} has family {family!r}; expected one of {EVENT_FAMILIES}")
        for field_name in ("two_way_contact", "dwell_types"):
            for name in getattr(self, field_name):
                if name not in self.types:
                    raise ValueError(f"{field_name} names unknown event type {name!r}")
        return self

    def of_family(self, family: str) -> list[str]:
        return [name for name, fam in self.types.items() if fam == family]

    @property
    def families(self) -> list[str]:
        return [f for f in EVENT_FAMILIES if self.of_family(f)]

    def label(self, name: str) -> EventLabel:
        """The words for a type or family; a company's own type without words reads as its name."""
        words = name.replace("_", " ")
        return self.labels.get(name) or _label(words, words, words, words)

    def channel_label(self, channel: str, lang: str) -> str:
        """The words for a channel in `lang`; an unconfigured one reads as its code with spaces."""
        words = channel.replace("_", " ")
        en, zh = self.channels.get(channel, (words, words))
        return zh if lang == "zh-CN" else en


class FunnelConfig(BaseModel):
    """The ordered CRM funnel; the last stage is the win, `lost` is the terminal exit."""

    stages: tuple[str, ...] = ("new", "engaged", "contacted", "qualified", "proposal", "won")
    lost: str = "lost"
    labels: dict[str, tuple[str, str]] = Field(
        default_factory=lambda: {
            "new": ("new", "新线索"),
            "engaged": ("engaged", "有互动"),
            "contacted": ("contacted", "已联系"),
            "qualified": ("qualified", "需求确认"),
            "proposal": ("proposal", "已报价"),
            "won": ("won", "成交"),
            "lost": ("lost", "流失"),
        }
    )

    @field_validator("stages")
    @classmethod
    def _at_least_two(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("funnel needs at least two distinct stages, the last one being the win")
        return v

    @property
    def won(self) -> str:
        return self.stages[-1]

    @property
    def open_stages(self) -> tuple[str, ...]:
        return self.stages[:-1]

    @property
    def all_stages(self) -> tuple[str, ...]:
        return (*self.stages, self.lost)

    def label(self, stage: str, lang: str) -> str:
        en, zh = self.labels.get(stage, (stage, stage))
        return zh if lang == "zh-CN" else en

    def rank(self, stage: str) -> int:
        """Position in the funnel; `lost` ranks after the win so it sorts last."""
        return self.all_stages.index(stage)


class FeatureConfig(BaseModel):
    windows_days: tuple[int, ...] = (1, 7, 30, 90)
    # Half-lives (days) of the engagement features (features/families/engagement.py): activity weighted by how
    # recent it is, an estimate of the lead's hidden engaged/dormant mode; () leaves the family out.
    # benchmarks/quality_worlds.py --compare-engagement measures them against their absence on every world: one
    # half-life (7: two features) lowered log loss on 3 of 5 worlds and (3, 7, 21) on 3 of 5 too, both costing the
    # short-history world ~0.004; one was kept, the fewer features (benchmarks/README.md).
    engagement_half_lives_days: tuple[int, ...] = (7,)
    cadence: Literal["daily", "weekly"] = "weekly"
    # Weekly cutoffs fall on this weekday (0 = Monday) at midnight UTC.
    weekly_anchor_weekday: int = 0
    session_gap_minutes: int = 30
    # Local time of the cards' users for night and weekend habits (China keeps one offset all year).
    utc_offset_hours: float = 8.0
    night_start_hour: int = 22
    night_end_hour: int = 7
    # "tiles": activity features from day tiles by prefix sums (features/tiles/), the rest by the DuckDB query.
    engine: Literal["duckdb", "spark", "tiles"] = "duckdb"
    # Where the tiles engine keeps day tiles between builds, so a build recomputes only changed days; None keeps none.
    tiles_dir: str | None = None
    # Sets of kept tiles and rows in `tiles_dir` (one per cutoffs' time of day and tile settings, a folder each); a
    # build removes those built least recently beyond this many (another tile version's or settings' stayed forever:
    # 812 MB of kept rows alone at 10.6 M events).
    tiles_kept_sets: int = Field(default=4, ge=1)
    # Leads merged and written at a time by the tiles engine: its memory follows this (times the merge threads, plus
    # one), not the history. Half of the 10,000 it was with one thread, so two merges at once hold about as much.
    tiles_chunk_leads: int = 5_000
    # Chunks of leads the tiles engine merges at once, in threads (numpy leaves the interpreter lock); at most this
    # many merged chunks wait for the writer. 1 merges in the caller's thread. 10.6 M events on 2 cores, fresh
    # processes interleaved: 2 threads of 5,000 leads 27.4, 27.0 s (peak 3.51, 3.35 GB); 1 thread of 10,000 29.9,
    # 29.4 s (3.13, 3.37 GB). `features build --engine tiles` at 33.7 M: 170 s, 3,721 MB against 205 s, 3,454 MB.
    tiles_merge_threads: int = Field(default=2, ge=1)
    # Events per partition of leads in a tiles build (kept tiles or not), and per run of days whose tiles are computed
    # at once: each partition's tile and reference queries run alone, so a build's memory follows this, not the size
    # of the log (features/tiles/build.py). At 33.7 M events: 3.2 GB written in 9 partitions against 10 GB in one
    # piece; at 10.6 M, 3 partitions take 14% longer than one. 3 M, not 4 M: the
    # training set of 10.6 M events from the store 43.7 / 43.2 s and 3,953 / 3,857 MiB peak against 42.5 / 43.8 s and
    # 4,384 / 4,212 MiB; from files 43.9 s, 2,713 MiB against 44.0 s, 3,253 MiB; the feature table of 8 cutoffs as a
    # frame 28.6 / 29.1 s, 2,615 / 2,538 MiB against 28.3 / 28.0 s, 2,975 / 2,948 MiB (Intel Xeon, 2026-12-05).
    tiles_partition_events: int = Field(default=3_000_000, ge=1)
    # Score a stored lead online from its kept history merged by the tiles' code (features/tiles/online.py), not by
    # the whole query over its events: equal on the parity tests; CPU per request 8 ms vs 6 ms at 50 events, 9 vs 16
    # at 500, 11 vs 78 at 5,000 (`python -m benchmarks.live --part online`). Inline-only leads keep the query.
    online_tiles: bool = True
    # Stored leads whose history one serving process keeps in memory for that (about 40 bytes an event, plus the
    # events with an item or a referrer: ~350 KB for a lead of 5,000 events, a few KB for most); the least recently
    # scored are dropped and read again when next scored.
    online_tiles_cache_leads: int = 2_000
    # A training set's Parquet dictionary page, per column chunk, before the column is written plain: most feature
    # columns have few distinct values (counts) and stay dictionary-coded; the rest stop early. The 1.26 M x 220
    # training set of 10.6 M events written in 35 chunks: 4.3 s and 311 MB at 4 KB against 6.0-6.5 s and 310 MB at
    # pyarrow's 1 MB (3.7 s and 370 MB with no dictionary for floats), read back as fast (Intel Xeon, 2026-12-05).
    training_set_dictionary_bytes: int = Field(default=4096, ge=1)
    # DuckDB memory cap for batch builds, e.g. "3GB" (spills to disk beyond it); None: DuckDB's default.
    duckdb_memory_limit: str | None = None
    duckdb_threads: int | None = None
    # Spark for `--engine spark`: local mode on this machine, a cluster's master URL (spark://host:port),
    # or a Spark Connect server (sc://host:port), whose own cluster runs the build.
    spark_master: str = "local[2]"
    spark_shuffle_partitions: int = 2
    # Spark's adaptive query execution re-plans the query after each shuffle stage. The feature query has a few
    # hundred stages, and with a few shuffle partitions re-planning costs more than it saves: 57 → 42 s for 0.94 M
    # events in local mode (README). On a cluster with many shuffle partitions to coalesce, turn it on.
    spark_adaptive: bool = False
    # Item categories that mean the lead looked at prices.
    pricing_categories: tuple[str, ...] = ("pricing",)
    # Static CRM attributes read from an optional leads table (tenant_id, lead_id, these columns).
    lead_attributes: tuple[str, ...] = ("source", "industry", "region")
    # Win-rate smoothing for the salesperson context: prior strength in closed leads.
    sales_prior_strength: float = 20.0

    @field_validator("engagement_half_lives_days")
    @classmethod
    def _sorted_half_lives(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [h for h in v if h <= 0 or h > 3650]
        if bad:
            raise ValueError(f"engagement half-lives must be 1..3650 days, got {bad}")
        return tuple(sorted(set(v)))

    @field_validator("windows_days")
    @classmethod
    def _positive_windows(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        bad = [w for w in v if w <= 0 or w > 3650]
        if bad:
            raise ValueError(f"feature windows must be 1..3650 days, got {bad}")
        return tuple(sorted(set(v)))


LEAF_AUTO = "auto"  # LightGBM's min_data_in_leaf scaled to the rows a booster fits (models/funnel.py `LeafRule`)


class TrainingConfig(BaseModel):
    horizon_days: int = 30
    horizons_days: tuple[int, ...] = (7, 30, 90)
    # One model per open funnel stage: P(moves past the stage within the horizon | at it now).
    transition_models: bool = True
    # Fractions of the labelled cutoffs given to validation and test (time order; the rest trains).
    validation_fraction: float = 0.15
    test_fraction: float = 0.2
    seed: int = 7
    num_boost_round: int = 2000
    early_stopping_rounds: int = 30
    lgbm_params: dict[str, Any] = Field(
        default_factory=lambda: {
            "objective": "binary",
            # Small trees, slowly: on the default simulation (73 k training rows) they beat 31 leaves at
            # 0.05 in test log loss (0.1061 vs 0.1071; logistic regression 0.1066), and at 4x the data too.
            "learning_rate": 0.03,
            "num_leaves": 7,
            # `auto`: the rows of `min_data_in_leaf_leads` leads, at most `min_data_in_leaf_most` (models/funnel.py).
            "min_data_in_leaf": LEAF_AUTO,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "max_bin": 63,
            "num_threads": 2,
            "verbosity": -1,
        }
    )
    ece_bins: int = 15
    # The backtest is the honest evaluation; the model served is then refit on every labelled row (the latest
    # weeks included) with the backtest's rounds. False serves the backtest model itself, as before.
    refit_on_all: bool = True
    # Rolling-origin folds whose out-of-time predictions calibrate the refit model (each fit only on cutoffs a
    # horizon before the fold it predicts).
    refit_calibration_folds: int = 3
    # Short histories (too few cutoffs for train, validation and test with horizon gaps) are backtested by
    # rolling origin over this many time folds instead of being refused.
    backtest_folds: int = 3
    # A time split whose train period holds fewer cutoffs than this is backtested by rolling origin instead: on a
    # 5-month history the split left one cutoff (206 rows) to train on, its early stop kept 1 round, and the
    # refit served that (benchmarks/quality_worlds.py, world many_tenants_short).
    min_time_split_train_cutoffs: int = 8
    # A rolling-origin fold needs this many cutoffs a horizon before the ones it predicts.
    min_fit_cutoffs: int = 2
    # Within a rolling-origin fold, this share of the leads (not rows) stops boosting early and calibrates.
    fold_validation_leads: float = 0.25
    # Below these, training refuses and says how much more history would do: labelled cutoffs (whose main
    # label window has passed) and wins within the main horizon in those rows.
    min_labelled_cutoffs: int = 8
    min_positives: int = 20
    # Bootstrap intervals of every backtest figure: resamples of the leads (seeded by `seed`) and the level.
    bootstrap_resamples: int = 200
    bootstrap_level: float = 0.95
    # Tenants: one pooled model, and a tenant with at least this many labelled rows and wins in the out-of-time
    # calibration rows gets its own sigmoid over the pooled probability; any other tenant (a new one) is served the
    # pooled probability, flagged `pooled`. benchmarks/quality_tenants.py measures this against tenant as a feature.
    tenant_calibration: bool = True
    tenant_min_rows: int = 2000
    tenant_min_positives: int = 40
    # Leave-one-tenant-out figures in the run (each tenant scored by a model that never saw it: a new tenant's
    # view), for tenants with at least `tenant_min_positives` wins in the test period.
    leave_one_tenant_out: bool = True
    # The interval served with each close probability: "dispersion" (the truth around p as Beta(p·κ, (1 − p)·κ),
    # widened by the calibration bin's Jeffreys interval), "bin_support" (that bin interval alone), "bagged"
    # (boosters refit on lead bootstrap samples, the spread of their calibrated answers) or "none". The last two
    # measure the model's own variance, not what the log cannot show (nominal 90 % held the simulator's truth
    # 6.5 % / 12 % of the time); how far the truth lies from a calibrated p cannot be read from 0/1 outcomes, so κ
    # is chosen on benchmarks/quality_worlds.py's five simulated worlds: the largest κ whose coverage averages the
    # nominal level, chosen with each world left out, was 20 every time, and held that world's truth 88–93 %.
    interval_method: Literal["bagged", "bin_support", "dispersion", "none"] = "dispersion"
    interval_concentration: float = Field(default=20.0, gt=0)
    interval_bags: int = Field(default=8, ge=2)
    interval_level: float = Field(default=0.9, gt=0, lt=1)
    # The promotion gate: a challenger must have lower log loss and an AUC at most this much below the champion's.
    promotion_auc_tolerance: float = 0.005
    # Below this many training rows one LightGBM thread is faster than two.
    single_thread_below_rows: int = 20_000
    # `min_data_in_leaf = "auto"`: the rows of this many leads (a table's rows are its own units), at most `_most`
    # rows. The simulator's worlds hold about five rows a lead, so 100 rows (20 leads) as they were tuned; a fixed
    # 100 left a public table of 333 rows (modeldata's ad_data) at AUC 0.50 in `evaluate --table`, where 20 rows
    # gave 0.89 (benchmarks/tables.py).
    min_data_in_leaf_leads: int = Field(default=20, ge=1)
    min_data_in_leaf_most: int = Field(default=100, ge=1)
    # Isotonic calibration is a step per run of rows: fitted on fewer rows than this of either outcome, its steps
    # hold a handful of rows each and learn their noise (benchmarks/tables.py: tables of a few hundred rows, a
    # validation share of 40-70 rows), so the sigmoid is used alone (models/calibration.py).
    isotonic_min_rarer: int = Field(default=30, ge=0)
    # Bring-your-own tables: a text column with more distinct values than this is free text, not a category.
    max_category_levels: int = 200

    @field_validator("lgbm_params")
    @classmethod
    def _leaf_minimum(cls, v: dict[str, Any]) -> dict[str, Any]:
        leaf = v.get("min_data_in_leaf")
        if leaf is not None and leaf != LEAF_AUTO and (isinstance(leaf, bool) or not isinstance(leaf, int) or leaf < 1):
            raise ValueError(f"min_data_in_leaf must be 'auto' or a whole number of rows >= 1, got {leaf!r}")
        return v


class MlflowConfig(BaseModel):
    tracking_uri: str | None = None  # default: sqlite file under the data directory; http://… for an MLflow server
    experiment: str = "leadradar"
    # How long to wait for an MLflow server's /health before calling it unreachable: MLflow's own client retries a
    # refused connection for minutes, so `train` would hang and the service would start late instead of failing over.
    server_timeout_s: float = 5.0
    model_name: str = "leadradar-close"


class PasswordConfig(BaseModel):
    """What a dashboard password must be, and how hard its hash is to guess (serving/users.py)."""

    # Characters at least: NIST SP 800-63B asks for 8 or more where passwords are checked against a deny-list;
    # 10 was the rule before the deny-list and stays.
    min_length: int = Field(default=10, ge=8)
    # Refuse the 30,000 most common passwords (zxcvbn's list), also with digits or symbols added at the end,
    # and a password holding the user name: the first ones a sprayer tries.
    refuse_common: bool = True
    # Argon2id, argon2-cffi's RFC 9106 "low memory" profile: 64 MiB, 3 passes, 4 lanes (~0.2 s here), where the
    # scrypt before used 16 MiB (~0.04 s). Each hash keeps its own parameters, so changing these affects new
    # passwords only, and hashes made with older parameters (or scrypt) still verify.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=64 * 1024, ge=8 * 1024)
    argon2_parallelism: int = Field(default=4, ge=1)


class DashboardConfig(BaseModel):
    """The managers' dashboard: browser sessions, page sizes and what a batch run keeps for the pages."""

    # Signing key of the session cookies; default: a random key kept in `<data dir>/dashboard-secret`.
    session_secret: str | None = None
    session_hours: float = 12.0
    # A session unused this long ends (server-side, like signing out): a forgotten browser tab or a copied
    # cookie stops working within the hour, while a manager reading the pages stays signed in.
    session_idle_minutes: float = 60.0
    # Send the session cookie over HTTPS only; turn on behind TLS (a plain-HTTP laptop needs it off).
    cookie_secure: bool = False
    page_size: int = 50
    movers: int = 5
    # Days of activity drawn on a lead's page.
    activity_days: int = 30
    # Newest points of a lead's score history drawn on its page (batch runs and live rescorings together).
    history_points: int = Field(default=200, gt=0)
    # Last events kept per scored lead for its timeline.
    events_per_lead: int = 50
    # Leads with their own page in the e-mailed HTML report.
    report_leads: int = 10
    # Failed sign-ins per user name and address within `login_window_seconds` before a pause.
    login_attempts: int = 5
    # Failed sign-ins per address across all names in the window: one password sprayed over many names
    # from one place is paused too. An IPv6 address counts by its /64, what one subscriber gets.
    login_address_attempts: int = 20
    login_window_seconds: float = 300.0
    # Password checks (Argon2id, 64 MiB and ~0.2 s each) run in threads, at most this many at once per worker,
    # so that bad sign-ins cannot take the cores (or the event loop) that scoring needs.
    login_hash_concurrency: int = Field(default=1, ge=1)
    # Sign-ins waiting for a password check beyond this many are told to try again (429) at once.
    login_hash_queue: int = Field(default=32, ge=0)
    # The largest body the dashboard reads (the sign-in form is well under 1 KB): more is a 413, unread.
    max_body_bytes: int = Field(default=16_384, gt=0)
    # Rows of the audit log a manager sees on its page (newest first).
    audit_rows: int = 200
    # Alerts the Alerts page lists (newest first).
    alert_rows: int = Field(default=200, gt=0)
    passwords: PasswordConfig = Field(default_factory=PasswordConfig)


class StoreConfig(BaseModel):
    """The event store: the one durable log every part reads (features/store/)."""

    # SQLAlchemy URL; default: a SQLite file (WAL mode) under the data directory, which the service and the
    # command line share. PostgreSQL by URL (postgresql+psycopg://...) for teams that outgrow one machine.
    url: str | None = None
    # SQLite's `synchronous`: FULL syncs the write-ahead log at every commit, so an acknowledged event survives
    # a power cut as well as `kill -9`; NORMAL survives `kill -9` only, and is faster.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # How long a writer waits for another (the CLI while the service writes) before giving up.
    busy_timeout_seconds: float = Field(default=30.0, gt=0)
    # Events (and stage changes) one `POST /v1/events` (`/v1/stages`) may carry; more is a 413.
    max_events_per_request: int = Field(default=5000, gt=0)
    # Rows fetched per read from the database when a whole log is read into Arrow.
    read_batch_rows: int = Field(default=200_000, gt=0)
    # A whole log longer than this (events, or stage changes, by log position) is read by ADBC's driver for the
    # store's database in a child process, into Arrow, not row by row: from SQLite 10.5 M events 18.4 s against 70 s,
    # from PostgreSQL 1 M events 3.6 s against 8.9 s. Shorter, the child's start costs more than it saves.
    # (benchmarks/store_read.py)
    arrow_read_rows: int = Field(default=100_000, ge=0)
    # A SQLite store's log that long is also kept as a copy in Arrow files beside its database, extended by log
    # position, so a whole-log read (a build or training from the store) reads only what was stored since the last
    # (features/store/mirror.py; forgetting and retention remove the copy, a moved count of deletions rebuilds it).
    mirror: bool = True
    # Rows of a file `leadradar ingest` appends per transaction: each batch is committed, so an interrupted
    # ingest keeps what it stored and a re-run adds only the rest (re-sends are duplicates).
    file_batch_rows: int = Field(default=50_000, gt=0)
    # The `Retry-After` (seconds) of a 503 while a store's database cannot be reached (a PostgreSQL restart
    # takes a few seconds): clients retry then, and re-sent events are duplicates, never stored twice.
    outage_retry_after_seconds: int = Field(default=2, gt=0)


class ServingConfig(BaseModel):
    host: str = "127.0.0.1"
    port: int = 3000
    max_leads_per_request: int = 1000
    workers: int = 1
    # SQLAlchemy URL of the score store; default: a SQLite file under the data directory.
    score_store_url: str | None = None
    model_poll_seconds: float = 10.0
    max_body_bytes: int = 20_000_000
    max_events_per_request: int = 50_000
    key_cache_seconds: float = 10.0
    # Keys (and unknown tokens) remembered at most; the oldest go first, so random tokens cannot fill memory.
    key_cache_size: int = Field(default=4096, gt=0)
    # Proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` name the real client (addresses or networks,
    # e.g. ["10.0.0.5", "10.1.0.0/16"]). None by default: the headers are ignored and the peer's address is
    # the client's, so nobody can pick the address the sign-in throttle counts by sending a header.
    trusted_proxies: tuple[str, ...] = ()
    # How long the service keeps a tenant's salesperson context (win rates, workload) before reading it again.
    context_cache_seconds: float = 60.0
    # Requests of at most this many feature rows are answered on the event loop: the hop to a worker thread
    # costs more than their work (one lead: 1.8 -> 1.6 ms p50, 490 -> 880 leads/s from 8 clients on 2
    # cores). So are as many leads by id whose histories the worker keeps (features.online_tiles): a lead with
    # 5,000 stored events 7.4 -> 6.9 ms p50. Larger requests, raw events and leads whose history must be read
    # whole go to a thread so they do not hold up the others.
    inline_leads: int = Field(default=16, ge=0)
    # BentoML's per-request access log, Prometheus /metrics and OpenTelemetry spans for /v1. Each adds
    # to every request (together 2.35 -> 2.11 ms p50 and 329 -> 406 leads/s on 2 cores), so they are opt-in.
    access_log: bool = False
    metrics: bool = False
    tracing: bool = False
    # The API reference at /v1/docs: a page rendered here from the OpenAPI document, with no script at all
    # (FastAPI's own pages load Swagger and ReDoc from a CDN). Off hides it; /v1/openapi.json stays.
    api_docs: bool = True
    # Connection timeouts, which uvicorn lacks (serving/connections.py): a fresh or reused connection must
    # deliver a request's headers within `header_timeout_seconds` of its first byte (or of opening), and its
    # body within `body_timeout_seconds` after the headers (20 MB in 60 s needs 2.7 Mbit/s), else it is
    # closed; an idle connection between requests is closed after `keep_alive_seconds` (uvicorn's 5 s).
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=60.0, gt=0)
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    # Grade A-D by the main close probability: at least this for A, B, C; D below.
    grade_thresholds: dict[str, float] = Field(default_factory=lambda: {"A": 0.5, "B": 0.2, "C": 0.05})
    reasons_for: int = 3
    reasons_against: int = 2
    # Feature families the reasons people read leave out: where a lead stands in the funnel (stage, time in
    # stage, stage moves) a manager already knows from the CRM, and lists show the stage in its own column.
    # The model keeps these features, and the API's full explanation keeps their reasons.
    hidden_reason_families: tuple[str, ...] = ("funnel",)
    # Live rescoring (serving/rescoring.py): the service follows the event store and rescores each lead whose
    # events landed, at most once per `rescore_interval_seconds`. Every process that runs it rescores every
    # lead, so with several replicas (or `workers` > 1: only the first worker rescores) turn it off on all
    # but one of them.
    rescore: bool = True
    rescore_interval_seconds: float = Field(default=1.0, gt=0)
    # How often the store is checked for new events: a lead not rescored within the interval is rescored on
    # the next check, so its first event shows within about this (plus the work), not a whole interval.
    rescore_poll_seconds: float = Field(default=0.1, gt=0)
    # Leads rescored together (one history read, one feature query, one write): bounds a tick's memory in a burst.
    rescore_batch_leads: int = Field(default=500, gt=0)
    # Log entries read per query when a pass collects the leads that moved; a pass reads every entry stored
    # before it began, so a lead moved all through a burst is rescored once per pass, not once per read.
    rescore_read_events: int = Field(default=100_000, gt=0)
    # How long one of the worker's Python threads may hold the interpreter while another waits
    # (`sys.setswitchinterval`). The rescorer makes many short database and Arrow calls, and after each one waits
    # for the interpreter again: at CPython's 5 ms, a request thread kept busy made rescoring 23x slower.
    switch_interval_ms: float = Field(default=0.2, gt=0)
    # A score is flagged low-confidence when the part of its interval the data left open (the calibration bin's
    # support, not the spread every lead of the same probability has) is wider than this, in probability.
    low_confidence_width: float = Field(default=0.15, gt=0, le=1)
    # Below this close probability at the longest horizon no expected close window is named (too unlikely to say).
    close_window_min_p: float = Field(default=0.05, ge=0, le=1)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {item!r} is not an IP address or network") from None
        return v

    @field_validator("grade_thresholds")
    @classmethod
    def _grades(cls, v: dict[str, float]) -> dict[str, float]:
        if set(v) != {"A", "B", "C"} or not (1 >= v["A"] > v["B"] > v["C"] > 0):
            raise ValueError(f"grade thresholds need A > B > C in (0, 1], got {v}")
        return v

    def grade(self, p: float) -> Grade:
        t = self.grade_thresholds
        return "A" if p >= t["A"] else "B" if p >= t["B"] else "C" if p >= t["C"] else "D"


class LifecycleConfig(BaseModel):
    """Keeping the served model true: scheduled retraining, drift, calibration on matured labels (issue 19)."""

    # SQLAlchemy URL of the lifecycle ledger (the retrain lock, job runs and their outcomes); default: the event
    # store's database, so on PostgreSQL the lock holds across machines.
    url: str | None = None
    # `leadradar scheduler` runs the jobs; off leaves them to cron or a systemd timer (README).
    scheduler: bool = True
    # Cron fields (minute hour day month day_of_week) in `timezone`: retrain weekly on Sunday night, check drift
    # nightly, compute matured calibration weekly on Monday morning before managers read the dashboard.
    retrain_cron: str = "0 2 * * sun"
    drift_cron: str = "30 1 * * *"
    calibration_cron: str = "0 5 * * mon"
    # The tenants' time zone (IANA name): "at night" means their night.
    timezone: str = "Asia/Shanghai"
    # A retrain whose lock is older than this is taken over (a crashed host); on one host a dead holder's pid
    # frees it at once.
    lock_lease_minutes: float = Field(default=240.0, gt=0)
    # A `promote` or `rollback` while another runs waits this long for it, then gives up with a one-line error.
    promote_wait_seconds: float = Field(default=600.0, ge=0)
    # Drift: the last `drift_days` of scoring against the model's training window, per tenant.
    drift_days: int = Field(default=14, gt=0)
    # PSI bins (quantiles of the training window) and the PSI above which a feature or the score has drifted:
    # 0.1 is the usual "watch", 0.25 the usual "act".
    psi_bins: int = Field(default=10, ge=2)
    psi_threshold: float = Field(default=0.25, gt=0)
    # A rise of the missing share by more than this (absolute) counts as drift too.
    missing_threshold: float = Field(default=0.1, gt=0)
    # Drifting features (or the score) needed to trigger a retrain; one drifting score always triggers.
    drift_features_to_retrain: int = Field(default=3, ge=1)
    # At most one drift-triggered retrain per this many hours (the weekly one is not counted).
    drift_retrain_every_hours: float = Field(default=72.0, ge=0)
    # Matured calibration: probability bands, the interval level, and the realised expected calibration error
    # above which a model is flagged.
    calibration_bands: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0)
    calibration_level: float = 0.95
    calibration_error_threshold: float = Field(default=0.05, gt=0)
    # Rows of the retrain history kept on the health page.
    history_rows: int = 20


ChannelKind = Literal["wecom_robot", "wecom_app", "dingtalk", "feishu", "webhook", "email"]


class ChannelSettings(BaseModel):
    """One place a tenant's alerts go (serving/alerts/channels/): the platform, where, its secret, the language."""

    kind: ChannelKind
    # A name people recognise on the Rules page and in the outbox's notes ("sales group robot").
    name: str = ""
    # The robot's webhook URL (WeCom, DingTalk, Feishu), the receiver's URL (webhook), the API base of a WeCom app
    # (https://qyapi.weixin.qq.com/cgi-bin; tests point it at 127.0.0.1), or smtp://host:port for e-mail.
    url: str = ""
    # DingTalk's `SEC...` signing secret, Feishu's signature secret, a Standard Webhooks `whsec_...` secret, a WeCom
    # app's corpsecret, or the SMTP password. Empty: the robot was set up without signing.
    secret: str = ""
    language: Lang = "zh-CN"
    # WeCom application messages: the company id and the app's agent id.
    corp_id: str = ""
    agent_id: int | None = None
    # E-mail: the sender, the SMTP user (empty: no login), STARTTLS (off for a relay on localhost).
    sender: str = ""
    username: str = ""
    starttls: bool = True
    # A fixed recipient (the boss's address or WeCom user id) for the digest, and for alerts when the
    # salesperson has none in `wecom_users` / `emails`.
    recipient: str = ""
    # Whether instant alerts go here, and whether the boss's daily digest does.
    alerts: bool = True
    digest: bool = False
    # Messages a minute this channel may take; None: the platform's documented limit (20 for a WeCom or DingTalk
    # group robot, 100 for a Feishu bot, 30 per person for a WeCom app), 60 for a webhook or mail server of yours.
    per_minute: int | None = Field(default=None, gt=0)


class AlertChannels(BaseModel):
    """Where alerts and the digest go, per tenant, and who each salesperson is on each platform."""

    # tenant_id -> its channels, e.g. {"t01": [{"kind": "wecom_robot", "url": "https://qyapi...", "name": "sales"}]}.
    tenants: dict[str, list[ChannelSettings]] = Field(default_factory=dict)
    # sales_id -> WeCom user id (application messages to the lead's owner) and sales_id -> e-mail address. A key
    # "tenant/sales_id" wins over a bare sales_id, for two tenants that use the same salesperson ids.
    wecom_users: dict[str, str] = Field(default_factory=dict)
    emails: dict[str, str] = Field(default_factory=dict)
    # sales_id (or "tenant/sales_id") -> the name people know the salesperson by, for messages and the digest.
    sales_names: dict[str, str] = Field(default_factory=dict)
    # Seconds one request to a platform may take before it counts as a time-out (a retry, not a failure).
    timeout_seconds: float = Field(default=10.0, gt=0)
    # The digest: local time of day in `lifecycle.timezone`, the tenants' one zone (the cron line in README runs
    # `alerts digest --send` then), the leads it lists, and how long a hot lead may wait for a follow-up before the
    # digest names it.
    digest_time: str = "08:30"
    digest_hot: int = Field(default=10, gt=0)
    followup_hours: float = Field(default=24.0, gt=0)
    # Alerts older than this are no longer the digest's business (a week: Monday's digest still sees Friday).
    digest_lookback_days: int = Field(default=7, gt=0)
    # Where the links in messages point: the dashboard as the salespeople reach it.
    dashboard_url: str = "http://127.0.0.1:3000/dashboard"

    @field_validator("digest_time")
    @classmethod
    def _clock(cls, v: str) -> str:
        try:
            datetime.strptime(v, "%H:%M")
        except ValueError:
            raise ValueError(f"digest_time must be HH:MM, got {v!r}") from None
        return v


class AlertRules(BaseModel):
    """When a lead is worth a message, and the restraint that keeps messages few (serving/alerts/rules.py,
    restraint.py, outbox.py). Defaults chosen so that `leadradar alerts simulate` on the default simulation gives
    a salesperson a handful of instant alerts a day; run it on your own history before switching alerting on."""

    # Off: nothing is evaluated, stored or sent (the outbox keeps what it had).
    enabled: bool = True
    # A session ends after this much quiet; the rules look at it then, and at most one message is sent for it.
    # Five minutes: most card visits are one burst of opens; a reader who pauses longer comes back as a new visit.
    session_quiet_minutes: float = Field(default=5.0, gt=0)
    # Hot action: one of these actions in the session by a lead at or above `hot_floor`. Saving the contact,
    # sharing the card, calling, adding on WeChat and sending a form are what a buyer does; reading is not.
    hot_actions: tuple[str, ...] = ("card_save", "card_share", "phone_call", "wechat_add", "form_submit")
    # ... or reading a pricing page (features.pricing_categories) or a product for at least this long.
    hot_dwell_types: tuple[str, ...] = ("product_view",)
    hot_dwell_seconds: float = Field(default=120.0, ge=0)
    hot_floor: float = Field(default=0.1, ge=0, le=1)
    # Threshold crossing: fires when the probability rises to `high` or above, and re-arms only after it fell
    # below `low` (hysteresis: a lead hovering at the line is announced once, not at every wobble).
    threshold_high: float = Field(default=0.35, gt=0, le=1)
    threshold_low: float = Field(default=0.2, ge=0, lt=1)
    # Intent spike: the events of the last `spike_window_hours` are improbable under the lead's own rate of the
    # `spike_history_days` before (Gamma-Poisson predictive tail below `spike_alpha`), at least `spike_min_events`
    # of them, for a lead at or above `spike_floor` whose history is at least `spike_min_age_days` long (a new
    # lead has no "own level" to rise above). Prior: `spike_prior_events` in `spike_prior_days`.
    spike_window_hours: float = Field(default=24.0, gt=0)
    spike_history_days: float = Field(default=28.0, gt=0)
    spike_alpha: float = Field(default=0.001, gt=0, lt=1)
    spike_min_events: int = Field(default=4, ge=1)
    spike_floor: float = Field(default=0.1, ge=0, le=1)
    spike_min_age_days: float = Field(default=7.0, ge=0)
    spike_prior_events: float = Field(default=1.0, gt=0)
    spike_prior_days: float = Field(default=7.0, gt=0)
    # Back from dormant: a session after at least this many days without events (and the lead had some before).
    dormant_days: float = Field(default=30.0, gt=0)
    # Going cold: a lead that reached `threshold_high` fell below `threshold_low` with no two-way contact since.
    going_cold: bool = True
    # A session or fall older than this when first seen (events that arrived late, a service that was down) is
    # history, not news: no alert.
    stale_hours: float = Field(default=6.0, gt=0)
    # Restraint. A lead is told about by the same rule at most once per this many hours.
    cooldown_hours: float = Field(default=24.0, ge=0)
    # Instant alerts one salesperson gets per local day; the rest go to the digest, the most valuable first.
    daily_budget: int = Field(default=5, ge=0)
    # Quiet hours in `lifecycle.timezone` (the tenants' zone): alerts found then wait until `quiet_end`.
    quiet_start: str = "21:00"
    quiet_end: str = "08:00"
    # Bot-like bursts never alert: a session of at least `bot_min_events` whose events come faster than one per
    # `bot_max_gap_seconds` on median, or whose opens have no dwell at all. People do not read 20 pages in 20 s.
    bot_min_events: int = Field(default=10, ge=2)
    bot_max_gap_seconds: float = Field(default=2.0, ge=0)
    # An alert was acted on when a two-way contact or a stage change of the lead followed within this (feedback.py).
    acted_on_hours: float = Field(default=24.0, gt=0)
    # Delivery (outbox.py). Retries back off exponentially with full jitter: the n-th waits a random time up to
    # min(retry_max_seconds, retry_base_seconds * 2^n), for `retry_hours` after the first attempt, then give up.
    retry_base_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=1800.0, gt=0)
    retry_hours: float = Field(default=24.0, gt=0)
    # A channel that answered 410, or that failed every attempt for this long, is disabled with a note until
    # someone re-enables it (`leadradar alerts enable`): the platform removed the robot, or its URL is wrong.
    disable_after_hours: float = Field(default=24.0, gt=0)
    # How often the delivery worker looks for messages due, and how many it sends per look.
    delivery_poll_seconds: float = Field(default=1.0, gt=0)
    delivery_batch: int = Field(default=100, gt=0)

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        try:
            datetime.strptime(v, "%H:%M")
        except ValueError:
            raise ValueError(f"quiet hours are HH:MM, got {v!r}") from None
        return v

    @model_validator(mode="after")
    def _hysteresis(self) -> AlertRules:
        if self.threshold_low >= self.threshold_high:
            raise ValueError(f"threshold_low {self.threshold_low} must be below threshold_high {self.threshold_high}")
        return self


class AlertConfig(BaseModel):
    """Alerts (issue 18): rules and restraint (AlertRules), channels and the digest (AlertChannels)."""

    channels: AlertChannels = Field(default_factory=AlertChannels)
    rules: AlertRules = Field(default_factory=AlertRules)


class PrivacyConfig(BaseModel):
    """What the law on personal information (PIPL) asks of the data kept: deletion on request, limited retention."""

    # Days of events, quarantined items and scores kept; older ones are deleted by `leadradar retention` and the
    # scheduler. None keeps everything (the old behaviour); training needs at least its window plus a horizon.
    retention_days: int | None = Field(default=None, gt=0)
    # When the scheduler applies retention (cron fields in lifecycle.timezone): nightly, after the drift check.
    retention_cron: str = "0 3 * * *"
    # Consent (PIPL): when required, a lead that has not consented is scored from counts of its events and its CRM
    # stage only (no dwell, content, timing, sharing or salesperson features), and raises no alert. Off by default:
    # many card systems collect consent before a card opens, and turning it on weakens every unconsented score.
    consent_required: bool = False
    # Event types a card back end sends when a visitor accepts (true) or withdraws (false) the privacy agreement
    # (a WeChat mini program's privacy authorisation, an H5 page's consent banner); the lead's latest one decides.
    # They are stored in the log with the lead's other events and never counted by a feature.
    consent_events: dict[str, bool] = Field(
        default_factory=lambda: {"privacy_consent": True, "privacy_withdrawn": False}
    )


class Settings(BaseSettings):
    """Everything configurable, in one place."""

    model_config = SettingsConfigDict(env_prefix="LEADRADAR_", env_nested_delimiter="__", extra="ignore")

    home: Path = Path(".leadradar")
    events: EventConfig = Field(default_factory=EventConfig)
    funnel: FunnelConfig = Field(default_factory=FunnelConfig)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @model_validator(mode="after")
    def _consent_apart(self) -> Settings:
        both = sorted(set(self.privacy.consent_events) & set(self.events.types))
        if both:
            raise ValueError(f"privacy.consent_events names event types a feature counts: {both}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("LEADRADAR_CONFIG")
        if config_file:
            if not Path(config_file).is_file():
                raise FileNotFoundError(f"LEADRADAR_CONFIG names {config_file}, which does not exist")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @property
    def data_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str:
        return (self.data_dir / "mlartifacts").as_uri()

    @property
    def score_store_url(self) -> str:
        return self.serving.score_store_url or f"sqlite:///{self.data_dir / 'scores.db'}"

    @property
    def event_store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'events.db'}"

    @property
    def lifecycle_url(self) -> str:
        return self.lifecycle.url or self.event_store_url

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "model-cache"

    @property
    def query_cache_dir(self) -> Path:
        """Compiled feature queries the service reads instead of compiling them at each start."""
        return self.data_dir / "query-cache"

    @property
    def scores_dir(self) -> Path:
        return self.data_dir / "scores"

    def ensure_dirs(self) -> None:
        """The data directory and its folders, open to this user only (0700), and its SQLite files 0600.

        They hold customers' scores, key and password hashes, the dashboard's signing key and the models.
        Databases made before this rule are tightened too.
        """
        for path in (self.data_dir, self.scores_dir, self.model_cache_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)
        for name, configured in (
            ("scores.db", self.serving.score_store_url),
            ("mlflow.db", self.mlflow.tracking_uri),
            ("events.db", self.store.url),
        ):
            if configured is None:
                database = self.data_dir / name
                create_private_file(database)
                database.chmod(0o600)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLAlchemy URL names when it is SQLite on disk; None for a server or memory."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).expanduser()
    return None


def create_private_file(path: Path) -> None:
    """Create `path` readable by this user only (0600) when it does not exist; never open an existing one.

    Closing any descriptor of a file drops every POSIX lock this process holds on it, so opening and closing a
    SQLite database that a connection of this process has open would silently drop SQLite's locks: another
    process then deletes the write-ahead log under it ("disk I/O error"). O_EXCL opens only a new file.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))


def quiet_environment() -> None:
    """Turn off telemetry lookups of MLflow and BentoML (this machine cannot reach those hosts) and their chatter."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    quiet_environment()
    return Settings()
