"""Several capture workers on one interface: which worker reads a frame, and which one
reports a finding (edgeguard.net.fanout).

The ownership test runs in the kernel; here the same assembled program runs through the
reference interpreter (edgeguard.net.bpf), which follows the kernel's semantics. A scan
that probes many hosts and ports, with every answer, must reach one worker in full and
be reported by it alone: under PACKET_FANOUT_HASH each worker saw only its flows.
"""

from __future__ import annotations

import functools
import ipaddress
import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from edgeguard.events import Endpoint, Finding, Severity
from edgeguard.net import bpf
from edgeguard.net.capture import attach_filter
from edgeguard.net.fanout import Share, finding_owner, owner_of, share_filter
from edgeguard.net.filter import FilterSpec, build_filter
from edgeguard.net.shed import spec_with

SCANNER = "10.20.0.7"
HOSTS = [f"10.20.{i // 200}.{i % 200 + 1}" for i in range(24)]
PORTS = (22, 80, 443)


def _eth(l3: object) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:07", dst="02:00:00:00:00:99") / l3)


def _key(ip: str) -> int:
    return int(ipaddress.ip_address(ip)) & 0xFFFFFFFF


def _readers(frame: bytes, count: int, spec: FilterSpec | None = None,
             cooked: bool = False) -> set[int]:
    """The workers (of ``count``) whose kernel program keeps ``frame``."""
    base = spec or FilterSpec(cooked=cooked)
    return {i for i in range(count) if bpf.run(_program(base, i, count), frame)}


@functools.cache
def _program(spec: FilterSpec, index: int, count: int) -> bpf.Program:
    return share_filter(spec, Share(index, count))


@functools.cache
def _scan_frames() -> tuple[bytes, ...]:
    """A SYN scan of 24 hosts x 3 ports, a SYN-ACK or RST for each probe, a UDP probe
    per host answered by ICMP port unreachable (quoting the probe)."""
    out = []
    for host in HOSTS:
        for port in PORTS:
            out.append(_eth(IP(src=SCANNER, dst=host) / TCP(sport=40000, dport=port,
                                                             flags="S")))
            answer = "SA" if port == 80 else "RA"
            out.append(_eth(IP(src=host, dst=SCANNER) / TCP(sport=port, dport=40000,
                                                             flags=answer)))
        probe = IP(src=SCANNER, dst=host) / UDP(sport=40001, dport=161)
        out.append(_eth(probe / b"x"))
        out.append(_eth(IP(src=host, dst=SCANNER) / ICMP(type=3, code=3)
                        / IPerror(src=SCANNER, dst=host) / UDPerror(sport=40001, dport=161)))
    return tuple(out)


@pytest.mark.parametrize("count", [2, 3, 16])
def test_every_probe_and_answer_of_a_scan_reaches_the_scanners_owner(count: int) -> None:
    owner = owner_of(_key(SCANNER), count)
    frames = _scan_frames()
    assert len({owner_of(_key(h), count) for h in HOSTS}) == count  # the hosts are spread
    for frame in frames:
        readers = _readers(frame, count)
        assert owner in readers
        # and nobody else but the owner of the other address
        assert len(readers) <= 2


def test_a_frame_reaches_exactly_the_owners_of_its_two_addresses() -> None:
    pairs = [(SCANNER, h) for h in HOSTS] + [(HOSTS[0], HOSTS[1]), (HOSTS[2], HOSTS[2])]
    for count in (2, 5):
        for src, dst in pairs:
            frame = _eth(IP(src=src, dst=dst) / TCP(flags="S"))
            want = {owner_of(_key(src), count), owner_of(_key(dst), count)}
            assert _readers(frame, count) == want, (src, dst, count)


def test_ipv6_and_vlan_tagged_frames_use_the_same_owners() -> None:
    src, dst = "2001:db8::7", "2001:db8::1:20"
    want = {owner_of(_key(src), 4), owner_of(_key(dst), 4)}
    v6 = Ether() / IPv6(src=src, dst=dst) / TCP(flags="S")
    assert _readers(bytes(v6), 4) == want
    tagged = Ether() / Dot1Q(vlan=12) / IPv6(src=src, dst=dst) / TCP(flags="S")
    assert _readers(bytes(tagged), 4) == want
    v4 = Ether() / Dot1Q(vlan=12) / IP(src=SCANNER, dst=HOSTS[3]) / TCP(flags="S")
    assert _readers(bytes(v4), 4) == {owner_of(_key(SCANNER), 4),
                                      owner_of(_key(HOSTS[3]), 4)}


