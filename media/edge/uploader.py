"""The terminal's uploader: finished recordings to the server over tus 1.0.0, and the local quota.

For each recording whose chain is closed it announces the manifest (the signed chain and the
metadata), then uploads the segments concatenated in chain order with tus: resuming from the
server's offset after any interruption (network loss, server restart, this process restarting),
an ``Upload-Checksum: sha256`` on every PATCH, a fresh device proof per request from the
``headers`` callback, retries with exponential backoff, an optional bandwidth cap and a progress
callback. It never deletes anything: it writes ``sealed.json`` once the server confirms the sealed
evidence matches what was sent, and only ``LocalQuota`` deletes, and only such recordings.

When the server advertises direct uploads (``direct_upload_endpoint`` in its answer to the
announcement), the bytes go straight to S3 instead: the uploader asks the server which parts the
store has, gets presigned URLs for a few missing parts at a time (each bound to the part's
SHA-256), PUTs them, and once every part is there asks the server to complete, verify and seal.

Files it keeps in a recording's directory:

    upload.json    size and SHA-256 of the upload and the tus URL to resume (UploadState)
    sealed.json    the server's EvidenceReceipt, after checking it (only then may files go)
    rejected.json  why the server refused the recording (it is kept, for someone to look at)
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import msgspec

from media.edge.chain import ChainLog
from media.edge.manifest import (
    DirectUploadRequest,
    DirectUploadView,
    EvidenceReceipt,
    PartChecksum,
    PartUrlRequest,
    PartUrls,
    RecordingManifest,
    RecordingView,
    part_sizes,
)
from media.edge.storage import CHAIN_FILE, STANDBY_DIR, RecordingDir, write_atomic

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
UPLOAD_STATE = "upload.json"
SEALED_RECEIPT = "sealed.json"
REJECTED = "rejected.json"
RECORDINGS_PATH = "/api/media/recordings"
UPLOADS_PATH = "/api/media/uploads"
# Statuses worth trying again after a pause; any other refusal is final for this recording.
RETRYABLE = {401, 408, 423, 425, 429, 500, 502, 503, 504}
# Direct uploads: part bytes held in memory at once (hashed, then sent).
DIRECT_BATCH_BYTES = 32 * 1024 * 1024

# (method, absolute URL) -> headers that authenticate this one request (token + DPoP proof).
HeadersFn = Callable[[str, str], dict[str, str]]
# (recording id, bytes the server has, total bytes)
ProgressFn = Callable[[str, int, int], None]


class UploadError(Exception):
    pass


class Stopped(UploadError):
    """The stop event was set; the upload resumes next time."""


class UploadRefused(UploadError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"server refused with {status}: {body[:500]}")
        self.status = status


class EvidenceRejected(UploadError):
    """The server received everything and refused to seal it (chain, signature, decoding)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems) or "rejected")
        self.problems = problems


class UploadState(msgspec.Struct, kw_only=True):
    head_hex: str
    size: int
    sha256: str
    upload_url: str | None = None


class Rejection(msgspec.Struct, frozen=True):
    problems: list[str]


class Backoff:
    """Exponential backoff with jitter: first, first·factor, … up to ``maximum`` seconds."""

    def __init__(self, first: float = 0.5, factor: float = 2.0, maximum: float = 60.0) -> None:
        self.first, self.factor, self.maximum = first, factor, maximum
        self._next = first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * self.factor)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.first


class _Throttle:
    """Paces bytes to at most ``rate`` bytes per second across requests."""

    PIECE = 64 * 1024

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._free_at = time.monotonic()

    def pieces(self, data: bytes) -> Iterator[bytes]:
        view = memoryview(data)
        for at in range(0, len(data), self.PIECE):
            piece = view[at : at + self.PIECE]
            if self.rate:
                now = time.monotonic()
                start = max(now, self._free_at)
                if start > now:
                    time.sleep(start - now)
                self._free_at = start + len(piece) / self.rate
            yield bytes(piece)


