"""Check a models folder against its manifest: every model there with its sha256 (exit 0), else 1.

    python -m edge.runtime.check --models-dir /opt/edge-anpr/models
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from edge.errors import EdgeError
from edge.runtime.manifest import check_all, load_manifest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.runtime.check", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="models", help="folder holding manifest.json (default: %(default)s)")
    args = parser.parse_args(argv)
    manifest_path = Path(args.models_dir) / "manifest.json"
    try:
        problems = check_all(load_manifest(manifest_path))
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print(f"every model in {manifest_path} is there with its sha256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
