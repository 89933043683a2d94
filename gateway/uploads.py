"""Read the photo(s) of a request, in memory only, refusing what cannot be one before Triton is called.

PRIVACY: Starlette's own form parser spools uploads over 1 MB to a temporary file, i.e. an ID card
photo on disk. `InMemoryMultiPartParser` keeps every part in memory; the body is already capped by
the RequestContext middleware, so memory stays bounded.
"""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.errors import ApiError

# Declared types we pass on; the ensemble then checks what the bytes really are.
RAW_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/octet-stream"})
PART_IMAGE_TYPES = RAW_IMAGE_TYPES | {"image/jpg", "image/pjpeg", ""}  # "" = the part declared no type
MAX_FORM_FIELDS = 16
MAX_FORM_FILES = 1000  # parsed so the error can say how many came; the body cap bounds their size
ACCEPTED = "send a JPEG, PNG or WebP photo"


class InMemoryMultiPartParser(MultiPartParser):
    spool_max_size = 0  # SpooledTemporaryFile(max_size=0) never rolls over to a file
    complete = False  # python-multipart calls on_end only at the closing boundary

    def on_end(self) -> None:
        self.complete = True


@dataclass
class Upload:
    """One image of a request, or the reason it cannot be sent to Triton (`error`)."""

    data: bytes = b""
    error: ApiError | None = None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


async def parse_multipart(request: Request) -> FormData:
    """The multipart body, every part in memory; 400 when it is not valid multipart."""
    parser = InMemoryMultiPartParser(request.headers, request.stream(), max_files=MAX_FORM_FILES,
                                     max_fields=MAX_FORM_FIELDS)
    try:
        form = await parser.parse()
    except (MultiPartException, KeyError, ValueError):
        raise ApiError(400, "invalid_multipart", "the multipart body could not be parsed") from None
    if not parser.complete:
        await form.close()
        raise ApiError(400, "invalid_multipart", "the multipart body ends before its closing boundary; "
                                                 "was the upload cut short?")
    return form


async def _read_part(part: UploadFile, max_bytes: int) -> Upload:
    part_type = media_type(part.content_type)
    if part_type not in PART_IMAGE_TYPES:
        return Upload(error=ApiError(415, "unsupported_media_type", f"'{part_type}' is not accepted; {ACCEPTED}"))
    data = await part.read(max_bytes + 1)
    if len(data) > max_bytes:
        return Upload(error=too_large(max_bytes))
    return Upload(data)


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "image_too_large", f"the image is larger than {max_bytes} bytes; send a smaller photo")


async def read_image(request: Request, max_bytes: int) -> bytes:
    """The photo of POST /v1/ocr: multipart field `image`, or the raw image as the body."""
    media = media_type(request.headers.get("content-type"))
    if media == "multipart/form-data":
        form = await parse_multipart(request)
        try:
            parts = form.getlist("image")
            if not parts:
                raise ApiError(400, "missing_image", "send the photo as a file in the multipart field 'image'")
            if len(parts) > 1:
                raise ApiError(400, "too_many_images", "send one photo in 'image'; POST /v1/ocr/batch takes several")
            if not isinstance(parts[0], UploadFile):
                raise ApiError(400, "missing_image", "'image' is a text field; upload the photo as a file")
            upload = await _read_part(parts[0], max_bytes)
        finally:
            await form.close()
        if upload.error:
            raise upload.error
        return upload.data
    if media in RAW_IMAGE_TYPES:
        data = await request.body()
        if len(data) > max_bytes:
            raise too_large(max_bytes)
        return data
    raise ApiError(415, "unsupported_media_type",
                   f"Content-Type '{media or 'none'}' is not accepted; send multipart/form-data with field "
                   "'image', or the photo itself as image/jpeg, image/png or image/webp")


async def read_images(request: Request, max_images: int, max_bytes: int) -> list[Upload]:
    """The photos of POST /v1/ocr/batch (repeated multipart field `images`), in order, each checked alone."""
    media = media_type(request.headers.get("content-type"))
    if media != "multipart/form-data":
        raise ApiError(415, "unsupported_media_type",
                       f"Content-Type '{media or 'none'}' is not accepted; send multipart/form-data with the photos "
                       "as repeated file fields 'images'")
    form = await parse_multipart(request)
    try:
        parts = form.getlist("images")
        if not parts:
            raise ApiError(400, "missing_image", "send the photos as files in the repeated multipart field 'images'")
        if len(parts) > max_images:
            raise ApiError(413, "too_many_images",
                           f"{len(parts)} images sent; a batch takes at most {max_images}")
        texts = [i for i, p in enumerate(parts) if not isinstance(p, UploadFile)]
        if texts:  # a malformed request, not a bad photo: refuse it whole
            raise ApiError(400, "missing_image", f"part {texts[0]} of 'images' is a text field; upload each photo "
                                                 "as a file")
        return [await _read_part(p, max_bytes) for p in parts if isinstance(p, UploadFile)]
    finally:
        await form.close()
