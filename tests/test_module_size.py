"""#35.2: small modules with one job each. No module of the package (outside the generated
edgeshop/_vendor) is over MAX_LINES; a longer one is split by its seams, not trimmed."""

from __future__ import annotations

from conftest import REPO

MAX_LINES = 400


def module_lengths() -> dict[str, int]:
    package = REPO / "edgeshop"
    return {str(path.relative_to(REPO)): len(path.read_text(encoding="utf-8").splitlines())
            for path in sorted(package.rglob("*.py")) if "_vendor" not in path.relative_to(package).parts}


def test_no_module_of_the_package_is_over_400_lines():
    lengths = module_lengths()
    assert len(lengths) > 50  # the package was found (not an empty glob passing by default)
    too_long = {path: lines for path, lines in lengths.items() if lines > MAX_LINES}
    assert not too_long, (f"modules over {MAX_LINES} lines (split each by its seams into modules with one "
                          f"job): {too_long}")
