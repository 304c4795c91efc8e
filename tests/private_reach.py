"""Count the tests' reach into anaconda_auth's private names (issue 8, item 5).

Not a test: ``python tests/private_reach.py`` prints one line per test file and the total. A
reach is ``aa._name`` / ``anaconda_auth._name`` (also inside code strings run in a subprocess),
``setattr(aa, "_name", ...)`` / ``getattr(aa, "_name")`` (monkeypatch's form included), and each
private name in ``from anaconda_auth import ...``. Dunder names (``aa.__file__``) do not count.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_ATTRIBUTE = re.compile(r"\b(?:anaconda_auth|aa)\._[a-zA-Z]\w*")
_BY_STRING = re.compile(r"\b(?:setattr|getattr|delattr)\(\s*(?:anaconda_auth|aa)\s*,\s*[\"']_[a-zA-Z]\w*")
_FROM_IMPORT = re.compile(r"\bfrom anaconda_auth import \(?([^)\n]*(?:\n[^)\n]*)*?)(?:\)|\n(?!\s))")


def reach(text: str) -> int:
    count = len(_ATTRIBUTE.findall(text)) + len(_BY_STRING.findall(text))
    for names in _FROM_IMPORT.findall(text):
        count += len(re.findall(r"(?<![\w.])_[a-zA-Z]\w*", names))
    return count


def main() -> int:
    files = [ROOT / "test_anaconda_auth.py", *sorted((ROOT / "tests").rglob("*.py"))]
    total = adversarial = 0
    for path in files:
        if path.resolve() == Path(__file__).resolve():
            continue
        found = reach(path.read_text(encoding="utf-8"))
        if found:
            print(f"{found:4d}  {path.relative_to(ROOT)}")
            total += found
            adversarial += found if "adversarial" in path.parts else 0
    print(f"{total:4d}  total ({total - adversarial} outside tests/adversarial)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
