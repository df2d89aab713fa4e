#!/usr/bin/env python3
"""The Python side of the ack benchmark: pywa's webhook acknowledgement path, and a Python floor.

The Rust side (`cargo bench --bench ack`) times "raw body + X-Hub-Signature-256 in -> signature
checked and every message of the batch parsed into typed messages out", and writes the payloads
it used to target/bench/payloads/. This script times the same unit for pywa (the most popular
Python WhatsApp Cloud API library, pinned in tests/bench/requirements.txt) on those same files:

    .venv/bin/pip install -r tests/bench/requirements.txt
    cargo bench --bench ack                      # writes target/bench/payloads/
    .venv/bin/python tests/bench/pywa_bench.py [--payloads DIR] [--out FILE] [--seconds S]

What pywa does with a webhook POST (read from pywa 4.5.0's source; `notes` in the JSON says the
same in short). Its Flask integration (pywa/_helpers.py, register_routes_flask) runs, per POST:

1. `WhatsApp.webhook_update_validator(update=body, hmac_header=headers["X-Hub-Signature-256"])`
   (pywa/server.py): 401 without a header; otherwise `utils.webhook_updates_validator`
   computes `hmac.new(app_secret.encode(), body, sha256).hexdigest()` and compares it with
   `hmac.compare_digest` to the header minus its "sha256=" prefix; 403 on a mismatch.
2. `WhatsApp.webhook_update_handler(update=body)`: a blake2s hash of the whole body (the
   update id for logs and for the duplicate-update cache), `RawUpdate(body)` which is a dict
   subclass filled by `json.loads(body)`, the duplicate-update check (an OrderedDict under a
   lock), then `_call_handlers`: `_get_handler_type` looks at
   `entry[0].changes[0].value.messages[0].type` to pick the handler type, and
   `Message.from_update` builds ONE typed `Message` (frozen dataclass with User, Chat,
   Metadata, Text ...) from `entry[0].changes[0].value.messages[0]` (and the sender from
   `contacts[0]`), passes it to the registered handlers, then to the raw-update handlers.
   Its FastAPI/Starlette integration calls the same two functions with the same arguments
   (the handler as a background task run after the 200 is sent).

So pywa builds exactly one typed update per webhook POST: in a batched webhook (several
entries, changes or messages) everything after entry[0].changes[0].value.messages[0] is parsed
by json.loads but never becomes a Message and never reaches a handler, with no error and no
log (upstream: david-lev/pywa#229, open). For the batch payloads this script therefore reports
`messages_built` = 1 (checked to be the first message of the body, with its text) next to
`messages_expected`, and the time is for what pywa does (hash + parse of the whole body, one
Message), not for a full parse into 1000 Messages. For the same work as the Rust side, each
batch is also timed as `every_message`: the same call, then pywa's own
`Message.from_update` on every other message of the body, each given the update it reads
(its entry and change with that message alone and its sender's contact, prepared from the
parsed body outside the timed region). That is the comparison the report's verdict uses.

The timed unit, per webhook: `webhook_update_validator` then `webhook_update_handler`, exactly
as the Flask route calls them, on a `WhatsApp(app_secret=..., validate_updates=True)` built
without a token (so without an httpx client: no network), without a server and without a
phone_id/waba_id (so pywa's filter_updates has nothing to compare), with one do-nothing
`on_message` handler that counts the Message objects it receives (pywa builds the Message only
when a handler for its type is registered). Defaults otherwise, including
skip_duplicate_updates=True: since the same body is fed again and again, the duplicate cache is
cleared (outside the timed region) before each call, so every call is a first delivery.
Logging is left unconfigured, as in a default Lambda Python runtime (root at WARNING), so
pywa's per-update INFO/DEBUG lines are checked and dropped, not formatted.

One requirement of pywa 4.5's path that a payload must meet: `User.from_contact` reads
`contacts[0]["user_id"]` (the business-scoped user id, BSUID) unconditionally, so a webhook whose
contact has only `wa_id` gets a 200 but no Message (pywa logs a KeyError and goes on). The
check below fails loudly on that, with pywa's logged error.

The floor is the least a Python webhook can do for the same acknowledgement:
`hmac.compare_digest(hmac.new(secret, body, sha256).hexdigest(), header minus "sha256=")`
plus `json.loads(body)`.

Before timing, for every payload: pywa must accept the right signature, reject a wrong one and
a body changed by one byte (403) and a missing signature (401); the Message it builds must be
the body's first message (id and text); the floor must agree on the signatures; and
`<name>.messages` must equal the number of messages in the body (counted over every entry,
change and message). Any failure exits non-zero with the reason.

Timing: time.perf_counter_ns around each call, gc enabled, a short warm-up, then at least
--seconds (default 2) and 20 iterations per payload and per side; median and p99 (nearest
rank) in microseconds per webhook. About 18 s in all at the default (3 payloads x 2 sides,
plus the 2 batches' every_message runs, x (2 s + 0.2 s warm-up), plus the checks).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import hmac
import json
import logging
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PAYLOADS = REPO_ROOT / "target" / "bench" / "payloads"
DEFAULT_OUT = REPO_ROOT / "target" / "bench" / "pywa.json"
NAMES = ("2kb_text", "batch_1000", "payload_3mb")
MIN_ITERATIONS = 20
WARMUP_ITERATIONS = 3
WARMUP_SECONDS_SHARE = 0.1  # of --seconds, at most

NOTES = (
    "pywa {version}, as its Flask route does per POST: WhatsApp.webhook_update_validator(body, "
    "X-Hub-Signature-256) -> utils.webhook_updates_validator (HMAC-SHA256 hexdigest of the body "
    "with app_secret, hmac.compare_digest against the header minus 'sha256='), then "
    "WhatsApp.webhook_update_handler(body) -> blake2s hash of the body, RawUpdate = "
    "json.loads(body), duplicate-update cache check, _call_handlers -> _get_handler_type on "
    "entry[0].changes[0].value.messages[0] -> Message.from_update builds ONE typed Message from "
    "entry[0].changes[0].value.messages[0] (sender from contacts[0]) and calls the handler. "
    "pywa builds one update per webhook: the rest of a batch (other messages, changes, entries) "
    "is parsed by json.loads but silently dropped (david-lev/pywa#229), so messages_built is 1 "
    "for the batches; every_message_* adds pywa's Message.from_update on each dropped message "
    "(the same work as the Rust side). Client: WhatsApp(app_secret=..., validate_updates=True), no token (no "
    "network), no server, one counting on_message handler; duplicate cache cleared between "
    "calls (untimed); logging unconfigured (WARNING). Floor: hmac.compare_digest(hmac.new(secret, "
    "body, sha256).hexdigest(), header minus 'sha256=') + json.loads(body)."
)


class BenchError(Exception):
    """A problem that ends the run with a message and a non-zero exit."""


# --- payloads -------------------------------------------------------------------------------


class Payload:
    def __init__(self, name: str, body: bytes, sig: str, messages: int) -> None:
        self.name = name
        self.body = body
        self.sig = sig
        self.messages = messages


def load_payloads(directory: Path) -> tuple[bytes, list[Payload]]:
    wanted = [directory / "app_secret"] + [
        directory / f"{name}.{ext}" for name in NAMES for ext in ("body", "sig", "messages")
    ]
    missing = [p.name for p in wanted if not p.is_file()]
    if missing:
        raise BenchError(
            f"payloads missing in {directory}: {', '.join(missing)}\n"
            "run `cargo bench --bench ack` first (it writes them to target/bench/payloads/), "
            "or pass --payloads DIR"
        )
    secret = (directory / "app_secret").read_bytes()
    payloads = []
    for name in NAMES:
        body = (directory / f"{name}.body").read_bytes()
        sig = (directory / f"{name}.sig").read_text(encoding="ascii").strip()
        text = (directory / f"{name}.messages").read_text(encoding="ascii").strip()
        if not text.isdigit():
            raise BenchError(f"{name}.messages: expected a decimal count, got {text!r}")
        if not sig.startswith("sha256="):
            raise BenchError(f"{name}.sig: expected 'sha256=<hex>', got {sig[:40]!r}")
        payloads.append(Payload(name, body, sig, int(text)))
    return secret, payloads


def wrong_signature(sig: str) -> str:
    """The same header with its last hex digit changed."""
    last = sig[-1]
    return sig[:-1] + ("0" if last != "0" else "1")


def messages_in(doc: dict) -> list[dict]:
    """Every message of a webhook, over all entries and changes, in order."""
    found = []
    for entry in doc.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            found.extend(value.get("messages") or [])
    return found


def single_message_updates(doc: dict) -> list[dict]:
    """For every message after the first, the update pywa's `Message.from_update` reads: the
    message's entry and change with `messages` holding that message alone and `contacts` its
    sender's contact (built from the already parsed body, outside the timed region)."""
    updates = []
    for entry in doc.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value") or {}
            contacts = {c.get("wa_id"): c for c in value.get("contacts") or []}
            for message in value.get("messages") or []:
                contact = contacts.get(message.get("from"))
                updates.append({
                    "object": doc.get("object"),
                    "entry": [{
                        "id": entry.get("id"),
                        "changes": [{
                            "field": change.get("field"),
                            "value": {**value, "messages": [message],
                                      "contacts": [contact] if contact else []},
                        }],
                    }],
                })
    return updates[1:]


