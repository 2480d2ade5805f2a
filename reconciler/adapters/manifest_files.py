"""Write rendered manifests as YAML: one stream, or a directory `kubectl apply -f` and Argo CD read.

A directory is replaced as a whole (written beside it, then swapped), so a retired version's files
never linger to be re-applied, and a failed render leaves the previous one intact. Only a
directory this module wrote (it holds `.sluice-render`) is ever replaced.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, LiteralScalarString

MARKER = ".sluice-render"
KIND_ORDER = {"Namespace": 0, "ConfigMap": 1, "Service": 2, "Deployment": 3, "PodDisruptionBudget": 4,
              "DestinationRule": 5, "VirtualService": 6}


class NotRenderDirectory(Exception):
    """The output directory has files Sluice did not write; refuse rather than delete them."""


_YAML_1_1 = VersionedResolver(version=(1, 1))
_PLAIN = (True, False)


def _readable(value: Any) -> Any:
    """Multi-line strings (JSON documents in ConfigMaps) as block literals, and text that a YAML 1.1
    reader (kubectl, Argo CD) would take for something else quoted: `on`, `yes`, `1_000`, `1:30`."""
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v) for v in value]
    if isinstance(value, str):
        if "\n" in value:
            return LiteralScalarString(value)
        if _YAML_1_1.resolve(ScalarNode, value, _PLAIN) != "tag:yaml.org,2002:str":
            return DoubleQuotedScalarString(value)
    return value


def manifest_yaml(manifest: dict[str, Any]) -> str:
    yaml = YAML()
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(_readable(manifest), out)
    return out.getvalue()


def manifests_stream(manifests: list[dict[str, Any]], header: str) -> str:
    return header + "".join(f"---\n{manifest_yaml(m)}" for m in manifests)


def file_name(manifest: dict[str, Any]) -> str:
    """Stable names in apply order: 0-namespace-llm-serving.yaml, 3-deployment-chat-assistant-v1-3-0.yaml."""
    kind = manifest["kind"]
    return f"{KIND_ORDER.get(kind, 9)}-{kind.lower()}-{manifest['metadata']['name']}.yaml"


def write_manifest_dir(out: Path, manifests: list[dict[str, Any]], header: str) -> list[Path]:
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise NotRenderDirectory(f"{out} has files not written by `reconciler render`; choose an empty "
                                 f"or new directory (nothing was written)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / MARKER).write_text("written by `reconciler render`; the whole directory is replaced on render\n")
        for manifest in manifests:
            (staging / file_name(manifest)).write_text(header + manifest_yaml(manifest), encoding="utf-8")
        os.chmod(staging, 0o755)
        if out.exists():
            retired = out.with_name(f".{out.name}.old")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(out, retired)
            os.replace(staging, out)
            shutil.rmtree(retired)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out.glob("*.yaml"))
