"""Compose ``conf/`` into ``params.yaml``, the file every DVC stage reads.

``dvc exp run`` does the same composition itself (``hydra.enabled`` in .dvc/config);
plain ``dvc repro`` does not, so the composed file is committed and regenerated
with this command whenever ``conf/`` changes::

    python -m logreg.params                 # rewrite params.yaml from conf/
    python -m logreg.params model=newton    # compose with overrides
    python -m logreg.params --check         # exit 1 if params.yaml is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from logreg.errors import UserError, cli
from logreg.io import write_text

HEADER = (
    "# GENERATED from conf/ by `python -m logreg.params` (and by `dvc exp run`).\n"
    "# Do not edit by hand: change conf/ and regenerate.\n"
)


def compose(config_dir: str | Path = "conf", overrides: list[str] | None = None) -> dict[str, Any]:
    """The Hydra composition of ``config_dir/config.yaml`` as a plain, resolved dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    directory = Path(config_dir).resolve()
    if not (directory / "config.yaml").is_file():
        raise UserError(f"{directory / 'config.yaml'}: config file not found")
    try:
        with initialize_config_dir(config_dir=str(directory), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=overrides or [])
    except (HydraException, OmegaConfBaseException) as exc:
        raise UserError(f"{directory}: cannot compose the config: {one_line(exc)}") from None
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def one_line(exc: Exception) -> str:
    """Hydra's multi-line error as one line: its sentences, then the valid options it lists."""
    lines = str(exc).splitlines()
    options = [line.strip() for line in lines[1:] if line.startswith("\t") and "=" not in line]
    text = []
    for line in lines:  # the message ends where Hydra starts listing options or search paths
        if line.startswith(("\t", "Available options", "Config search path")):
            break
        if line.strip():
            text.append(line.strip())
    return " ".join(text) + (f" (available: {', '.join(options)})" if options else "")


def render(params: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return HEADER + OmegaConf.to_yaml(OmegaConf.create(params))


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.penalty=l1")
    parser.add_argument("--config-dir", default="conf")
    parser.add_argument("--out", default="params.yaml")
    parser.add_argument("--check", action="store_true", help="fail if --out differs from conf/")
    args = parser.parse_args(argv)

    params = compose(args.config_dir, args.overrides)
    if args.check:
        from omegaconf import OmegaConf

        current = OmegaConf.to_container(OmegaConf.load(args.out), resolve=True)
        if current != params:
            print(f"{args.out} differs from {args.config_dir}/: run `python -m logreg.params`")
            return 1
        return 0
    write_text(args.out, render(params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
