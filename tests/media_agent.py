"""The terminal's uploader as a process of its own, so the end-to-end test can kill it.

Imports only what a terminal has (media.edge, mobile_api.contracts): it starts fast.
Usage: python -m tests.media_agent CONFIG.json; prints "progress OFFSET SIZE" lines, then
"sealed EVIDENCE_ID SHA256".
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from media.edge.uploader import Backoff, Uploader
from mobile_api.contracts.device_proof import make_device_proof


def main(config_file: str) -> None:
    config = json.loads(Path(config_file).read_text())
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(config["key"]))
    token = config["token"]

    def headers(method: str, url: str) -> dict[str, str]:
        return {
            "Authorization": f"DPoP {token}",
            "DPoP": make_device_proof(key, method, url, token),
        }

    def progress(_: str, offset: int, size: int) -> None:
        print(f"progress {offset} {size}", flush=True)

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with Uploader(
        config["url"],
        headers,
        chunk_size=config["chunk"],
        max_bytes_per_second=config["rate"],
        progress=progress,
        backoff=Backoff(first=0.2, maximum=1.0),
    ) as uploader:
        receipt = uploader.upload(Path(config["recording"]))
    print(f"sealed {receipt.evidence_id} {receipt.sha256}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
