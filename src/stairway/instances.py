"""The product's instances as ``[service] instances`` names them, and ``[service]`` filled in
for one of them.

A site served by several instances (a rolling upgrade's) writes its ``stop``, ``start``,
``health`` and ``drain`` once, with ``{instance}`` (1, 2, ...), ``{port}`` or ``{url}`` where
they differ. Whatever stops, starts or checks the whole product (a restore, a rollback) does so
once per instance with the templates filled; a site naming no instances is one product.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from stairway.site import ServiceSection

TEMPLATED = ("stop", "start", "health", "drain")


@dataclass(frozen=True)
class Instance:
    """One instance of the product: its number from 1 and its URL."""

    number: int
    url: str

    @property
    def port(self) -> str:
        """The port of the instance's URL, or an empty string when it names none."""
        return str(urlsplit(self.url).port or "")

    def fill(self, template: str) -> str:
        """``template`` with ``{instance}``, ``{port}`` and ``{url}`` filled in for this one."""
        return template.format(instance=self.number, port=self.port, url=self.url.rstrip("/"))


def instances_of(section: ServiceSection | None) -> list[Instance]:
    """The instances ``[service] instances`` names, numbered from 1; none without it."""
    urls = section.instances if section else []
    return [Instance(n, url) for n, url in enumerate(urls, 1)]


def filled(section: ServiceSection, instance: Instance) -> ServiceSection:
    """``section`` as it reads for ``instance``: every template filled in."""
    update = {
        name: instance.fill(value)
        for name in TEMPLATED
        if isinstance(value := getattr(section, name), str)
    }
    return section.model_copy(update=update)


def each(section: ServiceSection | None) -> list[ServiceSection | None]:
    """``section`` once per instance, filled; itself alone when it names no instances."""
    found = instances_of(section)
    if section is None or not found:
        return [section]
    return [filled(section, instance) for instance in found]
