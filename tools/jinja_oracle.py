#!/usr/bin/env python3
"""Chat templates rendered by Python's jinja2 (pinned: jinja2==3.1.6), the engine the templates
were written for, set up as Hugging Face `transformers` sets it up for chat templates
(`transformers.utils.chat_template_utils._compile_jinja_template`): a sandboxed environment with
`trim_blocks`, `lstrip_blocks` and loop controls, `tojson` as a plain `json.dumps` (no HTML
escaping), and the globals `raise_exception(msg)` and `strftime_now(fmt)`. `strftime_now` reads
the clock in UTC, as ROCmForge's does.

Reads a JSON list of cases `{"template": str, "context": {...}}` on stdin and writes a JSON list
with, per case, `{"text": rendered}` or `{"error": message}`.
"""

import json
import sys
from datetime import datetime, timezone

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now(timezone.utc).strftime(fmt)


def render(template, context):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(template).render(**context)


def main():
    if jinja2.__version__ != "3.1.6":
        sys.exit(f"jinja_oracle.py expects jinja2 3.1.6, found {jinja2.__version__}")
    out = []
    for case in json.load(sys.stdin):
        try:
            out.append({"text": render(case["template"], case["context"])})
        except Exception as e:  # the template's own errors are part of the answer
            out.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
