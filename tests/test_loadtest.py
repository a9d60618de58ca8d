"""The load tool: seq accounting and wire parsing on synthetic input, and short
smoke runs of every scenario against the psio baseline server.

Smoke runs assert counts only (nothing lost, duplicated or reordered, every step
succeeded, exit status), never timings: the machine may be busy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks import servers
from loadtest import payload, report, sio, ws
from loadtest.cli import build_parser, main
from loadtest.harness import CommonConfig, Harness, Receiver
from loadtest.scenarios.api import ApiConfig
from loadtest.scenarios.chat import ChatConfig
from loadtest.seqcheck import SeqLedger, SeqTracker
from loadtest.stats import Histogram, bucket_of, bucket_value

# -- seq accounting --------------------------------------------------------


def feed(tracker: SeqTracker, seqs: list[int]) -> SeqTracker:
    for s in seqs:
        tracker.add(s)
    return tracker


def test_in_order_delivery_is_clean() -> None:
    t = feed(SeqTracker(), [1, 2, 3, 4, 5])
    assert (t.received, t.lost(5), t.duplicates, t.out_of_order) == (5, 0, 0, 0)


def test_gap_is_lost() -> None:
    t = feed(SeqTracker(), [1, 2, 5, 6])
    assert t.lost(6) == 2
    assert t.received == 4
    assert t.out_of_order == 0


def test_missing_tail_is_lost() -> None:
    # the room reached seq 8 (known from the sender's gn_message) but this member stopped at 5
    t = feed(SeqTracker(), [1, 2, 3, 4, 5])
    assert t.lost(8) == 3


def test_duplicate_is_counted_once() -> None:
    t = feed(SeqTracker(), [1, 2, 2, 3, 3, 3])
    assert t.duplicates == 3
    assert t.received == 3
    assert t.lost(3) == 0


def test_late_arrival_is_out_of_order_not_lost() -> None:
    t = feed(SeqTracker(), [1, 3, 2, 4])
    assert t.out_of_order == 1
    assert t.lost(4) == 0
    assert t.duplicates == 0


def test_late_arrival_repeated_is_a_duplicate() -> None:
    t = feed(SeqTracker(), [1, 3, 2, 2])
    assert (t.out_of_order, t.duplicates, t.lost(3)) == (1, 1, 0)


def test_history_baseline() -> None:
    # joined when the room was at seq 10: 9 and 10 repeat the join history (allowed)
    t = feed(SeqTracker(baseline=10), [9, 10, 11, 12])
    assert t.stale == 2
    assert t.duplicates == 0
    assert t.expected(12) == 2
    assert t.lost(12) == 0
    t = feed(SeqTracker(baseline=10), [12])
    assert t.lost(12) == 1  # 11 never came


def test_nothing_received_everything_lost() -> None:
    assert SeqTracker(baseline=3).lost(7) == 4


def test_huge_jump_does_not_allocate_per_seq() -> None:
    t = feed(SeqTracker(), [1, 10**9])
    assert not t.missing
    assert t.lost(10**9) == 10**9 - 2


def test_ledger_final_seq_from_acks_and_members() -> None:
    ledger = SeqLedger()
    a = ledger.tracker(0)
    b = ledger.tracker(0)
    c = ledger.tracker(1)
    feed(a, [1, 2, 3])
    feed(b, [1, 3, 3])
    ledger.acked(0, 3)
    ledger.acked(1, 2)  # nobody in log 1 received anything
    reports = {r.key: r for r in ledger.reports()}
    assert reports[0].final_seq == 3
    assert (reports[0].lost, reports[0].duplicates, reports[0].members) == (1, 1, 2)
    assert reports[0].expected == 6
    assert reports[1].lost == 2
    assert c.received == 0


# -- wire and payload parsing ----------------------------------------------


def test_mask_roundtrip() -> None:
    data = b"hello websocket, with an odd length!"
    mask = b"\x01\x02\x03\x04"
    masked = ws.mask_payload(data, mask)
    assert masked != data
    assert ws.mask_payload(masked, mask) == data


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + n.to_bytes(2, "big")
    else:
        head += bytes([127]) + n.to_bytes(8, "big")
    return head + payload


def test_frame_parser_sizes_split_reads_and_fragments() -> None:
    big = b"x" * 70000
    mid = b"y" * 300
    stream = (
        server_frame(ws.OP_TEXT, b"small")
        + server_frame(ws.OP_TEXT, mid)
        + server_frame(ws.OP_TEXT, big)
        + server_frame(ws.OP_TEXT, b"frag-", fin=False)
        + server_frame(ws.OP_PING, b"p")  # control frame between fragments
        + server_frame(ws.OP_CONT, b"ment")
    )
    parser = ws.FrameParser()
    out: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), 777):  # arbitrary read boundaries
        out.extend(parser.feed(stream[i : i + 777]))
    assert out == [
        (ws.OP_TEXT, b"small"),
        (ws.OP_TEXT, mid),
        (ws.OP_TEXT, big),
        (ws.OP_PING, b"p"),
        (ws.OP_TEXT, b"frag-ment"),
    ]


def test_client_frame_is_masked_and_decodable() -> None:
    frame = ws.encode_frame(ws.OP_TEXT, b"42/chat,[]", mask=b"abcd")
    assert frame[0] == 0x81 and frame[1] == 0x80 | 10
    assert ws.mask_payload(frame[6:], frame[2:6]) == b"42/chat,[]"


def test_accept_key_rfc_example() -> None:
    assert ws.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_sio_packets() -> None:
    assert sio.connect_packet("/chat") == b"40/chat,"
    assert sio.event_packet("/chat", "login", {"a": 1}, 7) == b'42/chat,7["login",{"a":1}]'
    prefix = sio.namespace_prefix("/chat")
    ack = sio.decode_message(b'43/chat,7[{"status_code":200}]', prefix)
    assert ack == sio.SioPacket(sio.SIO_ACK, 7, [{"status_code": 200}])
    conn = sio.decode_message(b'40/chat,{"sid":"abc"}', prefix)
    assert conn is not None and conn.data == {"sid": "abc"}
    assert sio.decode_message(b'42/other,["x"]', prefix) is None


def activity(seq: int, content: str, compact: bool = True) -> bytes:
    act = {
        "id": "c42ebf01",
        "seq": seq,
        "verb": "send",
        "actor": {"id": "u1", "summary": "U"},
        "target": {"id": "r1", "objectType": "room"},
        "object": {"content": content, "objectType": "group"},
    }
    body = orjson.dumps(["message", act]) if compact else json.dumps(["message", act]).encode()
    return b"42/chat," + body


@pytest.mark.parametrize("compact", [True, False])
def test_delivery_parsing(compact: bool) -> None:
    content = payload.make_content(1_700_000_000_123_456_789, 42, size=64)
    assert len(content) == 64
    raw = activity(17, content, compact)
    expected = payload.Delivery(17, 1_700_000_000_123_456_789, 42)
    assert payload.fast_delivery(raw) == expected
    assert payload.decode_delivery(raw) == expected


def test_foreign_message_is_not_ours() -> None:
    assert payload.decode_delivery(activity(3, "hello from a person")) is None
    assert payload.parse_content("t=12;x=3;") is None


def test_histogram_percentiles_within_one_percent() -> None:
    h = Histogram()
    h.add_many(list(range(1, 100_001)))
    for p, exact in ((50, 50_000), (99, 99_000), (100, 100_000)):
        assert abs(h.percentile(p) - exact) <= exact * 0.01
    for v in (0, 5, 255, 256, 1000, 123_456, 10**9):
        assert bucket_value(bucket_of(v)) >= v
        assert bucket_value(bucket_of(v)) <= v * 1.01 + 1


def test_problems_flag_losses_and_failed_steps() -> None:
    r: dict[str, Any] = {
        "steps": [{"name": "login", "failed": 2, "errors": {"status 400": 2}}],
        "traffic": {
            "send_failed": 0,
            "send_unanswered": 0,
            "misrouted": 0,
            "dropped_connections": 0,
        },
        "seq": {"lost": 3, "duplicates": 1, "out_of_order": 0},
        "extra": {},
    }
    found = report.problems(r)
    assert any("login failed" in p for p in found)
    assert "3 deliveries lost" in found
    assert "1 deliveries duplicated" in found
    assert len(found) == 3


def test_receiver_accounting_end_to_end() -> None:
    """Frames as the server would send them -> Receiver -> report: each fault counted."""
    h = Harness(CommonConfig(scenario="chat", urls=["http://127.0.0.1:9"], progress=False))
    rx = Receiver(h.traffic, h.latency.window)
    rx.trackers[0] = h.ledger.tracker(0, baseline=0)
    for seq in (1, 2, 4, 4, 3):  # 3 late, 4 twice, 5 never
        rx.on_message(activity(seq, payload.make_content(time.time_ns(), 0)), time.time_ns())
    rx.on_message(activity(1, payload.make_content(time.time_ns(), 7)), time.time_ns())
    rx.on_message(activity(1, "not ours"), time.time_ns())
    h.ledger.acked(0, 5)  # the sender was told seq 5 was stored
    h.tick()
    result = report.build(h, ChatConfig())
    assert (result["seq"]["lost"], result["seq"]["duplicates"]) == (1, 1)
    assert result["seq"]["out_of_order"] == 1
    assert result["traffic"]["misrouted"] == 1  # key 7: a room this client is not in
    assert result["traffic"]["unparsed"] == 1
    assert result["traffic"]["deliveries"] == 5
    assert result["ok"] is False
    assert "log 0:" in report.table(result)


def test_help_documents_every_scenario() -> None:
    parser = build_parser()
    text = parser.format_help()
    for name in ("chat", "idle", "churn", "direct", "api"):
        assert name in text


def test_api_scenario_needs_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DINO_API_KEY"}
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "api", "--users", "2", "--duration", "1"],
        cwd=servers.REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 2
    assert "an API key is required: --api-key KEY or $DINO_API_KEY" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--users", "5", "--targets-per-call", "2"], "a multiple of --targets-per-call"),
        (["--users", "2000", "--targets-per-call", "1001"], "between 1 and 1000"),
        (["--rate", "0"], "--rate and --duration must be positive"),
    ],
)
def test_api_scenario_bad_options(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["api", "--api-key", "k", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_api_key_is_not_in_results() -> None:
    h = Harness(CommonConfig(scenario="api", urls=["http://127.0.0.1:9"], progress=False))
    result = report.build(h, ApiConfig(api_key="s3cret-key"))
    assert "api_key" not in result["config"]["scenario"]
    assert "s3cret-key" not in json.dumps(result)
    assert "s3cret-key" not in repr(ApiConfig(api_key="s3cret-key"))


# -- smoke runs against the psio baseline ------------------------------------


@pytest.fixture(scope="module")
def psio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Server]:
    server = servers.start_psio(tmp_path_factory.mktemp("psio"))
    try:
        yield server
    finally:
        server.stop()


def run_tool(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    """``python -m loadtest ARGS``; ``env`` is added to this process's environment."""
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", *args, "--json", str(out), "--quiet"],
        cwd=servers.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    result = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, result, proc.stdout + proc.stderr


