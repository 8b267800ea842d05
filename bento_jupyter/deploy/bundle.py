"""What the deploy targets read from a bundle, and the options every target shares (validated once)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bento_jupyter.bento.manifest import check_references, read_manifest
from bento_jupyter.bento.manifest_model import ApiEntry, BentoManifest
from bento_jupyter.bento.trust import TRUST_FLAG, TrustPolicy, check_trust, executes_code_on_load
from bento_jupyter.errors import DeployError
from bento_jupyter.oci.reference import OCIError, OCIReference

_IMAGE = re.compile(
    r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
_CPU = re.compile(r"^[0-9]+(\.[0-9]+)?m?$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?(k|M|G|T|Ki|Mi|Gi|Ti)?$")
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Bundle:
    """One verified bento directory, and whether the user allowed it to execute code on load."""

    root: Path
    manifest: BentoManifest
    trust_code: bool = False

    @classmethod
    def read(cls, root: Path, trust_code: bool = False) -> Bundle:
        """Refuses (:class:`UntrustedCodeError`) a bento that executes code on load unless ``trust_code``."""
        manifest = read_manifest(root)
        check_references(manifest)
        check_trust(root, manifest, TrustPolicy(trust_code=trust_code))
        return cls(root, manifest, trust_code and executes_code_on_load(manifest))

    @property
    def trusted_digest(self) -> str:
        """The manifest digest the generated runtime may load with its pickles ('' when it has none)."""
        return self.manifest.digest if self.trust_code else ""

    @property
    def source(self) -> Path:
        """The bento's service module; a manifest without one (a stored model's) is no deployable bento."""
        if self.manifest.source is None:
            raise DeployError(f"{self.root}: the manifest names no service module: not a bento")
        return self.root / self.manifest.source

    @property
    def serve_args(self) -> list[str]:
        """Arguments for the image's ``bento-jupyter serve`` entrypoint."""
        return [TRUST_FLAG] if self.trust_code else []

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def apis(self) -> list[ApiEntry]:
        return self.manifest.apis

    @property
    def resource_name(self) -> str:
        """The service name as a Kubernetes object name (DNS-1123 label: '.' and '_' become '-')."""
        name = re.sub(r"[._]", "-", self.name)
        name = name if name[0].isalpha() else f"bento-{name}"
        if not _DNS_LABEL.fullmatch(name):
            raise DeployError(f"service name {self.name!r} cannot become a Kubernetes name ({name!r})")
        return name

    @property
    def needs_gpu(self) -> bool:
        """A bento needs a GPU when an API declares a CUDA device or a model was saved from one."""
        devices = [api.device or "" for api in self.apis]
        devices += [model.device or "" for model in self.manifest.models]
        return any(device.startswith("cuda") for device in devices)


@dataclass(frozen=True)
class DeployOptions:
    """Options shared by the targets; ``None`` means "decide from the bundle"."""

    image: str | None = None
    gpus: int | None = None
    cpu: str = "500m"
    memory: str = "1Gi"
    min_replicas: int = 1
    max_replicas: int = 4
    storage_uri: str | None = None  # kserve: oci://... of a modelcar holding the bento under /models
    trusted_keys_secret: str | None = None  # a Secret of *.pub keys: the entrypoint then requires a signature

    def __post_init__(self) -> None:
        if self.image is not None and not _IMAGE.fullmatch(self.image):
            raise DeployError(f"invalid image reference {self.image!r}")
        if not _CPU.fullmatch(self.cpu) or self.cpu_cores <= 0:
            raise DeployError(f"invalid --cpu {self.cpu!r}: cores (2, 0.5) or millicores (500m)")
        if not _MEMORY.fullmatch(self.memory):
            raise DeployError(f"invalid --memory {self.memory!r}: bytes with a unit (512Mi, 2Gi)")
        if self.gpus is not None and self.gpus < 0:
            raise DeployError("--gpus must be 0 or more")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise DeployError("replicas: need 1 <= --min-replicas <= --max-replicas")
        if self.storage_uri is not None:
            try:
                ref = OCIReference.parse(self.storage_uri)
            except OCIError as exc:
                raise DeployError(f"invalid --storage-uri: {exc}") from None
            if not (ref.tag or ref.digest):
                raise DeployError(f"invalid --storage-uri {self.storage_uri!r}: name a tag or a digest")
        if self.trusted_keys_secret is not None and not _DNS_SUBDOMAIN.fullmatch(self.trusted_keys_secret):
            raise DeployError(f"invalid --trusted-keys-secret {self.trusted_keys_secret!r}: a Kubernetes Secret name")

    def image_for(self, bundle: Bundle) -> str:
        """The image to run: the option, else ``NAME:DIGEST12`` (the tag follows the bundle's content)."""
        return self.image or f"{bundle.resource_name}:{bundle.manifest.digest.removeprefix('sha256:')[:12]}"

    def gpus_for(self, bundle: Bundle) -> int:
        return self.gpus if self.gpus is not None else int(bundle.needs_gpu)

    @property
    def cpu_cores(self) -> float:
        """The CPU quantity as a number of cores (Ray wants a float)."""
        return float(self.cpu[:-1]) / 1000 if self.cpu.endswith("m") else float(self.cpu)

    def resources(self, bundle: Bundle) -> dict[str, Any]:
        """Container resources: requests, a memory limit, and a GPU limit when one is needed."""
        limits: dict[str, str] = {"memory": self.memory}
        gpus = self.gpus_for(bundle)
        if gpus:
            limits[GPU_RESOURCE] = str(gpus)
        return {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": limits}


class _PlainDumper(yaml.SafeDumper):
    """Writes shared values out in full: no ``&id001`` anchors for a reader to chase."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_yaml(path: Path, documents: list[dict[str, Any]], header: str) -> Path:
    """YAML documents, in the order given, under a comment header."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    body = yaml.dump_all(documents, Dumper=_PlainDumper, sort_keys=False, default_flow_style=False)
    path.write_text(comment + body)
    return path