# --- the two sides --------------------------------------------------------------------------


def floor_ack(secret: bytes, body: bytes, sig: str) -> dict | None:
    """The Python floor: constant-time HMAC check of the raw body, then json.loads."""
    digest = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(digest, sig.removeprefix("sha256=")):
        return None
    return json.loads(body)


class PywaSide:
    """A pywa client wired as in the module docstring, and its per-webhook entry point."""

    def __init__(self, app_secret: str) -> None:
        try:
            import pywa
            from pywa import WhatsApp
            from pywa.types import Message
        except ImportError as err:
            raise BenchError(
                f"pywa is not installed ({err}): "
                ".venv/bin/pip install -r tests/bench/requirements.txt"
            ) from None
        self.version = pywa.__version__
        self.message_type = Message
        self.count = 0
        self.kept: list | None = None  # set during the checks to keep the Messages built
        self.wa = WhatsApp(app_secret=app_secret, validate_updates=True)

        @self.wa.on_message
        def on_message(_client, msg) -> None:
            self.count += 1
            if self.kept is not None:
                self.kept.append(msg)

    def reset(self) -> None:
        """Before each call: every delivery is a first delivery (see the module docstring)."""
        self.wa._processed_updates.clear()

    def build_rest(self, updates: list[dict]) -> list:
        """pywa's own parsing (`Message.from_update`) of the messages it drops in a batch."""
        from_update = self.message_type.from_update
        return [from_update(client=self.wa, update=update) for update in updates]

    def ack(self, body: bytes, sig: str | None) -> tuple[str, int]:
        """What pywa's Flask route does with a POST: validate, then handle."""
        wa = self.wa
        if error := wa.webhook_update_validator(update=body, hmac_header=sig):
            return error
        return wa.webhook_update_handler(update=body)


