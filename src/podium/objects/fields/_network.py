"""Network field types: IP addresses and networks (stdlib ``ipaddress``), text on the wire."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from podium.objects.fields._core import bad_value
from podium.objects.fields._field import AutoTypedField
from podium.objects.fields._scalars import StringPattern

if TYPE_CHECKING:
    from podium.objects.base import VersionedObject


class _IPBase(StringPattern[Any]):
    """Common part of the stdlib-ipaddress backed types; str on the wire."""

    _kinds: tuple[type, ...] = ()
    _label = "an IP address"

    def _parse(self, value: str) -> Any:
        raise NotImplementedError

    def coerce(self, obj: VersionedObject | None, attr: str, value: Any) -> Any:
        if isinstance(value, self._kinds):
            return value
        if isinstance(value, str):
            try:
                return self._parse(value)
            except ValueError:
                pass
        raise bad_value(self._label, value)

    def to_primitive(self, obj: VersionedObject | None, attr: str, value: Any) -> str:
        return str(value)


class IPAddress(_IPBase):
    _kinds: tuple[type, ...] = (ipaddress.IPv4Address, ipaddress.IPv6Address)

    def _parse(self, value: str) -> Any:
        return ipaddress.ip_address(value)

    def get_schema(self) -> dict[str, Any]:
        # oslo's IPAddress has no schema (no pattern); podium's is either version.
        return {"oneOf": [IPV4Address().get_schema(), IPV6Address().get_schema()]}


class IPV4AndV6Address(IPAddress):
    """oslo's name for an address of either version (the same as :class:`IPAddress`)."""


class IPV4Address(IPAddress):
    _kinds: tuple[type, ...] = (ipaddress.IPv4Address,)
    _label = "an IPv4 address"

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv4Address(value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "format": "ipv4"}


class IPV6Address(IPAddress):
    _kinds: tuple[type, ...] = (ipaddress.IPv6Address,)
    _label = "an IPv6 address"

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv6Address(value)

    def get_schema(self) -> dict[str, Any]:
        return {"type": ["string"], "format": "ipv6"}


class IPNetwork(_IPBase):
    """A network; host bits are cleared ("10.0.0.5/24" -> "10.0.0.0/24")."""

    _kinds: tuple[type, ...] = (ipaddress.IPv4Network, ipaddress.IPv6Network)
    _label = "an IP network"

    def _parse(self, value: str) -> Any:
        return ipaddress.ip_network(value, strict=False)

    def get_schema(self) -> dict[str, Any]:
        # oslo's IPNetwork has no schema (no pattern); podium's is either version.
        return {"oneOf": [IPV4Network().get_schema(), IPV6Network().get_schema()]}


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_HEXTET = r"[0-9a-fA-F]{1,4}"


class IPV4Network(IPNetwork):
    _kinds: tuple[type, ...] = (ipaddress.IPv4Network,)
    _label = "an IPv4 network"
    # The wire form: dotted quad and prefix length (the form oslo's pattern takes).
    PATTERN = rf"^({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])$"

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv4Network(value, strict=False)

    def get_schema(self) -> dict[str, Any]:
        return StringPattern.get_schema(self)


class IPV6Network(IPNetwork):
    _kinds: tuple[type, ...] = (ipaddress.IPv6Network,)
    _label = "an IPv6 network"
    # The wire form: ipaddress's compressed text and a prefix length. Looser
    # than an exact IPv6 grammar (the value itself is checked by ipaddress);
    # oslo's pattern is a longer regular expression of its own.
    PATTERN = (
        rf"^(({_HEXTET})?:){{2,7}}({_HEXTET}|({_OCTET}\.){{3}}{_OCTET})?"
        r"/(12[0-8]|1[01][0-9]|[1-9]?[0-9])$"
    )

    def _parse(self, value: str) -> Any:
        return ipaddress.IPv6Network(value, strict=False)

    def get_schema(self) -> dict[str, Any]:
        return StringPattern.get_schema(self)


class IPAddressField(AutoTypedField[ipaddress.IPv4Address | ipaddress.IPv6Address]):
    AUTO_TYPE = IPAddress()


class IPV4AddressField(AutoTypedField[ipaddress.IPv4Address]):
    AUTO_TYPE = IPV4Address()


class IPV4AndV6AddressField(AutoTypedField[ipaddress.IPv4Address | ipaddress.IPv6Address]):
    AUTO_TYPE = IPV4AndV6Address()


class IPV6AddressField(AutoTypedField[ipaddress.IPv6Address]):
    AUTO_TYPE = IPV6Address()


class IPNetworkField(AutoTypedField[ipaddress.IPv4Network | ipaddress.IPv6Network]):
    AUTO_TYPE = IPNetwork()


class IPV4NetworkField(AutoTypedField[ipaddress.IPv4Network]):
    AUTO_TYPE = IPV4Network()


class IPV6NetworkField(AutoTypedField[ipaddress.IPv6Network]):
    AUTO_TYPE = IPV6Network()
