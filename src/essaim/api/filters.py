"""The `filters` query parameter: JSON in two dialects (the CLI's `{"k":{"v":true}}`
and docker-py's `{"k":["v"]}`), and the matching rules shared by list endpoints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from essaim.errors import InvalidParameter


class Filters:
    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    @classmethod
    def parse(cls, raw: str | None) -> Filters:
        if not raw:
            return cls({})
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidParameter(f"invalid filter: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidParameter("invalid filter: expected a JSON object")
        values: dict[str, list[str]] = {}
        for key, spec in data.items():
            if isinstance(spec, dict):
                values[key] = [str(v) for v, on in spec.items() if on]
            elif isinstance(spec, list):
                values[key] = [str(v) for v in spec]
            elif isinstance(spec, str):
                values[key] = [spec]
            else:
                raise InvalidParameter(f"invalid filter value for {key!r}")
        return cls(values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def keys(self) -> Iterable[str]:
        return self._values.keys()

    def values(self, key: str) -> list[str]:
        return self._values.get(key, [])

    def validate(self, accepted: Iterable[str]) -> None:
        allowed = set(accepted)
        for key in self._values:
            if key not in allowed:
                raise InvalidParameter(f"invalid filter '{key}'")

    def match_one(self, key: str, value: str) -> bool:
        """True when `key` is not filtered on, or `value` is one of its values."""
        wanted = self._values.get(key)
        return not wanted or value in wanted

    def match_labels(self, labels: Mapping[str, str], key: str = "label") -> bool:
        """Every `label` filter must hold: `k` (present) or `k=v` (equal)."""
        for item in self._values.get(key, []):
            name, sep, value = item.partition("=")
            if name not in labels:
                return False
            if sep and labels[name] != value:
                return False
        return True
