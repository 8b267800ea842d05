"""Generate one target's artifacts for every bundle of an export (or one bento), all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bento_jupyter.atomic import staged_directory
from bento_jupyter.bento.loader import bundles_in, locate
from bento_jupyter.deploy.bentoml_target import write_bentoml
from bento_jupyter.deploy.bundle import Bundle, DeployOptions
from bento_jupyter.deploy.kserve import write_kserve
from bento_jupyter.deploy.kubernetes import write_kubernetes
from bento_jupyter.deploy.ray_serve import write_ray
from bento_jupyter.errors import DeployError

Writer = Callable[[list[Bundle], Path, DeployOptions], list[Path]]
TARGETS: dict[str, Writer] = {
    "kubernetes": write_kubernetes,
    "kserve": write_kserve,
    "ray": write_ray,
    "bentoml": write_bentoml,
}


def deploy(
    source: str, target: str, out: Path, options: DeployOptions, force: bool = False, trust_code: bool = False
) -> list[Path]:
    """Write ``target``'s artifacts for the bundles at ``source`` (a directory, or ``NAME[:VERSION]``) into ``out``.

    A bundle that executes code on load is refused unless ``trust_code``; then its runtime may load it.
    """
    if target not in TARGETS:
        raise DeployError(f"unknown target {target!r}: choose one of {', '.join(TARGETS)}")
    if options.storage_uri and target != "kserve":
        raise DeployError(f"--storage-uri is for --target kserve (a KServe modelcar), not {target}")
    if options.trusted_keys_secret and target not in ("kubernetes", "kserve"):
        raise DeployError(f"--trusted-keys-secret is for --target kubernetes or kserve, not {target}")
    path = Path(source)
    roots = bundles_in(path) if path.is_dir() else [locate(source)]
    if not roots:
        raise DeployError(f"{source} holds no bento (no bento.yaml): run bento-jupyter export first")
    bundles = [Bundle.read(root, trust_code) for root in roots]
    with staged_directory(out, force) as work:
        written = TARGETS[target](bundles, work, options)
    return [out / path.relative_to(work) for path in written]
