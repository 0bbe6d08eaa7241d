"""edgeguard's 802.11 element parser side by side with pyroute2's (the named peer).

For every annotated vector in tests/data/wifi/vectors/ies.yaml (and the lab's recorded
beacons when present) it prints what each parser makes of the RSN AKM suites, whether
the peer raised or fell back to raw bytes, and then the parse rate of both over the
same inputs. The point is correctness first: pyroute2 names AKM suites >= 12 after the
next suite in the table and gives up on RSN elements the standard allows (no AKM list,
PMKIDs), so a security floor cannot rest on it.

Usage: ``python bench/wifi_ie.py [--seconds S]`` (default 2 s per parser).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyroute2.netlink.nl80211 import MarshalNl80211, nl80211cmd  # noqa: E402

from edgeguard.wifi import nl80211 as nl  # noqa: E402
from edgeguard.wifi.classify import classify  # noqa: E402
from edgeguard.wifi.nl80211 import BssInfo  # noqa: E402
from tests.unit.wifi.vectors import load_vectors  # noqa: E402

FAMILY = 30


def datagram(ies: bytes) -> bytes:
    return nl.encode(FAMILY, nl.CMD_NEW_SCAN_RESULTS,
                     [nl.bss_attr(BssInfo("02:00:00:00:00:01", 2412, 0x11, ies))])


def peer_akms(marshal: MarshalNl80211, data: bytes) -> str:
    try:
        msg = next(iter(marshal.parse(data)))
        elements = msg.get_attr("NL80211_ATTR_BSS").get_attr("NL80211_BSS_INFORMATION_ELEMENTS")
    except Exception as exc:  # noqa: BLE001 - the peer's failure is the figure
        return f"raises {type(exc).__name__}"
    if not isinstance(elements, dict):
        return "gave up (raw bytes)"
    rsn = elements.get("RSN")
    return ",".join(rsn["auth_suites"]) if rsn else "-"


def rate(fn: Callable[[bytes], object], inputs: list[bytes], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for ies in inputs:
            fn(ies)
        done += len(inputs)
    return done / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    marshal = MarshalNl80211()
    marshal.msg_map[FAMILY] = nl80211cmd
    vectors = load_vectors()
    print(f"{'vector':28} {'edgeguard class':20} {'edgeguard AKMs':36} pyroute2 AKMs")
    differ = 0
    for vec in vectors:
        ours = classify(vec.ies, vec.privacy)
        theirs = peer_akms(marshal, datagram(vec.ies))
        mine = ",".join(ours.akms) or "-"
        differ += theirs.startswith(("raises", "gave up"))
        print(f"{vec.name:28} {ours.security.value:20} {mine:36} {theirs}")
    print(f"\npyroute2 raised or gave up on {differ} of {len(vectors)} vectors")
    # Both sides decode the same nl80211 datagrams: ours with our codec + classifier.
    inputs = [datagram(v.ies) for v in vectors]

    def ours_fn(data: bytes) -> object:
        out = []
        for msg in nl.decode(data, FAMILY):
            if isinstance(msg, nl.Nl80211Message) and msg.bss and msg.bss.ies is not None:
                out.append(classify(msg.bss.ies, msg.bss.privacy))
        return out

    def peer_fn(data: bytes) -> object:
        return peer_akms(marshal, data)

    ours_rate = rate(ours_fn, inputs, args.seconds)
    peer_rate = rate(peer_fn, inputs, args.seconds)
    print(f"\n{'decoder (same datagrams)':40} {'BSS/s':>10}")
    print(f"{'edgeguard (nl80211 codec + classify)':40} {ours_rate:10,.0f}")
    print(f"{'pyroute2 (MarshalNl80211.parse)':40} {peer_rate:10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