# --- checks ---------------------------------------------------------------------------------


class _Records(logging.Handler):
    """Keeps pywa's WARNING+ log records (with exceptions) for an error message."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        parts = []
        for record in self.records:
            part = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                exc = record.exc_info[1]
                part += f" ({type(exc).__name__}: {exc})"
            parts.append(part)
        return "; ".join(parts)


def check(pywa_side: PywaSide, secret: bytes, p: Payload) -> int:
    """Fail loudly unless both sides behave on this payload; returns pywa's Messages built."""
    try:
        doc = json.loads(p.body)
    except ValueError as err:
        raise BenchError(f"{p.name}.body is not JSON: {err}") from None
    expected = messages_in(doc)
    if len(expected) != p.messages:
        raise BenchError(
            f"{p.name}: {p.name}.messages says {p.messages}, the body has {len(expected)} messages"
        )
    if not expected:
        raise BenchError(f"{p.name}: the body has no messages")

    # The floor.
    if floor_ack(secret, p.body, p.sig) is None:
        hint = ""
        if floor_ack(secret.strip(), p.body, p.sig) is not None:
            hint = " (it matches with app_secret's surrounding whitespace stripped)"
        raise BenchError(
            f"{p.name}: {p.name}.sig is not the HMAC of the body with app_secret{hint}"
        )
    if floor_ack(secret, p.body, wrong_signature(p.sig)) is not None:
        raise BenchError(f"{p.name}: the floor accepted a wrong signature")

    # pywa: rejections first (pywa logs a WARNING for each; silenced here, it is expected).
    pywa_logger = logging.getLogger("pywa")
    level = pywa_logger.level
    pywa_logger.setLevel(logging.ERROR)
    try:
        for what, body, header, status in (
            ("a wrong signature", p.body, wrong_signature(p.sig), 403),
            ("a body changed by one byte", p.body + b" ", p.sig, 403),
            ("a missing signature", p.body, None, 401),
        ):
            pywa_side.reset()
            before = pywa_side.count
            result = pywa_side.ack(body, header)
            if result[1] != status or pywa_side.count != before:
                raise BenchError(
                    f"{p.name}: pywa answered {result} to {what} "
                    f"(expected {status} and no handler call)"
                )
    finally:
        pywa_logger.setLevel(level)

    # pywa: the right signature, keeping the Messages it builds and what pywa logs about it
    # (pywa answers 200 even when it fails to build the update: it only logs the exception).
    pywa_side.reset()
    pywa_side.kept = []
    logged = _Records()
    pywa_logger.addHandler(logged)
    try:
        result = pywa_side.ack(p.body, p.sig)
        built = pywa_side.kept
    finally:
        pywa_side.kept = None
        pywa_logger.removeHandler(logged)
    if result != ("ok", 200):
        raise BenchError(f"{p.name}: pywa answered {result} to the right signature")
    if not built or not all(isinstance(m, pywa_side.message_type) for m in built):
        why = f"; pywa logged: {logged.text()}" if logged.records else ""
        raise BenchError(f"{p.name}: pywa built no Message{why}")
    for msg, raw in zip(built, expected):
        if msg.id != raw.get("id") or (msg.text or None) != (raw.get("text") or {}).get("body"):
            raise BenchError(
                f"{p.name}: pywa's Message {msg.id!r} is not the body's message {raw.get('id')!r}"
            )
    if len(built) != p.messages and len(built) != 1:
        raise BenchError(f"{p.name}: pywa built {len(built)} of {p.messages} messages")
    rest = pywa_side.build_rest(single_message_updates(doc))
    for msg, raw in zip(rest, expected[1:], strict=True):
        if msg.id != raw.get("id") or (msg.text or None) != (raw.get("text") or {}).get("body"):
            raise BenchError(f"{p.name}: Message.from_update built {msg.id!r}, not {raw.get('id')!r}")
    return len(built)


