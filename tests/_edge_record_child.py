"""Record synthetic media until killed: the victim of the crash test in test_edge_recording.py.

usage: python _edge_record_child.py ROOT RECORDING_ID KEY_PEM CONFIG_JSON EPOCH_ISO
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from media.edge.capture import SyntheticSource
from media.edge.config import RecorderConfig
from media.edge.recorder import Recorder


def main() -> None:
    root, recording_id, key_path, config_json, epoch_iso = sys.argv[1:6]
    key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    config = msgspec.json.decode(config_json, type=RecorderConfig)
    epoch = datetime.fromisoformat(epoch_iso)
    recorder = Recorder(
        Path(root),
        terminal_id="ZF-CRASH",
        credential_no="44010000001",
        device_key=key,
        config=config,
        epoch=epoch,
    )
    recorder.start_recording(recording_id)
    # Four times real time: a segment every 0.25 s (at 1 s segments), one always being written.
    source = SyntheticSource(epoch=epoch, width=config.width, height=config.height, pace=4.0)
    for frame in source.frames():
        recorder.push(frame)


if __name__ == "__main__":
    main()
