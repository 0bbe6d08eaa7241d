"""The ``audit:`` section of the policy."""

from __future__ import annotations

from dataclasses import dataclass

from edgeguard.policy.types import ByteSize, Duration, FileMode, GroupName, setting

__all__ = ["AuditConfig", "JournaldShipping", "ShippingConfig", "SyslogShipping"]


@dataclass(frozen=True, slots=True)
class JournaldShipping:
    enabled: bool = setting(False, "Send each record to journald (native protocol).")
    socket: str = setting("/run/systemd/journal/socket", "journald's native socket.")


@dataclass(frozen=True, slots=True)
class SyslogShipping:
    enabled: bool = setting(False, "Send each record as RFC 5424 syslog over TCP or TLS.")
    host: str = setting("127.0.0.1", "The receiver (rsyslog, syslog-ng).")
    port: int = setting(6514, "TCP port of the receiver.", minimum=1, maximum=65535)
    tls: bool = setting(True, "RFC 5425 TLS; false: plain TCP (RFC 6587 octet counting).")
    relp: bool = setting(False, "RELP (rsyslog imrelp): the receiver acknowledges each "
                         "message; over TLS when tls is true.")
    ca_file: str | None = setting(None, "CA certificates to check the receiver against; "
                                  "unset: the system's.")
    server_name: str | None = setting(None, "Name expected in the receiver's certificate; "
                                      "unset: host.")
    cert_file: str | None = setting(None, "Client certificate (mutual TLS), optional.")
    key_file: str | None = setting(None, "Client key (mutual TLS), optional.")
    reconnect_interval: Duration = setting(Duration(5), "Wait between reconnect attempts.",
                                           unit="duration", minimum=0.1, maximum=600)
    resend_on_reconnect: int = setting(100, "Records before the cursor sent again after a "
                                       "reconnect (TCP cannot tell what the receiving program "
                                       "read); duplicates carry chain id + sequence.",
                                       unit="records", minimum=0, maximum=100_000)


@dataclass(frozen=True, slots=True)
class ShippingConfig:
    cursor_directory: str = setting("/var/lib/edgeguard/shipping", "Where each shipper keeps "
                                    "its position (segment + sequence) across restarts.")
    journald: JournaldShipping = setting(None, "journald shipping.",
                                         factory=JournaldShipping)
    syslog: SyslogShipping = setting(None, "Syslog shipping.", factory=SyslogShipping)


@dataclass(frozen=True, slots=True)
class AuditConfig:
    directory: str = setting("/var/log/edgeguard", "Where the audit segments are written.")
    segment_size: ByteSize = setting(ByteSize(64 * 1024**2),
                                     "Rotate (by rename) when the active segment exceeds this.",
                                     unit="bytes")
    fsync_interval: Duration = setting(Duration(0.25),
                                       "Group fdatasync at most this long after a write.",
                                       unit="duration", maximum=0.25)
    retention: Duration = setting(Duration(365 * 86400),
                                  "Delete rotated segments older than this (LT2 §9).",
                                  unit="duration")
    file_mode: FileMode = setting(FileMode(0o640), "Permission bits of the audit files.")
    file_group: GroupName = setting(GroupName("adm"), "Group of the audit directory (2750, "
                                    "set-group-ID) "
                                    "and files (owner root), so its members (log readers, "
                                    "Filebeat) can read the trail; must exist on this host.")
    key_file: str = setting("/var/lib/edgeguard/audit.key",
                            "The evolving checkpoint key (0600), created by "
                            "'edgeguard audit init'; without it checkpoints are unsealed.")
    checkpoint_interval: Duration = setting(Duration(60), "Seal the chain head at least this "
                                            "often, also when idle.", unit="duration",
                                            minimum=1, maximum=3600)
    checkpoint_records: int = setting(10_000, "Also seal after this many records.",
                                      unit="records", minimum=1)
    queue_limit: int = setting(10_000, "Records held in memory while the disk is full; more "
                               "are counted and reported as lost.", unit="records",
                               minimum=100, maximum=10_000_000)
    aggregate_window: Duration = setting(Duration(60), "Suppressed repeats of one finding are "
                                         "summarised in one record per window.",
                                         unit="duration", minimum=1)
    aggregate_max_keys: int = setting(10_000, "Distinct (rule, identifier) pairs summarised "
                                      "at once; more are flushed early.", unit="pairs",
                                      minimum=16)
    shipping: ShippingConfig = setting(None, "Where records are shipped off this host.",
                                       factory=ShippingConfig)
