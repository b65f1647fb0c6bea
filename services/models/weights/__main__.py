"""``python -m services.models.weights [status | download NAME...]``: the state of every
backbone's weights, or download them."""

from __future__ import annotations

from collections.abc import Sequence

from services.errors import UserFacingError
from services.models.backbones import BACKBONES
from services.models.weights.cache import resolve_weights, weights_status

def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.models.weights [status | download NAME...]``."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    command, names = (args[0] if args else "status"), args[1:] or list(BACKBONES)
    try:
        for name in names:
            if command == "download":
                def report(done: int, total: int | None, name=name) -> None:
                    print(f"\r{name}: {done / 1e6:.1f} / {(total or 0) / 1e6:.1f} MB", end="", flush=True)
                print(f"\n{name}: {resolve_weights(name, download=True, progress=report)}")
            else:
                status = weights_status(name)
                print(f"{name:16} {status.state:12} {status.reason} {status.fix}".rstrip())
    except UserFacingError as error:
        print(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
