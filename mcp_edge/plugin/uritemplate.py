"""Matching URIs against RFC 6570 templates: level 1 ``{var}`` and reserved expansion ``{+var}``.

``{var}`` is simple string expansion: its value is percent-encoded, so it matches
one run of characters without ``/``, ``?`` or ``#`` and is percent-decoded.
``{+var}`` is reserved expansion: it matches any text (at least one character),
``/`` included, as for a path; it is percent-decoded too (``%20`` is a
space). Other operators are refused when the template is compiled, with the
template named.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

__all__ = ["UriTemplate"]

_EXPR = re.compile(r"\{([^{}]*)\}")
_VAR = re.compile(r"^[A-Za-z0-9_]+$")


class UriTemplate:
    """A compiled template: ``match(uri)`` gives the variables or None."""

    __slots__ = ("_regex", "literal_prefix", "reserved", "template", "variables")

    def __init__(self, template: str) -> None:
        self.template = template
        parts: list[str] = []
        variables: list[str] = []
        reserved: set[str] = set()
        pos = 0
        for m in _EXPR.finditer(template):
            parts.append(re.escape(template[pos:m.start()]))
            expr = m.group(1)
            plus = expr.startswith("+")
            name = expr[1:] if plus else expr
            if not _VAR.match(name):
                raise ValueError(
                    f"URI template {template!r}: unsupported expression {{{expr}}} "
                    "(supported: {var} and {+var})"
                )
            if name in variables:
                raise ValueError(f"URI template {template!r}: variable {name!r} appears twice")
            variables.append(name)
            if plus:
                reserved.add(name)
            parts.append(f"(?P<{name}>.+?)" if plus else f"(?P<{name}>[^/?#]+)")
            pos = m.end()
        rest = template[pos:]
        if "{" in rest or "}" in rest:
            raise ValueError(f"URI template {template!r}: unbalanced braces")
        parts.append(re.escape(rest))
        self._regex = re.compile("".join(parts) + r"\Z", re.DOTALL)
        self.reserved = frozenset(reserved)
        self.variables = tuple(variables)
        first = _EXPR.search(template)
        self.literal_prefix = template[: first.start()] if first else template

    def match(self, uri: str) -> dict[str, str] | None:
        """The variables of ``uri`` if it matches, percent-decoded; else None."""
        if not uri.startswith(self.literal_prefix):
            return None
        m = self._regex.match(uri)
        if m is None:
            return None
        return {k: unquote(v) if "%" in v else v for k, v in m.groupdict().items()}

    def __repr__(self) -> str:
        return f"UriTemplate({self.template!r})"
