"""The managers' dashboard at /dashboard: sign-in, ranked leads, lead pages, funnel, team, exports.

routes.py (HTTP), sessions.py (sign-in and cookies), pagedata.py (what each page shows),
charts.py (inline SVG), messages.py and formatting.py (words and numbers in both languages),
render.py and templates/ (HTML); mount.py hands it to the BentoML service.
"""
