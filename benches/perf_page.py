#!/usr/bin/env python3
"""Regenerates docs/performance.md and docs/performance.svg from benches/floor.rs.

    python3 benches/perf_page.py            # builds and runs the floor benchmark twice:
                                            # pinned to core 0 (headline), then with peers
                                            # on core 1 (cross-core); ~2 minutes
    python3 benches/perf_page.py --from docs/performance-pinned.txt docs/performance-cross.txt
                                            # rewrite the page from the saved outputs

Every row of the benchmark runs against a peer in its own process, all rows interleaved
round by round, medians of PROCWIRE_BENCH_ROUNDS (default here: 7) rounds.
"""
import datetime
import os
import platform
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = os.environ.get("PROCWIRE_BENCH_ROUNDS", "7")


def run(cross):
    cmd = ["cargo", "bench", "-p", "procwire-benches", "--bench", "floor", "--features", "rkyv"]
    env = dict(os.environ, PROCWIRE_BENCH_ROUNDS=ROUNDS)
    if cross:
        env["PROCWIRE_BENCH_CROSS"] = "1"
    else:
        cmd = ["taskset", "-c", "0"] + cmd
    out = subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return out.stdout


def parse(text):
    rows, ratios = {}, {}
    for line in text.splitlines():
        m = re.match(r"^\s+(\S+)\s+([\d.]+) (µs|ms)$", line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), m.group(3))
            continue
        m = re.match(r"^\s+(.+?)\s+([\d.]+)$", line)
        if m and " / " in m.group(1):
            ratios[m.group(1)] = float(m.group(2))
    return rows, ratios


TARGETS = {
    "typed / raw, pair": ("≤ 1.05", lambda v: v <= 1.05),
    "bytes / raw, pair": ("≤ 1.05", lambda v: v <= 1.05),
    "typed / raw, unix": ("≤ 1.05", lambda v: v <= 1.05),
    "bytes / raw, unix": ("≤ 1.05", lambda v: v <= 1.05),
    "typed / raw, tcp": ("≤ 1.05", lambda v: v <= 1.05),
    "bytes / raw, tcp": ("≤ 1.05", lambda v: v <= 1.05),
    "waitset echo / blocking echo": ("≤ 1.15", lambda v: v <= 1.15),
    "rkyv bulk throughput / raw": ("≥ 0.9", lambda v: v >= 0.9),
    "postcard bulk throughput / raw": ("≥ 0.6", lambda v: v >= 0.6),
    "typed with spin / busy-polling raw, pair": ("≤ 1.5", lambda v: v <= 1.5),
    "memfd bytes bulk throughput / raw": ("≥ 1.8", lambda v: v >= 1.8),
    "memfd rkyv bulk throughput / raw": ("≥ 1.5 (typed)", lambda v: v >= 1.5),
    "memfd postcard bulk throughput / raw": ("≥ 1.5 (typed)", lambda v: v >= 1.5),
}

# Cross-core rows shown beside the pinned ones: the spin, and the bulk rows (where the
# two ends copying on two cores changes which transport wins).
def cross_shown(name):
    return name.startswith("typed with spin / busy") or "bulk" in name


