"""The reference cloud's settings: the configuration file, ``PODIUM_<NAME>``, then flags.

See :class:`podium.service.ServiceConfig` for the sources, their order and the checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from podium.service.config import ServiceConfig, setting


def _listen(value: str) -> str:
    """``HOST:PORT`` (``[v6addr]:PORT`` for IPv6), port 0 for any free one."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT (port 0-65535)")
    return value.strip()


@dataclass(frozen=True)
class CloudConfig(ServiceConfig):
    # Heartbeats: a service is down once its last report is older than service_down_time.
    report_interval: float = setting(10.0, help="seconds between a service's reports", gt=0)
    service_down_time: float = setting(
        60.0, help="seconds without a report after which a service is down", gt=0
    )
    # A build that fails on a host is rescheduled elsewhere, up to this many hosts in all.
    max_build_attempts: int = setting(3, help="hosts a build may be tried on", ge=1)
    cpu_allocation_ratio: float = setting(16.0, help="virtual CPUs per physical CPU", gt=0)
    ram_allocation_ratio: float = setting(1.5, help="memory promised per MB of RAM", gt=0)
    disk_allocation_ratio: float = setting(1.0, help="disk promised per GB of disk", gt=0)
    api_listen: str = setting(
        "127.0.0.1:8774", help="HOST:PORT the REST API listens on", check=_listen
    )
    api_tokens: str = setting(
        "",
        help='the API\'s tokens: "TOKEN=user:project:role,role;..." or "@PATH" of a file with '
        "one such entry per line",
        secret="value",
    )
    api_rate_limit: int = setting(600, help="requests per minute per token (0: unlimited)", ge=0)
    # The fake hypervisor of a compute host.
    compute_vcpus: int = setting(16, help="the fake hypervisor's CPUs", ge=1)
    compute_memory_mb: int = setting(32768, help="the fake hypervisor's memory (MB)", ge=1)
    compute_disk_gb: int = setting(500, help="the fake hypervisor's disk (GB)", ge=1)
    fake_spawn_time: float = setting(0.0, help="seconds a fake build takes", ge=0)
    fake_fail_builds: bool = setting(False, help="make every build on this host fail")

    def allocation_ratios(self) -> dict[str, float]:
        return {
            "cpu": self.cpu_allocation_ratio,
            "ram": self.ram_allocation_ratio,
            "disk": self.disk_allocation_ratio,
        }