def assert_clean(result: dict[str, Any]) -> None:
    assert result["problems"] == []
    assert all(s["failed"] == 0 for s in result["steps"])
    assert result["seq"]["lost"] == 0
    assert result["seq"]["duplicates"] == 0
    assert result["seq"]["out_of_order"] == 0
    assert result["traffic"]["misrouted"] == 0


def test_chat_smoke(psio: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path,
        "chat",
        "--url",
        psio.url,
        "--rooms",
        "2",
        "--members",
        "5",
        "--senders",
        "2",
        "--rate",
        "10",
        "--duration",
        "3",
        "--server-pid",
        str(psio.pid),
        "--plot",
        str(tmp_path / "plot.png"),
    )
    assert rc == 0, out
    assert_clean(result)
    assert (tmp_path / "plot.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    steps = {s["name"]: s["ok"] for s in result["steps"]}
    assert steps == {"connect": 10, "login": 10, "create": 2, "join": 10}
    assert result["traffic"]["sent"] == 30
    assert result["traffic"]["send_ok"] == 30
    # every member of a room gets every message of that room, senders included
    assert result["traffic"]["deliveries"] == 30 * 5
    assert result["traffic"]["expected_deliveries"] == 30 * 5
    assert result["server"]["processes"][0]["pid"] == psio.pid


def test_direct_smoke(psio: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path, "direct", "--url", psio.url, "--pairs", "3", "--rate", "12", "--duration", "2"
    )
    assert rc == 0, out
    assert_clean(result)
    assert result["traffic"]["deliveries"] == 24
    assert result["seq"]["logs"] == 3


def test_churn_smoke(psio: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path, "churn", "--url", psio.url, "--rate", "10", "--duration", "2", "--rooms", "2"
    )
    assert rc == 0, out
    assert_clean(result)
    steps = {s["name"]: s["ok"] for s in result["steps"]}
    assert steps["cycle"] == 20
    assert steps["leave"] == 20
    assert result["extra"]["skipped"] == 0


def test_idle_smoke(psio: servers.Server, tmp_path: Path) -> None:
    rc, result, out = run_tool(
        tmp_path,
        "idle",
        "--url",
        psio.url,
        "--clients",
        "30",
        "--room-size",
        "10",
        "--duration",
        "1",
    )
    assert rc == 0, out
    assert_clean(result)
    assert result["extra"]["held_at_end"] == 30


def test_unreachable_server_fails_the_run(tmp_path: Path) -> None:
    port = servers.free_port()  # nothing listens there
    rc, result, out = run_tool(
        tmp_path,
        "chat",
        "--url",
        f"http://127.0.0.1:{port}",
        "--rooms",
        "1",
        "--members",
        "2",
        "--senders",
        "1",
        "--duration",
        "1",
        "--timeout",
        "2",
    )
    assert rc == 1, out
    assert result["ok"] is False
    assert any("connect failed" in p for p in result["problems"])
