"""Upload bodies read as they arrive: multipart parts streamed to files inside the data folder, within limits.

Starlette's form parser keeps every part under 1 MB in memory and spools larger ones to the system's temporary
folder, with no bound on how many parts a request may carry; a hostile client could hold tens of MB of memory per
request, or fill another disk. Here (python-multipart's streaming parser, the one Starlette itself builds on):

- a file part is written to ``incoming/<random>.part`` inside the data folder as its bytes arrive, at most
  ``max_file_bytes`` each (the body as a whole is bounded by :class:`~serkit.serve.limits.BodySizeLimit`);
- at most ``max_files`` file parts and ``max_fields`` plain fields of ``max_field_bytes`` each;
- any breach stops reading at once with an :class:`UploadError` (413 or 422) naming the limit, and every part
  already written is deleted, as it is when the client goes away mid-body.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from serkit.serve.store import new_id


class UploadError(Exception):
    """An upload refused while its body was read: ``status`` (413, 422) and what is wrong."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class UploadedFile:
    """One file part: the form field it came in, the client's file name, where it lies, and its size."""

    field: str
    filename: str | None
    path: Path
    size: int


@dataclass
class Upload:
    """A parsed multipart body: its plain fields and its files (delete them with :meth:`discard`)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def discard(self) -> None:
        for f in self.files:
            f.path.unlink(missing_ok=True)

    def files_of(self, name: str) -> list[UploadedFile]:
        return [f for f in self.files if f.field == name]


async def read_upload(request: Request, folder: Path, *, max_files: int, max_file_bytes: int, max_fields: int = 8,
                      max_field_bytes: int = 1024) -> Upload:
    """Read ``request``'s multipart body into ``folder`` within the limits (see the module docstring).

    Raises
    ------
    UploadError
        415 when the body is not multipart/form-data, 413 over a size or count limit, 422 when it is malformed or
        cut off.
    """
    if not request.headers.get("content-type"):
        return Upload()  # no form at all: the route says which field is missing
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, "expected a multipart/form-data body (an HTML form or curl -F)")
    upload = Upload()
    state: dict = {"headers": {}, "name": None, "value": b"", "file": None, "error": None}

    def fail(status: int, detail: str) -> None:
        if state["error"] is None:
            state["error"] = UploadError(status, detail)

    def on_part_begin() -> None:
        state.update(headers={}, name=None, value=b"", file=None)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] = state.get("field", b"") + data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["hvalue"] = state.get("hvalue", b"") + data[start:end]

    def on_header_end() -> None:
        state["headers"][state.pop("field", b"").lower()] = state.pop("hvalue", b"")

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        if b"filename" in disposition:
            if len(upload.files) >= max_files:
                return fail(413, f"files: at most {max_files} per request")
            path = folder / f"{new_id()}.part"
            upload.files.append(UploadedFile(name, disposition[b"filename"].decode("utf-8", "replace"), path, 0))
            # the owner's alone (0600) whatever the umask: a recording is personal data
            state["file"] = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        elif len(upload.fields) >= max_fields:
            fail(413, f"form: at most {max_fields} fields besides the files")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["error"] is not None:
            return
        chunk = data[start:end]
        if state["file"] is not None:
            current = upload.files[-1]
            current.size += len(chunk)
            if current.size > max_file_bytes:
                return fail(413, f"file {current.filename!r}: over the limit of {max_file_bytes / 2**20:.1f} MB")
            state["file"].write(chunk)
        else:
            state["value"] += chunk
            if len(state["value"]) > max_field_bytes:
                fail(413, f"form field {state['name']!r}: over {max_field_bytes} bytes")

    def on_part_end() -> None:
        if state["file"] is not None:
            state["file"].close()
            state["file"] = None
        elif state["name"] is not None and state["error"] is None:
            upload.fields[state["name"]] = state["value"].decode("utf-8", "replace")

    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if state["error"] is not None:
                raise state["error"]
        parser.finalize()
        if state["error"] is not None:
            raise state["error"]
        if state["file"] is not None:  # the body ended inside a part
            raise UploadError(422, "the upload ended before its last part did (cut off?)")
    except UploadError:
        _close(state)
        upload.discard()
        raise
    except ClientDisconnect:
        _close(state)
        upload.discard()
        raise
    except Exception as exc:  # python-multipart's parse errors: a malformed body
        _close(state)
        upload.discard()
        raise UploadError(422, f"malformed multipart body ({type(exc).__name__})") from None
    return upload


def _close(state: dict) -> None:
    if state.get("file") is not None:
        state["file"].close()
        state["file"] = None