class _Concatenation:
    """The recording's segments, in chain order, read as one file."""

    def __init__(self, directory: RecordingDir, log_: ChainLog) -> None:
        self._paths = [directory.segment_path(record.name) for record in log_.segments]
        self._starts: list[int] = []
        total = 0
        for record, path in zip(log_.segments, self._paths, strict=True):
            try:
                size = path.stat().st_size
            except FileNotFoundError as exc:
                raise UploadError(f"{path.name} is missing") from exc
            if size != record.size:
                raise UploadError(f"{path.name}: {size} bytes, chain says {record.size}")
            self._starts.append(total)
            total += record.size
        self.size = total

    def read(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []
        index = bisect.bisect_right(self._starts, offset) - 1
        while length > 0 and index < len(self._paths):
            with open(self._paths[index], "rb") as file:
                file.seek(offset - self._starts[index])
                block = file.read(length)
            parts.append(block)
            offset, length, index = offset + len(block), length - len(block), index + 1
        return b"".join(parts)

    def sha256(self) -> str:
        hasher = hashlib.sha256()
        for path in self._paths:
            with open(path, "rb") as file:
                while block := file.read(1024 * 1024):
                    hasher.update(block)
        return hasher.hexdigest()


def closed_chain(directory: Path) -> ChainLog | None:
    """The chain of a finished recording, or None while it is still being recorded."""
    try:
        chain = RecordingDir(directory).load_chain()
    except (OSError, msgspec.DecodeError):
        return None
    return chain if chain.head is not None and chain.head.closed else None


def read_receipt(directory: Path) -> EvidenceReceipt | None:
    try:
        return msgspec.json.decode((directory / SEALED_RECEIPT).read_bytes(), type=EvidenceReceipt)
    except FileNotFoundError:
        return None


class Uploader:
    def __init__(
        self,
        base_url: str,
        headers: HeadersFn,
        *,
        chunk_size: int = 8 * 1024 * 1024,
        max_bytes_per_second: float | None = None,
        progress: ProgressFn | None = None,
        backoff: Backoff | None = None,
        stop: threading.Event | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = headers
        self.chunk_size = chunk_size
        self._throttle = _Throttle(max_bytes_per_second)
        self._progress = progress
        self._backoff = backoff or Backoff()
        self.stop = stop or threading.Event()
        self._http = httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Uploader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- one recording -------------------------------------------------------------------------

    def upload(self, directory: Path) -> EvidenceReceipt:
        """Upload one finished recording until the server confirms it sealed."""
        directory = Path(directory)
        receipt = read_receipt(directory)
        if receipt is not None:
            return receipt
        recording = RecordingDir(directory)
        chain = closed_chain(directory)
        if chain is None:
            raise UploadError(f"{directory.name} is still being recorded")
        data = _Concatenation(recording, chain)
        state = self._state(directory, chain, data)
        manifest = RecordingManifest(
            chain=chain, meta=recording.load_meta(), size=state.size, sha256=state.sha256
        )
        view = self._announce(manifest)
        while view.status != "sealed":
            if view.status == "rejected" and view.upload_url is None:
                self._reject(directory, view.problems)
            if view.direct_upload_endpoint:
                view = self._send_direct(chain.recording_id, view.direct_upload_endpoint, data)
                continue
            url = self._resume_url(directory, state, view)
            if self._send(chain.recording_id, url, data, state, directory):
                view = self._wait_for_seal(chain.recording_id)
            else:
                view = self._status(chain.recording_id)
        return self._confirm(directory, state, view)

    def _state(self, directory: Path, chain: ChainLog, data: _Concatenation) -> UploadState:
        assert chain.head is not None
        path = directory / UPLOAD_STATE
        try:
            state = msgspec.json.decode(path.read_bytes(), type=UploadState)
            if state.head_hex == chain.head.head_hex and state.size == data.size:
                return state
        except FileNotFoundError:
            pass
        state = UploadState(head_hex=chain.head.head_hex, size=data.size, sha256=data.sha256())
        write_atomic(path, msgspec.json.encode(state))
        return state

    def _save(self, directory: Path, state: UploadState) -> None:
        write_atomic(directory / UPLOAD_STATE, msgspec.json.encode(state))

    def _announce(self, manifest: RecordingManifest) -> RecordingView:
        response = self._request(
            "POST",
            RECORDINGS_PATH,
            content=msgspec.json.encode(manifest),
            headers={"Content-Type": "application/json"},
        )
        return msgspec.json.decode(response.content, type=RecordingView)

    def _status(self, recording_id: str) -> RecordingView:
        response = self._request("GET", f"{RECORDINGS_PATH}/{recording_id}")
        return msgspec.json.decode(response.content, type=RecordingView)

    def _resume_url(self, directory: Path, state: UploadState, view: RecordingView) -> str:
        """The upload to continue (ours, or the one the server knows of), or a new one."""
        for url in dict.fromkeys(u for u in (state.upload_url, view.upload_url) if u):
            if self._offset(url) is not None:
                if state.upload_url != url:
                    state.upload_url = url
                    self._save(directory, state)
                return url
        response = self._request(
            "POST",
            UPLOADS_PATH,
            headers={
                "Tus-Resumable": TUS_VERSION,
                "Upload-Length": str(state.size),
                "Upload-Metadata": "recording "
                + base64.b64encode(view.recording_id.encode()).decode(),
            },
            ok=(201,),
        )
        state.upload_url = response.headers["Location"]
        self._save(directory, state)
        return state.upload_url

    def _offset(self, url: str) -> int | None:
        """The server's committed offset; None when the upload is gone (expired, removed)."""
        response = self._request(
            "HEAD", url, headers={"Tus-Resumable": TUS_VERSION}, ok=(200, 404, 410)
        )
        if response.status_code != 200:
            return None
        return int(response.headers["Upload-Offset"])

    def _send(
        self,
        recording_id: str,
        url: str,
        data: _Concatenation,
        state: UploadState,
        directory: Path,
    ) -> bool:
        """Send from the server's offset to the end; False when the upload vanished."""
        offset = self._offset(url)
        while offset is not None and offset < data.size:
            chunk = data.read(offset, min(self.chunk_size, data.size - offset))
            digest = base64.b64encode(hashlib.sha256(chunk).digest()).decode()
            response = self._attempt(
                "PATCH",
                url,
                content=self._throttle.pieces(chunk),
                headers={
                    "Tus-Resumable": TUS_VERSION,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Content-Length": str(len(chunk)),
                    "Upload-Checksum": f"sha256 {digest}",
                },
            )
            if response is not None and response.status_code == 204:
                offset = int(response.headers["Upload-Offset"])
                self._backoff.reset()
                if self._progress:
                    self._progress(recording_id, offset, data.size)
                continue
            if response is not None and response.status_code == 460:
                log.warning(
                    "%s: chunk at %d refused as corrupted (460), sending it again",
                    recording_id,
                    offset,
                )
            elif response is not None and response.status_code in (404, 410):
                log.warning("%s: upload %s is gone, starting a new one", recording_id, url)
                offset = None
                break
            elif response is not None and response.status_code not in (409, *RETRYABLE):
                raise UploadRefused(response.status_code, response.text)
            self._pause()
            offset = self._offset(url)
        if offset is None:
            state.upload_url = None
            self._save(directory, state)
            return False
        return True

    # -- direct to S3 ----------------------------------------------------------------------------

    def _send_direct(self, recording_id: str, endpoint: str, data: _Concatenation) -> RecordingView:
        """Send the parts S3 lacks, then have the server complete and seal; returns the view."""
        response = self._request(
            "POST",
            endpoint,
            content=msgspec.json.encode(DirectUploadRequest(recording_id=recording_id)),
            headers={"Content-Type": "application/json"},
        )
        upload = msgspec.json.decode(response.content, type=DirectUploadView)
        while True:
            sizes = part_sizes(data.size, upload.part_bytes)
            have = {part.number for part in upload.received if sizes.get(part.number) == part.size}
            if self._progress:
                self._progress(recording_id, sum(sizes[n] for n in have), data.size)
            missing = [n for n in sizes if n not in have]
            if missing:
                batch = max(1, DIRECT_BATCH_BYTES // upload.part_bytes)
                self._put_parts(upload, missing[:batch], data)
            else:
                view = self._complete(recording_id, upload.url)
                if view is not None:
                    return view
            # Which parts S3 has now (after a failure, from the source of truth).
            listed = self._request("GET", upload.url, ok=(200, 404, 410))
            if listed.status_code != 200:
                return self._status(recording_id)
            upload = msgspec.json.decode(listed.content, type=DirectUploadView)

    def _complete(self, recording_id: str, url: str) -> RecordingView | None:
        """Ask the server to assemble, verify and seal; None to look at the parts again."""
        response = self._attempt("POST", f"{url}/complete")
        if response is not None and response.status_code == 200:
            self._backoff.reset()
            return msgspec.json.decode(response.content, type=RecordingView)
        if response is not None and response.status_code in (404, 410, 422):
            # Gone (start again) or refused as evidence: the recording's status says which.
            return self._status(recording_id)
        if response is not None and response.status_code not in (409, *RETRYABLE):
            raise UploadRefused(response.status_code, response.text)
        self._pause()
        return None

    def _put_parts(
        self, upload: DirectUploadView, numbers: list[int], data: _Concatenation
    ) -> None:
        """PUT these parts to their presigned URLs; a failure pauses and ends the batch."""
        size = upload.part_bytes
        chunks = {
            n: data.read((n - 1) * size, min(size, data.size - (n - 1) * size)) for n in numbers
        }
        asked = PartUrlRequest(
            parts=[
                PartChecksum(n, base64.b64encode(hashlib.sha256(chunk).digest()).decode())
                for n, chunk in chunks.items()
            ]
        )
        response = self._request(
            "POST",
            f"{upload.url}/urls",
            content=msgspec.json.encode(asked),
            headers={"Content-Type": "application/json"},
        )
        for part in msgspec.json.decode(response.content, type=PartUrls).urls:
            if self.stop.is_set():
                raise Stopped
            chunk = chunks[part.number]
            headers = {**part.headers, "Content-Length": str(len(chunk))}
            try:
                # Straight to the store: presigned, so none of our own headers go along.
                sent = self._http.put(
                    part.url, content=self._throttle.pieces(chunk), headers=headers
                )
            except httpx.TransportError as exc:
                log.info("part %d to the store failed: %s", part.number, exc)
                self._pause()
                return
            if sent.status_code != 200:
                # e.g. 400 BadDigest (changed on the way), 403 URL expired: ask again.
                log.warning(
                    "part %d refused by the store: %d %s",
                    part.number,
                    sent.status_code,
                    sent.text[:200],
                )
                self._pause()
                return
            self._backoff.reset()

    def _wait_for_seal(self, recording_id: str) -> RecordingView:
        """After the last byte the server verifies and seals; ask until it says how it went."""
        waiting = Backoff(first=0.2, maximum=5.0)
        while True:
            view = self._status(recording_id)
            if view.status != "pending" or view.upload_url is not None:
                return view
            self._sleep(waiting.next_delay())

    def _confirm(self, directory: Path, state: UploadState, view: RecordingView) -> EvidenceReceipt:
        receipt = view.evidence
        if receipt is None or receipt.sha256 != state.sha256 or receipt.size != state.size:
            raise UploadError(f"{directory.name}: the sealed evidence does not match what was sent")
        write_atomic(directory / SEALED_RECEIPT, msgspec.json.encode(receipt))
        log.info("%s sealed as evidence %s", directory.name, receipt.evidence_id)
        return receipt

    def _reject(self, directory: Path, problems: list[str]) -> None:
        write_atomic(directory / REJECTED, msgspec.json.encode(Rejection(problems)))
        raise EvidenceRejected(problems)

    # -- background ----------------------------------------------------------------------------

    def run(self, root: Path, idle_seconds: float = 5.0) -> None:
        """Upload every finished recording under ``root`` whenever there is network, until stopped."""
        while not self.stop.is_set():
            for directory in pending_recordings(Path(root)):
                try:
                    self.upload(directory)
                except Stopped:
                    return
                except EvidenceRejected as exc:
                    log.error("%s refused by the server: %s", directory.name, exc)
                except UploadError as exc:
                    log.error("%s not uploaded: %s", directory.name, exc)
            self.stop.wait(idle_seconds)

    # -- HTTP with retries ---------------------------------------------------------------------

    def _url(self, path_or_url: str) -> str:
        return urljoin(self.base_url + "/", path_or_url)

    def _attempt(self, method: str, url: str, **kwargs: object) -> httpx.Response | None:
        """One request with fresh authentication; None when the network failed."""
        if self.stop.is_set():
            raise Stopped
        absolute = self._url(url)
        headers = {**kwargs.pop("headers", {}), **self._auth(method, absolute)}  # type: ignore[dict-item]
        try:
            return self._http.request(method, absolute, headers=headers, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            log.info("%s %s failed: %s", method, url, exc)
            return None

    def _request(
        self, method: str, url: str, *, ok: tuple[int, ...] = (200, 201, 204), **kwargs: object
    ) -> httpx.Response:
        """Repeat a request that has no side effects to fear until the server gives an answer."""
        while True:
            response = self._attempt(method, url, **kwargs)
            if response is not None and response.status_code in ok:
                self._backoff.reset()
                return response
            if response is not None and response.status_code not in RETRYABLE:
                raise UploadRefused(response.status_code, response.text)
            self._pause()

    def _pause(self) -> None:
        self._sleep(self._backoff.next_delay())

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopped


def pending_recordings(root: Path) -> list[Path]:
    """Finished recordings not yet confirmed sealed nor refused, oldest first."""
    if not root.is_dir():
        return []
    return [
        path
        for path in sorted(root.iterdir())
        if path.is_dir()
        and path.name != STANDBY_DIR
        and not (path / SEALED_RECEIPT).exists()
        and not (path / REJECTED).exists()
        and closed_chain(path) is not None
    ]


class LocalQuota:
    """Local storage for recordings: at most ``quota_bytes`` under ``root`` and never the last
    ``reserve_bytes`` of the disk. Recordings the server confirmed as sealed are cleared first,
    oldest first, and nothing else is ever cleared."""

    def __init__(self, root: Path, quota_bytes: int, *, reserve_bytes: int = 0) -> None:
        self.root, self.quota_bytes, self.reserve_bytes = Path(root), quota_bytes, reserve_bytes

    def _recordings(self) -> list[tuple[Path, int, bool]]:
        """(directory, bytes, sealed and confirmed) of every recording, oldest first
        (recording ids are UUIDv7, so names sort by start)."""
        found = []
        if self.root.is_dir():
            for path in sorted(self.root.iterdir()):
                if path.is_dir() and (path / CHAIN_FILE).exists():
                    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
                    found.append((path, size, (path / SEALED_RECEIPT).exists()))
        return found

    def _free(self, recordings: list[tuple[Path, int, bool]]) -> int:
        used = sum(size for _, size, _ in recordings)
        disk = shutil.disk_usage(self.root).free - self.reserve_bytes
        return max(0, min(self.quota_bytes - used, disk))

    def reclaimable_bytes(self) -> int:
        return sum(size for _, size, sealed in self._recordings() if sealed)

    def free_bytes(self, want: int = 0) -> int:
        """Bytes recording may use now; clears sealed recordings first when fewer than ``want``.

        Pass ``lambda: quota.free_bytes(watermark)`` to the Recorder as its ``free_bytes``.
        """
        recordings = self._recordings()
        free = self._free(recordings)
        for path, size, sealed in recordings:
            if free >= want:
                break
            if sealed:
                shutil.rmtree(path)
                log.info("cleared %s (sealed on the server), %d bytes", path.name, size)
                free = self._free(self._recordings())
        return free

    def minutes_left(self, bytes_per_second: float) -> float:
        """Minutes of recording left at that rate, counting what clearing sealed ones frees."""
        recordings = self._recordings()
        usable = self._free(recordings) + sum(size for _, size, sealed in recordings if sealed)
        return usable / bytes_per_second / 60
