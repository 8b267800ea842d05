"""The exceptions bento_jupyter raises for mistakes a user can act on."""


class BentoJupyterError(Exception):
    """Base class of every error bento_jupyter raises on purpose."""


class ServiceDefinitionError(BentoJupyterError):
    """A handler cannot become an endpoint (bad signature, unsupported type hint, clashing route)."""


class ServerStartError(BentoJupyterError):
    """The HTTP server could not start (port taken, bind refused, startup timed out)."""


class PortInUse(ServerStartError):
    """The exact address asked for is already taken (by another program, or by one of our own services)."""


class ServiceConflictError(BentoJupyterError):
    """A service name is already served by another notebook cell."""


class InvalidInput(BentoJupyterError):
    """A request's payload does not match the API's signature; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class ResultMismatch(BentoJupyterError, ValueError):
    """A handler's result is not what its return hint declares: a 500 naming the API, the hint and the result."""


class BentoIntegrityError(BentoJupyterError):
    """A bento on disk does not match its manifest (tampered, truncated or incomplete)."""


class InvalidReference(BentoJupyterError, ValueError):
    """A name, alias, tag, version or ``NAME[:N|:latest|@ALIAS]`` reference that is not well formed."""


class BentoNotFoundError(BentoJupyterError):
    """No bento or model matches the requested ``name:version``."""


class RequirementError(BentoJupyterError, ValueError):
    """A requirement line that is not a plain ``name[extras] specifiers`` (no URL, marker or shell text)."""


class CaptureError(BentoJupyterError):
    """Something a handler uses cannot be captured into a bento."""


class ExportError(BentoJupyterError):
    """A notebook could not become bundles (a cell failed, nothing was served, the output directory is taken)."""


class DeployError(BentoJupyterError):
    """Deployment artifacts cannot be generated (an invalid option, an API a target cannot express)."""


class BentoSignatureError(BentoIntegrityError):
    """A bento is unsigned, signed by a key that is not trusted, or changed after it was signed."""


class InvalidManifest(BentoIntegrityError):
    """A manifest no bento can have: a file path no filesystem holds, or a malformed file list."""
