"""Ranked lists as files: CSV for programs and spreadsheets, Excel for people.

An English CSV keeps stable column names (`rank, lead_id, ..., top_reason`, then the display names) for
programs; a Chinese one is for people: headings and stages in Chinese, like the workbook. Both are UTF-8
with a byte order mark, so Excel on a Chinese Windows opens them correctly. The workbook has headings in
the reader's language, percentages as numbers formatted as percent, a frozen header and filters, and a
second sheet with the movers.

Ids and reasons come from outside (a CRM, a card log), so a value a spreadsheet would read as a formula
(one starting with `=`, `+`, `-`, `@`, a tab or a carriage return, after OWASP's CSV injection advice)
is written as text: in CSV with a leading `'` (the value a program reads back is then `'=...`), in the
workbook as a string cell (`data_type "s"`), which Excel and LibreOffice never evaluate.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from leadradar.serving.dashboard.messages import translator

HEADINGS = {
    "rank": "col.rank",
    "lead_id": "col.lead",
    "sales_id": "col.sales",
    "stage": "col.stage",
    "p_close": "col.p",
    "grade": "col.grade",
    "change": "col.change",
    "p_lo": "col.p_lo",
    "p_hi": "col.p_hi",
    "low_confidence": "col.low_confidence",
    "pooled": "col.pooled",
    "close_window": "col.window",
    "top_reason": "col.reason",
    "as_of": "col.asof",
    "model_version": "col.model",
    "lead_name": "col.lead_name",
    "sales_name": "col.sales_name",
}
WIDTHS = {
    "rank": 7,
    "lead_id": 16,
    "sales_id": 14,
    "stage": 12,
    "p_close": 12,
    "grade": 7,
    "change": 10,
    "p_lo": 10,
    "p_hi": 10,
    "low_confidence": 10,
    "pooled": 10,
    "close_window": 16,
    "top_reason": 60,
    "as_of": 18,
    "model_version": 10,
    "lead_name": 14,
    "sales_name": 14,
}


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def looks_like_formula(value: object) -> bool:
    """True for text a spreadsheet would evaluate rather than show."""
    return isinstance(value, str) and value.startswith(FORMULA_START)


def _defused(value: object) -> object:
    return "'" + value if looks_like_formula(value) else value  # type: ignore[operator]


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Timestamps as text a spreadsheet shows as written (UTC), numbers as numbers."""
    out = frame.copy()
    if "as_of" in out and len(out):
        out["as_of"] = pd.to_datetime(out["as_of"], utc=True).dt.strftime("%Y-%m-%d %H:%M UTC")
    return out


def for_readers(
    frame: pd.DataFrame, lang: str, stage_label: Callable[[str], str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The list with stages worded by `stage_label`, and its headings in `lang`."""
    data = _plain(frame)
    if stage_label is not None and "stage" in data:
        data["stage"] = data["stage"].map(lambda s: stage_label(s) if isinstance(s, str) else s)
    t = translator(lang)
    return data, [t(HEADINGS[c]) if c in HEADINGS else str(c) for c in data.columns]


def csv_bytes(frame: pd.DataFrame, lang: str = "en", stage_label: Callable[[str], str] | None = None) -> bytes:
    """The list as UTF-8 CSV with a BOM (Excel needs it to read Chinese) and CRLF rows (RFC 4180), so a value
    holding a carriage return is quoted; formula-looking text gets a leading `'`. In Chinese, headings and
    stages are Chinese (`stage_label` words a stage); in English the columns keep their stable names."""
    data = _plain(frame)
    if lang != "en":
        data, headings = for_readers(frame, lang, stage_label)
        data.columns = headings
    for col in data.columns:
        if not pd.api.types.is_numeric_dtype(data[col].dtype):
            data[col] = data[col].map(_defused)
    return data.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig")  # CRLF: a lone \r gets quoted


def write_csv(
    frame: pd.DataFrame, path: Path, lang: str = "en", stage_label: Callable[[str], str] | None = None
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(csv_bytes(frame, lang, stage_label))
    return path


def xlsx_bytes(
    frame: pd.DataFrame, lang: str, stage_label=None, movers: pd.DataFrame | None = None, title: str = ""
) -> bytes:
    """An Excel workbook of the list (and its movers), headings in `lang`, stages worded by `stage_label`."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    t = translator(lang)
    book = Workbook()
    sheets = [(book.active, frame, title or t("board.title"))]
    if movers is not None:
        sheets.append((book.create_sheet(), movers, f"{t('movers.up')} / {t('movers.down')}"))
    for sheet, data, name in sheets:
        sheet.title = name[:31].replace("/", "-")
        columns = list(data.columns)
        data, headings = for_readers(data, lang, stage_label)
        sheet.append(headings)
        for row in data.itertuples(index=False):
            sheet.append([None if (isinstance(v, float) and v != v) else v for v in row])
            for cell in sheet[sheet.max_row]:
                if looks_like_formula(cell.value):
                    cell.data_type = "s"
        for j, col in enumerate(columns, start=1):
            letter = get_column_letter(j)
            sheet.column_dimensions[letter].width = WIDTHS.get(col, 14)
            if col in ("p_close", "change", "p_lo", "p_hi"):
                for cell in sheet[letter][1:]:
                    cell.number_format = "+0.0%;-0.0%;0.0%" if col == "change" else "0.0%"
            if col == "top_reason":
                for cell in sheet[letter][1:]:
                    cell.alignment = Alignment(wrap_text=False)
        for cell in sheet[1]:
            cell.font = Font(bold=True, color="FFFFFF")
            cell.fill = PatternFill("solid", fgColor="1C7ED6")
        sheet.freeze_panes = "A2"
        if columns:
            sheet.auto_filter.ref = sheet.dimensions
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def write_xlsx(
    frame: pd.DataFrame, path: Path, lang: str, stage_label=None, movers: pd.DataFrame | None = None, title: str = ""
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(xlsx_bytes(frame, lang, stage_label, movers, title))
    return path