# --- timing ---------------------------------------------------------------------------------


def measure(
    call: Callable[[], object], reset: Callable[[], None], seconds: float
) -> tuple[list[int], int]:
    """Nanoseconds per timed call (warm-up, then at least `seconds` and MIN_ITERATIONS calls),
    and the number of calls made in all."""
    clock = time.perf_counter_ns
    # Warm-up: WARMUP_ITERATIONS calls at least; more while within WARMUP_SECONDS_SHARE of
    # `seconds`, up to MIN_ITERATIONS calls.
    warmup_until = clock() + int(seconds * WARMUP_SECONDS_SHARE * 1e9)
    done = 0
    while done < WARMUP_ITERATIONS or (done < MIN_ITERATIONS and clock() < warmup_until):
        reset()
        call()
        done += 1
    gc.collect()
    samples: list[int] = []
    deadline = clock() + int(seconds * 1e9)
    while len(samples) < MIN_ITERATIONS or clock() < deadline:
        reset()
        start = clock()
        call()
        samples.append(clock() - start)
    return samples, done + len(samples)


def summary(samples: list[int]) -> dict:
    ordered = sorted(samples)
    p99 = ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "median_us": round(statistics.median(ordered) / 1000, 3),
        "p99_us": round(p99 / 1000, 3),
        "iterations": len(ordered),
    }


