"""The health page's words, in English and Simplified Chinese (merged into the dashboard's messages)."""

from __future__ import annotations

HEALTH_MESSAGES: dict[str, tuple[str, str]] = {
    "nav.health": ("Model health", "模型健康"),
    "health.title": ("Is the model still true?", "模型是否依然可靠？"),
    "health.subtitle": (
        "The served model, how its inputs moved since training, and whether last month's scores came true.",
        "当前模型、训练以来输入的变化，以及上月的评分是否兑现。",
    ),
    "health.model": ("Served model", "当前模型"),
    "health.version": ("version {version}", "版本 {version}"),
    "health.age": ("data {days} days old", "数据距今 {days} 天"),
    "health.window": (
        "trained on cutoffs {first} … {last}, data until {until}",
        "训练时点 {first} … {last}，数据截至 {until}",
    ),
    "health.figure": ("Backtest figure", "回测指标"),
    "health.value": ("Value", "数值"),
    "health.interval": ("95% interval", "95% 区间"),
    "health.drift": ("Drift since training", "训练以来的漂移"),
    "health.checked": ("checked {at} UTC", "检查于 {at} UTC"),
    "health.column": ("Feature", "特征"),
    "health.missing": ("Missing", "缺失比例"),
    "health.meaning": ("In words", "含义"),
    "health.calibration": ("Did the scores come true?", "评分是否兑现？"),
    "health.ece": (
        "realised calibration error {ece} over {leads} leads scored one horizon ago",
        "一个预测期前评分的 {leads} 条线索，实际校准误差 {ece}",
    ),
    "health.flagged": ("flagged: retrain or recalibrate", "已标记：需重新训练或校准"),
    "health.band": ("Score band", "概率区间"),
    "health.leads": ("Leads", "线索数"),
    "health.predicted": ("Predicted", "预测成交率"),
    "health.realised": ("Realised (95% interval)", "实际成交率（95% 区间）"),
    "health.retrains": ("Schedule and retrain history", "计划与重新训练记录"),
    "health.job": ("Job", "任务"),
    "health.when": ("When", "时间"),
    "health.last": ("Last run", "上次运行"),
    "health.next": ("Next run", "下次运行"),
    "health.outcome": ("Outcome", "结果"),
    "health.trigger": ("Why it ran", "触发原因"),
    "health.why": ("Decision", "决定"),
    "health.none_yet": ("Nothing yet.", "暂无。"),
    "health.calibration_chart": ("predicted against realised closes by band", "各区间预测与实际成交率"),
}