def test_cooked_frames_start_at_the_ip_header() -> None:
    """On tun/WireGuard/any the frame has no link header; the protocol is the kernel's
    (SKF_AD_PROTOCOL, which the reference interpreter cannot read in a file: the cooked
    prefix is checked for its offsets by assembling it and reading its loads)."""
    prog = share_filter(FilterSpec(cooked=True), Share(1, 2))
    loads = [k for code, _jt, _jf, k in prog.insns if code == bpf.LD | bpf.W | bpf.IND]
    assert loads[:4] == [12, 16, 20, 36]  # v4 src, dst; v6 src, dst low words from X = 0


def test_arp_reaches_every_worker_and_what_the_filter_drops_stays_dropped() -> None:
    arp = _eth(ARP(op=1, psrc=SCANNER, pdst=HOSTS[5]))
    assert _readers(arp, 3) == {0, 1, 2}
    bulk = _eth(IP(src=SCANNER, dst=HOSTS[1]) / TCP(flags="A", options=[("NOP", None)])
                / (b"z" * 1400))
    assert not bpf.run(build_filter(FilterSpec()), bulk)
    assert _readers(bulk, 3) == set()


def test_a_kept_frame_is_cut_to_the_same_length_as_by_the_filter_alone() -> None:
    frame = _eth(IP(src=SCANNER, dst=HOSTS[0]) / UDP(dport=53) / (b"q" * 400))
    alone = bpf.run(build_filter(FilterSpec()), frame)
    owner = owner_of(_key(SCANNER), 2)
    assert alone
    assert bpf.run(share_filter(FilterSpec(), Share(owner, 2)), frame) == alone


def test_one_worker_is_the_filter_alone() -> None:
    assert share_filter(FilterSpec(), None) == build_filter(FilterSpec())
    assert share_filter(FilterSpec(), Share(0, 1)) == build_filter(FilterSpec())


def _finding(kind: str, source: str | None, dst: str, mac: str = "02:00:00:00:00:07",
             ) -> Finding:
    return Finding(kind=kind, subtype="x", message="m", identifier=f"{kind}:{source}",
                   severity=Severity.SEVERE, source=Endpoint(ip=source, mac=mac),
                   destinations=(Endpoint(ip=dst),))


def test_exactly_one_worker_reports_a_finding_about_its_address() -> None:
    for count in (2, 3, 8):
        shares = [Share(i, count) for i in range(count)]
        scan = _finding("scan", SCANNER, HOSTS[0])
        assert [s.index for s in shares if s.owns(scan)] == [owner_of(_key(SCANNER), count)]
        # a flood belongs to its target, whichever (spoofed) sources it came from
        flood = _finding("flood", None, HOSTS[3])
        assert finding_owner(flood, count) == owner_of(_key(HOSTS[3]), count)
        flood_from = _finding("flood", SCANNER, HOSTS[3])
        assert finding_owner(flood_from, count) == owner_of(_key(HOSTS[3]), count)
        assert finding_owner(_finding("arp-spoof", SCANNER, HOSTS[0]), count) == 0
        by_mac = _finding("scan", None, HOSTS[7])
        assert finding_owner(by_mac, count) == owner_of(_key(HOSTS[7]), count)


def test_the_kernel_arithmetic_is_the_python_one() -> None:
    """The program's multiply wraps at 32 bits like owner_of's."""
    for text in ("0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.77.254", *HOSTS):
        frame = _eth(IP(src=text, dst=text) / TCP(flags="S"))
        for count in (2, 7, 16):
            assert _readers(frame, count) == {owner_of(_key(text), count)}


def test_out_of_range_shares_are_refused() -> None:
    for index, count in ((2, 2), (-1, 2), (0, 0), (0, 17)):
        with pytest.raises(ValueError, match="out of range"):
            Share(index, count)


def test_an_icmp_error_quoting_a_tcp_probe_reaches_the_scanners_owner() -> None:
    frame = _eth(IP(src=HOSTS[9], dst=SCANNER) / ICMP(type=3, code=13)
                 / IPerror(src=SCANNER, dst=HOSTS[9]) / TCPerror(sport=40000, dport=22))
    assert owner_of(_key(SCANNER), 2) in _readers(frame, 2)


@pytest.mark.parametrize("cooked", [False, True])
def test_the_kernel_accepts_the_prefixed_program_with_floods_shed(cooked: bool) -> None:
    """SO_ATTACH_FILTER runs the kernel's checker over the ownership test in front of the
    capture filter, also when floods are shed (the longest program); a UDP socket needs
    no privilege."""
    targets = frozenset({(f"10.9.{n // 250}.{n % 250 + 1}", kind)
                         for n in range(16) for kind in ("syn", "udp")})
    spec = spec_with(FilterSpec(cooked=cooked), targets)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for index in (0, 15):
            attach_filter(sock, share_filter(spec, Share(index, 16)))
