"""Organization logos: decoded and verified with Pillow (never trusted by name or content type), bounded in bytes
and pixels (decompression bombs), re-encoded as PNG (which also drops metadata), stored through Django's storage
API under a content-addressed name so `logo_url` is stable and cacheable."""

import hashlib
import io
import warnings

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

from public_app import errors
from public_app.models import Organization

ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP"}


def _invalid(message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed.for_field("file", message)


def logo_process(data: bytes) -> bytes:
    """The re-encoded PNG of an uploaded logo, or 422 explaining what is wrong with it."""
    if len(data) > settings.LOGO_MAX_BYTES:
        raise _invalid(f"The logo must be at most {settings.LOGO_MAX_BYTES // 1024} KiB.")
    max_side = settings.LOGO_MAX_SIDE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in ALLOWED_FORMATS:
                    raise _invalid("The logo must be a PNG, JPEG or WebP image.")
                width, height = probe.size  # read from the header, before any pixel is decoded
                if width > max_side or height > max_side or width < 1 or height < 1:
                    raise _invalid(f"The logo must be at most {max_side}×{max_side} pixels.")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()  # a truncated or corrupt file fails here
                picture: Image.Image = image
                if picture.mode not in ("RGB", "RGBA", "L", "LA"):
                    picture = picture.convert("RGBA")
                out = io.BytesIO()
                image.save(out, format="PNG", optimize=True)
    except errors.ValidationFailed:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _invalid(f"The logo must be at most {max_side}×{max_side} pixels.") from None
    except Exception:
        # Pillow raises many kinds of errors for hostile or broken files; all of them mean "not an image".
        raise _invalid("The file is not a valid PNG, JPEG or WebP image.") from None
    return out.getvalue()


def logo_store(organization: Organization, png: bytes) -> str:
    name = f"logos/{organization.uid}/{hashlib.sha256(png).hexdigest()[:32]}.png"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(png))
    return name


def logo_delete_file(name: str) -> None:
    if name and default_storage.exists(name):
        default_storage.delete(name)


def logo_url(organization: Organization) -> str | None:
    return default_storage.url(organization.logo) if organization.logo else None
