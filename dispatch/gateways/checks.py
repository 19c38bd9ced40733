"""System checks for the configured provider backends (``manage.py check [--deploy]``).

A backend named in ``NOTIFY_BACKENDS`` whose keys are missing is a warning under
``--deploy`` (the system would run, and the chain would fail at its first SMS);
a key of the wrong shape is an error at every check and start-up, so a typo'd
key never waits for the first incident to show itself.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

# What the providers' keys look like (an AccessKey ID of Alibaba Cloud starts with
# LTAI; a Tencent Cloud SecretId with AKID).
_SHAPES = {
    "access_key_id": re.compile(r"LTAI[0-9A-Za-z]{12,28}"),
    "access_key_secret": re.compile(r"[0-9A-Za-z]{20,40}"),
    "secret_id": re.compile(r"AKID[0-9A-Za-z]{20,40}"),
    "secret_key": re.compile(r"[0-9A-Za-z]{20,40}"),
}


def _gateway_backends() -> list[tuple[str, str, type]]:
    found = []
    for channel, path in getattr(settings, "NOTIFY_BACKENDS", {}).items():
        if not str(path).startswith("dispatch.gateways."):
            continue
        try:
            found.append((channel, path, import_string(path)))
        except ImportError:
            continue  # Django's own check of the setting's import is not ours to repeat
    return found


@checks.register(checks.Tags.security, deploy=True)
def gateway_keys_present(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for channel, path, backend in _gateway_backends():
        try:
            backend()
        except ImproperlyConfigured as exc:
            messages.append(
                checks.Warning(
                    f"NOTIFY_BACKENDS[{channel!r}] = {path}: {exc}",
                    hint="Set the provider's keys in the environment (docs/deployment.md).",
                    id="dispatch.W101",
                )
            )
    return messages


@checks.register()
def gateway_keys_well_formed(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    for channel, _path, backend in _gateway_backends():
        conf = getattr(settings, "NOTIFY_GATEWAYS", {}).get(getattr(backend, "provider", ""), {})
        for name, shape in _SHAPES.items():
            value = conf.get(name)
            if value and not shape.fullmatch(value):
                messages.append(
                    checks.Error(
                        f"NOTIFY_BACKENDS[{channel!r}]: {name} does not look like a key of "
                        f"{backend.provider} (wrong variable, a space, a quote?)",
                        id="dispatch.E102",
                    )
                )
        url = conf.get("url")
        if url and not re.match(r"https?://", url):
            messages.append(
                checks.Error(
                    f"{backend.provider}: url must start with http(s)://", id="dispatch.E103"
                )
            )
    return messages