def nothing() -> None:
    pass


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> tuple[dict, dict[str, int]]:
    """The result JSON, and each payload's body size."""
    secret, payloads = load_payloads(args.payloads)
    try:
        app_secret = secret.decode("utf-8")
    except UnicodeDecodeError:
        raise BenchError(
            "app_secret is not UTF-8: pywa takes the secret as a str and encodes it as UTF-8"
        ) from None
    pywa_side = PywaSide(app_secret)
    built = {p.name: check(pywa_side, secret, p) for p in payloads}

    result: dict = {
        "pywa_version": pywa_side.version,
        "python_version": platform.python_version(),
        "payloads": {},
        "floor": {},
        "notes": NOTES.format(version=pywa_side.version),
    }
    for p in payloads:
        body, sig = p.body, p.sig
        pywa_side.count = 0
        samples, calls = measure(lambda: pywa_side.ack(body, sig), pywa_side.reset, args.seconds)
        if pywa_side.count != calls * built[p.name]:
            raise BenchError(
                f"{p.name}: pywa built {pywa_side.count} Messages in {calls} timed and warm-up "
                f"calls, expected {built[p.name]} per call"
            )
        stats = summary(samples)
        stats["messages_expected"] = p.messages
        stats["messages_built"] = built[p.name]
        if built[p.name] != p.messages:
            # The same work as the Rust side: also every message pywa drops, by pywa's own code.
            rest = single_message_updates(json.loads(body))

            def every_message() -> None:
                pywa_side.ack(body, sig)
                pywa_side.build_rest(rest)

            every = summary(measure(every_message, pywa_side.reset, args.seconds)[0])
            stats["every_message_median_us"] = every["median_us"]
            stats["every_message_p99_us"] = every["p99_us"]
        result["payloads"][p.name] = stats

        floor = summary(measure(lambda: floor_ack(secret, body, sig), nothing, args.seconds)[0])
        result["floor"][p.name] = {"median_us": floor["median_us"], "p99_us": floor["p99_us"]}
    return result, {p.name: len(p.body) for p in payloads}


def print_table(result: dict, sizes: dict[str, int]) -> None:
    print(f"pywa {result['pywa_version']} on Python {result['python_version']}, per webhook (us):")
    header = (
        f"{'payload':<12} {'bytes':>9} {'msgs built':>12} {'pywa median':>12} {'pywa p99':>10} "
        f"{'floor median':>13} {'floor p99':>10} {'pywa/floor':>11} {'iters':>6}"
    )
    print(header)
    print("-" * len(header))
    for name, row in result["payloads"].items():
        floor = result["floor"][name]
        ratio = row["median_us"] / floor["median_us"] if floor["median_us"] else float("nan")
        msgs = f"{row['messages_built']}/{row['messages_expected']}"
        print(
            f"{name:<12} {sizes[name]:>9} {msgs:>12} {row['median_us']:>12.1f} "
            f"{row['p99_us']:>10.1f} {floor['median_us']:>13.1f} {floor['p99_us']:>10.1f} "
            f"{ratio:>10.2f}x {row['iterations']:>6}"
        )
    if any(r["messages_built"] != r["messages_expected"] for r in result["payloads"].values()):
        print("msgs built < expected: pywa builds one Message per webhook (the first); see notes.")
        for name, row in result["payloads"].items():
            if "every_message_median_us" in row:
                print(
                    f"{name}: with Message.from_update on every other message too (the same work "
                    f"as the Rust side): median {row['every_message_median_us']:.1f}, "
                    f"p99 {row['every_message_p99_us']:.1f}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time pywa's webhook acknowledgement path (signature check + typed "
        "updates) and a Python floor on the ack-bench payloads."
    )
    parser.add_argument(
        "--payloads",
        type=Path,
        default=DEFAULT_PAYLOADS,
        help="directory with app_secret and <name>.body/.sig/.messages "
        "(default: target/bench/payloads/ under the repo root)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSON result file (default: target/bench/pywa.json under the repo root)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=2.0,
        help="minimum timed seconds per payload and per side (default: 2)",
    )
    args = parser.parse_args(argv)
    if not args.seconds > 0:
        parser.error("--seconds must be positive")
    try:
        result, sizes = run(args)
    except BenchError as err:
        print(f"pywa_bench: error: {err}", file=sys.stderr)
        return 1
    print_table(result, sizes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(sizes)} payloads)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
