"""Type check hf_xclip with mypy against a recorded baseline that may only shrink.

    python tools/check_types.py            # exit 1 if mypy reports an error that is not in the baseline
    python tools/check_types.py --update   # rewrite tools/mypy_baseline.txt (only after fixing errors)

Errors are compared without line numbers (``path: error: message [code]``, counted), so moving code does not
break the check; a new error, or one more of a kind, does. When errors were fixed the check says so: run --update
to shrink the baseline and commit it.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / "tools" / "mypy_baseline.txt"
LINE = re.compile(r"^(?P<path>[^:]+):\d+(?::\d+)?: error: (?P<message>.*)$")


def run_mypy() -> list[str]:
    """mypy's errors (per mypy.ini), as ``path: error: message [code]`` lines without line numbers, sorted."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "mypy.ini"), "--no-pretty", "--no-error-summary"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 1):
        raise SystemExit(f"mypy failed to run:\n{result.stderr or result.stdout}")
    errors = [f"{m['path']}: error: {m['message']}" for line in result.stdout.splitlines() if (m := LINE.match(line))]
    return sorted(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="write the current errors as the baseline")
    args = parser.parse_args(argv)
    errors = run_mypy()
    if args.update:
        BASELINE.write_text("".join(f"{e}\n" for e in errors), encoding="utf-8")
        print(f"baseline: {len(errors)} errors -> {BASELINE.relative_to(REPO)}")
        return 0
    baseline = collections.Counter(BASELINE.read_text(encoding="utf-8").splitlines()) if BASELINE.exists() else {}
    current = collections.Counter(errors)
    new = current - collections.Counter(baseline)
    fixed = collections.Counter(baseline) - current
    for error, count in sorted(new.items()):
        print(f"new: {error}" + (f" (x{count})" if count > 1 else ""))
    print(
        f"mypy: {sum(current.values())} errors, baseline {sum(baseline.values())}; {sum(new.values())} new, "
        f"{sum(fixed.values())} fixed"
        + ("; run `python tools/check_types.py --update` to shrink the baseline" if fixed else "")
    )
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