def svg(pinned, cross):
    bars = [(k, v) for k, v in pinned.items() if k in TARGETS]
    bars += [(k + " (cross-core)", v) for k, v in cross.items() if k in TARGETS and cross_shown(k)]
    width, row, left = 760, 26, 330
    height = row * len(bars) + 60
    top = 2.6
    scale = (width - left - 60) / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="18" font-size="14">procwire against the raw limit (1.0 = the floor; time ratios, bulk as throughput)</text>']
    for i, (name, v) in enumerate(bars):
        y = 34 + i * row
        base = name.replace(" (cross-core)", "")
        ok = TARGETS[base][1](v)
        w = min(v, top) * scale
        out.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{name}</text>')
        out.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 8}" fill="{"#3a7" if ok else "#d84"}"/>')
        out.append(f'<text x="{left + w + 6:.1f}" y="{y + 14}">{v:.3f} (target {TARGETS[base][0]})</text>')
    x1 = left + scale
    out.append(f'<line x1="{x1:.1f}" y1="28" x2="{x1:.1f}" y2="{height - 20}" stroke="#333" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x1:.1f}" y="{height - 6}" text-anchor="middle">1.0</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def page(pinned_text, cross_text):
    prow, prat = parse(pinned_text)
    crow, crat = parse(cross_text)

    def extra(via):
        """The µs typed and bytes round trips on `via` take over its raw loop, pinned."""
        over = sorted(prow[f"{kind}-{via}"][0] - prow[f"raw-{via}"][0] for kind in ("typed", "bytes"))
        return f"{over[0]:.2f}–{over[1]:.2f}"

    lines = [
        "# Performance",
        "",
        "Produced by `python3 benches/perf_page.py`, which runs `benches/floor.rs` twice: every",
        "process pinned to one core (`taskset -c 0`, the headline), then with this process on",
        "core 0 and every peer on core 1 (`PROCWIRE_BENCH_CROSS=1`). Every row runs against a",
        "peer in its own process; all rows are interleaved round by round and the figures are",
        f"medians of {ROUNDS} rounds. Machine: {platform.machine()}, Linux {platform.release()},",
        f"{os.cpu_count()} vCPUs; generated {datetime.date.today().isoformat()}.",
        "",
        "![procwire against the raw limit](performance.svg)",
        "",
        "## Ratios against the floor (pinned to one core unless noted)",
        "",
        "| ratio | measured | target (#17) |",
        "| --- | --- | --- |",
    ]
    for name, v in prat.items():
        target = TARGETS.get(name, ("—", None))[0]
        lines.append(f"| {name} | {v:.3f} | {target} |")
    for name, v in crat.items():
        if "busy" in name or "spin" in name or "bulk" in name:
            target = TARGETS.get(name, ("—", None))[0]
            lines.append(f"| {name} (cross-core) | {v:.3f} | {target} |")
    lines += [
        "",
        "## Times",
        "",
        "| row | pinned | cross-core |",
        "| --- | --- | --- |",
    ]
    for name, (v, unit) in prow.items():
        c = crow.get(name)
        cs = f"{c[0]:.3f} {c[1]}" if c else "—"
        lines.append(f"| `{name}` | {v:.3f} {unit} | {cs} |")
    for name, (v, unit) in crow.items():
        if name not in prow:
            lines.append(f"| `{name}` | — | {v:.3f} {unit} |")
    lines += [
        "",
        "## What the rows are",
        "",
        "- `raw-*`: the floor, one `send(2)` and one `recv(2)` of the 12-byte frame per message on",
        "  each side, on the same sockets procwire made; `rawmsg-pair` reads with `recvmsg(2)`",
        "  and a descriptor-sized control buffer instead; `rawbusy-pair` busy-polls",
        "  (non-blocking `recv` retried), cross-core only.",
        "- `typed-*`: a `u64` through `send`/`recv` on both ends; `bytes-*`: 8 bytes through",
        "  `send_bytes`/`recv_bytes_into`; `typed-spin-pair`: `typed` with `set_spin(50 µs)`.",
        "- `ipc-channel-typed` / `ipc-channel-bytes`: servo's ipc-channel 0.23 (the current",
        "  release) between the same two kinds of process, an `IpcSender<u64>` or an",
        "  `IpcBytesSender` each way; `cpython-bytes`: procwire's `send_bytes` against a CPython",
        "  child echoing with `multiprocessing.connection` (CPython's own cost dominates).",
        "- `blocking-echo` / `waitset-echo`: the server child blocks in `recv` on its one",
        "  connection, or serves it from a `WaitSet` holding 100 idle connections too.",
        "- `*-bulk`: 16 MiB of `f64` one way, acknowledged with one byte: raw `write_all` /",
        "  `read_exact`, a `Vec<f64>` with Postcard (a new `Vec` per message), and with Rkyv read",
        "  in place with `recv_archived`. Both typed senders write in place (`Encode::encoded_len`",
        "  and `encode_to`, after the first large message): Rkyv's samples go to the socket in",
        "  one vectored write straight from the caller's `Vec`, Postcard's 8 KiB at a time.",
        "- `memfd-*-bulk`: the same 16 MiB through `enable_large_memfd` on the sender and",
        "  `accept_large_memfd` on the child: `memfd-bytes-bulk` is `send_bytes` into",
        "  `recv_bytes_into` of a kept buffer, the others the typed rows above. The sender",
        "  sends a 36-byte head through the socket, then copies the payload into a slot of its",
        "  memfd pool (mapped once in both processes) 256 KiB at a time, publishing its",
        "  progress in the slot; the child copies each step out as it is published (sleeping",
        "  on a futex in the slot when it catches up), reads the 8-byte end record the sender",
        "  puts on the socket after the payload, and marks the slot free in the shared memory.",
        "- `interprocess-bytes`: interprocess 2's local-socket `Stream` on both ends, the",
        "  12-byte frame with `write_all` / `read_exact`; interprocess frames nothing, so its",
        "  floor is `raw-unix`, the Unix socket it wraps.",
        "",
        "## Why some targets are not met",
        "",
        "- **Postcard bulk** is serde's element-by-element path. A profile of the 16 MiB row",
        "  (`perf record`, both processes) puts serde's `Vec` visitor (decode) at 30% of all",
        "  samples and `collect_seq` (encode) at 17%, against 10% for the kernel's copy to the",
        "  receiver; the decode alone (about 3.4 ms) is more than the whole budget of a 0.6",
        "  ratio (about 3.3 ms here). serde's `Vec` visitor preallocates at most 1 MiB and",
        "  grows from there whatever the frame length says, and the new `Vec` of every message",
        "  is fresh memory. Writing in place (no 16 MiB encode buffer) gained about 9% (225",
        "  against 247 ms for 20 messages, single-row runs). procwire cannot change serde's",
        "  element path from the codec; `send_bytes`/`recv_bytes_into`, Rkyv or a shared",
        "  array are the fast paths for numeric arrays.",
        "- **Large messages through memfds, on one core** (`memfd bytes bulk`, pinned, 0.82 to",
        "  0.96 over the last runs, as this VM's memory bandwidth varies): a message through a",
        "  slot is two copies of the whole payload (into the slot, out of it). Across two cores",
        "  the receiver copies each 256 KiB step out while the sender writes the next, so the",
        "  two copies overlap and the memfd row is 2.3 to 4.1 times as fast as raw (the",
        "  cross-core rows above; the socket pays a cross-core wake-up per piece of its",
        "  buffer). On one core nothing can overlap: the receiver runs only while the sender",
        "  is preempted, and the two copies add up, about as long as the socket's",
        "  two copies of pieces still in the core's L2 cache. Beating the socket there would",
        "  need copies cheaper than `memcpy`, or none: a shared array (`send_array`) maps the",
        "  data instead of copying it.",
        "- **Typed values through memfds** (`memfd rkyv bulk`, target ≥ 1.5): Rkyv serialises",
        "  straight into the slot, so it is the same two copies as `send_bytes` and follows",
        "  `memfd bytes bulk` within a few per cent: across cores 2.3 to 4.2 times raw, which",
        "  meets the target; on one core about 0.85 to 1.0, for the reason above. Postcard is",
        "  bound by serde's element path either way.",
        "- **Small messages** are 1.02–1.13× the raw loop on a socket pair and a Unix path in",
        "  the interleaved page runs (the spread between runs is larger than the target's",
        "  margin: in single-row runs, `PROCWIRE_BENCH_ONLY`, typed and bytes round trips on a",
        "  pair are within ±0.03 of raw, median 1.00), so the ≤ 1.05 target is met in some",
        "  runs, not all; on TCP, 1.05–1.10×. The system calls are the floor's: one `sendto`",
        "  and one `recvfrom` per message and side, counted with `strace -c -f`. `recvmsg` is gone",
        "  unless descriptors are enabled, so what is left is user space: the half's lock, the",
        "  frame decoder's bookkeeping and the codec, about 0.05 µs per operation, 0.2 µs per",
        "  round trip of four operations. A `perf record -e cpu-clock` profile of `typed-pair`",
        "  (this VM has no hardware counters) puts procwire's own functions (`Inbox::read_once`,",
        "  `Writer::write_all`, `encode_and_send`) at about 4% of the samples; the kernel's",
        "  socket and scheduler paths are the rest. Meeting 1.05 in every run would need that",
        "  0.2 µs below 0.16 µs, and the run-to-run spread is larger than the difference. On",
        f"  TCP the extra time is about the same in µs ({extra('tcp')} in the run above, against",
        f"  {extra('unix')} on the Unix path), over a floor of {prow['raw-tcp'][0]:.1f} µs instead of"
        f" {prow['raw-unix'][0]:.1f}; earlier runs showed",
        "  up to 0.1 µs more on TCP, whose cause was not found (a raw loop reading 64 KiB at a",
        "  time, `rawbig-tcp`, is as fast as one reading 12 bytes, so it is not the read size).",
        "",
    ]
    return "\n".join(lines), svg(prat, crat)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--from":
        pinned, cross = (open(p).read() for p in sys.argv[2:])
    else:
        pinned, cross = run(False), run(True)
        for name, text in (("pinned", pinned), ("cross", cross)):
            with open(os.path.join(ROOT, "docs", f"performance-{name}.txt"), "w") as f:
                f.write(text)
    md, chart = page(pinned, cross)
    with open(os.path.join(ROOT, "docs", "performance.md"), "w") as f:
        f.write(md)
    with open(os.path.join(ROOT, "docs", "performance.svg"), "w") as f:
        f.write(chart)
    print(md)


if __name__ == "__main__":
    main()
