# Release acacia (the one before this code's), as it shipped. Do not edit it to follow
# later changes; a release that shipped does not change.
"""Tables of the reference cloud, on podium.db's declarative base (soft delete everywhere).

``deleted`` is 0 on a live row and the row's own id once soft-deleted, so the
unique constraints (which include it) protect only the live row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from podium.db.models import Base, SoftDeleteMixin

__all__ = ["ComputeNode", "Flavor", "Instance", "InstanceFault", "Service"]


class Service(SoftDeleteMixin, Base):
    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("host", "binary", "deleted", name="uniq_services0host0binary0deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    binary: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str | None] = mapped_column(String(255))
    report_count: Mapped[int] = mapped_column(default=0)
    disabled: Mapped[bool] = mapped_column(default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    # When the conductor stored the newest heartbeat (its own clock: whether a
    # service is up must not depend on the sender's clock being right).
    last_seen_up: Mapped[datetime | None]
    # That heartbeat's send time, by the sender's clock (never later than
    # last_seen_up): what orders the reports, so a late one is dropped.
    last_report_sent_at: Mapped[datetime | None]
    # The RPC/object version this service runs; the lowest live value is what
    # "upgrade_levels = auto" caps clients to.
    version: Mapped[int] = mapped_column(default=0)
    forced_down: Mapped[bool] = mapped_column(default=False)


class ComputeNode(SoftDeleteMixin, Base):
    __tablename__ = "compute_nodes"
    __table_args__ = (
        UniqueConstraint("host", "deleted", name="uniq_compute_nodes0host0deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    hypervisor_hostname: Mapped[str | None] = mapped_column(String(255))
    vcpus: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    disk_gb: Mapped[int] = mapped_column(default=0)
    # Changed only by claims and releases, each one conditional UPDATE, so two
    # schedulers never both fit an instance into the last room of a host.
    vcpus_used: Mapped[int] = mapped_column(default=0)
    memory_mb_used: Mapped[int] = mapped_column(default=0)
    disk_gb_used: Mapped[int] = mapped_column(default=0)


class Flavor(SoftDeleteMixin, Base):
    __tablename__ = "flavors"
    __table_args__ = (
        UniqueConstraint("flavorid", "deleted", name="uniq_flavors0flavorid0deleted"),
        UniqueConstraint("name", "deleted", name="uniq_flavors0name0deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    flavorid: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    vcpus: Mapped[int]
    memory_mb: Mapped[int]
    disk_gb: Mapped[int]
    is_public: Mapped[bool] = mapped_column(default=True)


class Instance(SoftDeleteMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("uuid", "deleted", name="uniq_instances0uuid0deleted"),
        Index("ix_instances_host_deleted", "host", "deleted"),
        Index("ix_instances_project_id_deleted", "project_id", "deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36))
    hostname: Mapped[str | None] = mapped_column(String(255))
    display_name: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255))
    node: Mapped[str | None] = mapped_column(String(255))
    vm_state: Mapped[str | None] = mapped_column(String(255))
    task_state: Mapped[str | None] = mapped_column(String(255))
    power_state: Mapped[int] = mapped_column(default=0)
    memory_mb: Mapped[int] = mapped_column(default=0)
    vcpus: Mapped[int] = mapped_column(default=0)
    root_gb: Mapped[int] = mapped_column(default=0)
    image_ref: Mapped[str | None] = mapped_column(String(255))
    launched_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # The flavor as it was at build time: the instance keeps it if the flavor goes.
    flavor: Mapped[dict[str, Any] | None]
    guest_status: Mapped[str | None] = mapped_column(String(255))
    # The send time of the newest guest heartbeat stored.
    guest_status_at: Mapped[datetime | None]


class InstanceFault(SoftDeleteMixin, Base):
    __tablename__ = "instance_faults"
    __table_args__ = (
        Index("ix_instance_faults_instance_uuid_deleted", "instance_uuid", "deleted"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_uuid: Mapped[str] = mapped_column(String(36))
    code: Mapped[int] = mapped_column(default=500)
    message: Mapped[str] = mapped_column(String(255))
    details: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
