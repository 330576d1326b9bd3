"""The API reference at /v1/docs: the OpenAPI document as one HTML page, with no script at all.

FastAPI's /docs and /redoc pages load Swagger UI and ReDoc from a CDN: a third party's script on the
service's origin, and nothing at all offline. This page is rendered here with Jinja2 (already used by the
dashboard), so it loads nothing from anywhere; the machine-readable document stays at /v1/openapi.json.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, StrictUndefined

# Nothing but inline styles: the page works, and must keep working, with every script refused.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
METHODS = ("get", "post", "put", "patch", "delete")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ info.title }} — reference</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2433}
code,pre{font:13px/1.4 ui-monospace,monospace}pre{background:#f4f6fa;padding:.8rem;overflow:auto;border-radius:6px}
h2{border-top:1px solid #dde2ea;padding-top:1.2rem}.m{display:inline-block;min-width:4rem;font-weight:700}
table{border-collapse:collapse}td,th{border-bottom:1px solid #e6e9ef;padding:.25rem .6rem;text-align:left}
</style></head><body>
<h1>{{ info.title }} <small>v{{ info.version }}</small></h1>
<p>{{ info.description }}</p>
<p>Base path <code>{{ base }}</code> · machine-readable: <a href="openapi.json">openapi.json</a></p>
{% for op in operations %}
<h2 id="{{ op.id }}"><span class="m">{{ op.method|upper }}</span> <code>{{ base }}{{ op.path }}</code></h2>
{% if op.summary %}<p><b>{{ op.summary }}</b></p>{% endif %}
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>required</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code></td><td>{{ p.in }}</td><td>{{ p.required }}</td></tr>
{% endfor %}</table>{% endif %}
{% if op.body %}<p>Request body: <a href="#schema-{{ op.body }}"><code>{{ op.body }}</code></a></p>{% endif %}
<table><tr><th>status</th><th>meaning</th><th>body</th></tr>
{% for code, meaning, body in op.responses %}<tr><td>{{ code }}</td><td>{{ meaning }}</td>
<td>{% if body %}<a href="#schema-{{ body }}"><code>{{ body }}</code></a>{% endif %}</td></tr>
{% endfor %}</table>
{% endfor %}
<h2>Schemas</h2>
{% for name, schema in schemas %}<h3 id="schema-{{ name }}"><code>{{ name }}</code></h3><pre>{{ schema }}</pre>
{% endfor %}
</body></html>
"""


def _ref_name(content: dict[str, Any] | None) -> str | None:
    schema = ((content or {}).get("application/json") or {}).get("schema") or {}
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] or None


def _operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            responses = [
                (code, r.get("description", ""), _ref_name(r.get("content")))
                for code, r in op.get("responses", {}).items()
            ]
            ops.append(
                {
                    "id": op.get("operationId", f"{method}{path}"),
                    "method": method,
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": op.get("parameters", []),
                    "body": _ref_name(op.get("requestBody", {}).get("content")),
                    "responses": responses,
                }
            )
    return ops


def reference_html(doc: dict[str, Any]) -> str:
    """The page for one OpenAPI document (escaped throughout: descriptions are text, never markup)."""
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    schemas = sorted(doc.get("components", {}).get("schemas", {}).items())
    return env.from_string(PAGE).render(
        info=doc.get("info", {}),
        base=(doc.get("servers") or [{"url": ""}])[0]["url"],
        operations=_operations(doc),
        schemas=[(name, json.dumps(schema, indent=2, ensure_ascii=False)) for name, schema in schemas],
    )
