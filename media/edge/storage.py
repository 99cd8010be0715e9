"""A recording on the terminal's disk, written so that a crash never leaves a torn file.

<root>/<recording_id>/000000.ts …      finished segments (complete, fsynced)
<root>/<recording_id>/NNNNNN.ts.part   the segment being written (deleted on resume)
<root>/<recording_id>/chain.json       ChainLog, replaced atomically after every segment
<root>/<recording_id>/meta.json        RecordingMeta, replaced atomically
<root>/.standby/                       pre-record ring, scratch (wiped at start)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from media.edge.chain import ChainLog, SegmentRecord, decode_log, encode_log, verify_chain
from media.edge.metadata import RecordingMeta, decode_meta, encode_meta

CHAIN_FILE = "chain.json"
META_FILE = "meta.json"
STANDBY_DIR = ".standby"
PART_SUFFIX = ".part"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old content or the new one, never a mix, even after power loss."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def sha256_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


class RecordingDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def recording_id(self) -> str:
        return self.path.name

    def segment_path(self, name: str) -> Path:
        return self.path / name

    def load_chain(self) -> ChainLog:
        return decode_log((self.path / CHAIN_FILE).read_bytes())

    def save_chain(self, log: ChainLog) -> None:
        write_atomic(self.path / CHAIN_FILE, encode_log(log))

    def load_meta(self) -> RecordingMeta:
        return decode_meta((self.path / META_FILE).read_bytes())

    def save_meta(self, meta: RecordingMeta) -> None:
        write_atomic(self.path / META_FILE, encode_meta(meta))

    def read_segment(self, record: SegmentRecord) -> bytes:
        return self.segment_path(record.name).read_bytes()

    def segment_files(self) -> list[Path]:
        return sorted(self.path.glob("*.ts"))

    def remove_leftovers(self) -> list[Path]:
        """Delete what a crash left half-written: segment parts and temporary JSON files."""
        leftovers = [*self.path.glob("*" + PART_SUFFIX), *self.path.glob("*.tmp")]
        for path in leftovers:
            path.unlink()
        if leftovers:
            fsync_dir(self.path)
        return leftovers

    def verify(self, public_key: Ed25519PublicKey, *, require_closed: bool = False) -> list[str]:
        """verify_chain on the files here, plus any segment file the chain does not list."""
        log = self.load_chain()
        problems = verify_chain(log, self.read_segment, public_key, require_closed=require_closed)
        listed = {record.name for record in log.segments}
        problems.extend(
            f"{path.name} is not in the chain"
            for path in self.segment_files()
            if path.name not in listed
        )
        return problems


def attach_case(recording_dir: Path, case_id: str) -> RecordingMeta:
    """Link a finished recording to a case after the fact (the chain is not affected)."""
    directory = RecordingDir(recording_dir)
    meta = directory.load_meta()
    meta.case_id = case_id
    directory.save_meta(meta)
    return meta
