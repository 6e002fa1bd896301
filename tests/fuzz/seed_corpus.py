"""seed_corpus.py — write a few valid frames and bodies as the fuzzer's starting corpus.

Hand-built with the v1 layout (docs/adr/0002) so the fuzzer starts from inputs
that get past the magic and version checks.
"""
import struct
import sys
from pathlib import Path

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)


def cbor_map(items):
    # Tiny CBOR writer for seeds: maps with short text keys and small uint/text/bytes values.
    def enc(v):
        if isinstance(v, bool):
            return b"\xf5" if v else b"\xf4"
        if isinstance(v, int):
            if v < 24:
                return bytes([v])
            if v < 256:
                return b"\x18" + bytes([v])
            if v < 65536:
                return b"\x19" + struct.pack(">H", v)
            return b"\x1b" + struct.pack(">Q", v)
        if isinstance(v, bytes):
            return bytes([0x40 | len(v)]) + v if len(v) < 24 else b"\x58" + bytes([len(v)]) + v
        if isinstance(v, str):
            b = v.encode()
            return bytes([0x60 | len(b)]) + b
        if isinstance(v, list):
            return bytes([0x80 | len(v)]) + b"".join(enc(x) for x in v)
        if isinstance(v, dict):
            return bytes([0xA0 | len(v)]) + b"".join(enc(k) + enc(x) for k, x in v.items())
        raise TypeError(v)
    return enc(items)


event = {"id": bytes(range(16)), "t": 8, "ts": 1700000000, "job": 42, "step": 0, "node": "n1",
         "a": {"cpu_s": 1, "tasks": 2}}
batch = cbor_map([event, dict(event, t=5, task=1)])
hello = cbor_map({"cred": "MUNGE:AwQFAAA:"})
ack = cbor_map({"stored": 1, "dup": 0, "rej": []})


def frame(kind, session, seq, body, tagged):
    hdr = b"VGIL" + struct.pack("<BBHII QQ".replace(" ", ""), 1, kind, 0, len(body), 0, session, seq)
    return hdr + body + (b"\0" * 32 if tagged else b"")


seeds = {
    "batch_frame": frame(3, 7, 1, batch, True),
    "hello_frame": frame(1, 0, 1, hello, False),
    "ack_frame": frame(4, 7, 1, ack, True),
    "batch_body": batch,
    "ack_body": ack,
}
for name, data in seeds.items():
    (out / name).write_bytes(data)
