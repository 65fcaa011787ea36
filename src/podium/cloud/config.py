"""The reference cloud's settings: ``PODIUM_<NAME>`` environment variables, then CLI options."""

from __future__ import annotations

from dataclasses import dataclass

from podium.service import ServiceConfig


@dataclass(frozen=True)
class CloudConfig(ServiceConfig):
    # Heartbeats: a service is down once its last report is older than service_down_time.
    report_interval: float = 10.0
    service_down_time: float = 60.0
    # A build that fails on a host is rescheduled elsewhere, up to this many hosts in all.
    max_build_attempts: int = 3
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    # The REST API.
    api_listen: str = "127.0.0.1:8774"
    # "TOKEN=user:project:role,role;..." or "@PATH" of a file with one such entry per line.
    api_tokens: str = ""
    # Requests per minute per token (0: unlimited).
    api_rate_limit: int = 600
    # The fake hypervisor of a compute host.
    compute_vcpus: int = 16
    compute_memory_mb: int = 32768
    compute_disk_gb: int = 500
    fake_spawn_time: float = 0.0
    fake_fail_builds: bool = False

    def allocation_ratios(self) -> dict[str, float]:
        return {
            "cpu": self.cpu_allocation_ratio,
            "ram": self.ram_allocation_ratio,
            "disk": self.disk_allocation_ratio,
        }
