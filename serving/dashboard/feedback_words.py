""" "This score is wrong" in words, on the lead page and the health page, in English and Simplified Chinese."""

from __future__ import annotations

FEEDBACK_MESSAGES: dict[str, tuple[str, str]] = {
    "feedback.title": ("Is this score wrong?", "这个评分不对？"),
    "feedback.hint": (
        "Tell us if you know this lead better than model v{version} does ({p}).",
        "如果您比模型 v{version}（{p}）更了解这条线索，请告诉我们。",
    ),
    "feedback.too_high": ("Too high", "评分过高"),
    "feedback.too_low": ("Too low", "评分过低"),
    "feedback.note": ("Why (optional, at most 500 characters)", "原因（选填，最多 500 字）"),
    "feedback.thanks": (
        "Thank you: your verdict is counted for model v{version}.",
        "谢谢：您的反馈已计入模型 v{version}。",
    ),
    "feedback.refused": ("That verdict could not be recorded.", "无法记录该反馈。"),
    "feedback.last": ("Last verdict: {verdict} by {by}, {at}", "最近反馈：{by} 于 {at} 认为{verdict}"),
    "health.feedback": ("Scores people called wrong", "被标记为不准的评分"),
    "health.feedback_sub": (
        "Verdicts from the lead pages and the API, per model version, beside how the scores came true.",
        "来自线索页面和 API 的反馈，按模型版本统计，与评分兑现情况对照。",
    ),
    "health.model_version": ("Model version", "模型版本"),
    "health.too_high": ("Too high", "评分过高"),
    "health.too_low": ("Too low", "评分过低"),
    "health.feedback_total": ("All verdicts", "反馈总数"),
    "health.feedback_last": ("Latest", "最近一次"),
}
